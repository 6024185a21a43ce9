# -*- coding: utf-8 -*-
"""GPU memory and utilisation judged against the plan (module_utils/_gpu_load.py): the guide's map on
the simulated A100 box, read through the real pynvml, with the memory each service would hold
written into the reading: vLLM's 90 % preallocation is expected, a leak over it, a foreign process
and memory on a GPU that should be idle are warnings naming the GPU, the process or service, used
and expected; utilisation outside the target is a capacity note, never a warning."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_load import LoadError, judge
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PlanError, build_plan

ROOT = Path(__file__).resolve().parents[4]
INV = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())
TH = INV["gpu_stack_thresholds"]
# what each service holds per GPU on a real host: vLLM 0.9 x 80 GiB, the others their estimate
HOLDS = {0: ("rag-whisper", 15 * 1024), 1: ("rag-embedding-server", 20 * 1024), 2: ("rag-llm-server", 73728),
         3: ("rag-llm-server", 73728), 4: ("rag-dots-ocr", 25 * 1024)}


def plan(info, services=None, record=None):
    return build_plan(copy.deepcopy(services or INV["gpu_stack_services"]), gpu_info=info,
                      common_env=INV["gpu_stack_common_env"], reserved_gpus=INV["gpu_stack_reserved_gpus"],
                      failover=record)["plan"]


def use(g, mib, container=None, pid=None, name="python3"):
    """The GPU holds mib more, in a process of the container (by ID) or of none."""
    g["memory"]["used_mib"] += mib
    g["memory"]["used_pct"] = round(100.0 * g["memory"]["used_mib"] / g["memory"]["total_mib"], 1)
    g["processes"].append({"pid": pid or 1000 + g["index"] * 10 + len(g["processes"]), "used_mib": mib,
                           "name": name, "container_id": container and ("%064x" % abs(hash(container)))})


@pytest.fixture
def host(machine):
    """(gpu_info, containers by ID): the converged host, each service holding what it would."""
    machine()
    info = gi.gather(TH)
    for g in info["gpus"]:
        g["processes"] = []
        if g["index"] in HOLDS:
            use(g, HOLDS[g["index"]][1], HOLDS[g["index"]][0])
    ids = dict(("%064x" % abs(hash(c)), c) for c, _m in HOLDS.values())
    return info, ids


def test_the_converged_host_is_clean_with_vllm_preallocating_90_percent(host):
    info, ids = host
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert out["warnings"] == [], out["warnings"]
    g2 = out["gpus"][2]
    assert (g2["used_mib"], g2["expected_mib"], g2["preallocated"]) == (73728, 73728, True)
    assert g2["services"][0]["basis"] == "GPU_MEMORY_UTILIZATION=0.9 of each GPU"
    assert info["gpus"][2]["memory"]["used_pct"] == 90.0  # over the guide's 85 % alert, and fine
    assert out["gpus"][0]["expected_mib"] == 15360 and not out["gpus"][0]["preallocated"]
    assert [g["expected_mib"] for g in out["gpus"][5:]] == [0, 0, 0]


def test_a_leak_over_the_preallocation_names_the_gpu_the_service_used_and_expected(host):
    info, ids = host
    use(info["gpus"][2], 6144, "rag-llm-server")
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert [(w["kind"], w["gpu"]) for w in out["warnings"]] == [("gpu.memory", 2)]
    msg = out["warnings"][0]["message"]
    assert msg.startswith("GPU 2 (%s): memory 79872 MiB used, expected 73728 MiB (llm (rag-llm-server) 73728 MiB: "
                          "GPU_MEMORY_UTILIZATION=0.9 of each GPU) + 5%% margin (4096 MiB)" % info["gpus"][2]["uuid"]), msg
    assert out["gpus"][2]["status"] == "warn" and out["gpus"][3]["status"] == "ok"


def test_a_foreign_process_names_its_pid_and_the_service_the_gpu_belongs_to(host):
    info, ids = host
    use(info["gpus"][1], 3000, pid=31337)
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert [(w["kind"], w["gpu"]) for w in out["warnings"]] == [("gpu.foreign_process", 1)]
    assert out["warnings"][0]["message"] == (
        "GPU 1 (%s): pid 31337 (python3, not in a container) 3000 MiB; only embedding (rag-embedding-server) should "
        "use this GPU" % info["gpus"][1]["uuid"])
    # a container the plan did not put there is as foreign, and named
    use(info["gpus"][4], 512, "seed-ocr")
    out = judge(plan(info)["services"], info, TH, {}, dict(ids, **{"%064x" % abs(hash("seed-ocr")): "seed-ocr"}))
    assert "container seed-ocr) 512 MiB; only ocr (rag-dots-ocr)" in out["warnings"][-1]["message"]


def test_memory_on_a_gpu_that_should_be_idle(host):
    info, ids = host
    use(info["gpus"][6], 2048, pid=4242)
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert [(w["kind"], w["gpu"]) for w in out["warnings"]] == [("gpu.memory", 6)]
    assert "memory should be idle (no service is planned on it) but 2048 MiB are used: pid 4242 (python3, not in a " \
           "container) 2048 MiB" in out["warnings"][0]["message"]


def test_the_plain_alert_applies_where_no_service_preallocates(host):
    info, ids = host
    use(info["gpus"][4], 45000, "rag-dots-ocr")  # 70600 MiB: 86 % and far over the 25 GB estimate
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert len(out["warnings"]) == 1, out["warnings"]  # one warning per GPU, its reasons joined
    msg = out["warnings"][0]["message"]
    assert "70600 MiB used, expected 25600 MiB" in msg and "86.2% used, alert at 85% (no service on it preallocates)" in msg


def test_utilisation_is_capacity_not_health_and_thresholds_layer(host):
    info, ids = host
    info["gpus"][2]["utilization"]["gpu_pct"] = 97
    info["gpus"][3]["utilization"]["gpu_pct"] = 97
    info["gpus"][0]["utilization"]["gpu_pct"] = 75
    out = judge(plan(info)["services"], info, TH, {}, ids)
    assert out["warnings"] == [] and all(g["status"] == "ok" for g in out["gpus"])
    assert "GPU 2 (%s): utilization 97%% above the 70-85%% target (capacity: add an instance or a GPU if it stays " \
           "there)" % info["gpus"][2]["uuid"] in out["notes"]
    assert not any(n.startswith("GPU 0 ") or n.startswith("GPU 6 ") for n in out["notes"])  # in target; idle
    # the service's own target, then one GPU's, win over gpu_stack_thresholds
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[2]["thresholds"] = {"utilization_target_pct": [60, 100]}
    out = judge(plan(info, services)["services"], info, TH, {3: {"utilization_target_pct": [70, 90]}}, ids)
    assert [n.split(":")[0] for n in out["notes"] if "97%" in n] == ["GPU 3 (%s)" % info["gpus"][3]["uuid"]]
    out = judge(plan(info)["services"], info, TH, {"2": {"memory_margin_pct": 0}}, ids)
    assert out["gpus"][2]["margin_mib"] == 0 and out["gpus"][3]["margin_mib"] == 4096


def test_a_service_in_cpu_mode_is_expected_to_hold_nothing(host):
    info, ids = host
    whisper = info["gpus"][0]
    record = {"version": 1, "moves": [{
        "container_name": "rag-whisper", "service": "whisper", "instance": None, "mode": "cpu",
        "mapped": [{"index": 0, "uuid": whisper["uuid"]}], "from": [{"index": 0, "uuid": whisper["uuid"]}],
        "to": [], "failed": [{"gpu": 0, "reason": "lost"}], "at": "2026-11-29T10:00:00Z", "by": "test"}]}
    p = plan(info, record=record)
    assert [s["gpu_memory"]["per_gpu_mib"] for s in p["services"] if s["name"] == "whisper"] == [{}]
    out = judge(p["services"], info, TH, {}, ids)  # the old container still holds GPU 0: it should be idle
    assert [(w["kind"], w["gpu"]) for w in out["warnings"]] == [("gpu.memory", 0)]
    whisper["memory"]["used_mib"], whisper["processes"] = 0, []  # the CPU-mode container uses no GPU
    assert judge(p["services"], info, TH, {}, ids)["warnings"] == []


def test_bad_thresholds_and_preallocations_are_refused_naming_the_fix(host):
    info, ids = host
    with pytest.raises(LoadError) as exc:
        judge(plan(info)["services"], info, TH, {"five": {"memory_alert_pct": 95}, 6: {"temperature_warn_c": 70}}, ids)
    assert exc.value.errors == [
        "gpu_stack_gpu_thresholds[6]: unknown threshold 'temperature_warn_c'; one of: memory_alert_pct, "
        "memory_margin_pct, utilization_target_pct",
        "gpu_stack_gpu_thresholds: 'five' is not a GPU index; write e.g. {5: {memory_alert_pct: 95}}"]
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[2]["env"]["GPU_MEMORY_UTILIZATION"] = "1.5"
    services[0]["thresholds"] = {"memory_margin_pct": -1}
    with pytest.raises(PlanError) as exc:
        plan(info, services)
    assert "service 'llm': field 'env': GPU_MEMORY_UTILIZATION='1.5' is not a fraction of GPU memory in (0, 1]; " \
           "write e.g. GPU_MEMORY_UTILIZATION: \"0.9\"" in exc.value.errors
    assert "service 'whisper': field 'thresholds': memory_margin_pct -1 is not a percentage (0-100); write e.g. " \
           "memory_margin_pct: 5" in exc.value.errors
