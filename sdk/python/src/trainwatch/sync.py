"""``python -m trainwatch sync DIR``: uploads frames written offline (or left in a spool) to trainwatch.

Every ``*.twb`` file under DIR is one native frame, sent byte for byte, so its idempotency key (source id +
sequence) is the one it was written with: syncing twice, or syncing a frame the live run already delivered,
stores nothing twice. A frame the server accepted is renamed ``*.twb.sent``; one it refused as invalid is
renamed ``*.twb.rejected``; one that could not be delivered stays as it is for the next sync.
The Node CLI's ``trainwatch sync`` does the same.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import List, Optional

from .protocol import DecodeError, decode_frame_header
from .transport import HttpSender, find_frames


def sync(directory: str, server: str, token: Optional[str] = None, resend: bool = False,
         give_up_after: float = 600.0, out=sys.stdout) -> int:
    """Uploads every frame under ``directory``; returns the process exit code (0 when all were accepted)."""
    if not os.path.isdir(directory):
        print(f"trainwatch sync: {directory} is not a directory", file=sys.stderr)
        return 2
    sender = HttpSender(server, token)
    frames = find_frames(directory, include_sent=resend)
    counts = {"frames": len(frames), "sent": 0, "duplicate": 0, "rejected": 0, "failed": 0}
    for path in frames:
        with open(path, "rb") as f:
            frame = f.read()
        try:
            decode_frame_header(frame)
        except DecodeError as e:
            print(json.dumps({"rejected": path, "error": f"not a trainwatch frame: {e}"}), file=out)
            counts["rejected"] += 1
            continue
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while True:
            attempt += 1
            outcome = sender.send(frame)
            if outcome.ok or not outcome.retryable:
                break
            delay = max(random.uniform(0, min(30.0, 0.2 * 2 ** min(attempt, 16))), outcome.retry_after or 0.0)
            if time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
        base = path[: -len(".sent")] if path.endswith(".sent") else path
        if outcome.ok:
            counts["sent"] += 1
            counts["duplicate"] += int(outcome.duplicate)
            if path != base + ".sent":
                os.replace(path, base + ".sent")
        elif not outcome.retryable and outcome.status not in (401, 403):
            counts["rejected"] += 1
            os.replace(path, base + ".rejected")
            print(json.dumps({"rejected": path, "status": outcome.status, "error": outcome.error}), file=out)
        else:
            counts["failed"] += 1
            print(json.dumps({"failed": path, "status": outcome.status, "error": outcome.error}), file=out)
            if outcome.status in (401, 403):
                break  # credentials: every other frame would be refused the same way
    sender.close()
    print(json.dumps({"done": counts}), file=out)
    return 0 if counts["failed"] == 0 and counts["rejected"] == 0 else 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sync", help="upload frames written offline (TRAINWATCH_MODE=offline) or left in a spool")
    p.add_argument("dir", help="directory holding *.twb frames (searched recursively)")
    p.add_argument("--server", default=os.environ.get("TRAINWATCH_SERVER"),
                   help="trainwatch base URL, e.g. http://127.0.0.1:9470 (default: $TRAINWATCH_SERVER)")
    p.add_argument("--token", default=os.environ.get("TRAINWATCH_TOKEN"), help="ingest token (default: $TRAINWATCH_TOKEN)")
    p.add_argument("--resend", action="store_true", help="also send frames already marked .sent")
    p.add_argument("--give-up-after", type=float, default=600.0, help="seconds to keep retrying one frame")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("--server is required (or set TRAINWATCH_SERVER)")
    return sync(args.dir, args.server, args.token, args.resend, args.give_up_after)
