"""A tiny Hugging Face Trainer run (a 1-layer BERT built from a config: nothing downloaded) on CPU."""

import sys

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from trainwatch.integrations.huggingface import TrainwatchCallback


def main():
    out_dir = sys.argv[1]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(config)
    rows = [
        {"input_ids": torch.randint(0, 64, (12,)), "attention_mask": torch.ones(12, dtype=torch.long),
         "labels": torch.tensor(i % 2)}
        for i in range(48)
    ]
    args = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=4, per_device_eval_batch_size=8, max_steps=8,
        learning_rate=1e-3, logging_steps=1, eval_strategy="steps", eval_steps=4, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True,
    )
    callback = TrainwatchCallback(project="integration", tokens_per_step=4 * 12, throughput_interval=0.0, gpu="off")
    Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:16], callbacks=[callback]).train()


if __name__ == "__main__":
    main()
