# -*- coding: utf-8 -*-
"""The guide's scaling sections as plans (examples/scale-out.yml, examples/scale-up.yml) on the
simulated A100 machine: which containers there are, where they listen, what HAProxy fronts, what
stays as it was (same configuration hash: not recreated) and the reserve that is left."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PlanError, build_plan

ROOT = Path(__file__).resolve().parents[4]
INV = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())


def layer(name):
    """The one override layer an example file holds."""
    data = yaml.safe_load((ROOT / "examples" / name).read_text())
    (key, value), = data.items()
    assert key.startswith("gpu_stack_service_overrides__"), key
    return value


def plan(info, overrides=None, **kw):
    args = dict(services=copy.deepcopy(INV["gpu_stack_services"]), gpu_info=info, overrides=overrides,
                common_env=INV["gpu_stack_common_env"], reserved_gpus=INV["gpu_stack_reserved_gpus"],
                expected_gpus=INV["gpu_stack_expected_gpus"], memory_limit_pct=INV["gpu_stack_gpu_memory_limit_pct"])
    args.update(kw)
    return build_plan(**args)


@pytest.fixture
def info(machine):
    machine()
    return gi.gather()


def by_container(p):
    return dict((s["container_name"], s) for s in p["plan"]["services"])


def test_scale_out_runs_six_containers_two_behind_haproxy(info):
    plain = by_container(plan(info))
    res = plan(info, layer("scale-out.yml"))
    out = by_container(res)
    assert sorted(out) == ["rag-dots-ocr", "rag-embedding-server", "rag-embedding-server-2", "rag-llm-server",
                           "rag-llm-server-2", "rag-whisper"]
    llm2 = out["rag-llm-server-2"]
    assert (llm2["name"], llm2["image"], llm2["tier"], llm2["instance"]) == ("llm", "rag-llm-gptoss:1.0.0",
                                                                             "secondary", 1)
    assert [g["index"] for g in llm2["gpus"]] == [5]
    assert llm2["env"]["CUDA_VISIBLE_DEVICES"] == "0" and llm2["env"]["TENSOR_PARALLEL_SIZE"] == "1"
    assert llm2["env"]["RAG_INSTANCE"] == "rag-llm-server-2"
    assert llm2["model"] == plain["rag-llm-server"]["model"] and llm2["vram_estimate_gb"] == 60
    assert llm2["ports"] == [{"host_ip": "127.0.0.1", "host_port": 18103, "container_port": 8000}]
    assert llm2["health_url"] == "http://127.0.0.1:18103/health"
    assert out["rag-llm-server"]["ports"][0]["host_port"] == 18003
    assert out["rag-embedding-server-2"]["ports"][0]["host_port"] == 18101
    # Whisper and OCR are not behind HAProxy and keep their configuration: not recreated
    for name in ("rag-whisper", "rag-dots-ocr"):
        assert out[name]["config_hash"] == plain[name]["config_hash"]
        assert out[name]["behind_load_balancer"] is False
    lb = res["plan"]["load_balancer"]
    assert lb["enabled"] is True and lb["mode"] == "auto"
    assert dict((s["name"], (s["port"], [(v["name"], v["port"]) for v in s["servers"]])) for s in lb["services"]) == {
        "embedding": (8001, [("rag-embedding-server", 18001), ("rag-embedding-server-2", 18101)]),
        "llm": (8003, [("rag-llm-server", 18003), ("rag-llm-server-2", 18103)])}
    assert res["plan"]["reserve_left"] == [7]
    assert res["table"].splitlines()[-1] == "Reserve left: GPU 7 (1 of 3 reserved GPUs: 5-7)"
    assert "| 5 | LLM (rag-llm-server-2) | ~60GB | microsoft/DialoGPT-medium |" in res["table"]
    assert "| 7 | Reserved | ~80GB |" in res["table"]


def test_scale_up_grows_whisper_and_ocr_onto_the_reserve(info):
    plain = by_container(plan(info))
    res = plan(info, layer("scale-up.yml"))
    out = by_container(res)
    whisper = out["rag-whisper"]
    assert [g["index"] for g in whisper["gpus"]] == [0, 5]
    assert whisper["env"]["CUDA_VISIBLE_DEVICES"] == "0,1" and whisper["env"]["DATA_PARALLEL_SIZE"] == "2"
    assert len(whisper["gpu_uuids"]) == 2 and "RAG_INSTANCE" not in whisper["env"]
    assert [g["index"] for g in out["rag-dots-ocr"]["gpus"]] == [4, 7]
    # only Whisper and OCR change; nothing goes behind HAProxy
    changed = [n for n in sorted(out) if out[n]["config_hash"] != plain[n]["config_hash"]]
    assert changed == ["rag-dots-ocr", "rag-whisper"]
    assert res["plan"]["load_balancer"] == {"mode": "auto", "enabled": False, "services": []}
    assert res["plan"]["reserve_left"] == [6]


def test_data_parallel_workers_need_no_nvlink_but_tensor_parallel_groups_do(machine):
    machine("a100-pcie-80gb-x8")  # NVLink bridges 0-1, 2-3, 4-5, 6-7 only
    info = gi.gather()
    services = copy.deepcopy(INV["gpu_stack_services"])
    kw = dict(expected_gpus=None)
    # Whisper on 0 and 2: two data-parallel workers, no NVLink between them needed
    res = plan(info, {"whisper": {"gpus": [0, 2], "allow_reserved": True}, "llm": {"gpus": [6, 7]},
                      "embedding": {"gpus": [1]}, "ocr": {"gpus": [3]}}, services=services, reserved_gpus=[], **kw)
    assert by_container(res)["rag-whisper"]["env"]["DATA_PARALLEL_SIZE"] == "2"
    # the LLM as two tensor-parallel-2 workers: each pair needs its bridge (4-5 and 6-7 have one)
    res = plan(info, {"llm": {"gpus": [4, 5, 6, 7]}, "ocr": {"gpus": [3]}}, services=services, reserved_gpus=[], **kw)
    assert by_container(res)["rag-llm-server"]["env"]["DATA_PARALLEL_SIZE"] == "2"
    with pytest.raises(PlanError) as exc:
        plan(info, {"llm": {"gpus": [5, 6, 4, 7]}, "ocr": {"gpus": [3]}}, services=services, reserved_gpus=[], **kw)
    assert "service 'llm': tensor-parallel GPUs 5 and 6 have no NVLink path between them" in str(exc.value)


def test_load_balancer_all_fronts_every_service(info):
    res = plan(info, load_balancer="all")
    lb = res["plan"]["load_balancer"]
    assert sorted(s["name"] for s in lb["services"]) == ["embedding", "llm", "ocr", "whisper"]
    assert all(len(s["servers"]) == 1 for s in lb["services"])
    assert all(s["ports"][0]["host_port"] == s["port"] + 10000 for s in res["plan"]["services"])


def test_plain_map_has_no_load_balancer_and_the_whole_reserve(info):
    res = plan(info)
    assert res["plan"]["load_balancer"]["enabled"] is False
    assert res["plan"]["reserve_left"] == [5, 6, 7]
    assert "Reserve left" not in res["table"]
    assert all(s["behind_load_balancer"] is False and "RAG_INSTANCE" not in s["env"] for s in res["plan"]["services"])
