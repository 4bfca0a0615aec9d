"""A run: one process's view of a training job, and the background thread that ships its metrics.

Invariants that keep the SDK from ever hurting training:

* ``Run.log`` does constant work (a clock read, a shallow dict copy and a deque append) and never blocks: the
  queue is bounded, and a record that does not fit is dropped and counted. It never raises.
* Everything else (name sanitising, reading tensor values, step timing, encoding, compression, HTTP, disk)
  happens on the background thread. Values are read there too, so logging a device tensor does not force a
  device synchronisation in the training loop (don't modify a logged tensor in place afterwards).
* Frames are delivered in order. A frame that cannot be delivered goes to the spool on disk and is retried
  byte for byte (same idempotency key) with exponential backoff and full jitter; while the spool holds
  frames, new frames queue behind them. The spool is bounded; what it must drop is counted.
* ``finish`` (also on exit, on an uncaught exception and on SIGTERM) flushes within ``flush_timeout`` and
  leaves whatever could not be sent in the spool, where the next run on the node or ``trainwatch sync``
  picks it up.

``Run`` is split by what runs where: this file holds what the training thread calls (``log``, ``update``,
``finish``, ...) and the set-up; the background thread's work is in two mixins, ``_recording.py`` (a logged
record becomes samples in per-series buffers) and ``_delivery.py`` (the thread's loop, frames, sending and
the spool).
"""

from __future__ import annotations

import atexit
import getpass
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from . import env as envmod
from . import names
from ._delivery import _Delivery
from ._recording import _Recording, _SeriesBuffer
from .protocol import json_safe
from .transport import FrameStore, HttpSender

log = logging.getLogger("trainwatch")

DEFAULT_AGENT_URL = "http://127.0.0.1:9471"

_time = time.time


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _default_spool_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "trainwatch", "spool")


class Run(_Recording, _Delivery):
    """A training process reporting to trainwatch. Create it with :func:`trainwatch.init`."""

    def __init__(
        self,
        job_id: Optional[str] = None,
        name: Optional[str] = None,
        project: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        tags: Optional[List[str]] = None,
        server: Optional[str] = None,
        token: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        framework: Optional[str] = None,
        rank: Optional[int] = None,
        local_rank: Optional[int] = None,
        world_size: Optional[int] = None,
        batch_size: Optional[int] = None,
        tokens_per_step: Optional[int] = None,
        agent_url: Optional[str] = None,
        spool_dir: Optional[str] = None,
        offline_dir: Optional[str] = None,
        max_spool_bytes: int = 512 << 20,
        max_queue: int = 100_000,
        flush_interval: Optional[float] = None,
        heartbeat_interval: Optional[float] = None,
        flush_timeout: Optional[float] = None,
        request_timeout: float = 10.0,
        gpu: Optional[str] = None,
        gpu_interval: float = 5.0,
        throughput_interval: float = 1.0,
        handle_signals: bool = True,
        labels: Optional[Mapping[str, str]] = None,
    ) -> None:
        e = os.environ
        self._init_identity(e, job_id, name, project, config, tags, mode, framework, rank, local_rank, world_size,
                            batch_size, tokens_per_step, throughput_interval)
        self._init_destination(e, server, agent_url, flush_interval, heartbeat_interval, flush_timeout)
        self._init_labels(labels)
        self._init_state(max_queue)
        self._init_delivery(e, token, request_timeout, spool_dir, offline_dir, max_spool_bytes)
        self._init_gpu(e, gpu, gpu_interval)
        self._prev_sigterm: Any = None
        self._thread: Optional[threading.Thread] = None
        if self.mode != "disabled":
            self._start(handle_signals)

    # ---------------------------------------------------------------------------------------------------
    # Construction, in steps: who this process is, where it sends, what it labels, its state, its delivery,
    # its GPU sampler; then _start.

    def _init_identity(
        self,
        e: Mapping[str, str],
        job_id: Optional[str],
        name: Optional[str],
        project: Optional[str],
        config: Optional[Mapping[str, Any]],
        tags: Optional[List[str]],
        mode: Optional[str],
        framework: Optional[str],
        rank: Optional[int],
        local_rank: Optional[int],
        world_size: Optional[int],
        batch_size: Optional[int],
        tokens_per_step: Optional[int],
        throughput_interval: float,
    ) -> None:
        """The mode, the rank's place in the job, the job id (shared with child processes) and its metadata."""
        self.mode = (mode or e.get("TRAINWATCH_MODE") or "online").lower()
        if self.mode not in ("online", "offline", "disabled"):
            raise ValueError(f"mode {self.mode!r} must be online, offline or disabled (TRAINWATCH_MODE)")
        place = envmod.placement_from_env()
        self.rank = place.rank if rank is None else int(rank)
        self.local_rank = place.local_rank if local_rank is None else int(local_rank)
        self.world_size = place.world_size if world_size is None else int(world_size)

        jid = envmod.sanitize_job_id(job_id) if job_id else envmod.job_id_from_env()
        if not jid:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            script = os.path.splitext(os.path.basename(sys.argv[0] or "python"))[0] or "python"
            jid = envmod.sanitize_job_id(f"{name or script}-{stamp}-{secrets.token_hex(3)}")
            if self.world_size > 1:
                log.warning(
                    "trainwatch: no job id in the environment (TRAINWATCH_JOB_ID, TORCHELASTIC_RUN_ID, SLURM_JOB_ID); "
                    "rank %d uses %s and other ranks will choose their own: set TRAINWATCH_JOB_ID",
                    self.rank,
                    jid,
                )
        # Children this process launches (Lightning's DDP launcher, multiprocessing spawn) join the same job.
        os.environ["TRAINWATCH_JOB_ID"] = jid
        self.job_id = jid
        self.name = name or e.get("TRAINWATCH_NAME")
        self.project = project or e.get("TRAINWATCH_PROJECT")
        env_tags = [t.strip() for t in e.get("TRAINWATCH_TAGS", "").split(",") if t.strip()]
        self.tags = list(tags or []) + env_tags
        self.config: Dict[str, Any] = dict(config or {})
        self.framework = framework
        self.node_id = envmod.node_id()
        self.batch_size = batch_size
        self.tokens_per_step = tokens_per_step
        # Step time and throughput are averaged over windows of at least this many seconds (bounded series rate).
        self.throughput_interval = throughput_interval

    def _init_destination(
        self,
        e: Mapping[str, str],
        server: Optional[str],
        agent_url: Optional[str],
        flush_interval: Optional[float],
        heartbeat_interval: Optional[float],
        flush_timeout: Optional[float],
    ) -> None:
        """Where frames go (the server, or the node agent by default) and how often."""
        self.server = server or e.get("TRAINWATCH_SERVER")
        self.agent_url = agent_url or e.get("TRAINWATCH_AGENT_URL") or DEFAULT_AGENT_URL
        self.destination = self.server or self.agent_url
        self.flush_interval = flush_interval if flush_interval is not None else _env_float("TRAINWATCH_FLUSH_INTERVAL", 1.0)
        self.heartbeat_interval = (
            heartbeat_interval if heartbeat_interval is not None else _env_float("TRAINWATCH_HEARTBEAT_INTERVAL", 5.0)
        )
        self.flush_timeout = flush_timeout if flush_timeout is not None else _env_float("TRAINWATCH_FLUSH_TIMEOUT", 10.0)
        self.source_id = f"sdk-{socket.gethostname().split('.')[0][:60]}-{os.getpid()}-{secrets.token_hex(4)}"

    def _init_labels(self, labels: Optional[Mapping[str, str]]) -> None:
        # Labels of every series this process writes; GPU series use the node's labels instead of the rank.
        self._labels: Dict[str, str] = {"job_id": self.job_id, "rank": str(self.rank), "node_id": self.node_id}
        self._node_labels: Dict[str, str] = {"job_id": self.job_id, "node_id": self.node_id}
        for k, v in (labels or {}).items():
            if names.is_valid_label_name(k) and k not in ("job_id", "rank"):
                self._labels[k] = str(v)

    def _init_state(self, max_queue: int) -> None:
        """The queue the training thread fills, the counters, and the background thread's own state."""
        self._queue: Deque[tuple] = deque()
        self._max_queue = max_queue
        self._closed = self.mode == "disabled"
        self._finished = False
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()  # guards finish()

        # Counters: the training thread writes only the first two; the worker owns the rest.
        self.dropped_queue_full = 0
        self.log_errors = 0
        self.stats: Dict[str, int] = {
            "records": 0,
            "samples": 0,
            "invalid_values": 0,
            "frames": 0,
            "frames_sent": 0,
            "frames_duplicate": 0,
            "frames_spooled": 0,
            "frames_rejected": 0,
            "send_failures": 0,
            "frames_adopted": 0,
            "bad_records": 0,
        }
        self.last_error = ""

        # Worker state (background thread only).
        self._sequence = 0
        # Every series this run has written, by metric name (the run's own labels) or by (name, labels);
        # `_dirty` lists those with samples for the next frame.
        self._series: Dict[Any, _SeriesBuffer] = {}
        self._dirty: List[_SeriesBuffer] = []
        self._pending_samples = 0
        self._pending_events: List[Dict[str, Any]] = []
        self._name_cache: Dict[str, str] = {}
        self._metric_keys_sent: Dict[str, str] = {}
        self._new_metric_keys: Dict[str, str] = {}
        self._step: Optional[int] = None
        self._explicit_steps = False
        self._last_step_time: Optional[float] = None
        self._window_t: Optional[float] = None
        self._window_step: Optional[int] = None
        self._window_samples = 0.0
        self._window_tokens = 0.0
        self._window_counts_given = False
        self._last_step_emit = 0.0
        self._next_heartbeat = 0.0
        self._backoff_attempts = 0
        self._next_try = 0.0
        self._retry_floor = 0.0

    def _init_delivery(
        self,
        e: Mapping[str, str],
        token: Optional[str],
        request_timeout: float,
        spool_dir: Optional[str],
        offline_dir: Optional[str],
        max_spool_bytes: int,
    ) -> None:
        """The HTTP sender and the on-disk frame store (a spool online, the run's directory offline)."""
        self._sender: Optional[HttpSender] = None
        self._store: Optional[FrameStore] = None
        self._adopted: List[FrameStore] = []
        if self.mode == "online":
            self._sender = HttpSender(self.destination, token=(token or e.get("TRAINWATCH_TOKEN")) if self.server else None,
                                      timeout=request_timeout)
            self._spool_root = spool_dir or e.get("TRAINWATCH_SPOOL_DIR") or _default_spool_dir()
            self._store = FrameStore(self._spool_root, self.source_id, max_spool_bytes)
        elif self.mode == "offline":
            root = offline_dir or e.get("TRAINWATCH_DIR") or os.path.join(os.getcwd(), "trainwatch-offline")
            self.offline_dir = os.path.join(root, envmod.sanitize_job_id(self.job_id).replace("/", "_"))
            self._store = FrameStore(self.offline_dir, self.source_id, max_spool_bytes, fsync=True)
            self._spool_root = None
        if self._store is not None and self._store.last_error:
            log.warning("trainwatch: %s; keeping undelivered frames in memory", self._store.last_error)

    def _init_gpu(self, e: Mapping[str, str], gpu: Optional[str], gpu_interval: float) -> None:
        """The GPU sampler's mode (auto, on, off: TRAINWATCH_GPU) and period; _start starts it on local rank 0."""
        self._gpu_mode = (gpu or e.get("TRAINWATCH_GPU") or "auto").lower()
        self._gpu_interval = gpu_interval
        self._gpu_thread: Optional[threading.Thread] = None

    def _start(self, handle_signals: bool) -> None:
        """Sends the start event and starts the background threads (and the GPU sampler on local rank 0)."""
        self._start_event()
        self._next_heartbeat = _time() + self.heartbeat_interval
        self._thread = threading.Thread(target=self._worker, name="trainwatch-sender", daemon=True)
        self._thread.start()
        if self._gpu_mode != "off" and self.local_rank == 0:
            from .gpu import start_gpu_sampler

            self._gpu_thread = start_gpu_sampler(self, self._gpu_mode, self._gpu_interval)
        if handle_signals:
            self._install_handlers()

    # ---------------------------------------------------------------------------------------------------
    # The training thread's API

    def log(self, metrics: Mapping[str, Any], step: Optional[int] = None, *, samples: Optional[float] = None,
            tokens: Optional[float] = None) -> None:
        """Queues metrics for the background thread. Constant time, never blocks, never raises.

        ``step``: the training step; when omitted, the step of the previous call is reused if steps were
        ever given, else the step advances by one per call. ``samples``/``tokens``: how many this rank
        processed since its previous call (for throughput; otherwise ``batch_size``/``tokens_per_step``
        times the steps advanced are used).
        """
        try:
            q = self._queue
            if self._closed:
                return
            if len(q) >= self._max_queue:
                self.dropped_queue_full += 1
                return
            q.append((_time(), step, metrics.copy() if type(metrics) is dict else dict(metrics), samples, tokens))
        except Exception:
            self.log_errors += 1

    def update(self, config: Optional[Mapping[str, Any]] = None, **fields: Any) -> None:
        """Merges job metadata (``config`` key by key; ``name``, ``project``, ``tags``, ...). Rank 0 only."""
        if self.rank != 0 or self._closed:
            return
        ev: Dict[str, Any] = {"kind": "update", "jobId": self.job_id, "timeMs": int(_time() * 1000)}
        if config:
            self.config.update(config)
            ev["config"] = json_safe(dict(config))
        for k, v in fields.items():
            if v is not None:
                ev[k] = json_safe(v)
        self._queue.append(("event", ev))

    def set_throughput(self, batch_size: Optional[int] = None, tokens_per_step: Optional[int] = None) -> None:
        """Samples and tokens per step of this rank, for ``train_samples_per_second``/``train_tokens_per_second``."""
        if batch_size is not None:
            self.batch_size = batch_size
        if tokens_per_step is not None:
            self.tokens_per_step = tokens_per_step

    def add_samples(self, samples: List[Tuple[str, Mapping[str, str], int, float]]) -> None:
        """Queues ready-made samples ``(metric name, labels, timestamp ms, value)`` (GPU sampler, integrations)."""
        if not self._closed and len(self._queue) < self._max_queue:
            self._queue.append(("samples", samples))

    def finish(self, status: str = "completed", timeout: Optional[float] = None) -> None:
        """Marks the job ``completed`` or ``failed`` and flushes; waits at most ``flush_timeout`` seconds."""
        with self._lock:
            if self._finished or os.getpid() != self._pid:
                return
            self._finished = True
        if self.mode == "disabled":
            self._closed = True
            _forget(self)
            return
        status = status if status in ("completed", "failed") else "completed"
        # Rank 0 speaks for the job; any rank may report a failure (the job as a whole has failed then).
        if self.rank == 0 or status == "failed":
            self._queue.append(("event", {"kind": "finish", "jobId": self.job_id, "timeMs": int(_time() * 1000),
                                          "status": status}))
        self._closed = True
        self._stop.set()
        self._wake.set()
        wait = self.flush_timeout if timeout is None else timeout
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait + 2.0)
        self._restore_handlers()
        _forget(self)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish("failed" if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt) else "completed")

    @property
    def finished(self) -> bool:
        return self._finished

    def counters(self) -> Dict[str, int]:
        """What the SDK did and dropped (for tests and for a user who wants to know)."""
        out = dict(self.stats)
        out["dropped_queue_full"] = self.dropped_queue_full
        out["log_errors"] = self.log_errors
        out["queued"] = len(self._queue)
        if self._store is not None:
            out["spool_frames"] = len(self._store) + sum(len(s) for s in self._adopted)
            out["spool_dropped_frames"] = self._store.dropped_frames
        return out

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything logged so far was delivered or written; True if it was. Does not finish.

        For processes that end without running exit handlers (multiprocessing children end with os._exit).
        """
        return self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Waits until everything logged so far was delivered (tests, notebooks). True if it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._wake.set()
            spool = self._store is not None and self.mode == "online" and (len(self._store) > 0 or any(self._adopted))
            if not self._queue and not self._dirty and not self._pending_events and not spool and not self._busy:
                return True
            time.sleep(0.02)
        return False

    _busy = False

    # ---------------------------------------------------------------------------------------------------
    # Job events

    def _start_event(self) -> None:
        ev: Dict[str, Any] = {"kind": "start", "jobId": self.job_id, "timeMs": int(_time() * 1000)}
        if self.rank == 0:
            try:
                owner = getpass.getuser()
            except Exception:
                owner = ""
            meta = {
                "name": self.name,
                "project": self.project,
                "owner": os.environ.get("TRAINWATCH_OWNER") or owner,
                "framework": self.framework,
                "worldSize": self.world_size,
                "config": json_safe(self.config) if self.config else None,
                "tags": self.tags or None,
            }
            ev.update({k: v for k, v in meta.items() if v not in (None, "")})
        self._queue.append(("event", ev))

    # ---------------------------------------------------------------------------------------------------
    # The background thread




    def _install_handlers(self) -> None:
        _install_process_hooks()
        if threading.current_thread() is threading.main_thread():
            try:
                prev = signal.getsignal(signal.SIGTERM)
                if prev is not _on_sigterm:
                    self._prev_sigterm = prev
                    signal.signal(signal.SIGTERM, _on_sigterm)
            except (ValueError, OSError):
                pass

    def _restore_handlers(self) -> None:
        if self._prev_sigterm is not None and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                    signal.signal(signal.SIGTERM, self._prev_sigterm)
            except (ValueError, OSError):
                pass
            self._prev_sigterm = None



# ---------------------------------------------------------------------------------------------------------
# Process-wide state: the current run, exit hooks

_current: Optional[Run] = None
_uncaught_exception = False
_hooks_installed = False
_prev_excepthook: Optional[Callable[..., Any]] = None


def current() -> Optional[Run]:
    return _current


def _set_current(run: Optional[Run]) -> None:
    global _current
    _current = run


def _forget(run: Run) -> None:
    global _current
    if _current is run:
        _current = None


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    global _uncaught_exception
    if not issubclass(exc_type, KeyboardInterrupt):
        _uncaught_exception = True
    hook = _prev_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    run = _current
    if run is not None:
        run.finish("failed" if _uncaught_exception else "completed")


def _on_sigterm(signum: int, frame: Any) -> None:
    run = _current
    prev = run._prev_sigterm if run is not None else None
    if run is not None:
        run.finish("failed")
    if callable(prev):
        prev(signum, frame)
        return
    # Re-deliver with the default action so the process ends the way its launcher expects.
    signal.signal(signal.SIGTERM, signal.SIG_DFL if prev in (None, signal.SIG_DFL) else prev)
    if prev != signal.SIG_IGN:
        os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker) has the run's state but not its thread: make it a no-op there.
    run = _current
    if run is not None:
        run._closed = True
        run._finished = True


def _install_process_hooks() -> None:
    global _hooks_installed, _prev_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    _prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
