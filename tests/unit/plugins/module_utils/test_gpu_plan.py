# -*- coding: utf-8 -*-
"""gpu_plan over live gpu_info (the real pynvml on the simulator's machines): the seed's map plans
cleanly with its CUDA_VISIBLE_DEVICES mistake rewritten, and each bad map is refused with one exact
message naming the service(s), the GPU(s) and the fix, before anything changes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import build_plan

ROOT = Path(__file__).resolve().parents[4]
INV = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())


def seed():
    return copy.deepcopy(INV["gpu_stack_services"])


def svc(services, name):
    return next(s for s in services if s["name"] == name)


def plan_args(services, info, **kw):
    args = {"services": services, "gpu_info": info, "common_env": INV["gpu_stack_common_env"],
            "reserved_gpus": INV["gpu_stack_reserved_gpus"], "expected_gpus": INV["gpu_stack_expected_gpus"],
            "memory_limit_pct": 90}
    args.update(kw)
    return args


@pytest.fixture
def a100(machine):
    m = machine()
    return m, gi.gather()


def test_seed_map_plans_with_the_cuda_visible_devices_warnings(a100, module):
    m, info = a100
    services = seed()
    # the guide's own docker run lines: CUDA_VISIBLE_DEVICES as host indices
    for name, cvd in (("whisper", "0"), ("embedding", "1"), ("llm", "2,3"), ("ocr", "4")):
        svc(services, name)["env"]["CUDA_VISIBLE_DEVICES"] = cvd
    res = module("gpu_plan", plan_args(services, info))
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    assert res["warnings_list"] == [
        "service 'embedding': CUDA_VISIBLE_DEVICES=1 names host GPU indices; inside the container its GPUs [1] are "
        "numbered 0, so rewrote it to 0",
        "service 'llm': CUDA_VISIBLE_DEVICES=2,3 names host GPU indices; inside the container its GPUs [2, 3] are "
        "numbered 0,1, so rewrote it to 0,1",
        "service 'ocr': CUDA_VISIBLE_DEVICES=4 names host GPU indices; inside the container its GPUs [4] are "
        "numbered 0, so rewrote it to 0",
    ]
    # and each is an Ansible warning too (strings up to ansible-core 2.18, events from 2.19 on)
    assert [w if isinstance(w, str) else w["event"]["msg"] for w in res["warnings"]] == res["warnings_list"]
    llm = next(s for s in res["plan"]["services"] if s["name"] == "llm")
    uuids = [m.gpu(2)["uuid"], m.gpu(3)["uuid"]]
    assert llm["gpu_uuids"] == uuids
    assert [g["index"] for g in llm["gpus"]] == [2, 3]
    assert llm["env"]["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
    assert llm["env"]["CUDA_VISIBLE_DEVICES"] == "0,1" and llm["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert llm["env"]["TENSOR_PARALLEL_SIZE"] == "2" and llm["shm_size_bytes"] == 32 * 1024 ** 3
    assert llm["ports"] == [{"host_ip": "127.0.0.1", "host_port": 8003, "container_port": 8000}]
    assert llm["volumes"] == ["/opt/models/hf:/models:ro"]
    assert llm["labels"]["io.ragops.gpu-stack.gpu-uuids"] == ",".join(uuids)
    assert [r["services"] for r in res["plan"]["gpus"]] == [["whisper"], ["embedding"], ["llm"], ["llm"], ["ocr"],
                                                            [], [], []]
    assert res["table"] in (ROOT / "README.md").read_text()


def test_plan_hash_is_stable_and_moves_with_the_map(a100):
    _m, info = a100
    one = build_plan(seed(), info, common_env=INV["gpu_stack_common_env"])["plan"]["hash"]
    two = build_plan(seed(), info, common_env=INV["gpu_stack_common_env"])["plan"]["hash"]
    changed = seed()
    svc(changed, "llm")["env"]["MAX_NUM_SEQS"] = "128"
    three = build_plan(changed, info, common_env=INV["gpu_stack_common_env"])["plan"]["hash"]
    assert one == two != three


def test_static_plan_before_the_driver(module):
    res = module("gpu_plan", {"services": seed(), "reserved_gpus": [5, 6, 7]})
    assert res["plan"]["resolved"] is False and res["changed"] is False
    assert [s["gpu_uuids"] for s in res["plan"]["services"]] == [[], [], [], []]


def _bad(edit):
    services = seed()
    edit(services)
    return services


def _set(name, **kw):
    def edit(services):
        svc(services, name).update(kw)
    return edit


def _two(edits):
    def edit(services):
        for e in edits:
            e(services)
    return edit


def _env(name, **env):
    def edit(services):
        svc(services, name)["env"].update(env)
    return edit


A = "a100-sxm4-80gb-x8"
# the guide's second LLM instance, as examples/scale-out.yml has it
LLM2 = {"container_name": "rag-llm-server-2", "image": "rag-llm-gptoss:1.0.0", "gpus": [5], "tensor_parallel": 1,
        "env": {"TENSOR_PARALLEL_SIZE": "1"}}
BAD_MAPS = [
    ("index that does not exist", A, None, _set("ocr", gpus=[9]), {},
     "service 'ocr': GPU 9 does not exist on this host (it has GPUs 0-7); use one of those indices"),
    ("UUID that does not exist", A, None, _set("ocr", gpus=["GPU-00000000-0000-0000-0000-000000000000"]), {},
     "service 'ocr': GPU GPU-00000000-0000-0000-0000-000000000000 is not on this host (a replaced board has a new "
     "UUID); pin one of: 0=GPU-9625b81d"),
    ("unhealthy GPU", A, ("overtemp", {"gpu": 4}), lambda s: None, {},
     "service 'ocr': GPU 4 (GPU-ff4b2d14-6a4a-5f12-a2d5-99c9a8ac8bfa) is unhealthy: temperature 91 C at or above the "
     "limit 83 C; hardware slowdown active: hw_slowdown, hw_thermal_slowdown; run playbooks/failover.yml to move the "
     "service to a reserved GPU, or fix the GPU first"),
    ("lost GPU", A, ("lost", {"gpu": 1}), lambda s: None, {"expected_gpus": None},
     "service 'embedding': GPU 1 is unusable (NVML: GPU_IS_LOST); run playbooks/failover.yml to move the service to a "
     "reserved GPU, or replace the board"),
    ("two services on one GPU", A, None, _set("ocr", gpus=[1]), {},
     "services 'embedding' and 'ocr' both use GPU 1 (GPU-2c21db9b-a12d-5c5b-a647-960bc8970dfa); give each its own "
     "GPU, or set share_gpus: true on all of them when their VRAM estimates fit"),
    ("sharing opted in by one service only", A, None, _two([_set("ocr", gpus=[1], share_gpus=True)]), {},
     "services 'embedding' and 'ocr' both use GPU 1"),
    ("shared GPU over the VRAM limit", A, None,
     _two([_set("ocr", gpus=[1], share_gpus=True, vram_estimate_gb=60), _set("embedding", share_gpus=True)]), {},
     "GPU 1 (GPU-2c21db9b-a12d-5c5b-a647-960bc8970dfa): VRAM estimates 80.0 GB (embedding 20.0 GB, ocr 60.0 GB) "
     "exceed the limit 72.0 GB (90% of 80 GB); lower the estimates, move a service, or raise "
     "gpu_stack_gpu_memory_limit_pct"),
    ("one service over the VRAM limit", A, None, _set("whisper", vram_estimate_gb=75), {},
     "GPU 0 (GPU-9625b81d-057a-53e3-8605-b11c4f050569): VRAM estimates 75.0 GB (whisper 75.0 GB) exceed the limit "
     "72.0 GB (90% of 80 GB)"),
    ("tensor parallel without enough GPUs", A, None, _set("llm", gpus=[2]), {},
     "service 'llm': tensor_parallel 2 needs 2 GPUs, got [2]; add a GPU or set tensor_parallel: 1"),
    ("GPUs that do not split into tensor-parallel groups", A, None, _set("llm", gpus=[2, 3, 4], tensor_parallel=2),
     {}, "service 'llm': 3 GPUs [2, 3, 4] do not split into tensor-parallel groups of 2; give a multiple of 2 GPUs "
     "(more GPUs than tensor_parallel run data-parallel workers) or set tensor_parallel: 3"),
    ("TENSOR_PARALLEL_SIZE that contradicts tensor_parallel", A, None, _env("llm", TENSOR_PARALLEL_SIZE="4"), {},
     "service 'llm': env TENSOR_PARALLEL_SIZE=4 but tensor_parallel is 2; set TENSOR_PARALLEL_SIZE: \"2\" in its env"),
    ("instance named like another service's container", A, None,
     _set("llm", instances=[dict(LLM2, container_name="rag-embedding-server")]), {},
     "service 'llm': instance 'rag-embedding-server': field 'container_name': 'rag-embedding-server' is already used "
     "by service 'embedding'; give each instance its own container_name"),
    ("instance on a GPU another service holds", A, None,
     _set("embedding", instances=[{"container_name": "rag-embedding-server-2", "gpus": [4], "tier": "primary"}]), {},
     "services 'embedding' (instance 'rag-embedding-server-2') and 'ocr' both use GPU 4 "
     "(GPU-ff4b2d14-6a4a-5f12-a2d5-99c9a8ac8bfa); give each its own GPU"),
    ("instance over the VRAM limit", A, None, _set("llm", instances=[dict(LLM2, vram_estimate_gb=75)]), {},
     "GPU 5 (GPU-f7907ddf-0f1d-57e7-82da-0bb2c72a47cd): VRAM estimates 75.0 GB (rag-llm-server-2 75.0 GB) exceed the limit 72.0 GB (90% of 80 GB)"),
    ("secondary instance outside the reserve", A, None,
     _set("embedding", instances=[{"container_name": "rag-embedding-server-2", "gpus": [4]}]), {},
     "service 'embedding' (instance 'rag-embedding-server-2'): tier secondary, but GPU 4 is not reserved "
     "(gpu_stack_reserved_gpus: [5, 6, 7]); put it on a reserved GPU, or set tier: primary to run it outside the "
     "reserve"),
    ("tensor-parallel-2 instance on one GPU", A, None,
     _set("llm", instances=[{"container_name": "rag-llm-server-2", "gpus": [5]}]), {},
     "service 'llm' (instance 'rag-llm-server-2'): tensor_parallel 2 needs 2 GPUs, got [5]; add a GPU or set "
     "tensor_parallel: 1"),
    ("more GPUs than max_gpus", A, None, _set("whisper", gpus=[0, 5, 6], allow_reserved=True), {},
     "service 'whisper': 3 GPUs [0, 5, 6], but the service allows at most 2 (max_gpus); remove GPUs or raise "
     "max_gpus"),
    ("primary grown onto the reserve without allow_reserved", A, None, _set("whisper", gpus=[0, 5]), {},
     "service 'whisper': GPU 5 is reserved (gpu_stack_reserved_gpus: [5, 6, 7]); use an unreserved GPU, or mark the "
     "service tier: secondary (scaling / failover), or set allow_reserved: true to grow it onto the reserve"),
    ("instances without a load balancer", A, None, _set("llm", instances=[LLM2]), {"load_balancer": "none"},
     "service 'llm': has 2 instances, which need the load balancer in front of them; set gpu_stack_load_balancer: "
     "auto (or all), or remove its instances"),
    ("backend port taken by a client port", A, None, _set("llm", instances=[dict(LLM2, backend_port=8001)]), {},
     "service 'llm' (instance 'rag-llm-server-2'): backend port 8001 is already used by service 'embedding' (client "
     "port); set backend_port to a free loopback port"),
    ("tensor parallel across an unbridged PCIe pair", "a100-pcie-80gb-x8", None, _set("llm", gpus=[1, 2]),
     {"expected_gpus": None},
     "service 'llm': tensor-parallel GPUs 1 and 2 have no NVLink path between them (GPUs joined by NVLink here: "
     "0-1, 2-3, 4-5, 6-7); choose GPUs with an NVLink path between every pair, or set tensor_parallel: 1"),
    ("primary service on a reserved GPU", A, None, _set("ocr", gpus=[5]), {},
     "service 'ocr': GPU 5 is reserved (gpu_stack_reserved_gpus: [5, 6, 7]); use an unreserved GPU, or mark the "
     "service tier: secondary (scaling / failover)"),
    ("duplicate host ports", A, None, _set("ocr", port=8003), {},
     "service 'ocr': field 'port': 8003 is already used by service 'llm'; give each service its own host port"),
    ("duplicate container names", A, None, _set("ocr", container_name="rag-llm-server"), {},
     "service 'ocr': field 'container_name': 'rag-llm-server' is already used by service 'llm'"),
    ("CUDA_VISIBLE_DEVICES neither ordinals nor own UUIDs", A, None, _env("whisper", CUDA_VISIBLE_DEVICES="GPU-x"), {},
     "service 'whisper': CUDA_VISIBLE_DEVICES=GPU-x is neither ordinals nor the UUIDs of its GPUs [0]; remove it from "
     "env (the plan sets it)"),
    ("the map of another machine", "h100-sxm5-80gb-x4", None, _set("ocr", gpus=[3], port=8002), {},
     "host: NVML sees 4 GPU(s) (NVIDIA H100 80GB HBM3), the map expects 8 (gpu_stack_expected_gpus); a GPU may be "
     "lost or this inventory is for another machine"),
    ("malformed entry", A, None, _set("whisper", gpus=["zero"]), {},
     "service 'whisper': field 'gpus': element 'zero' is neither a GPU index (int) nor a GPU UUID (GPU-...)"),
]


@pytest.mark.parametrize("label,fixture,fault,edit,extra,message", BAD_MAPS, ids=[b[0] for b in BAD_MAPS])
def test_bad_map_is_refused_with_one_exact_message(machine, module, label, fixture, fault, edit, extra, message):
    m = machine(fixture)
    if fault:
        m.fault(fault[0], **fault[1])
    info = gi.gather()
    args = plan_args(_bad(edit), info, **extra)
    if args.get("expected_gpus") is None:
        args.pop("expected_gpus")
    res = module("gpu_plan", args)
    assert res.get("failed") is True, json.dumps(res)[:2000]
    assert res.get("changed") is not True
    assert any(e.startswith(message) for e in res["errors"]), res["errors"]
    assert res["msg"].startswith("the GPU map cannot be deployed: ")


def test_count_of_bad_maps():
    assert len(BAD_MAPS) >= 15


def test_secondary_service_may_use_a_reserved_gpu(a100):
    _m, info = a100
    services = seed()
    services.append({"name": "llm-2", "container_name": "rag-llm-server-2", "image": "rag-llm-gptoss:1.0.0",
                     "gpus": [5], "port": 8005, "tier": "secondary", "vram_estimate_gb": 60,
                     "model": {"repo_id": "microsoft/DialoGPT-medium", "revision": "a" * 40}})
    plan = build_plan(services, info, reserved_gpus=[5, 6, 7], expected_gpus=INV["gpu_stack_expected_gpus"])["plan"]
    assert next(s for s in plan["services"] if s["name"] == "llm-2")["gpus"][0]["index"] == 5


def test_uuid_pinning_survives_re_enumeration(machine):
    """Services pinned by UUID stay on their boards when a dead GPU vanishes and the indices shift."""
    m = machine()
    services = seed()
    first = build_plan(services, gi.gather())["plan"]
    pinned = seed()
    for s in pinned:
        s["gpus"] = next(p for p in first["services"] if p["name"] == s["name"])["gpu_uuids"]
    m.fault("absent", gpu=0)  # GPU 0 gone after a reboot: every index moves down by one
    shifted = gi.gather()
    assert shifted["gpus"][1]["uuid"] == m.gpu(2)["uuid"]
    pinned = [s for s in pinned if s["name"] != "whisper"]  # its board is gone
    second = build_plan(pinned, shifted)["plan"]
    for s in second["services"]:
        assert s["gpu_uuids"] == next(p for p in first["services"] if p["name"] == s["name"])["gpu_uuids"]
    assert next(s for s in second["services"] if s["name"] == "embedding")["gpus"][0]["index"] == 0


def test_each_entry_carries_its_gpu_container_options(a100):
    """The plan emits what gpu_container takes: roles, the drift check and the benchmarks pass it
    through unchanged, and the module's own validation accepts it as it is."""
    from ansible_collections.ragops.gpu_stack.plugins.module_utils import _container_options as co

    _m, info = a100
    plan = build_plan(**plan_args(seed(), info))["plan"]
    for entry in plan["services"]:
        c = entry["container"]
        assert set(c) <= set(co.CONTAINER_KEYS)
        assert c["name"] == entry["container_name"] and c["gpus"] == entry["gpus"] and c["env"] == entry["env"]
        assert c["labels"]["io.ragops.gpu-stack.plan-hash"] == plan["hash"]
        params = dict((k, None) for k in co.argument_spec())
        params.update(container=c, state="started")
        merged = co.merge_container(params)
        assert merged["ports"] == ["127.0.0.1:%d:8000" % entry["port"]]
    llm = svc(plan["services"], "llm")["container"]
    assert (llm["shm_size"], llm["ulimits"]) == ("32g", {"memlock": -1, "stack": 67108864})


def test_hashes_are_those_of_the_previous_release(a100, previous_collections, tmp_path):
    """Containers carry the config and plan hashes as labels, so a release that changed what they cover
    would recreate every container on upgrade: the previous release's planner, given the same map and
    GPUs, hashes the same."""
    import subprocess
    import sys

    _m, info = a100
    args = plan_args(seed(), info)
    (tmp_path / "args.json").write_text(json.dumps(args))
    # Fields added since that release are left out for it: what matters is that they change nothing.
    probe = ("import json, sys\n"
             "from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import build_plan\n"
             "from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import FIELD_NAMES\n"
             "args = json.load(open(sys.argv[1]))\n"
             "args['services'] = [dict((k, v) for k, v in s.items() if k in FIELD_NAMES) for s in args['services']]\n"
             "plan = build_plan(**args)['plan']\n"
             "print(json.dumps([plan['hash']] + [s['config_hash'] for s in plan['services']]))\n")
    old = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "args.json")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(previous_collections)}, check=False)
    assert old.returncode == 0, old.stderr
    plan = build_plan(**args)["plan"]
    assert json.loads(old.stdout) == [plan["hash"]] + [s["config_hash"] for s in plan["services"]]


def _plan_in_playbook(tmp_path, args):
    """gpu_plan as a play runs it (plugins/action/gpu_plan.py, in the controller's process): its result,
    and the play's variable it was given afterwards."""
    (tmp_path / "args.json").write_text(json.dumps({"plan_args": args}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ragops.gpu_stack.gpu_plan": "{{ plan_args }}", "register": "r", "ignore_errors": True},
                  {"ansible.builtin.copy": {"content": "{{ {'r': r, 'after': plan_args} | to_json }}",
                                            "dest": str(tmp_path / "out.json"), "mode": "0644"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(tmp_path / "play.yml"),
                           "-e", "@" + str(tmp_path / "args.json"), "-e", "ansible_python_interpreter=" + sys.executable],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    return out["r"], out["after"], proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_action_plugin_returns_what_the_module_returns(a100, module, tmp_path):
    m, info = a100
    services = seed()
    svc(services, "llm")["env"]["CUDA_VISIBLE_DEVICES"] = "2,3"
    args = plan_args(services, info)
    want = module("gpu_plan", args)
    got, after, out = _plan_in_playbook(tmp_path, args)
    assert got.get("failed") is not True, got
    for key in ("changed", "plan", "table", "warnings_list", "errors", "service_label", "map"):
        assert got[key] == want[key], key
    # the warnings reach the play as a module's do, and the play's own map is not changed by planning
    assert "CUDA_VISIBLE_DEVICES=2,3 names host GPU indices" in " ".join(out.split())
    assert after == json.loads(json.dumps(args))
    # a map that cannot be deployed fails the same way
    svc(services, "ocr")["gpus"] = [2]
    bad = plan_args(services, info)
    want, (got, _after, _out) = module("gpu_plan", bad), _plan_in_playbook(tmp_path, bad)
    assert want["failed"] is True and got["failed"] is True
    assert got["msg"] == want["msg"] and got["errors"] == want["errors"]
    # and arguments the module's spec refuses are refused by name
    got, _after, _out = _plan_in_playbook(tmp_path, dict(args, strict="maybe"))
    assert got["failed"] is True and "strict" in got["msg"] and got["msg"].startswith("gpu_plan: ")
