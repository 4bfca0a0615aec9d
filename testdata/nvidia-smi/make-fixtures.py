#!/usr/bin/env python3
"""Writes the nvidia-smi fixtures of testdata/nvidia-smi/ (deterministic; run from anywhere).

THESE ARE NOT REAL CAPTURES. No GPU machine was available when they were made. They are modelled on the
output of real `nvidia-smi --query-gpu=... --format=csv,noheader,nounits -lms N` on NVIDIA H100 80GB HBM3
(SXM5, driver 550-series) and A100-SXM4-40GB nodes: field order as requested, ", " separators, no units,
`[N/A]` / `[Not Supported]` / `[GPU is lost]` placeholders where such GPUs print them (fan speed on SXM
boards, a lost GPU), clock-throttle reasons as 0x%016x masks, idle then loaded phases. Replace them with
real captures when a GPU machine is at hand (the scenario layout stays the same).

Scenario layout (read by bin/nvidia-smi):
  <scenario>/fields          the --query-gpu fields the capture holds, comma-separated
  <scenario>/query-gpu.csv   readings: one line per GPU, iterations separated by an empty line
  <scenario>/compute-apps.csv  listings for --query-compute-apps=timestamp,gpu_uuid,pid,used_memory;
                             iterations separated by an empty line; $PID<n> is replaced by the n-th PID of
                             $FAKE_NVIDIA_SMI_PIDS
  <scenario>/invalid-fields  (optional) fields this "driver" refuses, one per line
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

FIELDS = [
    "index", "uuid", "name", "pci.bus_id",
    "utilization.gpu", "utilization.memory", "memory.used", "memory.total", "power.draw", "power.limit",
    "temperature.gpu", "temperature.memory", "clocks.sm", "clocks.mem", "clocks.max.sm", "fan.speed", "pstate",
    "ecc.errors.corrected.volatile.total", "ecc.errors.uncorrected.volatile.total",
    "pcie.link.gen.current", "pcie.link.width.current",
    "clocks_throttle_reasons.active", "clocks_event_reasons.active",
]

H100_UUIDS = [
    "GPU-5d1f0b6e-8c2a-4f3b-9e71-0a6c4d2b9f10", "GPU-a3c94e27-1b5d-4c8e-b2f0-7d6e5a4c3b21",
    "GPU-0e7b2d91-6f4a-4b3c-8d25-c1e0f9a8b732", "GPU-7f2c8a14-3d9e-4e6b-a1c7-5b4d3e2f1a43",
    "GPU-c84e1f03-9a2b-4d7c-b6e5-2f1a0e9d8c54", "GPU-19d6b7a2-4e8f-4a1d-9c3b-8e7f6a5b4d65",
    "GPU-e2a05c38-7b1d-4f9e-a4c2-3d2e1f0a9b76", "GPU-4b8d3e6f-2c7a-4b5d-8e1f-9a0b8c7d6e87",
]
H100_BUS = ["00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0",
            "00000000:9A:00.0", "00000000:AB:00.0", "00000000:BA:00.0", "00000000:DB:00.0"]


def h100_line(i, phase, k):
    """phase: idle | load | stall (one GPU stalls at 0% for a moment while the others run)."""
    name = "NVIDIA H100 80GB HBM3"
    jitter = (i * 7 + k * 3) % 5
    if phase == "idle":
        util, mutil, used, power, temp, mtemp, sm, throttle = 0, 0, 0, 69.5 + jitter, 31 + i % 3, 29 + i % 2, 345, 0x1
        gen = 1
    else:
        stalled = phase == "stall" and i == 3
        util = 0 if stalled else 97 + jitter % 4
        mutil = 0 if stalled else 38 + jitter
        used = 71234 + i * 16
        power = 162.3 + jitter if stalled else 655.12 + jitter * 4.3
        temp = 58 + i % 4 + (k % 3)
        mtemp = 66 + i % 3
        sm = 1980
        throttle = 0x0 if stalled else (0x4 if power >= 670 else 0x0)
        gen = 5
    ecc_corr = 2 if i == 5 else 0
    return ", ".join(str(x) for x in [
        i, H100_UUIDS[i], name, H100_BUS[i], util, mutil, used, 81559, f"{power:.2f}", "700.00", temp, mtemp,
        sm, 2619, 1980, "[N/A]", "P0", ecc_corr, 0, gen, 16, f"0x{throttle:016x}", f"0x{throttle:016x}",
    ])


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def h100():
    iterations = []
    for k in range(4):
        iterations.append([h100_line(i, "idle", k) for i in range(8)])
    for k in range(6):
        iterations.append([h100_line(i, "stall" if k in (2, 3) else "load", k) for i in range(8)])
    d = os.path.join(HERE, "h100-8x")
    write(os.path.join(d, "fields"), ",".join(FIELDS) + "\n")
    write(os.path.join(d, "query-gpu.csv"), "\n\n".join("\n".join(it) for it in iterations) + "\n")
    # Two jobs share the node: job A on GPUs 0-3 (four ranks), job B on GPUs 4-7; GPU 7 also runs a
    # process of job A (a shared GPU).
    stamp = "2024/05/14 10:21:{:02d}.{:03d}"
    listing = []
    for k in range(2):
        lines = []
        for g in range(8):
            pid = f"$PID{g}"
            lines.append(f"{stamp.format(10 + k * 5, 117)}, {H100_UUIDS[g]}, {pid}, {70880 + g}")
        lines.append(f"{stamp.format(10 + k * 5, 117)}, {H100_UUIDS[7]}, $PID8, 512")
        listing.append("\n".join(lines))
    write(os.path.join(d, "compute-apps.csv"), "\n\n".join(listing) + "\n")


A100_UUIDS = ["GPU-3e9f1a5c-0b7d-4c2e-8f61-d4a3b2c1e098", "GPU-8a6d4c2e-5f3b-4a1c-9e7d-0b8a6c4e2f19",
              "GPU-b1f7e3d9-2c6a-4e8b-a5d3-7f1e9c3b5d2a", "GPU-6c2a8e4f-9d1b-4f3e-b7a5-3c1e8a6f4b3b"]
A100_BUS = ["00000000:07:00.0", "00000000:0F:00.0", "00000000:47:00.0", "00000000:4E:00.0"]


def a100_line(i, k, lost=False, na_power=False):
    name = "NVIDIA A100-SXM4-40GB"
    if lost:
        vals = ["[GPU is lost]"] * (len(FIELDS) - 4)
        return ", ".join([str(i), A100_UUIDS[i], name, A100_BUS[i]] + vals)
    util = 100 if i != 2 else 12
    power = "[N/A]" if na_power else f"{301.55 + i * 7.1 + k:.2f}"
    return ", ".join(str(x) for x in [
        i, A100_UUIDS[i], name, A100_BUS[i], util, 61, 38250 + i, 40960, power, "400.00", 54 + i, 61 + i,
        1410, 1215, 1410, "[N/A]", "P0", "[Not Supported]" if i == 1 else 0, 0, 4, 16,
        "0x0000000000000000", "0x0000000000000000",
    ])


def a100():
    iterations = []
    for k in range(3):
        iterations.append([a100_line(i, k, na_power=(k == 1 and i == 0)) for i in range(4)])
    # GPU 3 falls off the bus: first "[GPU is lost]", then an error line, then it is gone from the listing.
    iterations.append([a100_line(i, 3, lost=(i == 3)) for i in range(4)])
    iterations.append([a100_line(i, 4) for i in range(3)] +
                      ["Unable to determine the device handle for GPU 00000000:4E:00.0: Unknown Error"])
    for k in range(5, 8):
        iterations.append([a100_line(i, k) for i in range(3)])
    d = os.path.join(HERE, "a100-4x-gpu-lost")
    write(os.path.join(d, "fields"), ",".join(FIELDS) + "\n")
    write(os.path.join(d, "query-gpu.csv"), "\n\n".join("\n".join(it) for it in iterations) + "\n")
    write(os.path.join(d, "compute-apps.csv"), "")


def old_driver():
    """A driver that knows neither clocks_event_reasons.active nor memory temperature (pre-535 style)."""
    d = os.path.join(HERE, "a100-old-driver")
    iterations = [[a100_line(i, k) for i in range(4)] for k in range(3)]
    write(os.path.join(d, "fields"), ",".join(FIELDS) + "\n")
    write(os.path.join(d, "query-gpu.csv"), "\n\n".join("\n".join(it) for it in iterations) + "\n")
    write(os.path.join(d, "compute-apps.csv"), "")
    write(os.path.join(d, "invalid-fields"), "clocks_throttle_reasons.active\nclocks_event_reasons.active\n")


if __name__ == "__main__":
    h100()
    a100()
    old_driver()
