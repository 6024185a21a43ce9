# -*- coding: utf-8 -*-
"""The map's top-level variables are checked like its entries (type, range, unknown keys; a message
naming the variable and the fix), and a property over the validator and the planner: whatever map
and settings an inventory holds, build_plan either plans or refuses with messages, never an
exception of another kind (Hypothesis generates the maps from the guide's by breaking them)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils._failover import FailoverError
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PlanError, build_plan
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import (
    FIELDS, INSTANCE_FIELDS, SETTINGS, check_settings)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import NEXT_SUFFIX

ROOT = Path(__file__).resolve().parents[4]
INV = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())


def args(**kw):
    out = {"services": copy.deepcopy(INV["gpu_stack_services"]), "common_env": INV["gpu_stack_common_env"],
           "reserved_gpus": INV["gpu_stack_reserved_gpus"], "expected_gpus": INV["gpu_stack_expected_gpus"],
           "memory_limit_pct": 90}
    out.update(kw)
    return out


BAD_SETTINGS = [
    (dict(reserved_gpus="5-7"), "gpu_stack_reserved_gpus: '5-7' is not a list of GPU indices; write e.g. [5, 6, 7]"),
    (dict(reserved_gpus=[5, "6", -1, 5]), "gpu_stack_reserved_gpus: '6' is not a GPU index (a whole number >= 0, "
                                          "written unquoted)"),
    (dict(reserved_gpus=[5, 5]), "gpu_stack_reserved_gpus: GPU 5 is listed twice"),
    (dict(memory_limit_pct=float("nan")), "gpu_stack_gpu_memory_limit_pct: nan is not a percentage in (0, 100]; "
                                          "write e.g. gpu_stack_gpu_memory_limit_pct: 90"),
    (dict(memory_limit_pct=float("inf")), "gpu_stack_gpu_memory_limit_pct: inf is not a percentage in (0, 100]"),
    (dict(memory_limit_pct=150), "gpu_stack_gpu_memory_limit_pct: 150 is not a percentage in (0, 100]"),
    (dict(memory_limit_pct="ninety"), "gpu_stack_gpu_memory_limit_pct: 'ninety' is not a percentage in (0, 100]; "
                                      "write e.g. gpu_stack_gpu_memory_limit_pct: 90"),
    (dict(memory_limit_pct="nan"), "gpu_stack_gpu_memory_limit_pct: 'nan' is not a percentage in (0, 100]"),
    (dict(memory_limit_pct="150"), "gpu_stack_gpu_memory_limit_pct: 150 is not a percentage in (0, 100]"),
    (dict(expected_gpus={"cout": 8}), "gpu_stack_expected_gpus: 'cout': unknown key; did you mean 'count'?"),
    (dict(expected_gpus={"count": 0}), "gpu_stack_expected_gpus: count 0 is not a whole number >= 1"),
    (dict(expected_gpus={"nvswitch": "yes"}), "gpu_stack_expected_gpus: nvswitch 'yes' is not true or false"),
    (dict(expected_gpus=[8]), "gpu_stack_expected_gpus: [8] is not a mapping"),
    (dict(bind_address="localhost"), "gpu_stack_bind_address: 'localhost' is not an IP address; write e.g. "
                                     "127.0.0.1 (this host only) or the address of one interface"),
    (dict(common_env=["HF_HUB_OFFLINE=1"]), "gpu_stack_common_env: must be a mapping of NAME: value"),
    (dict(common_env={"HF HUB": "1"}), "gpu_stack_common_env: 'HF HUB' is not a valid environment variable name"),
    (dict(load_balancer="haproxy"), "gpu_stack_load_balancer: 'haproxy' is not one of auto, all, none"),
    (dict(models_root="/etc"), "hf_models_root: '/etc' is not a directory of its own for the models"),
    (dict(models_root="models"), "hf_models_root: 'models' is not a directory of its own for the models"),
]


@pytest.mark.parametrize("change,message", BAD_SETTINGS,
                         ids=[m.split(":")[0] + " " + repr(c)[:40] for c, m in BAD_SETTINGS])
def test_a_bad_top_level_variable_is_refused_naming_it_before_anything_changes(change, message):
    with pytest.raises(PlanError) as exc:
        build_plan(**args(**change))
    assert any(e.startswith(message) for e in exc.value.errors), exc.value.errors


def test_the_guides_settings_pass_and_every_setting_has_one_default_that_the_roles_use():
    assert check_settings(args()) == []
    assert check_settings({"services": []}) == []  # every default is valid
    defaults = (ROOT / "roles/gpu_services/defaults/main.yml").read_text()
    for setting in SETTINGS:
        if setting.default is None or not setting.var.startswith("gpu_stack_") or setting.name == "overrides":
            continue  # no default, not the role's variable, or read through the merged layers
        # the role's fallback for an unset variable is the schema's default
        found = re.search(r"\{\{ %s \| default\((.*?)\) \}\}" % setting.var, defaults)
        assert found, "roles/gpu_services/defaults/main.yml does not read %s" % setting.var
        assert yaml.safe_load(found.group(1)) == setting.default, (setting.var, found.group(1), setting.default)


def test_a_number_setting_templated_to_a_string_reads_as_the_number():
    """ansible-core before 2.19 passes `{{ gpu_stack_gpu_memory_limit_pct | default(90) }}` as '90'."""
    assert build_plan(**args(memory_limit_pct="90"))["plan"]["memory_limit_pct"] == 90
    assert build_plan(**args(memory_limit_pct="87.5"))["plan"]["memory_limit_pct"] == 87.5


def test_a_service_estimate_that_is_not_finite_is_refused():
    for value in (float("nan"), float("inf")):
        services = copy.deepcopy(INV["gpu_stack_services"])
        services[0]["vram_estimate_gb"] = value
        with pytest.raises(PlanError) as exc:
            build_plan(**args(services=services))
        assert exc.value.errors[0].startswith("service 'whisper': field 'vram_estimate_gb': %r is not a size in GB"
                                              % value)


# -- the property --------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 40), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["8003", "0.9", "GPU-", "fp16", "127.0.0.1", "-1",
                                                           "rag-x:1.0", "/", "/etc", "secondary", "cpu"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)
KEYS = [f.name for f in FIELDS] + [f.name for f in INSTANCE_FIELDS] + ["prot", "", "x"]
SETTING_NAMES = [s.name for s in SETTINGS if s.name != "services"]


@st.composite
def broken_maps(draw):
    """The guide's map and settings with a few values replaced by anything (or keys removed)."""
    kw = args()
    for _step in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["service", "instance", "setting"]))
        if where == "setting":
            kw[draw(st.sampled_from(SETTING_NAMES))] = draw(VALUES)
            continue
        entry = draw(st.sampled_from(kw["services"]))
        if where == "instance":
            entry = entry.setdefault("instances", [{"container_name": "rag-extra", "gpus": [5]}])
            entry = entry[0] if isinstance(entry, list) and entry and isinstance(entry[0], dict) else {}
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and key in entry:
            del entry[key]
        else:
            entry[key] = draw(VALUES)
    return kw


@pytest.fixture(scope="module")
def a100_info(nvml_lib, tmp_path_factory):
    from conftest import A100, Machine  # the simulator's 8x A100, read through the real pynvml
    m = Machine(tmp_path_factory.mktemp("a100") / "a100.json", A100)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPU_SIM_FIXTURE", str(m.path))
        return gi.gather()


def test_any_map_either_plans_or_is_refused_with_messages_never_an_exception(a100_info):
    outcomes = {"planned": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(broken_maps(), st.booleans())
    def check(kw, live):
        try:
            result = build_plan(gpu_info=a100_info if live else None, **kw)
        except (PlanError, FailoverError) as exc:
            assert exc.errors and all(isinstance(e, str) and e for e in exc.errors), exc.errors
            outcomes["refused"] += 1
        else:
            assert isinstance(result["plan"], dict)
            outcomes["planned"] += 1

    check()
    # the generator reaches both sides (a property over refusals only would prove little)
    assert outcomes["refused"] > 0 and outcomes["planned"] > 0, outcomes


# -- settings that open the host -------------------------------------------------------------------

EXPOSURES = [
    ("public_bind", "whisper", dict(bind_address="0.0.0.0"),
     "service 'whisper': field 'bind_address': 0.0.0.0 publishes port 8004 beyond this host; publish on 127.0.0.1 "
     "and put a proxy with access control in front, or acknowledge it with acknowledge: [public_bind]"),
    ("docker_socket", "whisper", dict(volumes=["/var/run/docker.sock:/var/run/docker.sock:ro"]),
     "service 'whisper': field 'volumes': '/var/run/docker.sock:/var/run/docker.sock:ro' mounts the Docker socket: "
     "root on the host for the container; remove it, or acknowledge it with acknowledge: [docker_socket]"),
    ("host_path", "ocr", dict(volumes=["/etc/:/host-etc:ro"]),
     "service 'ocr': field 'volumes': '/etc/:/host-etc:ro' mounts /etc of the host; mount a directory of its own, "
     "or acknowledge it with acknowledge: [host_path]"),
    ("host_path", "ocr", dict(volumes=["/:/host"]), "service 'ocr': field 'volumes': '/:/host' mounts / of the host"),
    ("models_rw", "llm", dict(volumes=["/opt/models/hf/hub:/cache"]),
     "service 'llm': field 'volumes': '/opt/models/hf/hub:/cache' mounts the models root /opt/models/hf writable"),
    ("host_ipc", "llm", dict(ipc="host"),
     "service 'llm': field 'ipc': ipc: host shares the host's IPC namespace; use ipc: private (or shareable), or "
     "acknowledge it with acknowledge: [host_ipc]"),
    ("online", "embedding", dict(env={"HF_HUB_OFFLINE": "0"}),
     "service 'embedding': field 'env': HF_HUB_OFFLINE='0' lets the service fetch models from the internet; keep "
     "HF_HUB_OFFLINE=\"1\" (stage the models with hf_models), or acknowledge it with acknowledge: [online]"),
    ("online", "llm", dict(instances=[{"container_name": "rag-llm-2", "gpus": [5], "tier": "secondary",
                                       "tensor_parallel": 1,
                                       "env": {"TRANSFORMERS_OFFLINE": "false", "TENSOR_PARALLEL_SIZE": "1"}}]),
     "service 'llm': field 'instances[0].env': TRANSFORMERS_OFFLINE='false' lets the service fetch models"),
    ("capabilities", "llm", dict(cap_add=["SYS_NICE"]),
     "service 'llm': field 'cap_add': SYS_NICE gives the container capabilities back that it drops by default; remove "
     "it if the service runs without, or acknowledge it with acknowledge: [capabilities]"),
]


@pytest.mark.parametrize("risk,name,change,message", EXPOSURES, ids=["%s-%s" % (e[0], e[1]) for e in EXPOSURES])
def test_a_setting_that_opens_the_host_is_refused_unless_the_service_acknowledges_it(risk, name, change, message):
    services = copy.deepcopy(INV["gpu_stack_services"])
    entry = next(s for s in services if s["name"] == name)
    for key, value in change.items():
        entry[key] = dict(entry[key], **value) if isinstance(value, dict) and key in entry else value
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert [e for e in exc.value.errors if e.startswith(message)], exc.value.errors
    entry["acknowledge"] = [risk]  # said out loud, per service: planned
    assert build_plan(**args(services=services))["plan"]["services"]


def test_read_only_model_mounts_and_an_unknown_acknowledgement():
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[0]["volumes"] = ["/opt/models/hf:/extra-models:ro", "/srv/whisper-cache:/cache"]
    assert build_plan(**args(services=services))["plan"]["services"]  # read-only, or a directory of its own
    services[0]["acknowledge"] = ["public_bnd"]
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert exc.value.errors == ["service 'whisper': field 'acknowledge': 'public_bnd': unknown name; did you mean "
                                "'public_bind'?"]
    services[0]["acknowledge"] = []
    services[0]["ulimits"] = {"memlok": -1}
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert exc.value.errors == ["service 'whisper': field 'ulimits.memlok': unknown limit; did you mean 'memlock'?"]


def test_container_names_are_unique_across_every_entry_and_never_the_temporary_name():
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[0]["enabled"] = False
    services[0]["container_name"] = "rag-dots-ocr"  # disabled: its container is still removed by that name
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert exc.value.errors == ["service 'ocr': field 'container_name': 'rag-dots-ocr' is already used by service "
                                "'whisper'"]
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[1]["container_name"] = "rag-embedding" + NEXT_SUFFIX
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert exc.value.errors == ["service 'embedding': field 'container_name': 'rag-embedding-ragops-next' ends with "
                                "-ragops-next, the collection's temporary name for a container being recreated; "
                                "choose another name"]


def test_an_image_without_a_pinned_id_is_refused_unless_allowed_with_a_warning():
    images = [s["image"] for s in INV["gpu_stack_services"]] + [
        s["cpu_fallback"]["image"] for s in INV["gpu_stack_services"] if (s.get("cpu_fallback") or {}).get("image")]
    pins = dict((image, {"tarball": "/srv/images.tar", "id": "sha256:" + "ab" * 32}) for image in images)
    assert build_plan(**args(image_sources=pins))["warnings"] == []
    del pins["rag-whisper:1.0.0"]
    with pytest.raises(PlanError) as exc:
        build_plan(**args(image_sources=pins))
    assert exc.value.errors == [
        "service 'whisper': image rag-whisper:1.0.0 has no pinned image ID; a tag can be moved to another build. Read "
        "it with `docker image inspect --format '{{.Id}}' rag-whisper:1.0.0` where the image was built (docker load "
        "prints it too) and add it: gpu_stack_image_sources: {rag-whisper:1.0.0: {tarball: ..., sha256: ..., id: "
        "\"sha256:...\"}} (or {registry: true, id: ...}); or set gpu_stack_allow_unpinned_images: true, warned on "
        "every run"]
    allowed = build_plan(**args(image_sources=pins, allow_unpinned_images=True))
    assert allowed["warnings"] == ["service 'whisper': image rag-whisper:1.0.0 runs without a pinned image ID "
                                   "(gpu_stack_allow_unpinned_images: true); a tag can be moved to another build"]


HARDENING_ERRORS = [
    (dict(cap_add=["SYS_NICEE"]), "service 'whisper': field 'cap_add': 'SYS_NICEE': unknown capability; did you mean "
                                  "'SYS_NICE'?"),
    (dict(cap_add="SYS_NICE"), "service 'whisper': field 'cap_add': must be a list of capability names, e.g. [SYS_NICE]"),
    (dict(read_only="yes"), "service 'whisper': field 'read_only': must be true or false, got 'yes'"),
    (dict(tmpfs={"tmp": "size=1g"}), "service 'whisper': field 'tmpfs': 'tmp' is not an absolute path below /; write "
                                     "e.g. /tmp: size=1g"),
    (dict(tmpfs={"/tmp": 1}), "service 'whisper': field 'tmpfs./tmp': 1 is not a mount option string such as size=1g"),
    (dict(tmpfs=["/tmp"]), "service 'whisper': field 'tmpfs': must map absolute paths to mount options"),
    (dict(pids_limit=0), "service 'whisper': field 'pids_limit': 0 must be a whole number from 64 to 4194304; write "
                         "e.g. pids_limit: 8192"),
    (dict(pids_limit="8192"), "service 'whisper': field 'pids_limit': '8192' must be a whole number from 64 to "
                              "4194304"),
    (dict(memory="lots"), "service 'whisper': field 'memory': 'lots' is not a memory limit of at least 64m; write "
                          "e.g. memory: 64g"),
    (dict(memory="1m"), "service 'whisper': field 'memory': '1m' is not a memory limit of at least 64m"),
]


@pytest.mark.parametrize("change,message", HARDENING_ERRORS, ids=[str(sorted(c.items())) for c, _m in HARDENING_ERRORS])
def test_a_bad_hardening_setting_is_refused_naming_service_field_and_fix(change, message):
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[0].update(change)
    with pytest.raises(PlanError) as exc:
        build_plan(**args(services=services))
    assert [e for e in exc.value.errors if e.startswith(message)], exc.value.errors


def test_every_container_is_hardened_by_default_outside_the_configuration_hash():
    plan = build_plan(**args())["plan"]
    for entry in plan["services"]:
        c = entry["container"]
        assert (c["cap_drop"], c["cap_add"], c["read_only"], c["pids_limit"]) == (["ALL"], [], True, 8192), c
        assert c["tmpfs"] == {"/tmp": "size=1g", "/run": "size=64m"}
        assert c["memory"] == {"whisper": "32g", "embedding": "16g", "llm": "128g", "ocr": "32g"}[entry["name"]]
    # the per-service opt-out, and no hash moves with them: containers made before them are not restarted
    services = copy.deepcopy(INV["gpu_stack_services"])
    services[0].update(read_only=False, pids_limit=1024, memory=None, tmpfs={})
    other = build_plan(**args(services=services))["plan"]
    assert other["hash"] == plan["hash"]
    assert [e["config_hash"] for e in other["services"]] == [e["config_hash"] for e in plan["services"]]
    whisper = other["services"][0]["container"]
    assert (whisper["read_only"], whisper["pids_limit"], whisper["tmpfs"], "memory" in whisper) == (
        False, 1024, {}, False)
