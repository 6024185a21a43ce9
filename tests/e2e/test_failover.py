# -*- coding: utf-8 -*-
"""The guide's emergency procedures end to end on the shared converged node: health that reports
whatever the state (a lost GPU, a hanging driver), failover.yml moving a single-GPU service and a
tensor-parallel pair to reserved GPUs by UUID, site.yml keeping the moves (changed=0), the drift
check's failover findings, each other fault kind named by the health check, the automatic path
moving services to the reserve, their CPU mode or stopping them when no GPU is left, and
failback.yml putting everything back (drift exit 0). Which GPUs each fault kind sends a service to
is decided by the same code in tests/unit/plugins/module_utils/test_failover_plan.py. Every test leaves the node
as site.yml made it, or marks it dirty (faults cleared, record removed) for the next test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RECORD = "/etc/ragops/gpu-stack/failover.json"
REPORTS = "/tmp/ragops-failover-drift"


def drift(ansible, node, *extra):
    run = ansible(ROOT / "playbooks" / "drift_check.yml", node.inventory, *extra,
                  env={"RAGOPS_DRIFT_REPORT_DIR": REPORTS})
    report = json.loads(Path(REPORTS, "latest.json").read_text())
    return run, report


def uuid_of(node, index):
    return node.sh("nvidia-smi -i %d --query-gpu=uuid --format=csv,noheader" % index).stdout.strip()


def inspect(node, name):
    return json.loads(node.sh("docker inspect %s" % name).stdout)[0]


def pinned(node, name):
    """The GPU UUIDs a container requests (sorted), [] for none."""
    requests = inspect(node, name)["HostConfig"].get("DeviceRequests") or []
    return sorted(i for r in requests for i in r.get("DeviceIDs") or [])


def record(node):
    return json.loads(node.sh("cat %s" % RECORD).stdout)


def problems(run):
    return [line for line in run.out.splitlines() if "is unhealthy:" in line][0]


@pytest.fixture
def faulty(converged):
    """The converged node for a test that injects faults: cleared, the record removed and the node
    marked for re-convergence if the test stops half-way."""
    converged.dirty = True
    yield converged
    if converged.dirty:
        converged.clear_faults()
        converged.sh("rm -f %s" % RECORD)


def test_lost_gpu_and_tensor_parallel_pair_fail_over_and_back(faulty, ansible):
    node = faulty
    node.fault("lost", gpu=0)
    node.fault("xid", gpu=3, xid=48)
    reserved = dict((i, uuid_of(node, i)) for i in (5, 6, 7))

    # health: both tables, the lost GPU a row, each problem named -- and no waiting on the dead ones
    health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    assert health.rc != 0
    assert "DOWN: GPU 0 lost" in health.out and "LOST: NVML GPU_IS_LOST" in health.out
    assert "GPU  TEMP  MEMORY" in health.out and "SERVICE    CONTAINER" in health.out
    fail = problems(health)
    assert "service whisper (rag-whisper): DOWN: GPU 0 lost" in fail and "run playbooks/failover.yml" in fail
    assert "service llm (rag-llm-server): DOWN: GPU 3 failed: Xid 48 (double-bit ECC error)" in fail

    # check mode: the moves are shown, nothing is written or moved
    check = ansible(ROOT / "playbooks" / "failover.yml", node.inventory, "--check")
    assert check.rc == 0, check
    assert "rag-whisper (whisper): GPU 0 -> GPU 5" in check.out and "rag-llm-server (llm): GPU 2,3 -> GPU 6,7" in check.out
    assert node.sh("test -e %s" % RECORD, check=False).returncode != 0
    assert pinned(node, "rag-whisper") != [reserved[5]]

    moved = ansible(ROOT / "playbooks" / "failover.yml", node.inventory)
    assert moved.rc == 0, moved
    assert pinned(node, "rag-whisper") == [reserved[5]]
    assert pinned(node, "rag-llm-server") == sorted([reserved[6], reserved[7]])
    env = dict(e.split("=", 1) for e in inspect(node, "rag-llm-server")["Config"]["Env"])
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["NVIDIA_VISIBLE_DEVICES"] == "%s,%s" % (reserved[6], reserved[7])
    rec = record(node)
    moves = dict((m["container_name"], m) for m in rec["moves"])
    assert sorted(moves) == ["rag-llm-server", "rag-whisper"]
    assert [g["index"] for g in moves["rag-whisper"]["from"]] == [0] and moves["rag-whisper"]["by"] == "failover.yml"
    assert "Xid 48" in json.dumps(moves["rag-llm-server"]["failed"]) and moves["rag-llm-server"]["at"]

    # the guide's health loop passes; the failover is shown
    health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    assert health.rc == 0, health
    assert "5 (failover from 0)" in health.out and "6,7 (failover from 2,3)" in health.out
    curl = node.sh("for p in 8001 8002 8003 8004; do curl -sf -o /dev/null -w '%{http_code} ' "
                   "http://127.0.0.1:$p/health; done").stdout
    assert curl.split() == ["200"] * 4

    # site.yml keeps the moves: nothing back on the failed GPUs, nothing changed
    rerun = ansible(ROOT / "site.yml", node.inventory)
    assert rerun.rc == 0, rerun
    assert rerun.recap(node.name)["changed"] == 0, rerun
    assert pinned(node, "rag-whisper") == [reserved[5]]

    run, report = drift(ansible, node)
    assert run.rc != 0 and report["status"] == "drift"
    types = sorted(f["type"] for f in report["findings"])
    assert types.count("failover.active") == 2 and "gpu.lost" in types and "gpu.xid" in types, types
    assert not [t for t in types if t.startswith("container.") or t == "plan.unplannable"], types
    active = [f for f in report["findings"] if f["type"] == "failover.active"]
    assert any(f["expected"] == "GPU 0" and f["actual"].startswith("GPU 5 since") for f in active), active

    # failback waits while the GPUs are bad, goes when they are healthy, one at a time
    waits = ansible(ROOT / "playbooks" / "failback.yml", node.inventory)
    assert waits.rc == 0 and "rag-whisper waits: GPU 0: lost" in waits.out, waits
    node.clear_faults()
    back = ansible(ROOT / "playbooks" / "failback.yml", node.inventory)
    assert back.rc == 0, back
    assert "rag-whisper: back to GPU 0" in back.out and "rag-llm-server: back to GPU 2,3" in back.out
    assert pinned(node, "rag-whisper") == [uuid_of(node, 0)]
    assert pinned(node, "rag-llm-server") == sorted([uuid_of(node, 2), uuid_of(node, 3)])
    assert record(node)["moves"] == []
    run, report = drift(ansible, node)
    assert run.rc == 0 and report["status"] == "clean", report["findings"]
    node.dirty = False


def test_every_fault_kind_named_then_automatic_failover_to_gpu_cpu_and_stopped(faulty, ansible):
    """One fault of each remaining kind under the services, and the reserve mostly bad: the health
    check names each; the drift check's automatic failover puts Whisper on the one reserved GPU that
    can still run a one-GPU service (its NVLink is down), the LLM in its CPU mode, and stops the
    two services that have none."""
    node = faulty
    node.fault("fallen-off-bus", gpu=0)
    node.fault("remap-failure", gpu=1)
    node.fault("remap-pending", gpu=2)
    node.fault("nvlink-down", gpu=3, link=4)
    node.fault("overtemp", gpu=4)
    node.fault("ecc", gpu=5, count=2)
    node.fault("nvlink-down", gpu=6, link=0)
    node.fault("xid", gpu=7, xid=94)
    health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    assert health.rc != 0
    fail = problems(health)
    for named in ("service whisper (rag-whisper): DOWN: GPU 0 lost",
                  "service embedding (rag-embedding-server): DOWN: GPU 1 failed: row remapping failed",
                  "service llm (rag-llm-server): DOWN: GPU 2 failed: a row remap is pending",
                  "GPU 3 failed: NVLink link(s) 4 down",
                  "service ocr (rag-dots-ocr): DOWN: GPU 4 failed: temperature 91 C at or above the limit 83 C",
                  "GPU 5 (", "uncorrectable ECC errors since boot", "Xid 94 (contained ECC error)"):
        assert named in fail, (named, fail)

    run, report = drift(ansible, node, "-e", "gpu_stack_failover_auto=true")
    assert run.rc != 0
    action = report["hosts"][node.name]["failover_action"]
    assert len(action["moved"]) == 4 and action["skipped"] is None, action
    assert "automatic failover moved: rag-llm-server (llm): GPU 2,3 -> CPU" in run.out
    rec = record(node)
    assert rec["last_auto_at"] and {m["by"] for m in rec["moves"]} == {"drift check (automatic)"}
    assert dict((m["container_name"], m["mode"]) for m in rec["moves"]) == {
        "rag-whisper": "gpu", "rag-embedding-server": "stopped", "rag-llm-server": "cpu", "rag-dots-ocr": "stopped"}
    assert pinned(node, "rag-whisper") == [uuid_of(node, 6)]  # NVLink does not matter to one GPU

    # CPU mode: no GPU request, the map's limits (CPUs capped at the host's), DEVICE=cpu, the
    # guide's image; the others stopped, not removed
    llm = inspect(node, "rag-llm-server")
    assert pinned(node, "rag-llm-server") == [] and llm["HostConfig"]["Memory"] == 64 * 1024 ** 3
    assert 0 < llm["HostConfig"]["NanoCpus"] <= 16 * 10 ** 9
    assert llm["Config"]["Image"] == "rag-llm-gptoss:1.0.0"
    env = dict(e.split("=", 1) for e in llm["Config"]["Env"])
    assert (env["DEVICE"], env["CUDA_VISIBLE_DEVICES"], env["NVIDIA_VISIBLE_DEVICES"]) == ("cpu", "", "void")
    assert env["TENSOR_PARALLEL_SIZE"] == "1"
    assert inspect(node, "rag-dots-ocr")["State"]["Running"] is False
    # through NVML: the LLM in its CPU mode and the stopped services hold no GPU memory; Whisper's
    # estimate moved with it to GPU 6
    mem = node.sh("for i in 1 2 3 4 6; do nvidia-smi -i $i --query-gpu=index,memory.used --format=csv,noheader,"
                  "nounits; done").stdout
    assert [line.split(", ") for line in mem.splitlines()] == [["1", "0"], ["2", "0"], ["3", "0"], ["4", "0"],
                                                               ["6", "15360"]], mem

    health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    assert health.rc != 0
    assert "cpu-fallback" in health.out and "performance is much reduced" in health.out
    assert "6 (failover from 0)" in health.out
    fail = problems(health)
    assert "service ocr (rag-dots-ocr): stopped by failover: no healthy GPU" in fail
    assert "service whisper" not in fail and "service llm" not in fail  # healthy where they moved

    run, report = drift(ansible, node)  # while it is in force: its own findings, exit 2
    types = set(f["type"] for f in report["findings"])
    assert run.rc != 0 and {"failover.active", "failover.cpu_fallback", "failover.stopped"} <= types, types

    node.clear_faults()
    back = ansible(ROOT / "playbooks" / "failback.yml", node.inventory)
    assert back.rc == 0, back
    run, report = drift(ansible, node)
    assert run.rc == 0 and report["status"] == "clean", report["findings"]
    assert pinned(node, "rag-whisper") == [uuid_of(node, 0)]
    node.dirty = False


def test_health_reports_a_hanging_driver_without_waiting_on_it(converged, ansible):
    node = converged
    node.fault("hang", delay_ms=40000)
    try:
        health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    finally:
        node.clear_faults()
    assert health.rc != 0
    assert "no GPU table: NVML did not answer within 15s" in health.out
    assert "rag-whisper" in health.out and "healthy" in health.out  # the service table, from Docker
    assert "NVIDIA driver: NVML did not answer within 15s" in problems(health)
    assert "FAILED - RETRYING" not in health.out  # one try per service while the driver is unusable
