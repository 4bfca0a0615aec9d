"""GPU metrics through NVML (``pip install nvidia-ml-py``, imported as ``pynvml``), for nodes without an agent.

One process per node samples (local rank 0), every GPU NVML sees, on its own daemon thread: an NVML call
can hang on a failing GPU, and that must stall neither training nor the sender. The names are the canonical
ones of DESIGN.md, labelled ``job_id``, ``node_id``, ``gpu`` (index) and ``gpu_uuid``, like the agent's.

``mode``: ``auto`` samples only when pynvml loads and no agent answers on the agent URL (the agent collects
GPU metrics itself); ``on`` samples whenever pynvml loads; ``off`` never.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

if TYPE_CHECKING:
    from .core import Run

log = logging.getLogger("trainwatch")

# NVML's clock-throttle reason bits (nvml.h, nvmlClocksEventReason*) and the reason label they get.
_THROTTLE_REASONS = (
    (0x0000000000000002, "sw_power_cap"),
    (0x0000000000000008, "hw_slowdown"),
    (0x0000000000000020, "sw_thermal_slowdown"),
    (0x0000000000000040, "hw_thermal_slowdown"),
    (0x0000000000000080, "hw_power_brake_slowdown"),
)


def agent_alive(agent_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{agent_url.rstrip('/')}/healthz", timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


def load_nvml() -> Optional[Any]:
    """The initialised pynvml module, or None (not installed, no driver, no GPU)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
    except Exception as e:
        log.debug("trainwatch: NVML unavailable: %s", e)
        return None
    return pynvml


def read_gpus(nvml: Any, base_labels: dict) -> List[Tuple[str, dict, int, float]]:
    """One sample per metric and GPU; a query a device does not support is skipped, not fatal."""
    ts = int(time.time() * 1000)
    out: List[Tuple[str, dict, int, float]] = []
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = nvml.nvmlDeviceGetUUID(h)
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        except Exception:
            continue
        labels = {**base_labels, "gpu": str(i), "gpu_uuid": uuid}

        def add(name: str, read: Any, scale: float = 1.0, extra: Optional[dict] = None) -> None:
            try:
                out.append((name, {**labels, **(extra or {})}, ts, float(read()) * scale))
            except Exception:
                pass

        add("gpu_utilization_ratio", lambda: nvml.nvmlDeviceGetUtilizationRates(h).gpu, 0.01)
        add("gpu_memory_used_bytes", lambda: nvml.nvmlDeviceGetMemoryInfo(h).used)
        add("gpu_memory_total_bytes", lambda: nvml.nvmlDeviceGetMemoryInfo(h).total)
        add("gpu_power_watts", lambda: nvml.nvmlDeviceGetPowerUsage(h), 0.001)
        add("gpu_temperature_celsius", lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
        add("gpu_sm_clock_hertz", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM), 1e6)
        add(
            "gpu_ecc_errors_total",
            lambda: nvml.nvmlDeviceGetTotalEccErrors(h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC),
        )
        try:
            reasons = nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
            for bit, reason in _THROTTLE_REASONS:
                out.append(("gpu_throttled", {**labels, "reason": reason}, ts, 1.0 if reasons & bit else 0.0))
        except Exception:
            pass
    return out


def start_gpu_sampler(run: "Run", mode: str, interval: float) -> Optional[threading.Thread]:
    def loop() -> None:
        if mode == "auto" and run.mode == "online" and agent_alive(run.agent_url):
            log.info("trainwatch: an agent runs on this node; it reports the GPUs")
            return
        nvml = load_nvml()
        if nvml is None:
            if mode == "on":
                log.warning("trainwatch: GPU metrics requested but NVML is unavailable (pip install nvidia-ml-py)")
            return
        base = dict(run._node_labels)
        while not run._closed:
            try:
                run.add_samples(read_gpus(nvml, base))
            except Exception as e:
                log.debug("trainwatch: GPU sampling failed: %s", e)
            run._stop.wait(interval)

    t = threading.Thread(target=loop, name="trainwatch-gpu", daemon=True)
    t.start()
    return t
