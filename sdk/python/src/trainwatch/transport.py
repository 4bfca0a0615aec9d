"""Where frames go: an HTTP sender for the agent or the collector, and a bounded on-disk frame store.

The frame store serves two purposes with one format — one native frame per file,
``<root>/<source dir>/<sequence, 16 digits>.twb`` — so that ``trainwatch sync DIR`` uploads either:

* the **spool** of an online run: frames that could not be delivered yet, retried in order, byte for byte
  (same idempotency key), and deleted once acknowledged;
* the **offline directory** (``TRAINWATCH_MODE=offline``): every frame, kept until ``sync`` sends it.

Each source directory holds a ``lock`` file that its writer keeps ``flock``-ed, so a later process can tell
the spool of a crashed run (lock free) from that of a live one, and adopt it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections import deque
from typing import Deque, List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

from .protocol import CONTENT_TYPE

try:  # Unix only: without it, orphaned spools are not adopted (they can still be uploaded with sync).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FRAME_SUFFIX = ".twb"
_SAFE_DIR = re.compile(r"[^A-Za-z0-9._-]")


class SendOutcome(NamedTuple):
    ok: bool
    status: int
    retryable: bool
    duplicate: bool = False
    retry_after: Optional[float] = None
    error: str = ""


class HttpSender:
    """POSTs frames to ``<base>/api/v1/ingest`` over one kept-alive connection. Never raises."""

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL {base_url!r} must look like http://host:port")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = f"{parts.path.rstrip('/')}/api/v1/ingest"
        self._headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "trainwatch-python"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=timeout)
        else:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def send(self, frame: bytes, timeout: Optional[float] = None) -> SendOutcome:
        t = self.timeout if timeout is None else max(0.05, min(timeout, self.timeout))
        try:
            conn = self._connection(t)
            conn.request("POST", self._path, body=frame, headers=self._headers)
            resp = conn.getresponse()
            body = resp.read()
            status = resp.status
            retry_after = _retry_after(resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except Exception as e:  # connection refused, timeout, reset: all transient
            self.close()
            return SendOutcome(False, 0, True, error=f"{type(e).__name__}: {e}")
        if 200 <= status < 300:
            duplicate = False
            try:
                duplicate = bool(json.loads(body or b"{}").get("data", {}).get("duplicate", False))
            except Exception:
                pass  # a 2xx without our JSON body still means stored
            return SendOutcome(True, status, False, duplicate=duplicate)
        text = body[:500].decode("utf-8", "replace")
        retryable = status == 429 or status == 408 or status >= 500
        return SendOutcome(False, status, retryable, retry_after=retry_after, error=text)


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except Exception:
        return None


def source_dir_name(source_id: str) -> str:
    return _SAFE_DIR.sub("_", source_id)[:200] or "source"


class FrameStore:
    """A FIFO of frames on disk, bounded in bytes (oldest dropped and counted when full).

    Only the owning thread touches an instance. When the directory cannot be written (read-only or full
    disk), frames are kept in memory instead, bounded by ``memory_frames``.
    """

    def __init__(
        self, root: Optional[str], source_id: str, max_bytes: int, fsync: bool = False, memory_frames: int = 256
    ) -> None:
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self.write_errors = 0
        self.last_error = ""
        self._memory: Deque[Tuple[str, bytes]] = deque()
        self._memory_frames = memory_frames
        self._files: Deque[Tuple[str, int]] = deque()  # (path, size), oldest first
        self._bytes = 0
        self._lock_fd: Optional[int] = None
        self.dir: Optional[str] = None
        if root:
            d = os.path.join(root, source_dir_name(source_id))
            try:
                os.makedirs(d, exist_ok=True)
                self._lock_fd = _lock_dir(d, blocking=False)
                self.dir = d
            except OSError as e:
                self.write_errors += 1
                self.last_error = f"cannot use {d}: {e}"

    @classmethod
    def adopt(cls, directory: str, max_bytes: int) -> Optional["FrameStore"]:
        """Takes over the frames of a dead writer, or returns None when its writer still holds the lock."""
        if fcntl is None:
            return None
        try:
            fd = _lock_dir(directory, blocking=False)
        except OSError:
            return None
        store = cls(None, "", max_bytes)
        store.dir = directory
        store._lock_fd = fd
        for name in sorted(os.listdir(directory)):
            if name.endswith(FRAME_SUFFIX):
                path = os.path.join(directory, name)
                try:
                    size = os.path.getsize(path)
                except OSError:
                    continue
                store._files.append((path, size))
                store._bytes += size
        return store

    def __len__(self) -> int:
        return len(self._files) + len(self._memory)

    @property
    def bytes(self) -> int:
        return self._bytes + sum(len(f) for _, f in self._memory)

    def put(self, sequence: int, frame: bytes) -> None:
        name = f"{sequence:016d}{FRAME_SUFFIX}"
        if self.dir is not None:
            while self._files and self._bytes + len(frame) > self.max_bytes:
                self._drop_oldest_file()
            path = os.path.join(self.dir, name)
            tmp = path + ".tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(frame)
                    if self.fsync:
                        f.flush()
                        os.fsync(f.fileno())
                os.replace(tmp, path)
                self._files.append((path, len(frame)))
                self._bytes += len(frame)
                return
            except OSError as e:
                self.write_errors += 1
                self.last_error = f"cannot write {path}: {e}"
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        if len(self._memory) >= self._memory_frames:
            _, old = self._memory.popleft()
            self.dropped_frames += 1
            self.dropped_bytes += len(old)
        self._memory.append((name, frame))

    def oldest(self) -> Optional[bytes]:
        while self._files:
            path, _ = self._files[0]
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError:
                self._pop_file(unlink=False)  # removed behind our back (e.g. by `trainwatch sync`)
        if self._memory:
            return self._memory[0][1]
        return None

    def remove_oldest(self) -> None:
        if self._files:
            self._pop_file(unlink=True)
        elif self._memory:
            self._memory.popleft()

    def _pop_file(self, unlink: bool) -> None:
        path, size = self._files.popleft()
        self._bytes -= size
        if unlink:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _drop_oldest_file(self) -> None:
        size = self._files[0][1]
        self._pop_file(unlink=True)
        self.dropped_frames += 1
        self.dropped_bytes += size

    def close(self, remove_if_empty: bool = True) -> None:
        if self.dir is not None and remove_if_empty and not self._files:
            try:
                for name in os.listdir(self.dir):
                    if name == "lock":
                        os.unlink(os.path.join(self.dir, name))
                os.rmdir(self.dir)
            except OSError:
                pass
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = None


def _lock_dir(directory: str, blocking: bool) -> Optional[int]:
    """Holds ``directory/lock`` with flock until the fd is closed (or the process dies)."""
    if fcntl is None:
        return None
    fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        raise
    return fd


def orphaned_spools(root: str, own_dir: Optional[str]) -> List[str]:
    """Source directories under ``root`` with frames, other than ours (whether their writer lives is
    decided by :meth:`FrameStore.adopt`)."""
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        d = os.path.join(root, name)
        if d == own_dir or not os.path.isdir(d):
            continue
        try:
            if any(n.endswith(FRAME_SUFFIX) for n in os.listdir(d)):
                out.append(d)
        except OSError:
            continue
    return out


def find_frames(root: str, include_sent: bool = False) -> List[str]:
    """Every frame file under ``root`` (recursively), in upload order: by directory, then sequence."""
    found: List[str] = []
    suffixes = (FRAME_SUFFIX, FRAME_SUFFIX + ".sent") if include_sent else (FRAME_SUFFIX,)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(suffixes):
                found.append(os.path.join(dirpath, name))
    return found
