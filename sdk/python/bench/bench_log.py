"""Per-call cost of ``tw.log`` as the training loop sees it.

    .venv/bin/python sdk/python/bench/bench_log.py [--calls 200000] [--server http://127.0.0.1:9470]

Each call is timed on its own with ``perf_counter_ns`` (the timer's own cost, measured on an empty call, is
reported beside it), with a dict of 4 metrics and an explicit step, the way a loop logs. Destinations:

* ``absent``: nothing listens on the agent port (every send fails at once; frames go to the spool);
* ``stalled``: an agent that accepts connections and never answers (the sender thread is stuck);
* ``live``: a running trainwatch given with ``--server``.

The background thread runs concurrently in every case, so its work (encoding, zlib, HTTP, disk) competes
for the GIL as it does in training. Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time

import trainwatch as tw


def measure(calls: int, log, work_us: float = 0.0) -> dict:
    """``work_us``: a busy loop between calls holding the GIL (the worst case for the sender thread's
    competition: real training mostly waits in native code that releases it)."""
    ns = time.perf_counter_ns
    samples = [0] * calls
    metrics = {"train/loss": 0.5, "train/acc": 0.9, "lr": 3e-4, "grad_norm": 1.2}
    work_ns = int(work_us * 1000)
    for i in range(calls):
        metrics["train/loss"] = 1.0 / (i + 1)
        if work_ns:
            until = ns() + work_ns
            while ns() < until:
                pass
        t0 = ns()
        log(metrics, i)
        samples[i] = ns() - t0
    samples.sort()
    return {
        "median_us": round(samples[calls // 2] / 1000, 3),
        "p99_us": round(samples[int(calls * 0.99)] / 1000, 3),
        "max_us": round(samples[-1] / 1000, 1),
        "mean_us": round(statistics.fmean(samples) / 1000, 3),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--server")
    args = ap.parse_args()
    spool = tempfile.mkdtemp(prefix="tw-bench-")
    common = {"job_id": "bench", "gpu": "off", "spool_dir": spool, "handle_signals": False}

    print(json.dumps({"case": "timer (empty call)", **measure(args.calls, lambda m, s: None)}))

    tw.init(agent_url=f"http://127.0.0.1:{free_port()}", **common)
    print(json.dumps({"case": "absent agent", **measure(args.calls, tw.log), "counters": tw.run().counters()}))
    tw.finish()

    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)
    tw.init(agent_url=f"http://127.0.0.1:{stalled.getsockname()[1]}", request_timeout=30, flush_timeout=1, **common)
    print(json.dumps({"case": "stalled agent", **measure(args.calls, tw.log), "counters": tw.run().counters()}))
    tw.finish()
    stalled.close()

    if args.server:
        tw.init(server=args.server, **common)
        print(json.dumps({"case": "live trainwatch", **measure(args.calls, tw.log), "counters": tw.run().counters()}))
        tw.finish()
        # Paced: 50 us of GIL-holding "work" per step (~15k steps/s) for several seconds, so the sender
        # thread drains, encodes and sends concurrently with the measured calls.
        paced = min(args.calls, 100_000)
        tw.init(server=args.server, **common)
        print(json.dumps({"case": "live trainwatch, paced 50 us/step", **measure(paced, tw.log, work_us=50),
                          "counters": tw.run().counters()}))
        tw.finish()
    print(json.dumps({"python": sys.version.split()[0], "calls": args.calls}))


if __name__ == "__main__":
    main()
