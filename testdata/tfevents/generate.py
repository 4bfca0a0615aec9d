#!/usr/bin/env python3
"""Writes the TensorBoard event files of testdata/tfevents/logs with the real writers from PyPI.

    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard==2.20.0 tensorboardX==2.6.5
    /tmp/tb/bin/python testdata/tfevents/generate.py

The files are committed; CI does not run this. What each run holds (the agent's tests check these values):

logs/run_a (tensorboardX.SummaryWriter, the same record format as torch.utils.tensorboard.SummaryWriter):
  train/loss      simple_value, steps 0..19, value 2.0 / (step + 1), wall time 1700000000 + 10 * step
  train/accuracy  simple_value, steps 0..19, value step / 20
  weights         a histogram (must NOT be imported as a scalar), step 0
  notes           a text summary (must NOT be imported), step 0
logs/nested/run_b (tensorboard's own EventFileWriter with tensor summaries, as TF2 tf.summary writes them):
  eval/top-1 acc  DT_DOUBLE scalar tensor, plugin "scalars" in the first value only, steps 0..4, value 0.5 + step / 10
  train/tokens    DT_INT64 scalar tensor, steps 0..4, value 4096 * (step + 1)
  lr              DT_HALF scalar tensor (half_val), steps 0..4, value 0.25
  eval/loss       DT_FLOAT tensor made by tensorboard.util.tensor_util.make_tensor_proto with the metadata of
                  tensorboard.plugins.scalar.metadata.create_summary_metadata (what scalar_pb writes), steps 0..4,
                  value 1.5 - step / 10
"""
import os
import shutil

import numpy as np
import tensorboardX
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util
from tensorboard.summary.writer.event_file_writer import EventFileWriter

HERE = os.path.dirname(os.path.abspath(__file__))
LOGS = os.path.join(HERE, "logs")
BASE = 1700000000.0


def run_a():
    w = tensorboardX.SummaryWriter(os.path.join(LOGS, "run_a"))
    for step in range(20):
        t = BASE + 10 * step
        w.add_scalar("train/loss", 2.0 / (step + 1), step, walltime=t)
        w.add_scalar("train/accuracy", step / 20, step, walltime=t)
    w.add_histogram("weights", np.linspace(-1, 1, 50), 0, walltime=BASE)
    w.add_text("notes", "hello", 0, walltime=BASE)
    w.close()


def scalar_tensor(dtype, **values):
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(), **values)


def run_b():
    w = EventFileWriter(os.path.join(LOGS, "nested", "run_b"))
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in range(5):
        values = [
            summary_pb2.Summary.Value(
                tag="eval/top-1 acc",
                tensor=scalar_tensor(types_pb2.DT_DOUBLE, double_val=[0.5 + step / 10]),
                **({"metadata": meta} if step == 0 else {}),
            ),
            summary_pb2.Summary.Value(
                tag="train/tokens",
                tensor=scalar_tensor(types_pb2.DT_INT64, int64_val=[4096 * (step + 1)]),
                **({"metadata": meta} if step == 0 else {}),
            ),
            summary_pb2.Summary.Value(
                tag="lr",
                tensor=scalar_tensor(types_pb2.DT_HALF, half_val=[int(np.float16(0.25).view(np.uint16))]),
                **({"metadata": meta} if step == 0 else {}),
            ),
            summary_pb2.Summary.Value(
                tag="eval/loss",
                tensor=tensor_util.make_tensor_proto(np.float32(1.5 - step / 10)),
                metadata=scalar_metadata.create_summary_metadata(display_name="eval/loss", description=""),
            ),
        ]
        w.add_event(event_pb2.Event(wall_time=BASE + 100 + step, step=step, summary=summary_pb2.Summary(value=values)))
    w.close()


if __name__ == "__main__":
    shutil.rmtree(LOGS, ignore_errors=True)
    run_a()
    run_b()
    for root, _, files in os.walk(LOGS):
        for f in files:
            print(os.path.relpath(os.path.join(root, f), HERE), os.path.getsize(os.path.join(root, f)))
