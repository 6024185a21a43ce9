# -*- coding: utf-8 -*-
"""gpu_info over the real nvidia-ml-py (pynvml) loading the simulator's libnvidia-ml.so.1: it sees
exactly the fixture, every injected fault surfaces as the real NVML error or value, and health is
judged against the guide's thresholds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pynvml
import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._nvml import NvmlError, NvmlTimeout

MIB = 1024 * 1024


@pytest.fixture
def nvml(machine):
    """pynvml initialised over a fresh A100 machine; shut down after the test."""
    m = machine()
    pynvml.nvmlInit()
    yield m
    pynvml.nvmlShutdown()


def test_calls_before_init_are_uninitialized(machine):
    machine()
    with pytest.raises(pynvml.NVMLError) as exc:
        pynvml.nvmlDeviceGetCount()
    assert exc.value.value == pynvml.NVML_ERROR_UNINITIALIZED


def test_real_pynvml_sees_exactly_the_fixture(nvml):
    m = nvml
    assert pynvml.nvmlSystemGetDriverVersion() == "550.127.05"
    assert pynvml.nvmlSystemGetNVMLVersion() == "12.550.127.05"
    assert pynvml.nvmlSystemGetCudaDriverVersion_v2() == 12040
    assert pynvml.nvmlDeviceGetCount() == 8
    for i in range(8):
        g = m.gpu(i)
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        assert pynvml.nvmlDeviceGetIndex(h) == i
        assert pynvml.nvmlDeviceGetUUID(h) == g["uuid"]
        assert pynvml.nvmlDeviceGetName(h) == "NVIDIA A100-SXM4-80GB"
        assert pynvml.nvmlDeviceGetSerial(h) == g["serial"]
        assert pynvml.nvmlDeviceGetPciInfo(h).busId == g["pci"]["bus_id"]
        assert pynvml.nvmlDeviceGetNumaNodeId(h) == g["numa_node"]
        assert gi.cpu_ranges(list(pynvml.nvmlDeviceGetCpuAffinity(h, 16))) == ",".join(
            "%d-%d" % tuple(r) for r in g["cpu_affinity"])
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        assert (mem.total // MIB, mem.used, mem.free // MIB) == (81920, 0, 81920)
        util = pynvml.nvmlDeviceGetUtilizationRates(h)
        assert (util.gpu, util.memory) == (0, 0)
        assert pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU) == g["temperature"]["gpu_c"]
        assert pynvml.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN) == 89
        assert pynvml.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN) == 92
        assert pynvml.nvmlDeviceGetPowerUsage(h) == g["power"]["draw_mw"]
        assert pynvml.nvmlDeviceGetEnforcedPowerLimit(h) == 400000
        assert pynvml.nvmlDeviceGetPersistenceMode(h) == pynvml.NVML_FEATURE_ENABLED
        assert pynvml.nvmlDeviceGetMigMode(h) == [0, 0]
        assert pynvml.nvmlDeviceGetCudaComputeCapability(h) == (8, 0)
        assert pynvml.nvmlDeviceGetEccMode(h) == [1, 1]
        assert pynvml.nvmlDeviceGetTotalEccErrors(h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                  pynvml.NVML_VOLATILE_ECC) == 0
        assert pynvml.nvmlDeviceGetRemappedRows(h) == (0, 0, 0, 0)
        assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(h) == pynvml.nvmlClocksEventReasonGpuIdle
        links = [pynvml.nvmlDeviceGetNvLinkState(h, link) for link in range(12)]
        assert links == [1] * 12
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceGetNvLinkState(h, 12)
        assert pynvml.nvmlDeviceGetNvLinkRemoteDeviceType(h, 0) == pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH
        assert pynvml.nvmlDeviceGetNvLinkRemotePciInfo(h, 0).busId == "00000000:C4:00.0"
        assert pynvml.nvmlDeviceGetComputeRunningProcesses(h) == []
    h2, h3 = pynvml.nvmlDeviceGetHandleByIndex(2), pynvml.nvmlDeviceGetHandleByIndex(3)
    assert pynvml.nvmlDeviceGetP2PStatus(h2, h3, pynvml.NVML_P2P_CAPS_INDEX_NVLINK) == pynvml.NVML_P2P_STATUS_OK
    assert pynvml.nvmlDeviceGetHandleByUUID(m.gpu(5)["uuid"]) is not None
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetFanSpeed(h2)  # passively cooled SXM board
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        pynvml.nvmlDeviceGetPcieThroughput(h2, 0)  # not implemented: NVML's own error, like an old driver


def test_gpu_info_reports_every_field(machine):
    m = machine()
    m.fault("foreign-process", gpu=6, pid=4242, used_mib=1234, name="python3")
    facts = gi.gather()
    assert facts["driver_state"] == "ok" and facts["driver_installed"] is True
    assert (facts["driver_version"], facts["nvml_version"], facts["cuda_driver_version"]) == (
        "550.127.05", "12.550.127.05", "12.4")
    assert facts["kernel_module_version"] == "550.127.05" and facts["gpu_count"] == 8 and facts["nvswitch"] is True
    g = facts["gpus"][2]
    assert g["uuid"] == m.gpu(2)["uuid"] and g["pci_bus_id"] == "00000000:47:00.0"
    assert g["numa_node"] == 1 and g["cpu_affinity"] == "16-31,144-159"
    assert g["memory"] == {"total_mib": 81920, "used_mib": 0, "free_mib": 81920, "used_pct": 0.0}
    assert g["utilization"] == {"gpu_pct": 0, "memory_pct": 0}
    assert g["temperature"] == {"gpu_c": 33, "slowdown_c": 89, "shutdown_c": 92, "gpu_max_c": 85, "memory_max_c": 95}
    assert g["power"] == {"draw_w": 63.0, "limit_w": 400.0}
    assert (g["persistence_mode"], g["mig_mode"], g["compute_capability"]) == (True, False, "8.0")
    assert g["ecc"] == {"enabled": True, "uncorrected_volatile": 0, "uncorrected_aggregate": 0,
                        "corrected_volatile": 0, "corrected_aggregate": 0}
    assert g["remapped_rows"] == {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False}
    assert g["clocks_event_reasons"] == ["gpu_idle"]
    assert len(g["nvlink"]) == 12 and all(link["active"] and link["remote_type"] == "switch" for link in g["nvlink"])
    assert g["nvlink_peers"] == [0, 1, 3, 4, 5, 6, 7]
    assert g["status"] == "ok" and g["reasons"] == []
    assert facts["gpus"][6]["processes"] == [{"pid": 4242, "used_mib": 1234, "name": "python3", "container_id": None}]
    assert facts["gpus"][6]["memory"]["used_mib"] == 1234


# (fault, kwargs, GPU, how NVML shows it, the health verdict)
FAULTS = [
    ("lost", {}, 3, "GPU_IS_LOST", "fail"),
    ("fallen-off-bus", {}, 4, "GPU_IS_LOST", "fail"),
    ("ecc", {"count": 2}, 1, "uncorrectable ECC errors since boot", "fail"),
    ("remap-pending", {}, 1, "row remap is pending", "fail"),
    ("remap-failure", {}, 1, "row remapping failed", "fail"),
    ("overtemp", {}, 0, "hardware slowdown active: hw_slowdown, hw_thermal_slowdown", "fail"),
    ("nvlink-down", {"link": 5}, 2, "NVLink link(s) 5 down", "fail"),
    ("xid", {"xid": 48}, 5, "Xid 48 (double-bit ECC error): the GPU needs a reset or replacement", "fail"),
    ("xid", {"xid": 119}, 5, "Xid 119 (GSP RPC timeout)", "fail"),
    ("xid", {"xid": 31}, 5, "", "ok"),  # an application's page fault: the GPU is fine
]


@pytest.mark.parametrize("kind,kwargs,slot,shown,verdict", FAULTS,
                         ids=["%s-%s" % (f[0], f[1].get("xid", "")) for f in FAULTS])
def test_injected_fault_surfaces_through_nvml_and_health(machine, kind, kwargs, slot, shown, verdict):
    m = machine()
    m.fault(kind, gpu=slot, **kwargs)
    facts = gi.gather()
    g = facts["gpus"][slot]
    assert g["status"] == verdict
    text = g.get("error", "") + " " + " ".join(g["reasons"])
    assert shown in text, g
    others = [x for x in facts["gpus"] if x["index"] != slot]
    assert all(x["status"] == "ok" for x in others)
    assert facts["health"]["status"] == verdict


def test_lost_gpu_handle_and_fallen_off_bus_queries_use_nvml_errors(nvml):
    m = nvml
    pynvml.nvmlShutdown()
    m.fault("lost", gpu=3)
    m.fault("fallen-off-bus", gpu=4)
    pynvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetHandleByIndex(3)
    h4 = pynvml.nvmlDeviceGetHandleByIndex(4)
    assert pynvml.nvmlDeviceGetPciInfo(h4).busId == m.gpu(4)["pci"]["bus_id"]  # host-side identity survives
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetUUID(h4)
    events = pynvml.nvmlEventSetCreate()
    pynvml.nvmlDeviceRegisterEvents(h4, pynvml.nvmlEventTypeXidCriticalError, events)
    data = pynvml.nvmlEventSetWait(events, 0)
    assert (data.eventType, data.eventData) == (pynvml.nvmlEventTypeXidCriticalError, 79)
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(events, 10)
    pynvml.nvmlEventSetFree(events)


def test_xid_event_is_delivered_once(nvml):
    m = nvml
    pynvml.nvmlShutdown()
    m.fault("xid", gpu=2, xid=48)
    pynvml.nvmlInit()
    events = pynvml.nvmlEventSetCreate()
    pynvml.nvmlDeviceRegisterEvents(pynvml.nvmlDeviceGetHandleByIndex(2), pynvml.nvmlEventTypeXidCriticalError, events)
    assert pynvml.nvmlEventSetWait(events, 0).eventData == 48
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait(events, 0)
    pynvml.nvmlEventSetFree(events)


def test_xids_per_gpu_and_the_policy(machine):
    """gpu_info reads the pending Xids of every GPU: critical ones fail the GPU, application ones
    (the device plugin's list) are a note; a fallen-off-bus GPU's Xid 79 does not hide its loss."""
    m = machine()
    m.fault("xid", gpu=1, xid=31)
    m.fault("xid", gpu=1, xid=94)
    m.fault("xid", gpu=6, xid=13)
    m.fault("fallen-off-bus", gpu=4)
    facts = gi.gather()
    by = dict((g["index"], g) for g in facts["gpus"])
    assert by[1]["xid_events"] == [31, 94]
    assert by[1]["status"] == "fail" and [i["kind"] for i in by[1]["issues"]] == ["gpu.xid"]
    assert "Xid 94 (contained ECC error)" in by[1]["reasons"][0] and "31" not in by[1]["reasons"][0]
    assert "application Xid 31 (GPU memory page fault): a program faulted, the GPU is fine" in by[1]["notes"]
    assert by[6]["status"] == "ok" and by[6]["xid_events"] == [13]
    assert by[4]["error"] == "GPU_IS_LOST" and [i["kind"] for i in by[4]["issues"]] == ["gpu.lost"]
    assert facts["health"]["failing_gpus"] == [1, 4]


def test_thresholds_from_the_inventory(machine):
    m = machine()
    m.gpu(0)["temperature"]["gpu_c"] = 81
    m.gpu(1)["utilization"]["gpu"] = 92
    m.write()
    facts = gi.gather()
    assert facts["gpus"][0]["status"] == "warn" and facts["gpus"][0]["reasons"] == ["temperature 81 C at or above 80 C"]
    # utilisation is capacity, not health: a note, never a warning
    assert facts["gpus"][1]["status"] == "ok" and facts["gpus"][1]["reasons"] == []
    assert "utilization 92% above the 70-85% target (capacity, not health)" in facts["gpus"][1]["notes"]
    relaxed = gi.gather({"temperature_warn_c": 85, "utilization_target_pct": [70, 95]})
    assert relaxed["gpus"][0]["status"] == "ok" and relaxed["gpus"][1]["notes"] == []


def test_full_memory_alone_is_a_note_for_the_plan_aware_checks(machine):
    """Without the plan gpu_info cannot tell vLLM's preallocation from a leak: health and drift judge it."""
    m = machine()
    m.fault("memory-full", gpu=6)
    g = gi.gather()["gpus"][6]
    assert g["status"] == "ok" and g["memory"]["used_pct"] == 97.0
    assert g["notes"] == ["memory 97.0% used (alert at 85% unless a service preallocates it)",
                          "utilization 0% below the 70-85% target (capacity, not health)"]


@pytest.mark.parametrize("value,message", [
    ({"memory_alert_pct": 120}, "memory_alert_pct 120 is not a percentage (0-100)"),
    ({"memory_alert_pct": "85"}, "memory_alert_pct '85' is not a percentage"),
    ({"utilization_target_pct": [90, 70]}, "is not [low, high] percentages with low <= high"),
    ({"temperature_warn_c": float("nan")}, "is not a temperature in C"),
    ({"temperture_warn_c": 80}, "unknown threshold 'temperture_warn_c'"),
    ({"temperature_warn_c": 85, "temperature_limit_c": 83}, "temperature_warn_c 85 is above temperature_limit_c 83"),
    ("85", "is not a mapping"),
])
def test_bad_thresholds_are_named_with_the_fix(value, message):
    errors = gi.check_thresholds(value, "gpu_stack_thresholds")
    assert len(errors) == 1 and message in errors[0] and errors[0].startswith("gpu_stack_thresholds: "), errors


def test_board_replaced_and_absent_gpu(machine):
    m = machine()
    old = m.gpu(5)["uuid"]
    m.fault("board-replaced", gpu=5)
    facts = gi.gather()
    assert facts["gpus"][5]["uuid"] != old and facts["gpus"][5]["uuid"] == m.gpu(5)["uuid"]
    m.fault("absent", gpu=1)
    facts = gi.gather()
    assert facts["gpu_count"] == 7
    assert facts["gpus"][1]["uuid"] == m.gpu(2)["uuid"]  # indices shift: why services are pinned by UUID


def test_pcie_box_has_nvlink_only_between_bridged_pairs(machine):
    machine("a100-pcie-80gb-x8")
    facts = gi.gather()
    assert facts["nvswitch"] is False
    assert [g["nvlink_peers"] for g in facts["gpus"]] == [[1], [0], [3], [2], [5], [4], [7], [6]]


def test_h100_box_is_fully_connected_without_nvswitch(machine):
    machine("h100-sxm5-80gb-x4")
    facts = gi.gather()
    assert facts["gpu_count"] == 4 and facts["nvswitch"] is False
    assert facts["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and facts["gpus"][0]["compute_capability"] == "9.0"
    assert all(len(g["nvlink"]) == 18 for g in facts["gpus"])
    assert facts["gpus"][0]["nvlink_peers"] == [1, 2, 3]


def test_nvlink_down_on_a_pcie_box_is_a_warning(machine):
    m = machine("a100-pcie-80gb-x8")
    m.fault("nvlink-down", gpu=2, link=0)
    g = gi.gather()["gpus"][2]
    assert g["status"] == "warn" and g["reasons"] == ["NVLink link(s) 0 down"]


def test_driver_not_loaded_and_version_mismatch(machine, tmp_path):
    m = machine()
    state = tmp_path / "nvidia.ko.version"
    m.data["kernel_module"] = {"state_file": str(state)}
    m.write()
    with pytest.raises(gi.DriverUnavailable) as exc:
        gi.gather()
    assert exc.value.state == "not_loaded" and "modprobe nvidia" in str(exc.value)
    state.write_text("550.90.07\n")
    with pytest.raises(gi.DriverUnavailable) as exc:
        gi.gather()
    assert exc.value.state == "version_mismatch" and "Driver/library version mismatch" in str(exc.value)
    tolerated = gi.gather(tolerate_missing_driver=True)
    assert (tolerated["driver_state"], tolerated["gpu_count"], tolerated["gpus"]) == ("version_mismatch", 0, [])
    state.write_text("550.127.05\n")
    assert gi.gather()["gpu_count"] == 8


def test_missing_library_says_the_driver_is_not_installed(tmp_path):
    """A fresh interpreter without the stand-in library: pynvml cannot load libnvidia-ml.so.1."""
    code = ("from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi\n"
            "import json\n"
            "try:\n"
            "    gi.gather()\n"
            "except gi.DriverUnavailable as e:\n"
            "    print(json.dumps([e.state, str(e)]))\n"
            "print(json.dumps(gi.gather(tolerate_missing_driver=True)['driver_installed']))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("collections")))
    env.pop("LD_LIBRARY_PATH", None)
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('["not_installed", "libnvidia-ml.so.1 was not found: the NVIDIA driver is not installed')
    assert lines[1] == "false"


def test_hung_nvml_init_is_killed_after_the_timeout(machine):
    m = machine()
    m.fault("hang", delay_ms=30000)
    t0 = time.monotonic()
    with pytest.raises(NvmlTimeout) as exc:
        gi.gather(timeout=1)
    assert time.monotonic() - t0 < 5
    assert "did not answer within 1s" in str(exc.value)
    # the health and drift checks tolerate it: no GPUs, and the reason
    hung = gi.gather(timeout=1, tolerate_missing_driver=True)
    assert (hung["driver_state"], hung["gpus"]) == ("hung", [])
    assert "did not answer within 1s" in hung["driver_error"] and "; a reboot may be needed" in hung["driver_error"]


def test_nvml_errors_keep_their_names(machine):
    machine()
    with pytest.raises(NvmlError) as exc:
        gi.run_isolated(lambda: gi.collect(_Broken()), 5)
    assert exc.value.name == "UNEXPECTED" and "boom" in str(exc.value)


class _Broken(object):
    """A stand-in binding whose init raises a plain exception (for the error path of the isolated child)."""

    NVMLError = pynvml.NVMLError

    def nvmlInit(self):
        raise RuntimeError("boom")

    def nvmlShutdown(self):
        pass


def _stuck(pidfile):
    """The collector's work when NVML is stuck in the kernel: it records its pid and never answers."""
    with open(pidfile, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(120)


def test_the_hard_timeout_does_not_wait_on_a_collector_that_outlives_the_kill(tmp_path, monkeypatch):
    """A child stuck in an NVML call in the kernel does not die on SIGKILL until the call returns.
    Here the kill is made to miss (the child goes on sleeping): run_isolated must still return with
    its timeout, leaving the child behind, instead of a blocking wait for it."""
    from ansible_collections.ragops.gpu_stack.plugins.module_utils import _nvml

    real_kill = os.kill
    pidfile = tmp_path / "collector.pid"
    monkeypatch.setattr(_nvml.os, "kill", lambda pid, sig: None)
    try:
        with pytest.raises(NvmlTimeout):
            gi.run_isolated(lambda: _stuck(str(pidfile)), 0.5)
        monkeypatch.undo()
        pid = int(pidfile.read_text())
        real_kill(pid, 0)  # still there: run_isolated came back without waiting for it
    finally:
        monkeypatch.undo()
        if pidfile.exists():
            real_kill(int(pidfile.read_text()), 9)
            os.waitpid(int(pidfile.read_text()), 0)
