"""A plain PyTorch loop with tw.init and the gradient/parameter-norm helper."""

import torch

import trainwatch as tw
from trainwatch.integrations.torch import log_step


def main():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with tw.init(project="integration", framework="pytorch", config={"lr": 0.1}, batch_size=16, gpu="off",
                 throughput_interval=0.0):
        for step in range(10):
            x = torch.randn(16, 4)
            loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
            loss.backward()
            log_step(model, opt, step, loss=loss, batch_size=16)
            opt.step()
            opt.zero_grad()


if __name__ == "__main__":
    main()
