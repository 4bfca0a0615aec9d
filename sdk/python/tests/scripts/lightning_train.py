"""A tiny LightningModule trained for a few steps on CPU, with two DDP ranks (gloo), reporting to trainwatch.
Run by test_integrations.py with TRAINWATCH_SERVER and TRAINWATCH_JOB_ID set."""

import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainwatch.integrations.lightning import TrainwatchCallback


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main():
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = x.sum(dim=1, keepdim=True)
    data = TensorDataset(x, y)
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", max_epochs=2,
        log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        logger=False, callbacks=[TrainwatchCallback(project="integration", throughput_interval=0.0, gpu="off")],
    )
    trainer.fit(Regressor(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=32))


if __name__ == "__main__":
    main()
