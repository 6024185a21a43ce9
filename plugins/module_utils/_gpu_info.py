# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.gpu_info (private): read every GPU through NVML, then judge health.

``collect(pynvml)`` runs inside one NVML session and returns plain data; ``evaluate(facts,
thresholds)`` adds ok / warn / fail with reasons per GPU and is pure (unit-tested on its own);
``gather(...)`` ties them together with the timeout and the missing-driver policy.
"""

from __future__ import annotations

import ctypes
import difflib
import math
import os
import re

from ansible_collections.ragops.gpu_stack.plugins.module_utils._nvml import (
    MissingBinding, NvmlError, NvmlSession, NvmlTimeout, error_name, import_pynvml, run_isolated)

MIB = 1024 * 1024

# The guide's values ("Target Metrics", "Best Practices"; docs/allocation-guide.md), and the margin
# over a GPU's planned memory use before health and drift warn (docs/gpu-load.md).
DEFAULT_THRESHOLDS = {
    "temperature_warn_c": 80,
    "temperature_limit_c": 83,
    "memory_alert_pct": 85,
    "memory_margin_pct": 5,
    "utilization_target_pct": [70, 85],
}
# What a service (its `thresholds`) or one GPU (gpu_stack_gpu_thresholds) may set differently:
# memory and utilisation are judged per GPU against what runs there; temperature is the board's.
LOAD_THRESHOLDS = ("memory_alert_pct", "memory_margin_pct", "utilization_target_pct")
CONTAINER_ID_RE = re.compile(r"[0-9a-f]{64}")


def check_thresholds(value, where, keys=None):
    """Every problem with a thresholds mapping, one message each naming `where`, the key, the bad
    value and the fix (empty: valid). `keys` limits what may be set (default: every threshold)."""
    keys = keys or tuple(DEFAULT_THRESHOLDS)
    if not isinstance(value, dict):
        return ["%s: %r is not a mapping; write e.g. {memory_alert_pct: 90}" % (where, value)]
    errors = []
    for key in sorted(value, key=str):
        val = value[key]
        if key not in keys:
            close = difflib.get_close_matches(str(key), list(keys), n=1, cutoff=0.6)
            errors.append("%s: unknown threshold %r; %s" % (
                where, key, ("did you mean '%s'?" % close[0]) if close else "one of: " + ", ".join(keys)))
        elif key == "utilization_target_pct":
            if not (isinstance(val, list) and len(val) == 2 and all(_pct(v) for v in val) and val[0] <= val[1]):
                errors.append("%s: utilization_target_pct %r is not [low, high] percentages with low <= high; write "
                              "e.g. [70, 85]" % (where, val))
        elif key.endswith("_pct") and not _pct(val):
            errors.append("%s: %s %r is not a percentage (0-100); write e.g. %s: %s"
                          % (where, key, val, key, DEFAULT_THRESHOLDS[key]))
        elif key.endswith("_c") and not (_number(val) and 0 < val < 150):
            errors.append("%s: %s %r is not a temperature in C (1-149); write e.g. %s: %s"
                          % (where, key, val, key, DEFAULT_THRESHOLDS[key]))
    if not errors and value.get("temperature_warn_c", 0) > value.get("temperature_limit_c", 150):
        errors.append("%s: temperature_warn_c %s is above temperature_limit_c %s; the warning comes first"
                      % (where, value["temperature_warn_c"], value["temperature_limit_c"]))
    return errors


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pct(value):
    return _number(value) and 0 <= value <= 100


# nvmlClocksEventReason* bits (nvml.h).
CLOCK_EVENT_REASONS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
HW_SLOWDOWN = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
# Xid policy (docs/failover.md): the Xids NVIDIA's Kubernetes device plugin treats as application
# errors (the program faulted, the GPU is fine) -- every other critical Xid marks the GPU unhealthy
# there, and here it makes the GPU fail (failover moves its services).
APPLICATION_XIDS = {
    13: "graphics engine exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "preemptive cleanup, due to previous errors",
    68: "video processor exception",
    109: "context switch timeout",
}
# Named in the reasons (the rest are reported by number): those that DCGM's health watches and the
# Xid catalogue say need a GPU reset or a board replacement.
XID_NAMES = {
    48: "double-bit ECC error",
    63: "row remapping event (ECC page retirement)",
    64: "row remapping failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
}
MAX_XID_EVENTS = 64
NVLINK_REMOTE_TYPES = {0: "gpu", 1: "ibmnpu", 2: "switch", 255: "unknown"}


def decode_reasons(mask):
    return [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]


def cpu_ranges(words):
    """NVML's CPU affinity bitmask (list of 64-bit words) -> '48-63,176-191'."""
    cpus = [w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1]
    ranges, start, prev = [], None, None
    for c in cpus:
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            ranges.append((start, prev))
            start = prev = c
    if start is not None:
        ranges.append((start, prev))
    return ",".join("%d-%d" % r if r[0] != r[1] else "%d" % r[0] for r in ranges)


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _GpuReader(object):
    """Reads one GPU; optional fields that the GPU does not support come back as None."""

    def __init__(self, pynvml, handle):
        self.nv = pynvml
        self.h = handle

    def get(self, call, *args, **kwargs):
        optional = kwargs.get("optional", True)
        fn = getattr(self.nv, call)
        try:
            return fn(self.h, *args)
        except self.nv.NVMLError as exc:
            name = error_name(exc)
            if optional and name in ("NOT_SUPPORTED", "FUNCTION_NOT_FOUND", "NO_DATA", "NOT_FOUND"):
                return None
            raise NvmlError(name, "%s: %s" % (call, exc), call=call)


def _read_gpu(nv, index, handle):
    r = _GpuReader(nv, handle)
    gpu = {"index": index}
    gpu["uuid"] = _text(r.get("nvmlDeviceGetUUID", optional=False))
    gpu["name"] = _text(r.get("nvmlDeviceGetName", optional=False))
    gpu["serial"] = _text(r.get("nvmlDeviceGetSerial"))
    pci = r.get("nvmlDeviceGetPciInfo", optional=False)
    gpu["pci_bus_id"] = _text(pci.busId)
    gpu["numa_node"] = r.get("nvmlDeviceGetNumaNodeId")
    affinity = r.get("nvmlDeviceGetCpuAffinity", 16)
    gpu["cpu_affinity"] = cpu_ranges(list(affinity)) if affinity is not None else None
    mem = r.get("nvmlDeviceGetMemoryInfo", optional=False)
    gpu["memory"] = {"total_mib": mem.total // MIB, "used_mib": mem.used // MIB, "free_mib": mem.free // MIB,
                     "used_pct": round(100.0 * mem.used / mem.total, 1) if mem.total else 0.0}
    util = r.get("nvmlDeviceGetUtilizationRates")
    gpu["utilization"] = {"gpu_pct": util.gpu, "memory_pct": util.memory} if util is not None else None
    temp = {"gpu_c": r.get("nvmlDeviceGetTemperature", nv.NVML_TEMPERATURE_GPU)}
    for key, const in (("slowdown_c", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
                       ("shutdown_c", "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
                       ("gpu_max_c", "NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
                       ("memory_max_c", "NVML_TEMPERATURE_THRESHOLD_MEM_MAX")):
        temp[key] = r.get("nvmlDeviceGetTemperatureThreshold", getattr(nv, const))
    gpu["temperature"] = temp
    draw = r.get("nvmlDeviceGetPowerUsage")
    limit = r.get("nvmlDeviceGetEnforcedPowerLimit")
    gpu["power"] = {"draw_w": round(draw / 1000.0, 1) if draw is not None else None,
                    "limit_w": round(limit / 1000.0, 1) if limit is not None else None}
    gpu["clocks"] = {"sm_mhz": r.get("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_SM),
                     "memory_mhz": r.get("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_MEM)}
    persistence = r.get("nvmlDeviceGetPersistenceMode")
    gpu["persistence_mode"] = None if persistence is None else bool(persistence)
    mig = r.get("nvmlDeviceGetMigMode")
    gpu["mig_mode"] = None if mig is None else bool(mig[0])
    cc = r.get("nvmlDeviceGetCudaComputeCapability")
    gpu["compute_capability"] = "%d.%d" % tuple(cc) if cc is not None else None
    ecc_mode = r.get("nvmlDeviceGetEccMode")
    ecc = {"enabled": None if ecc_mode is None else bool(ecc_mode[0])}
    for key, etype, counter in (("uncorrected_volatile", 1, 0), ("uncorrected_aggregate", 1, 1),
                                ("corrected_volatile", 0, 0), ("corrected_aggregate", 0, 1)):
        ecc[key] = r.get("nvmlDeviceGetTotalEccErrors", etype, counter) if ecc["enabled"] else None
    gpu["ecc"] = ecc
    rows = r.get("nvmlDeviceGetRemappedRows")
    gpu["remapped_rows"] = None if rows is None else {
        "correctable": rows[0], "uncorrectable": rows[1], "pending": bool(rows[2]), "failure": bool(rows[3])}
    reasons = r.get("nvmlDeviceGetCurrentClocksEventReasons")
    gpu["clocks_event_reasons"] = decode_reasons(reasons) if reasons is not None else None
    gpu["nvlink"] = _read_links(nv, r)
    procs = r.get("nvmlDeviceGetComputeRunningProcesses") or []
    gpu["processes"] = []
    for p in procs:
        try:
            name = _text(nv.nvmlSystemGetProcessName(p.pid))
        except nv.NVMLError:
            name = None
        used = getattr(p, "usedGpuMemory", None)
        gpu["processes"].append({"pid": p.pid, "used_mib": used // MIB if used is not None else None, "name": name,
                                 "container_id": container_of(p.pid)})
    return gpu


def container_of(pid):
    """The ID of the container a process runs in (the innermost in its cgroup path), or None."""
    try:
        with open("/proc/%d/cgroup" % int(pid)) as fh:
            found = CONTAINER_ID_RE.findall(fh.read())
    except (IOError, OSError, ValueError, TypeError):
        return None
    return found[-1] if found else None


def _read_links(nv, r):
    links = []
    for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            state = r.nv.nvmlDeviceGetNvLinkState(r.h, link)
        except nv.NVMLError as exc:
            name = error_name(exc)
            if name in ("INVALID_ARGUMENT", "NOT_SUPPORTED", "FUNCTION_NOT_FOUND"):
                break  # past the last link, or no NVLink at all
            raise NvmlError(name, "nvmlDeviceGetNvLinkState: %s" % exc, call="nvmlDeviceGetNvLinkState")
        entry = {"link": link, "active": bool(state), "remote_type": None, "remote_pci_bus_id": None}
        try:
            entry["remote_type"] = NVLINK_REMOTE_TYPES.get(nv.nvmlDeviceGetNvLinkRemoteDeviceType(r.h, link),
                                                           "unknown")
        except nv.NVMLError:
            pass
        try:
            entry["remote_pci_bus_id"] = _text(nv.nvmlDeviceGetNvLinkRemotePciInfo(r.h, link).busId)
        except nv.NVMLError:
            pass
        links.append(entry)
    return links


def collect(nv, kmod_version_path="/sys/module/nvidia/version"):
    """Everything gpu_info reports, from one NVML session. Runs in the isolated child."""
    facts = {"driver_installed": True, "driver_state": "ok", "driver_error": None}
    with NvmlSession(nv):
        facts["driver_version"] = _text(nv.nvmlSystemGetDriverVersion())
        facts["nvml_version"] = _text(nv.nvmlSystemGetNVMLVersion())
        try:
            cuda = nv.nvmlSystemGetCudaDriverVersion_v2()
            facts["cuda_driver_version"] = "%d.%d" % (cuda // 1000, (cuda % 1000) // 10)
        except nv.NVMLError:
            facts["cuda_driver_version"] = None
        count = nv.nvmlDeviceGetCount()
        facts["gpu_count"] = count
        gpus = []
        handles = {}
        for index in range(count):
            handle = None
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                handles[index] = handle
                gpus.append(_read_gpu(nv, index, handle))
            except (nv.NVMLError, NvmlError) as exc:
                name = exc.name if isinstance(exc, NvmlError) else error_name(exc)
                gpu = {"index": index, "error": name, "error_message": str(exc)}
                if handle is not None:  # host-side identity survives a GPU that fell off the bus
                    try:
                        gpu["pci_bus_id"] = _text(nv.nvmlDeviceGetPciInfo(handle).busId)
                    except nv.NVMLError:
                        pass
                gpus.append(gpu)
        facts["gpus"] = gpus
        _read_xids(nv, handles, gpus)
    # NVML's driver version is the loaded kernel module's; sysfs says the same where it exists.
    facts["kernel_module_version"] = _read_first_line(kmod_version_path) or facts["driver_version"]
    return facts


def _address(handle):
    return ctypes.cast(handle, ctypes.c_void_p).value


def _read_xids(nv, handles, gpus):
    """The critical Xid events NVML delivers now, per GPU (``xid_events``: a list of numbers).

    NVML hands an event to the event sets registered when it happens: on a real host a one-shot
    read sees the Xids raised while it runs, and the lasting damage (a lost GPU, ECC counters, row
    remaps) through the other fields. The simulator keeps an injected Xid pending until reset."""
    for gpu in gpus:
        gpu["xid_events"] = []
    try:
        event_set = nv.nvmlEventSetCreate()
    except nv.NVMLError:
        return
    by_address = {}
    try:
        for index, handle in handles.items():
            try:
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, event_set)
            except nv.NVMLError:
                continue  # a lost GPU, or one without events: reported by its other fields
            by_address[_address(handle)] = index
        by_index = dict((g["index"], g) for g in gpus)
        wait = getattr(nv, "nvmlEventSetWait_v2", None) or nv.nvmlEventSetWait
        for _count in range(MAX_XID_EVENTS):
            try:
                data = wait(event_set, 0)
            except nv.NVMLError:
                break  # TIMEOUT: nothing (more) pending
            index = by_address.get(_address(data.device))
            if index is not None and data.eventType & nv.nvmlEventTypeXidCriticalError:
                by_index[index]["xid_events"].append(int(data.eventData))
    finally:
        try:
            nv.nvmlEventSetFree(event_set)
        except nv.NVMLError:
            pass


def _read_first_line(path):
    try:
        with open(path) as fh:
            return fh.readline().strip() or None
    except (IOError, OSError):
        return None


def add_topology(facts):
    """NVLink peers per GPU: every GPU with an active link to an NVSwitch reaches every other such
    GPU; otherwise a peer is a GPU whose PCI bus id is the remote end of an active link."""
    by_bus = dict((g.get("pci_bus_id", "").upper(), g["index"]) for g in facts.get("gpus", []) if "uuid" in g)
    on_switch = set()
    for g in facts.get("gpus", []):
        if any(link["active"] and link.get("remote_type") == "switch" for link in g.get("nvlink") or []):
            on_switch.add(g["index"])
    facts["nvswitch"] = bool(on_switch) or any(
        link.get("remote_type") == "switch" for g in facts.get("gpus", []) for link in g.get("nvlink") or [])
    for g in facts.get("gpus", []):
        if "uuid" not in g:
            g["nvlink_peers"] = []
            continue
        peers = set()
        if g["index"] in on_switch:
            peers |= on_switch - set([g["index"]])
        for link in g.get("nvlink") or []:
            if link["active"] and link.get("remote_type") == "gpu":
                peer = by_bus.get((link.get("remote_pci_bus_id") or "").upper())
                if peer is not None and peer != g["index"]:
                    peers.add(peer)
        g["nvlink_peers"] = sorted(peers)
    return facts


def _issues(g, th, nvswitch):
    """(kind, severity, message) for one GPU; severity 'fail' or 'warn', plus informational notes."""
    out, notes = [], []
    if "error" in g:
        out.append(("gpu.lost", "fail", "NVML: %s (%s) - the GPU is unreachable; check dmesg for Xid 79 / 48, reset or "
                    "replace the board" % (g["error"], g.get("error_message", ""))))
        return out, notes
    critical = sorted(set(x for x in g.get("xid_events") or [] if x not in APPLICATION_XIDS))
    if critical:
        out.append(("gpu.xid", "fail", "Xid %s (%s): the GPU needs a reset or replacement"
                    % (", ".join(str(x) for x in critical), "; ".join(XID_NAMES.get(x, "critical") for x in critical))))
    application = sorted(set(x for x in g.get("xid_events") or [] if x in APPLICATION_XIDS))
    if application:
        notes.append("application Xid %s (%s): a program faulted, the GPU is fine"
                     % (", ".join(str(x) for x in application), "; ".join(APPLICATION_XIDS[x] for x in application)))
    temp = (g.get("temperature") or {}).get("gpu_c")
    if temp is not None:
        if temp >= th["temperature_limit_c"]:
            out.append(("gpu.temperature", "fail", "temperature %d C at or above the limit %d C"
                        % (temp, th["temperature_limit_c"])))
        elif temp >= th["temperature_warn_c"]:
            out.append(("gpu.temperature", "warn", "temperature %d C at or above %d C" % (temp, th["temperature_warn_c"])))
    # Memory and utilisation depend on what runs on the GPU: vLLM preallocates 90 % of its GPUs and a
    # busy GPU runs near 100 %. They are judged against the plan (_gpu_load) by health and drift;
    # here they are notes only.
    mem = g.get("memory") or {}
    if mem.get("used_pct", 0) >= th["memory_alert_pct"]:
        notes.append("memory %.1f%% used (alert at %d%% unless a service preallocates it)"
                     % (mem["used_pct"], th["memory_alert_pct"]))
    util = (g.get("utilization") or {}).get("gpu_pct")
    low, high = th["utilization_target_pct"]
    if util is not None and (util > high or util < low):
        notes.append("utilization %d%% %s the %d-%d%% target (capacity, not health)"
                     % (util, "above" if util > high else "below", low, high))
    ecc = g.get("ecc") or {}
    if ecc.get("uncorrected_volatile"):
        out.append(("gpu.ecc", "fail", "%d uncorrectable ECC errors since boot" % ecc["uncorrected_volatile"]))
    elif ecc.get("uncorrected_aggregate"):
        out.append(("gpu.ecc", "warn", "%d uncorrectable ECC errors over the board's life" % ecc["uncorrected_aggregate"]))
    rows = g.get("remapped_rows") or {}
    if rows.get("failure"):
        out.append(("gpu.row_remap", "fail", "row remapping failed: the board needs replacing"))
    if rows.get("pending"):
        out.append(("gpu.row_remap", "fail", "a row remap is pending: reset the GPU (or reboot) to apply it"))
    reasons = g.get("clocks_event_reasons") or []
    hw = [r for r in reasons if r in HW_SLOWDOWN]
    if hw:
        out.append(("gpu.slowdown", "fail", "hardware slowdown active: %s" % ", ".join(hw)))
    if "sw_thermal_slowdown" in reasons:
        out.append(("gpu.slowdown", "warn", "software thermal slowdown active"))
    down = [link["link"] for link in g.get("nvlink") or [] if not link["active"]]
    if down:
        out.append(("gpu.nvlink", "fail" if nvswitch else "warn",
                    "NVLink link(s) %s down" % ", ".join(str(d) for d in down)))
    if g.get("persistence_mode") is False:
        out.append(("gpu.persistence", "warn", "persistence mode off: enable nvidia-persistenced"))
    if g.get("mig_mode"):
        out.append(("gpu.mig", "warn", "MIG mode enabled: the services expect whole GPUs"))
    return out, notes


def blocking_issues(gpu, tensor_parallel=1):
    """Why a service cannot run on this GPU (empty: it can): every failing issue -- lost or off the bus,
    a critical Xid, uncorrectable ECC, a row remap failed or pending, temperature at or over the
    limit, hardware slowdown -- and a down NVLink only for a tensor-parallel service (one GPU alone
    does not use it). The one rule the plan, failover and failback share."""
    if "error" in gpu:
        return ["lost (NVML: %s)" % gpu["error"]]
    return [i["message"] for i in gpu.get("issues") or []
            if i["severity"] == "fail" and (tensor_parallel > 1 or i["kind"] != "gpu.nvlink")]


def evaluate(facts, thresholds=None):
    """Health per GPU: status ok / warn / fail with reasons (and typed issues); a summary at the top."""
    th = dict(DEFAULT_THRESHOLDS)
    th.update(dict((k, v) for k, v in (thresholds or {}).items() if v is not None))
    nvswitch = facts.get("nvswitch", False)
    failing, warning = [], []
    for g in facts.get("gpus", []):
        issues, notes = _issues(g, th, nvswitch)
        fail = [m for _k, sev, m in issues if sev == "fail"]
        warn = [m for _k, sev, m in issues if sev == "warn"]
        g["status"] = "fail" if fail else ("warn" if warn else "ok")
        g["reasons"] = fail + warn
        g["issues"] = [{"kind": k, "severity": sev, "message": m} for k, sev, m in issues]
        g["notes"] = notes
        if fail:
            failing.append(g["index"])
        elif warn:
            warning.append(g["index"])
    facts["health"] = {
        "status": "fail" if failing else ("warn" if warning else "ok"),
        "failing_gpus": failing,
        "warning_gpus": warning,
        "thresholds": th,
    }
    return facts


def missing_driver_facts(state, message):
    return {"driver_installed": state not in ("not_installed",), "driver_state": state, "driver_error": message,
            "driver_version": None, "nvml_version": None, "cuda_driver_version": None,
            "kernel_module_version": None, "gpu_count": 0, "gpus": [], "nvswitch": False, "host_cpus": os.cpu_count(),
            "health": {"status": "fail", "failing_gpus": [], "warning_gpus": [], "thresholds": {}}}


class DriverUnavailable(Exception):
    """No usable NVIDIA driver; ``state`` says which way, the message says what to do."""

    def __init__(self, state, message):
        self.state = state
        super(DriverUnavailable, self).__init__(message)


def _driver_error(exc):
    if isinstance(exc, MissingBinding):
        return DriverUnavailable("not_installed", "%s. The NVIDIA driver stack is not set up on this host: run the "
                                 "ragops.gpu_stack.nvidia_driver role (it installs the driver and nvidia-ml-py)." % exc)
    if exc.name == "LIBRARY_NOT_FOUND":
        return DriverUnavailable("not_installed", "libnvidia-ml.so.1 was not found: the NVIDIA driver is not "
                                 "installed. Run the ragops.gpu_stack.nvidia_driver role.")
    if exc.name == "DRIVER_NOT_LOADED":
        return DriverUnavailable("not_loaded", "the NVIDIA kernel module is not loaded (NVML: DRIVER_NOT_LOADED): "
                                 "`modprobe nvidia`, or reboot after a driver install.")
    if exc.name == "LIB_RM_VERSION_MISMATCH":
        return DriverUnavailable("version_mismatch", "Driver/library version mismatch: the loaded kernel module is "
                                 "not the installed library's version (an upgrade without a reboot?). Reload the "
                                 "nvidia modules or reboot, and hold the driver packages.")
    return None


def gather(thresholds=None, timeout=15, tolerate_missing_driver=False, kmod_version_path="/sys/module/nvidia/version",
           importer=import_pynvml):
    """gpu_info's result. Raises DriverUnavailable (no usable driver, not tolerated) or NvmlError."""
    try:
        # Imported here, before the fork: the child inherits the module (pynvml loads the C
        # library lazily, at nvmlInit, in the child).
        nv = importer()
        facts = run_isolated(lambda: collect(nv, kmod_version_path), timeout)
    except NvmlError as exc:
        unavailable = _driver_error(exc)
        if unavailable is None and tolerate_missing_driver and isinstance(exc, NvmlTimeout):
            # a hung driver is as unusable as a missing one: the health and drift checks still report
            unavailable = DriverUnavailable("hung", "%s; a reboot may be needed" % exc)
        if unavailable is None:
            raise
        if not tolerate_missing_driver:
            raise unavailable
        return missing_driver_facts(unavailable.state, str(unavailable))
    add_topology(facts)
    facts["host_cpus"] = os.cpu_count()
    return evaluate(facts, thresholds)


__all__ = ["DEFAULT_THRESHOLDS", "blocking_issues", "DriverUnavailable", "NvmlError", "gather", "evaluate", "add_topology", "collect",
           "decode_reasons", "cpu_ranges"]
