"""Fault injection: edits to a machine fixture, picked up by the stand-in NVML library on the next
nvmlInit (and by the container hook on the next container start)."""
from __future__ import annotations

import uuid

from .util import SimError

KINDS = {
    "lost": "the GPU is lost: nvmlDeviceGetHandleByIndex returns NVML_ERROR_GPU_IS_LOST",
    "fallen-off-bus": "the GPU fell off the bus: queries return NVML_ERROR_GPU_IS_LOST, Xid 79 is pending",
    "xid": "an Xid event (--xid N, default 48: double-bit ECC) is delivered to event sets",
    "ecc": "uncorrectable ECC errors (--count N) in the volatile and aggregate counters",
    "remap-pending": "a row remap is pending (the GPU needs a reset)",
    "remap-failure": "a row remap failed (the GPU needs replacing)",
    "overtemp": "over temperature (--temp C, default 91) with thermal slowdown clock event reasons",
    "nvlink-down": "an NVLink link goes inactive (--link N, default 0)",
    "memory-full": "memory nearly full (--pct P, default 97)",
    "foreign-process": "a process nobody deployed uses the GPU (--pid, --used-mib)",
    "overuse": "the service's process on the GPU holds --used-mib more than it allocated (a leak)",
    "board-replaced": "the board at this index was replaced: new UUID and serial",
    "absent": "the GPU is gone from enumeration (after a reboot with a dead board): indices shift",
    "hang": "nvmlInit hangs (--delay-ms N, default 60000), as with a sick driver (machine-wide; --gpu ignored)",
}
THERMAL_REASONS = ["sw_thermal_slowdown", "hw_slowdown", "hw_thermal_slowdown"]


def _gpu(machine: dict, index: int | None) -> dict:
    gpus = machine.get("gpus", [])
    if index is None:
        raise SimError("this fault needs --gpu N (the GPU's slot in the fixture, as enumerated at boot)")
    if not 0 <= index < len(gpus):
        raise SimError(f"--gpu {index}: the machine has GPUs 0-{len(gpus) - 1}")
    return gpus[index]


def apply(machine: dict, kind: str, gpu: int | None = None, xid: int = 48, count: int = 1, temp: int = 91,
          link: int = 0, pct: int = 97, pid: int = 31337, used_mib: int = 2048, name: str = "python3",
          delay_ms: int = 60000) -> str:
    if kind not in KINDS:
        raise SimError(f"unknown fault {kind!r}; one of: {', '.join(KINDS)}")
    if kind == "hang":
        machine.setdefault("nvml", {})["init_delay_ms"] = delay_ms
        return f"hang: nvmlInit sleeps {delay_ms} ms"
    g = _gpu(machine, gpu)
    label = f"GPU {gpu} ({g.get('uuid')})"
    if kind == "lost":
        g["fault"] = "lost"
    elif kind == "fallen-off-bus":
        g["fault"] = "fallen_off_bus"
    elif kind == "xid":
        machine.setdefault("xid_events", []).append({"gpu": gpu, "xid": xid})
        label += f" Xid {xid}"
    elif kind == "ecc":
        ecc = g.setdefault("ecc", {})
        for counter in ("volatile", "aggregate"):
            ecc.setdefault(counter, {}).setdefault("uncorrected", 0)
            ecc[counter]["uncorrected"] += count
    elif kind == "remap-pending":
        g["remapped_rows"]["pending"] = True
        g["remapped_rows"]["uncorrectable"] += 1
    elif kind == "remap-failure":
        g["remapped_rows"]["failure"] = True
    elif kind == "overtemp":
        g["temperature"]["gpu_c"] = temp
        reasons = [r for r in g.get("clocks_event_reasons", []) if r != "gpu_idle"]
        g["clocks_event_reasons"] = reasons + [r for r in THERMAL_REASONS if r not in reasons]
    elif kind == "nvlink-down":
        links = g.get("nvlink", {}).get("links", [])
        if not 0 <= link < len(links):
            raise SimError(f"--link {link}: {label} has links 0-{len(links) - 1}")
        links[link]["active"] = False
        label += f" link {link}"
    elif kind == "memory-full":
        g["memory"]["used_mib"] = g["memory"]["total_mib"] * pct // 100
    elif kind == "foreign-process":
        g.setdefault("processes", []).append({"pid": pid, "used_mib": used_mib, "name": name})
    elif kind == "overuse":
        g["process_extra_mib"] = g.get("process_extra_mib", 0) + used_mib
        label += f" +{used_mib} MiB"
    elif kind == "board-replaced":
        g["uuid"] = "GPU-" + str(uuid.uuid4())
        g["serial"] = "%013d" % (uuid.uuid4().int % 10 ** 13)
        label += f" -> {g['uuid']}"
    elif kind == "absent":
        g["absent"] = True
    return f"{kind}: {label}: {KINDS[kind]}"
