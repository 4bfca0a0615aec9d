"""Shared fixtures: a real trainwatch (``node bin/trainwatch.js start``) on a free port with a temporary data
directory, stopped by its PID; polling with a deadline; series queries through the REST API."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
CLI = REPO_ROOT / "bin" / "trainwatch.js"
VECTORS = REPO_ROOT / "testdata" / "native"
IN_CI = os.environ.get("CI") == "true"


def missing(what: str, how: str) -> None:
    """Skips on a developer machine, fails under CI (where everything must be installed)."""
    msg = f"{what} is not available ({how})"
    if IN_CI:
        pytest.fail(msg + " — CI must install it (.ci/run)")
    pytest.skip(msg)


def require_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package {name}", "pip install -r sdk/python/requirements-test.txt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            v = probe()
            if v:
                return v
        except Exception as e:  # keep polling, report the last error
            last = e
        time.sleep(every)  # the poll interval of this wait-for-event helper
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


def after_this_millisecond() -> None:
    """Returns once the wall clock shows a later millisecond than at the call, so that samples logged before and
    after it get distinct timestamps (waits for the clock to tick, not for a fixed time)."""
    start = int(time.time() * 1000)
    while int(time.time() * 1000) <= start:
        time.sleep(0.0001)


def get_json(url: str) -> Dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Trainwatch:
    """A trainwatch server we started; ``url`` is its base URL."""

    def __init__(self, port: Optional[int] = None) -> None:
        if shutil.which("node") is None:
            missing("node", "install Node.js 20")
        if not (REPO_ROOT / "dist" / "cli" / "main.js").exists():
            missing("the built server (dist/)", "run `npm run build:server` first")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="tw-pytest-")
        self.log = open(os.path.join(self.data_dir, "server.log"), "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            ["node", str(CLI), "start", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             os.path.join(self.data_dir, "data"), "--log-level", "warn"],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            # Anonymous ingest on loopback, as the demo has it: these tests are about the SDK, not tokens.
            env={**os.environ, "TRAINWATCH_AUTH__ANONYMOUS_SCOPES": "[ingest, read]"},
        )
        try:
            wait_for("trainwatch /readyz", self._ready, timeout=30)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"trainwatch exited with {self.proc.returncode}: {self.output()}")
        with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
            return r.status == 200

    def output(self) -> str:
        with open(os.path.join(self.data_dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def series(self, metric: str, **labels: str) -> List[Dict[str, Any]]:
        q = {"metric": metric, "start": "0", "end": str(int(time.time() * 1000) + 60_000), **labels}
        body = get_json(f"{self.url}/api/tw/v1/series?{urllib.parse.urlencode(q)}")
        return body["data"]["series"]

    def wait_series(self, metric: str, min_points: int = 1, timeout: float = 30.0, **labels: str) -> List[Dict[str, Any]]:
        def probe() -> Optional[List[Dict[str, Any]]]:
            s = self.series(metric, **labels)
            return s if s and sum(len(x["t"]) for x in s) >= min_points else None

        return wait_for(f"{metric}{labels} with {min_points}+ points", probe, timeout=timeout)

    def job(self, job_id: str) -> Dict[str, Any]:
        return get_json(f"{self.url}/api/tw/v1/jobs/{urllib.parse.quote(job_id, safe='')}")["data"]["job"]


@pytest.fixture(scope="session")
def trainwatch_server():
    tw = Trainwatch()
    yield tw
    tw.stop()


@pytest.fixture
def spool_dir(tmp_path: Path) -> str:
    d = tmp_path / "spool"
    d.mkdir()
    return str(d)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No test sees the launcher variables of the machine it runs on, nor another test's job id."""
    for k in list(os.environ):
        if k.startswith(("TRAINWATCH_", "SLURM_", "TORCHELASTIC_", "OMPI_COMM_WORLD_", "PMI_")) or k in (
            "RANK", "LOCAL_RANK", "WORLD_SIZE", "KUBERNETES_SERVICE_HOST", "JOB_NAME", "JOBSET_NAME"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TRAINWATCH_SPOOL_DIR", str(tmp_path / "default-spool"))
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    yield
    import trainwatch

    r = trainwatch.run()
    if r is not None:
        r.finish(timeout=2)


def python_script(code: str, env: Dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs a Python program in a child process (exit paths: signals, crashes) with the SDK importable."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWATCH_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout)
