"""How frames leave the process (a piece of ``Run``, see core.py): the background thread's loop, cutting
frames from the series buffers, sending them in order, and spooling to disk what cannot be sent now.

``_Delivery`` is a mixin of ``Run``: its methods use the state ``Run.__init__`` sets up and run only on the
background thread (``_shutdown_transport`` at finish).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Optional

from ._recording import MAX_SAMPLES_PER_FRAME
from .protocol import Series, encode_frame
from .transport import FrameStore, orphaned_spools

log = logging.getLogger("trainwatch")


_time = time.time


class _Delivery:
    def _worker(self) -> None:
        try:
            if self._store is not None and self.mode == "online" and self._spool_root:
                for d in orphaned_spools(self._spool_root, self._store.dir):
                    adopted = FrameStore.adopt(d, self._store.max_bytes)
                    if adopted is not None and len(adopted):
                        self.stats["frames_adopted"] += len(adopted)
                        self._adopted.append(adopted)
            while not self._stop.is_set():
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self._busy = True
                try:
                    self._cycle(final_deadline=None)
                finally:
                    self._busy = False
            self._cycle(final_deadline=time.monotonic() + self.flush_timeout)
        except Exception as e:  # a bug here must not take the training process down
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("trainwatch: background thread stopped: %s", self.last_error, exc_info=True)
        finally:
            self._shutdown_transport()
            self._done.set()

    def _cycle(self, final_deadline: Optional[float]) -> None:
        now = _time()
        self._drain_queue()
        if now >= self._next_heartbeat:
            self._heartbeat(now)
            self._next_heartbeat = now + self.heartbeat_interval
        self._announce_metric_keys(now)
        self._cut_frame(final_deadline)
        if self.mode == "online":
            self._deliver(final_deadline)

    def _drain_queue(self) -> None:
        q = self._queue
        while q:
            rec = q.popleft()
            try:
                if len(rec) == 5:
                    self._record(*rec)
                elif rec[0] == "event":
                    # Events travel in order with the samples logged before them.
                    if rec[1]["kind"] == "finish":
                        self._announce_metric_keys(rec[1]["timeMs"] / 1000)
                    self._pending_events.append(rec[1])
                elif rec[0] == "samples":
                    for name, labels, ts, value in rec[1]:
                        self._add(name, labels, ts, value)
            except Exception as e:  # one odd record must not stop the reporting of the others
                self.stats["bad_records"] += 1
                self.last_error = f"cannot process a logged record: {type(e).__name__}: {e}"
            if self._pending_samples >= MAX_SAMPLES_PER_FRAME:
                self._cut_frame(None)
    def _cut_frame(self, final_deadline: Optional[float]) -> None:
        if not self._dirty and not self._pending_events:
            return
        series = [Series(b.labels, b.timestamps, b.values) for b in self._dirty]
        for b in self._dirty:
            b.timestamps, b.values = [], []
        events = self._pending_events
        self._dirty = []
        self.stats["samples"] += self._pending_samples
        self._pending_samples = 0
        self._pending_events = []
        try:
            frame = encode_frame(self.source_id, self._sequence, series, events, "zlib")
        except Exception as e:
            self.last_error = f"cannot encode a frame: {e}"
            log.warning("trainwatch: %s (dropped)", self.last_error)
            return
        seq = self._sequence
        self._sequence += 1
        self.stats["frames"] += 1
        assert self._store is not None
        if self.mode == "offline":
            self._store.put(seq, frame)
            return
        idle = len(self._store) == 0 and not any(len(s) for s in self._adopted)
        if idle and (final_deadline is not None or time.monotonic() >= self._next_try):
            if self._send(frame, final_deadline):
                return
        self._store.put(seq, frame)
        self.stats["frames_spooled"] += 1

    def _send(self, frame: bytes, deadline: Optional[float]) -> bool:
        """One attempt. True when the frame is settled (stored or refused for good); False to retry later."""
        assert self._sender is not None
        timeout = None if deadline is None else max(0.05, deadline - time.monotonic())
        out = self._sender.send(frame, timeout)
        if out.ok:
            self.stats["frames_sent"] += 1
            if out.duplicate:
                self.stats["frames_duplicate"] += 1
            self._backoff_attempts = 0
            self._next_try = 0.0
            return True
        self.last_error = f"{self._sender.url}: {out.status or 'no answer'} {out.error}".strip()
        credentials = out.status in (401, 403)
        if not out.retryable and not credentials:
            # 400/413/415: the frame itself is wrong; retrying cannot help.
            self.stats["frames_rejected"] += 1
            log.warning("trainwatch: batch refused, dropped: %s", self.last_error)
            return True
        self.stats["send_failures"] += 1
        self._backoff_attempts += 1
        # Full jitter: uniform in [0, min(cap, base * 2^attempts)], never shorter than Retry-After.
        delay = random.uniform(0, min(30.0, 0.5 * 2 ** min(self._backoff_attempts, 16)))
        if out.retry_after is not None:
            delay = max(delay, out.retry_after)
        if credentials:
            # Missing or wrong token: keep the frames (spool) and ask rarely; once the token is fixed,
            # `python -m trainwatch sync` or the next run delivers them.
            delay = 60.0
            if self._backoff_attempts == 1:
                log.warning("trainwatch: %s refused the credentials (%s); set token= or TRAINWATCH_TOKEN. Frames are "
                            "kept in the spool.", self._sender.url, out.error)
        self._next_try = time.monotonic() + delay
        if self._backoff_attempts in (1, 5, 20):
            log.warning("trainwatch: cannot deliver to %s (%s); spooling and retrying", self._sender.url,
                        out.error or out.status)
        return False

    def _deliver(self, final_deadline: Optional[float]) -> None:
        """Sends spooled frames oldest first while the destination takes them.

        In the final flush (``final_deadline`` set) backoff is ignored but the first failure ends it: when the
        destination is down, exiting at once and leaving the frames in the spool beats holding the process.
        """
        stores = [*self._adopted, self._store]
        for store in stores:
            if store is None:
                continue
            while len(store):
                if final_deadline is None:
                    if time.monotonic() < self._next_try or self._stop.is_set():
                        return
                elif final_deadline - time.monotonic() <= 0.05:
                    return
                frame = store.oldest()
                if frame is None:
                    break
                if self._send(frame, final_deadline):
                    store.remove_oldest()
                else:
                    return
        for s in [s for s in self._adopted if not len(s)]:
            s.close()
            self._adopted.remove(s)

    def _shutdown_transport(self) -> None:
        if self._sender is not None:
            self._sender.close()
        if self._store is not None:
            left = len(self._store)
            if left and self.mode == "online":
                log.warning("trainwatch: %d batch(es) not delivered to %s are kept in %s (retried by the next run "
                            "on this node, or upload them with `python -m trainwatch sync %s`)", left,
                            self.destination, self._store.dir or "memory", self._store.dir or "")
            self._store.close(remove_if_empty=self.mode == "online")
        for s in self._adopted:
            s.close(remove_if_empty=False)

    # ---------------------------------------------------------------------------------------------------
    # Exit paths: normal exit, uncaught exception, SIGTERM
