"""The core against a real trainwatch: what tw.log sends and how it is labelled, step timing and throughput,
the heartbeat, a stalled or absent destination (the training loop goes on), the spool and its resend,
idempotent resends, offline files and sync, and the exit paths (SIGTERM, crash, normal exit)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Trainwatch, after_this_millisecond, free_port, python_script, wait_for

import trainwatch as tw
from trainwatch.protocol import decode_frame
from trainwatch.transport import HttpSender, find_frames

FAST = {"flush_interval": 0.05, "heartbeat_interval": 3600.0, "gpu": "off"}


def points(series):
    return sorted((t, v) for s in series for t, v in zip(s["t"], s["v"]))


def test_log_reaches_trainwatch_with_the_right_names_labels_and_metadata(trainwatch_server, spool_dir):
    srv = trainwatch_server
    with tw.init(job_id="core-basic", name="basic", project="sdk", config={"lr": 0.1, "layers": [2, 3]},
                 tags=["unit"], server=srv.url, spool_dir=spool_dir, framework="custom", **FAST) as run:
        for step in range(5):
            tw.log({"train/loss": 1.0 / (step + 1), "eval": {"acc": step / 10}}, step=step)
        assert run.wait_idle(20)
    loss = srv.wait_series("train_loss", 5, job_id="core-basic")
    assert len(loss) == 1
    assert loss[0]["labels"] == {"__name__": "train_loss", "job_id": "core-basic", "rank": "0",
                                 "node_id": socket.gethostname().split(".")[0], "tenant": "default"}
    assert [v for _, v in points(loss)] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [v for _, v in points(srv.wait_series("eval_acc", 5, job_id="core-basic"))] == [0, 0.1, 0.2, 0.3, 0.4]
    steps = points(srv.wait_series("train_step", 5, job_id="core-basic"))
    assert [v for _, v in steps][:5] == [0, 1, 2, 3, 4]
    job = wait_for("the job to be completed", lambda: (j := srv.job("core-basic"))["status"] == "completed" and j)
    assert job["name"] == "basic" and job["project"] == "sdk" and job["framework"] == "custom"
    assert job["config"] == {"lr": 0.1, "layers": [2, 3]} and job["tags"] == ["unit"] and job["worldSize"] == 1
    assert job["metricKeys"]["train_loss"] == "train/loss"
    assert job["metricKeys"]["eval_acc"] == "eval/acc"


def test_steps_advance_per_call_without_step_and_stay_once_given(trainwatch_server, spool_dir):
    srv = trainwatch_server
    run = tw.init(job_id="core-steps", server=srv.url, spool_dir=spool_dir, **FAST)
    # Each log call on a later millisecond: train_step points with one timestamp would be one sample.
    tw.log({"a": 1})  # step 0
    after_this_millisecond()
    tw.log({"a": 2})  # step 1
    after_this_millisecond()
    tw.log({"b": 1}, step=10)
    after_this_millisecond()
    tw.log({"c": 1})  # steps were given: stays at 10
    assert run.wait_idle(20)
    tw.finish()
    assert [v for _, v in points(srv.wait_series("train_step", 4, job_id="core-steps"))] == [0, 1, 10, 10]


def test_step_time_and_throughput(trainwatch_server, spool_dir):
    srv = trainwatch_server
    run = tw.init(job_id="core-throughput", server=srv.url, spool_dir=spool_dir, batch_size=8, tokens_per_step=512,
                  throughput_interval=0.0, **FAST)
    for step in range(6):
        time.sleep(0.01)  # the training step's work (what the SDK times), not a wait for an event
        tw.log({"loss": 1.0}, step=step * 2)  # two optimizer steps per log call
    assert run.wait_idle(20)
    tw.finish()
    durations = [v for _, v in points(srv.wait_series("train_step_duration_seconds", 5, job_id="core-throughput"))]
    samples = [v for _, v in points(srv.wait_series("train_samples_per_second", 5, job_id="core-throughput"))]
    tokens = [v for _, v in points(srv.wait_series("train_tokens_per_second", 5, job_id="core-throughput"))]
    # Each window is >= 10 ms for 2 steps: a step takes >= 5 ms, so samples/s <= 8 / 0.005 (no exact timing).
    assert all(d >= 0.005 for d in durations)
    for d, s, t in zip(durations, samples, tokens):
        assert s == pytest.approx(8 / d) and t == pytest.approx(512 / d)


def test_heartbeat_continues_while_the_training_loop_makes_no_progress(trainwatch_server, spool_dir):
    srv = trainwatch_server
    run = tw.init(job_id="core-hang", server=srv.url, spool_dir=spool_dir, flush_interval=0.05,
                  heartbeat_interval=0.1, gpu="off")
    tw.log({"loss": 1.0}, step=7)
    # The "training loop" is now stuck (as in an NCCL hang): the background thread keeps reporting.
    beats = srv.wait_series("train_heartbeat_timestamp_seconds", 4, job_id="core-hang")
    run.finish()
    values = [v for _, v in points(beats)]
    assert values == sorted(values) and values[-1] > values[0]
    steps = [v for _, v in points(srv.series("train_step", job_id="core-hang"))]
    assert len(steps) >= 4 and set(steps) == {7}  # the last step, re-sent: alive, but no progress
    last = points(srv.series("train_last_step_timestamp_seconds", job_id="core-hang"))
    assert len({v for _, v in last}) == 1


def test_log_never_raises_and_counts_what_it_drops(spool_dir):
    # A destination nobody listens on, and a worker that does not drain during the test.
    run = tw.init(job_id="core-drops", server=f"http://127.0.0.1:{free_port()}", spool_dir=spool_dir,
                  flush_interval=3600, max_queue=10, gpu="off")
    tw.log(None)  # type: ignore[arg-type]
    tw.log({"not a number": "text", "tensor-like list": [1, 2]})  # queued; the worker counts invalid values
    tw.log(42)  # type: ignore[arg-type]
    for i in range(25):
        tw.log({"x": i}, step=i)
    c = run.counters()
    # The queue holds the job's start event, the record with invalid values and 8 of the 25.
    assert c["log_errors"] == 2
    assert c["dropped_queue_full"] == 17 and c["queued"] == 10
    run.finish(timeout=2)
    tw.log({"after": 1})  # after finish: a no-op, still no exception


def test_the_training_loop_goes_on_while_the_agent_is_stalled(tmp_path):
    """An agent that accepts connections and never answers: tw.log keeps returning; frames end in the spool."""
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(16)
    port = stalled.getsockname()[1]
    accepted = []
    release = threading.Event()

    def accept_and_hold():
        stalled.settimeout(0.2)
        while not release.is_set():
            try:
                conn, _ = stalled.accept()
                accepted.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    holder = threading.Thread(target=accept_and_hold, daemon=True)
    holder.start()
    spool = tmp_path / "spool"
    run = tw.init(job_id="core-stalled", agent_url=f"http://127.0.0.1:{port}", spool_dir=str(spool),
                  flush_interval=0.01, request_timeout=1.0, flush_timeout=1.0, max_queue=1000, gpu="off")
    try:
        wait_for("the sender to be stuck in a request", lambda: accepted)
        # The training loop: it must complete while the sender is blocked on the stalled agent. If tw.log
        # waited for the sender, this loop would hang until the request timed out, again and again.
        for step in range(3000):
            tw.log({"loss": 1.0 / (step + 1)}, step=step)
        c = run.counters()
        assert c["frames_sent"] == 0
        assert c["dropped_queue_full"] + c["records"] + c["queued"] >= 3000
        run.finish()
        c = run.counters()
        assert c["frames_sent"] == 0 and c["spool_frames"] >= 1
        frames = find_frames(str(spool))
        assert frames, "undelivered frames are left in the spool"
        steps = sorted(
            v for f in frames for s in decode_frame(Path(f).read_bytes()).series
            if s.labels["__name__"] == "train_step" for v in s.values
        )
        assert steps and steps[-1] <= 2999
    finally:
        release.set()
        holder.join()
        for c in accepted:
            c.close()
        stalled.close()


def test_spooled_frames_are_resent_when_trainwatch_comes_up(spool_dir):
    port = free_port()
    run = tw.init(job_id="core-spool", server=f"http://127.0.0.1:{port}", spool_dir=spool_dir, **FAST)
    for step in range(10):
        tw.log({"loss": float(step)}, step=step)
    wait_for("frames in the spool", lambda: run.counters()["spool_frames"] >= 1, timeout=20)
    assert find_frames(spool_dir)
    srv = Trainwatch(port)  # trainwatch comes up where the run was sending
    try:
        for step in range(10, 15):
            tw.log({"loss": float(step)}, step=step)
        assert run.wait_idle(60), run.counters()
        run.finish()
        got = points(srv.wait_series("loss", 15, job_id="core-spool"))
        assert [v for _, v in got] == [float(s) for s in range(15)]  # everything, once, in order
        assert run.counters()["frames_sent"] >= 2
        assert not find_frames(spool_dir)
    finally:
        srv.stop()


def test_resending_a_frame_stores_it_once(trainwatch_server, tmp_path):
    srv = trainwatch_server
    run = tw.init(job_id="core-idem", mode="offline", offline_dir=str(tmp_path), **FAST)
    for step in range(3):
        tw.log({"loss": float(step)}, step=step)
    run.finish()
    frames = find_frames(str(tmp_path))
    assert frames
    sender = HttpSender(srv.url)
    for attempt in range(3):  # the same bytes, the same idempotency key, three times
        for f in frames:
            out = sender.send(Path(f).read_bytes())
            assert out.ok, out
            # A duplicate answer means the server dropped the frame before writing it anywhere: once every
            # re-send is answered so, no more data can appear later (no need to wait and see).
            assert out.duplicate == (attempt > 0), out
    assert sender.send(Path(frames[0]).read_bytes()).duplicate
    sender.close()
    got = points(srv.wait_series("loss", 3, job_id="core-idem"))
    assert [v for _, v in got] == [0.0, 1.0, 2.0]


def test_offline_mode_then_python_sync(trainwatch_server, tmp_path):
    srv = trainwatch_server
    out_dir = tmp_path / "offline"
    r = python_script(
        "import trainwatch as tw\n"
        "tw.init(job_id='core-offline', config={'lr': 0.5}, gpu='off', flush_interval=0.05)\n"
        "for s in range(20): tw.log({'train/loss': 1.0 / (s + 1)}, step=s)\n",
        {"TRAINWATCH_MODE": "offline", "TRAINWATCH_DIR": str(out_dir), "TRAINWATCH_SPOOL_DIR": str(tmp_path / "sp")},
    )
    assert r.returncode == 0, r.stderr
    frames = find_frames(str(out_dir))
    assert frames and all("core-offline" in f for f in frames)
    assert srv.series("train_loss", job_id="core-offline") == []
    sync = [sys.executable, "-m", "trainwatch", "sync", str(out_dir), "--server", srv.url]
    first = subprocess.run(sync, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f'"sent": {len(frames)}' in first.stdout
    got = points(srv.wait_series("train_loss", 20, job_id="core-offline"))
    assert [v for _, v in got] == [1.0 / (s + 1) for s in range(20)]
    job = wait_for("the job to be completed", lambda: (j := srv.job("core-offline"))["status"] == "completed" and j)
    assert job["config"] == {"lr": 0.5}
    again = subprocess.run(sync, capture_output=True, text=True, timeout=60)
    assert '"frames": 0' in again.stdout  # sent frames are marked .sent
    resend = subprocess.run([*sync, "--resend"], capture_output=True, text=True, timeout=60)
    assert resend.returncode == 0 and f'"duplicate": {len(frames)}' in resend.stdout
    assert len(points(srv.series("train_loss", job_id="core-offline"))) == 20


def test_sigterm_flushes_and_marks_the_job_failed(trainwatch_server, tmp_path):
    srv = trainwatch_server
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import time, trainwatch as tw\n"
         "tw.init(job_id='core-sigterm', gpu='off', flush_interval=5)\n"
         "for s in range(3): tw.log({'loss': s}, step=s)\n"
         "print('ready', flush=True)\n"
         "time.sleep(60)\n"],
        env={**os.environ, "TRAINWATCH_SERVER": srv.url, "TRAINWATCH_SPOOL_DIR": str(tmp_path)},
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # still ends the way its launcher expects
    finally:
        if proc.poll() is None:
            proc.kill()
    # flush_interval=5 s: the samples can only have come from the flush on SIGTERM.
    assert len(points(srv.wait_series("loss", 3, job_id="core-sigterm"))) == 3
    wait_for("the job to be failed", lambda: srv.job("core-sigterm")["status"] == "failed")


def test_an_uncaught_exception_marks_the_job_failed_and_a_normal_exit_completed(trainwatch_server, tmp_path):
    srv = trainwatch_server
    env = {"TRAINWATCH_SERVER": srv.url, "TRAINWATCH_SPOOL_DIR": str(tmp_path)}
    crash = python_script(
        "import trainwatch as tw\ntw.init(job_id='core-crash', gpu='off', flush_interval=5)\n"
        "tw.log({'loss': 1.0}, step=1)\nraise RuntimeError('CUDA out of memory')\n", env)
    assert crash.returncode == 1 and "CUDA out of memory" in crash.stderr
    ok = python_script(
        "import trainwatch as tw\ntw.init(job_id='core-exit', gpu='off', flush_interval=5)\n"
        "tw.log({'loss': 1.0}, step=1)\n", env)
    assert ok.returncode == 0, ok.stderr
    wait_for("the crashed job to be failed", lambda: srv.job("core-crash")["status"] == "failed")
    wait_for("the finished job to be completed", lambda: srv.job("core-exit")["status"] == "completed")
    assert len(points(srv.wait_series("loss", 1, job_id="core-crash"))) == 1


def test_a_later_run_delivers_the_spool_a_dead_run_left(trainwatch_server, tmp_path):
    srv = trainwatch_server
    spool = tmp_path / "spool"
    dead = python_script(
        "import trainwatch as tw\ntw.init(job_id='core-orphan', gpu='off', flush_interval=0.05)\n"
        "for s in range(4): tw.log({'loss': float(s)}, step=s)\n",
        {"TRAINWATCH_SERVER": f"http://127.0.0.1:{free_port()}", "TRAINWATCH_SPOOL_DIR": str(spool)},
    )
    assert dead.returncode == 0, dead.stderr
    assert "kept in" in dead.stderr
    assert find_frames(str(spool))
    run = tw.init(job_id="core-next", server=srv.url, spool_dir=str(spool), **FAST)
    assert run.wait_idle(30), run.counters()
    assert run.counters()["frames_adopted"] >= 1
    run.finish()
    assert [v for _, v in points(srv.wait_series("loss", 4, job_id="core-orphan"))] == [0.0, 1.0, 2.0, 3.0]
    wait_for("the orphaned job to be completed", lambda: srv.job("core-orphan")["status"] == "completed")
    assert not find_frames(str(spool))


def test_disabled_mode_does_nothing(spool_dir):
    run = tw.init(mode="disabled", spool_dir=spool_dir)
    tw.log({"x": 1})
    assert run.counters()["queued"] == 0
    run.finish()


def test_gpu_sampling_stays_off_without_nvml():
    from trainwatch.gpu import load_nvml

    # This machine has no NVIDIA driver: NVML (installed for the tests) must fail to load, quietly.
    assert load_nvml() is None


def test_odd_keys_and_values_neither_stop_the_sender_nor_lose_the_good_ones(tmp_path):
    run = tw.init(job_id="core-odd", mode="offline", offline_dir=str(tmp_path), **FAST)

    class Unreadable:
        def __float__(self):
            raise RuntimeError("device lost")

    tw.log({1: 2.0, "nested": {3: 1.0, "deep": {"x": True}}, "bad": Unreadable(), "text": "hi"}, step=1)
    tw.log({"good": 5.0}, step=2)
    run.finish()
    got = {}
    for f in find_frames(str(tmp_path)):
        for s in decode_frame(Path(f).read_bytes()).series:
            got.setdefault(s.labels["__name__"], []).extend(s.values)
    assert got["_1"] == [2.0] and got["nested_3"] == [1.0] and got["nested_deep_x"] == [1.0]
    assert got["good"] == [5.0] and got["train_step"] == [1.0, 2.0]
    assert run.counters()["invalid_values"] == 2
