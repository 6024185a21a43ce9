# -*- coding: utf-8 -*-
"""The guide's emergency procedures as decisions (module_utils/_failover.py) over the simulated
machines' real NVML readings: which services move where for each fault kind, tensor-parallel pairs
onto NVLink-joined reserved GPUs (or refused with the reason on the PCIe box), CPU fallback and
stopped services when no GPU is left, the plan that site.yml builds from the record (no error, the
same hash twice), and failback once the GPUs are healthy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _failover as fo
from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PlanError, build_plan
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import instance_views, validate_services

ROOT = Path(__file__).resolve().parents[4]
INV = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())
RESERVED = INV["gpu_stack_reserved_gpus"]
NOW = "2026-11-29T10:00:00Z"


def views(services=None):
    normalised = validate_services(copy.deepcopy(services or INV["gpu_stack_services"]),
                                   common_env=INV["gpu_stack_common_env"])
    return [v for s in normalised if s["enabled"] for v in instance_views(s)]


def decide(info, record=None, services=None):
    return fo.failover(views(services), info, RESERVED, record, 90, NOW)


def plan(info, record=None, services=None, **kw):
    return build_plan(copy.deepcopy(services or INV["gpu_stack_services"]), gpu_info=info,
                      common_env=INV["gpu_stack_common_env"], reserved_gpus=RESERVED,
                      expected_gpus=INV["gpu_stack_expected_gpus"], failover=record, **kw)


def moved(decision):
    return dict((m["container_name"], (m["mode"], [g["index"] for g in m["to"]])) for m in decision["record"]["moves"])


# (fault, kwargs, GPU, the service's container, what the record says failed)
FAULTS = [
    ("lost", {}, 0, "rag-whisper", "lost (NVML: GPU_IS_LOST)"),
    ("fallen-off-bus", {}, 1, "rag-embedding-server", "lost (NVML: GPU_IS_LOST)"),
    ("xid", {"xid": 79}, 4, "rag-dots-ocr", "Xid 79 (GPU has fallen off the bus)"),
    ("ecc", {"count": 3}, 0, "rag-whisper", "3 uncorrectable ECC errors since boot"),
    ("remap-failure", {}, 1, "rag-embedding-server", "row remapping failed"),
    ("remap-pending", {}, 4, "rag-dots-ocr", "a row remap is pending"),
    ("overtemp", {"temp": 84}, 0, "rag-whisper", "temperature 84 C at or above the limit 83 C"),
    ("nvlink-down", {"link": 2}, 3, "rag-llm-server", "NVLink link(s) 2 down"),
]


@pytest.mark.parametrize("kind,kwargs,slot,container,why", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_kind_moves_the_service_to_reserved_gpus(machine, kind, kwargs, slot, container, why):
    m = machine()
    m.fault(kind, gpu=slot, **kwargs)
    info = gi.gather()
    with pytest.raises(PlanError) as refused:
        plan(info)  # site.yml without the failover: refused, pointing at failover.yml
    assert "run playbooks/failover.yml" in str(refused.value)
    d = decide(info)
    assert [c["container_name"] for c in d["changes"]] == [container]
    move = d["changes"][0]
    want = [5, 6] if container == "rag-llm-server" else [5]  # the lowest free reserved GPU(s)
    assert (move["mode"], [g["index"] for g in move["to"]]) == ("gpu", want)
    assert [g["uuid"] for g in move["to"]] == [m.gpu(i)["uuid"] for i in want]
    assert any(why in f["reason"] for f in move["failed"]), move["failed"]
    assert move["at"] == NOW and move["by"] == "failover.yml"
    assert slot in [g["index"] for g in move["from"]] and slot in [g["index"] for g in move["mapped"]]
    # site.yml with the record: no error, the service on its new GPUs by UUID, the same plan twice
    first, again = plan(info, d["record"]), plan(info, d["record"])
    entry = next(e for e in first["plan"]["services"] if e["container_name"] == container)
    assert [g["index"] for g in entry["gpus"]] == want and entry["failover"]["mode"] == "gpu"
    assert entry["env"]["NVIDIA_VISIBLE_DEVICES"] == ",".join(m.gpu(i)["uuid"] for i in want)
    assert entry["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(str(i) for i in range(len(want)))
    assert first["plan"]["hash"] == again["plan"]["hash"]
    assert "Failover active" in first["table"] and first["errors"] == []
    # deciding again changes nothing (a rerun of failover.yml)
    assert decide(info, d["record"])["changes"] == []


def test_a_healthy_host_moves_nothing(machine):
    machine()
    d = decide(gi.gather())
    assert d["changes"] == [] and d["record"]["moves"] == []


def test_application_xid_and_nvlink_down_on_a_single_gpu_service_move_nothing(machine):
    m = machine()
    m.fault("xid", gpu=0, xid=13)
    m.fault("nvlink-down", gpu=1, link=0)  # embedding uses one GPU: NVLink does not matter to it
    info = gi.gather()
    assert decide(info)["changes"] == []
    assert plan(info)["errors"] == []


def test_tensor_parallel_pair_and_a_single_service_share_the_reserve(machine):
    m = machine()
    m.fault("lost", gpu=0)
    m.fault("xid", gpu=2, xid=48)
    d = decide(gi.gather())
    assert moved(d) == {"rag-whisper": ("gpu", [5]), "rag-llm-server": ("gpu", [6, 7])}
    llm = next(c for c in d["changes"] if c["container_name"] == "rag-llm-server")
    assert [g["index"] for g in llm["from"]] == [2, 3]


def test_pcie_box_takes_a_bridged_pair_or_refuses_with_the_reason(machine):
    m = machine("a100-pcie-80gb-x8")
    m.fault("nvlink-down", gpu=2, link=0)  # one of the bridge's 12 links: degraded, still a path
    services = [s for s in INV["gpu_stack_services"] if s["name"] not in ("whisper", "embedding")]
    assert fo.failover(views(services), gi.gather(), RESERVED, None, 90, NOW)["changes"] == []
    for link in range(12):  # every bridge link of GPU 2: no NVLink path to GPU 3 left
        m.fault("nvlink-down", gpu=2, link=link)
    services = [dict(s, **({"gpus": [0, 1]} if s["name"] == "llm" else {})) for s in INV["gpu_stack_services"]]
    services = [s for s in services if s["name"] not in ("whisper", "embedding")]
    pcie = dict(INV, gpu_stack_services=services)
    d = fo.failover(views(pcie["gpu_stack_services"]), gi.gather(), RESERVED, None, 90, NOW)
    assert d["changes"] == []  # the map's pair is 0-1, untouched
    services = [dict(s, **({"gpus": [2, 3]} if s["name"] == "llm" else {})) for s in services]
    d = fo.failover(views(services), gi.gather(), RESERVED, None, 90, NOW)
    assert moved(d) == {"rag-llm-server": ("gpu", [6, 7])}  # 5-6 and 5-7 are not bridged
    # GPU 7 hot too: no bridged pair is left, so the LLM goes to its CPU mode, saying why
    m.fault("overtemp", gpu=7)
    d = fo.failover(views(services), gi.gather(), RESERVED, None, 90, NOW)
    (move,) = d["changes"]
    assert move["mode"] == "cpu" and "NVLink path between the tensor-parallel GPUs" in move["note"]
    assert fo.CPU_WARNING in move["note"]
    no_cpu = [dict((k, v) for k, v in s.items() if k != "cpu_fallback") for s in services]
    (move,) = fo.failover(views(no_cpu), gi.gather(), RESERVED, None, 90, NOW)["changes"]
    assert move["mode"] == "stopped" and "no CPU mode (cpu_fallback): stopped" in move["note"]


def test_no_gpu_left_cpu_fallback_for_those_that_declare_it_others_stopped(machine):
    m = machine()
    for slot in (0, 1, 2, 4, 5, 6, 7):
        m.fault("ecc", gpu=slot)
    info = gi.gather()
    d = decide(info)
    assert moved(d) == {"rag-whisper": ("cpu", []), "rag-embedding-server": ("stopped", []),
                        "rag-llm-server": ("cpu", []), "rag-dots-ocr": ("stopped", [])}
    p = plan(info, d["record"])
    assert p["errors"] == []
    by = dict((e["container_name"], e) for e in p["plan"]["services"])
    assert sorted(by) == ["rag-llm-server", "rag-whisper"]
    whisper, llm = by["rag-whisper"], by["rag-llm-server"]
    assert whisper["gpus"] == [] and whisper["device"] == "cpu"
    assert (whisper["env"]["DEVICE"], whisper["env"]["COMPUTE_TYPE"]) == ("cpu", "int8")
    assert (whisper["env"]["CUDA_VISIBLE_DEVICES"], whisper["env"]["NVIDIA_VISIBLE_DEVICES"]) == ("", "void")
    assert whisper["container"]["memory"] == "16g"
    assert whisper["container"]["cpus"] == min(8, info["host_cpus"])  # never more than the host has
    if info["host_cpus"] < 8:
        assert ("service 'whisper': cpu_fallback.cpus 8 is more than the host's %d CPUs; limited to %d"
                % (info["host_cpus"], info["host_cpus"])) in p["warnings"]
    assert "gpus" not in whisper["container"] or whisper["container"]["gpus"] == []
    assert llm["image"] == "rag-llm-gptoss:1.0.0" and llm["env"]["TENSOR_PARALLEL_SIZE"] == "1"
    assert llm["failover"]["warning"] == fo.CPU_WARNING
    stopped = sorted(s["container_name"] for s in p["plan"]["stopped_services"])
    assert stopped == ["rag-dots-ocr", "rag-embedding-server"]
    assert "rag-llm-gptoss:1.0.0" in p["plan"]["fallback_images"]
    # a reserved GPU healthy again: the next failover puts the first service in map order back on a GPU
    m.data["gpus"][5]["ecc"] = {}
    m.write()
    again = decide(gi.gather(), d["record"])
    assert moved(again)["rag-whisper"] == ("gpu", [5])
    assert moved(again)["rag-embedding-server"] == ("stopped", [])


def test_failback_waits_for_a_healthy_gpu_and_takes_a_replaced_board(machine):
    m = machine()
    m.fault("lost", gpu=0)
    m.fault("ecc", gpu=4)
    d = decide(gi.gather())
    assert moved(d) == {"rag-whisper": ("gpu", [5]), "rag-dots-ocr": ("gpu", [6])}
    still = fo.failback(views(), gi.gather(), d["record"])
    assert still["ready"] == []
    assert [w["container_name"] for w in still["waiting"]] == ["rag-whisper", "rag-dots-ocr"]
    assert "GPU 0: lost (NVML: GPU_IS_LOST)" in still["waiting"][0]["why"]
    # GPU 0's board replaced (new UUID at index 0), GPU 4 still bad
    m.data["gpus"][0].pop("fault")
    m.fault("board-replaced", gpu=0)
    back = fo.failback(views(), gi.gather(), d["record"])
    assert [r["container_name"] for r in back["ready"]] == ["rag-whisper"] and back["ready"][0]["note"] == "back to GPU 0"
    assert [w["container_name"] for w in back["waiting"]] == ["rag-dots-ocr"]
    rest = fo.without(d["record"], "rag-whisper")
    entry = next(e for e in plan(gi.gather(), rest)["plan"]["services"] if e["container_name"] == "rag-whisper")
    assert entry["gpu_uuids"] == [m.gpu(0)["uuid"]] and entry["failover"] is None


def test_choose_prefers_the_numa_node_then_the_lowest_index():
    def gpu(i, numa, peers=()):
        return {"index": i, "uuid": "GPU-%d" % i, "numa_node": numa, "memory": {"total_mib": 81920},
                "issues": [], "nvlink_peers": list(peers)}
    view = {"gpus": [0], "tensor_parallel": 1, "vram_estimate_gb": 15}
    cands = [gpu(5, 0), gpu(6, 1), gpu(7, 1)]
    assert [g["index"] for g in fo.choose(view, cands, 1, 90)[0]] == [6]
    assert [g["index"] for g in fo.choose(view, cands, None, 90)[0]] == [5]
    big = dict(view, vram_estimate_gb=75)  # 75 GB > 90 % of 80 GB
    assert fo.choose(big, cands, 1, 90) == (None, "needs 1 GPU(s) with 75 GB each under the 90% limit, 0 fit")
    pair = {"gpus": [2, 3], "tensor_parallel": 2, "vram_estimate_gb": 120}
    cands = [gpu(5, 1, [7]), gpu(6, 1, []), gpu(7, 1, [5])]
    assert [g["index"] for g in fo.choose(pair, cands, 1, 90)[0]] == [5, 7]


def test_records_from_elsewhere_are_refused_with_the_fix():
    with pytest.raises(fo.FailoverError) as exc:
        fo.normalise_record({"version": 9, "moves": []})
    assert "version 9, this release reads version 1; upgrade the collection" in str(exc.value)
    with pytest.raises(fo.FailoverError) as exc:
        fo.normalise_record({"moves": "rag-whisper"})
    assert "restore it from a backup or remove it" in str(exc.value)


def test_automatic_failover_moves_at_most_once_per_interval(machine):
    m = machine()
    m.fault("lost", gpu=0)
    first = fo.automatic(views(), gi.gather(), RESERVED, None, 90, NOW, 3600)
    assert moved(first) == {"rag-whisper": ("gpu", [5])} and first["skipped"] is None
    assert first["record"]["last_auto_at"] == NOW and first["changes"][0]["by"] == "drift check (automatic)"
    m.fault("ecc", gpu=4)
    soon = fo.automatic(views(), gi.gather(), RESERVED, first["record"], 90, "2026-11-29T10:30:00Z", 3600)
    assert soon["changes"] == [] and soon["record"] == first["record"]
    assert soon["skipped"] == ("1 move(s) wait: the last automatic failover was at 2026-11-29T10:00:00Z, less than "
                               "3600 s ago (gpu_stack_failover_auto_interval_s); run playbooks/failover.yml to move now")
    later = fo.automatic(views(), gi.gather(), RESERVED, first["record"], 90, "2026-11-29T11:00:01Z", 3600)
    assert moved(later) == {"rag-whisper": ("gpu", [5]), "rag-dots-ocr": ("gpu", [6])}
    assert later["record"]["last_auto_at"] == "2026-11-29T11:00:01Z"
