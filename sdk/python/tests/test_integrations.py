"""The integrations with the real frameworks from PyPI, each training a tiny model on CPU in its own process
against a running trainwatch; the curves must be queryable afterwards with the right labels, and the job
registered with its framework and config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing, require_module, wait_for

SCRIPTS = Path(__file__).parent / "scripts"


def train(script: str, job_id: str, server_url: str, tmp_path: Path, *args: str, timeout: float = 300) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWATCH_")}
    env.update({
        "TRAINWATCH_SERVER": server_url, "TRAINWATCH_JOB_ID": job_id,
        "TRAINWATCH_SPOOL_DIR": str(tmp_path / "spool"), "TRAINWATCH_FLUSH_INTERVAL": "0.2",
        "KERAS_BACKEND": "torch", "PYTHONUNBUFFERED": "1",
    })
    r = subprocess.run([sys.executable, str(SCRIPTS / script), *args], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{script} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert "kept in" not in r.stderr, r.stderr[-3000:]  # everything was delivered


def values(series):
    return [v for s in series for v in s["v"]]


def check_common(srv, job_id: str, framework: str, ranks=("0",)):
    """Curves every integration must produce, per rank, with the run's labels."""
    for metric in ("train_loss", "train_step", "train_step_duration_seconds"):
        series = srv.wait_series(metric, 2, job_id=job_id)
        assert sorted(s["labels"]["rank"] for s in series) == sorted(ranks), (metric, series)
        for s in series:
            assert s["labels"]["job_id"] == job_id and s["labels"]["node_id"]
            assert "world_size" not in s["labels"]
    job = wait_for("the job's metadata", lambda: (j := srv.job(job_id))["framework"] and j)
    assert job["framework"].startswith(framework)
    assert job["project"] == "integration"
    assert job["worldSize"] == len(ranks)
    return job


def test_lightning_two_ddp_ranks_on_cpu(trainwatch_server, tmp_path):
    require_module("lightning")
    srv = trainwatch_server
    train("lightning_train.py", "it-lightning", srv.url, tmp_path, "2")
    job = check_common(srv, "it-lightning", "lightning", ranks=("0", "1"))
    assert job["config"]["lr"] == 0.05 and job["config"]["hidden"] == 8  # the module's hparams
    assert job["metricKeys"]["train_loss"] == "train/loss"
    assert job["status"] == "completed"
    # 96 samples / 2 ranks / batch 8 = 6 steps per epoch, 2 epochs: steps 1..12 on each rank.
    steps = srv.wait_series("train_step", 12, job_id="it-lightning", rank="1")
    assert max(values(steps)) == 12
    val = srv.wait_series("val_loss", 2, job_id="it-lightning")
    assert {s["labels"]["rank"] for s in val} == {"0", "1"}
    assert values(srv.wait_series("train_lr", 1, job_id="it-lightning", rank="0"))[0] == 0.05
    samples = values(srv.wait_series("train_samples_per_second", 1, job_id="it-lightning", rank="0"))
    assert all(v > 0 for v in samples)


def test_huggingface_trainer(trainwatch_server, tmp_path):
    require_module("transformers")
    srv = trainwatch_server
    train("hf_train.py", "it-hf", srv.url, tmp_path, str(tmp_path / "out"))
    job = check_common(srv, "it-hf", "transformers")
    assert job["config"]["learning_rate"] == 0.001 and job["config"]["model"]["num_hidden_layers"] == 1
    assert len(values(srv.wait_series("train_loss", 8, job_id="it-hf"))) == 8  # logging_steps=1, max_steps=8
    assert len(values(srv.wait_series("eval_loss", 2, job_id="it-hf"))) == 2  # eval at steps 4 and 8
    assert values(srv.wait_series("train_learning_rate", 1, job_id="it-hf"))[0] > 0
    assert max(values(srv.wait_series("train_step", 8, job_id="it-hf"))) == 8
    # 4 samples x 12 tokens per step: tokens/s is 12 x samples/s wherever both were computed.
    samples = values(srv.wait_series("train_samples_per_second", 1, job_id="it-hf"))
    tokens = values(srv.wait_series("train_tokens_per_second", 1, job_id="it-hf"))
    assert tokens[0] == pytest.approx(12 * samples[0])
    assert values(srv.wait_series("summary_train_runtime", 1, job_id="it-hf"))[0] > 0


def test_keras_fit(trainwatch_server, tmp_path):
    require_module("keras")
    srv = trainwatch_server
    train("keras_train.py", "it-keras", srv.url, tmp_path)
    check_common(srv, "it-keras", "keras/torch")
    # 64 training rows (validation_split=0.2 of 80) / batch 8 = 8 steps per epoch, 2 epochs.
    assert len(values(srv.wait_series("train_loss", 16, job_id="it-keras"))) == 16
    assert len(values(srv.wait_series("train_accuracy", 16, job_id="it-keras"))) == 16
    assert len(values(srv.wait_series("val_loss", 2, job_id="it-keras"))) == 2
    assert values(srv.wait_series("epoch", 2, job_id="it-keras")) == [1, 2]
    assert values(srv.wait_series("train_learning_rate", 1, job_id="it-keras"))[0] == pytest.approx(0.01)
    assert values(srv.wait_series("train_samples_per_second", 1, job_id="it-keras"))[0] > 0
    assert wait_for("completed", lambda: srv.job("it-keras")["status"] == "completed")


def test_plain_pytorch_loop_with_norms(trainwatch_server, tmp_path):
    torch = require_module("torch")
    if torch is None:
        missing("torch", "pip install torch")
    srv = trainwatch_server
    train("torch_train.py", "it-torch", srv.url, tmp_path)
    job = check_common(srv, "it-torch", "pytorch")
    assert job["config"] == {"lr": 0.1}
    assert len(values(srv.wait_series("train_grad_norm", 10, job_id="it-torch"))) == 10
    assert all(v > 0 for v in values(srv.wait_series("train_param_norm", 10, job_id="it-torch")))
    assert values(srv.wait_series("train_lr", 10, job_id="it-torch"))[0] == 0.1
    assert wait_for("completed", lambda: srv.job("it-torch")["status"] == "completed")
