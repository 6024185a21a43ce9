# -*- coding: utf-8 -*-
"""The inventory schema: every malformed entry is refused with a message naming service and field."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import (
    INSTANCE_FIELDS, ServiceMapError, schema_markdown, validate_services)

ROOT = Path(__file__).resolve().parents[4]
SEED = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())


def seed_services():
    return copy.deepcopy(SEED["gpu_stack_services"])


def edit(name, **changes):
    services = seed_services()
    svc = next(s for s in services if s["name"] == name)
    for key, value in changes.items():
        if value is KeyError:
            del svc[key]
        else:
            svc[key] = value
    return services


def test_seed_map_is_valid_and_normalised():
    out = validate_services(seed_services(), SEED["gpu_stack_service_overrides"], SEED["gpu_stack_common_env"])
    assert [(s["name"], s["container_name"], s["gpus"], s["port"]) for s in out] == [
        ("whisper", "rag-whisper", [0], 8004), ("embedding", "rag-embedding-server", [1], 8001),
        ("llm", "rag-llm-server", [2, 3], 8003), ("ocr", "rag-dots-ocr", [4], 8002)]
    llm = out[2]
    assert llm["env"]["HF_HUB_OFFLINE"] == "1" and llm["env"]["GPU_MEMORY_UTILIZATION"] == "0.9"
    assert llm["healthcheck"] == {"interval": 30, "timeout": 10, "retries": 3, "start_period": 60}
    assert llm["bind_address"] == "127.0.0.1" and llm["tensor_parallel"] == 2


BAD = [
    ("missing image", edit("whisper", image=KeyError),
     "service 'whisper': field 'image': is required but missing; e.g. image: rag-whisper:<version tag or @sha256 digest>"),
    ("non-integer GPU", edit("embedding", gpus=["one"]),
     "service 'embedding': field 'gpus': element 'one' is neither a GPU index (int) nor a GPU UUID (GPU-...); "
     "write e.g. gpus: [1]"),
    ("float GPU", edit("embedding", gpus=[1.5]),
     "service 'embedding': field 'gpus': element 1.5 is neither a GPU index (int) nor a GPU UUID (GPU-...); "
     "write e.g. gpus: [1]"),
    ("duplicate port", edit("ocr", port=8001),
     "service 'ocr': field 'port': 8001 is already used by service 'embedding'; give each service its own host port"),
    ("latest tag", edit("llm", image="rag-llm-server:latest"),
     "service 'llm': field 'image': 'rag-llm-server:latest' is not pinned: ':latest' moves; use a version tag or an "
     "@sha256 digest"),
    ("untagged image", edit("llm", image="rag-llm-server"),
     "service 'llm': field 'image': 'rag-llm-server' has no tag; pin a version tag or an @sha256 digest, "
     "e.g. rag-llm-server:1.0.0"),
    ("port out of range", edit("ocr", port=70000), "service 'ocr': field 'port': 70000 is not a port number (1-65535)"),
    ("unknown field", edit("ocr", colour="blue"), "service 'ocr': field 'colour': unknown field; allowed: name, image"),
    ("misspelt field", edit("ocr", gpu=[4]), "service 'ocr': field 'gpu': unknown field; did you mean 'gpus'?"),
    ("quoted port", edit("ocr", port="8002"), "service 'ocr': field 'port': '8002' is not a port number (1-65535) (a "
     "quoted number: write port: 8002 without quotes; in the map only env values are strings)"),
    ("quoted estimate", edit("ocr", vram_estimate_gb="25"), "service 'ocr': field 'vram_estimate_gb': '25' is not a "
     "size in GB (a quoted number: write vram_estimate_gb: 25 without quotes"),
    ("misspelt healthcheck key", edit("ocr", healthcheck={"intervall": 30}),
     "service 'ocr': field 'healthcheck.intervall': unknown key; did you mean 'interval'?"),
    ("branch as revision", edit("whisper", model={"repo_id": "ivrit-ai/whisper-large-v3-ct2", "revision": "main"}),
     "service 'whisper': field 'model.revision': 'main' is not a pinned 40-hex commit"),
    ("bad repo id", edit("whisper", model={"repo_id": "whisper", "revision": "a" * 40}),
     "service 'whisper': field 'model.repo_id': 'whisper' is not a Hugging Face repo id"),
    ("nested env", edit("llm", env={"X": {"a": 1}}), "service 'llm': field 'env.X': must be a string"),
    ("bad shm", edit("llm", shm_size="lots"), "service 'llm': field 'shm_size': 'lots' is not a size such as 32g"),
    ("empty gpus", edit("llm", gpus=[]), "service 'llm': field 'gpus': is empty; give at least one GPU, or set "
     "device: cpu for the CPU fallback"),
    ("duplicate container name", edit("ocr", container_name="rag-whisper"),
     "service 'ocr': field 'container_name': 'rag-whisper' is already used by service 'whisper'"),
    ("instances not a list", edit("llm", instances={"container_name": "x"}),
     "service 'llm': field 'instances': must be a list of {container_name, gpus, ...}"),
    ("instance without a name", edit("llm", instances=[{"gpus": [5]}]),
     "service 'llm': field 'instances[0]': must be a mapping with container_name and gpus, got {'gpus': [5]}; "
     "write e.g. {container_name: rag-llm-2, gpus: [6]}"),
    ("instance without GPUs", edit("llm", instances=[{"container_name": "rag-llm-server-2"}]),
     "service 'llm': instance 'rag-llm-server-2': field 'gpus': is required but missing; e.g. gpus: [5] (a GPU no other service uses)"),
    ("instance setting a service-wide field", edit("llm", instances=[{"container_name": "rag-llm-server-2",
                                                                      "gpus": [5], "port": 8005}]),
     "service 'llm': instance 'rag-llm-server-2': field 'port': unknown field for an instance; allowed: "
     "container_name, gpus, image, tier, tensor_parallel, vram_estimate_gb, env, backend_port, allow_reserved "
     "(the rest is the service's)"),
    ("instance with a latest image", edit("llm", instances=[{"container_name": "rag-llm-server-2", "gpus": [5],
                                                             "image": "rag-llm-gptoss:latest"}]),
     "service 'llm': instance 'rag-llm-server-2': field 'image': 'rag-llm-gptoss:latest' is not pinned"),
    ("two instances with one name", edit("llm", instances=[{"container_name": "rag-llm-server-2", "gpus": [5]},
                                                           {"container_name": "rag-llm-server-2", "gpus": [6]}]),
     "service 'llm': instance 'rag-llm-server-2': field 'container_name': 'rag-llm-server-2' is already used by "
     "service 'llm' (instance 'rag-llm-server-2'); give each instance its own container_name"),
    ("max_gpus zero", edit("ocr", max_gpus=0), "service 'ocr': field 'max_gpus': 0 must be a whole number >= 1"),
]


@pytest.mark.parametrize("label,services,message", BAD, ids=[b[0] for b in BAD])
def test_malformed_entry_is_refused_naming_service_and_field(label, services, message):
    with pytest.raises(ServiceMapError) as exc:
        validate_services(services)
    assert any(e.startswith(message) for e in exc.value.errors), exc.value.errors


def test_every_problem_is_reported_in_one_run():
    services = edit("whisper", image=KeyError)
    services[1]["gpus"] = ["x"]
    services[3]["port"] = 8001
    with pytest.raises(ServiceMapError) as exc:
        validate_services(services)
    fields = sorted(re.findall(r"service '(\w+)': field '(\w+)'", "; ".join(exc.value.errors)))
    assert fields == [("embedding", "gpus"), ("ocr", "port"), ("whisper", "image")]


def test_overrides_merge_and_unknown_override_is_refused():
    out = validate_services(seed_services(), {"llm": {"env": {"MAX_NUM_BATCHED_TOKENS": "1024",
                                                              "GPU_MEMORY_UTILIZATION": "0.8"}}})
    env = next(s for s in out if s["name"] == "llm")["env"]
    assert env["MAX_NUM_BATCHED_TOKENS"] == "1024" and env["GPU_MEMORY_UTILIZATION"] == "0.8"
    assert env["MAX_MODEL_LEN"] == "2048"  # the rest of the map's env stays
    with pytest.raises(ServiceMapError) as exc:
        validate_services(seed_services(), {"lm": {"port": 1}})
    assert exc.value.errors == ["gpu_stack_service_overrides: 'lm' is not a service in gpu_stack_services "
                                "(known: whisper, embedding, llm, ocr)"]


def test_schema_doc_is_generated_from_the_code():
    doc = (ROOT / "docs" / "inventory-schema.md").read_text()
    assert schema_markdown() in doc, "docs/inventory-schema.md is stale: run scripts/gen-docs"
    assert schema_markdown(INSTANCE_FIELDS) in doc, "docs/inventory-schema.md is stale: run scripts/gen-docs"


def test_a_misspelt_required_field_is_one_error_that_suggests_the_right_name():
    services = edit("whisper", port=KeyError, prot=8004)
    with pytest.raises(ServiceMapError) as exc:
        validate_services(services)
    assert exc.value.errors == ["service 'whisper': field 'prot': unknown field; did you mean 'port'?"]
    services = edit("whisper", port=KeyError)  # really missing: said so
    with pytest.raises(ServiceMapError) as exc:
        validate_services(services)
    assert len(exc.value.errors) == 1
    assert exc.value.errors[0].startswith("service 'whisper': field 'port': is required but missing")


def test_examples_in_messages_fit_the_service_and_never_use_another_services_values():
    """A missing field's example is this service's own (its image name) or free in this map (a GPU,
    a port nobody uses): copying it never creates a clash with another service."""
    for field in ("image", "gpus", "port", "model", "vram_estimate_gb"):
        services = edit("whisper", **{field: KeyError})
        with pytest.raises(ServiceMapError) as exc:
            validate_services(services)
        message = exc.value.errors[0]
        assert message.startswith("service 'whisper': field '%s': is required but missing; e.g. %s: " % (field, field))
        example = message.split("e.g. ", 1)[1]
        for other in services:
            if other["name"] == "whisper":
                continue
            theirs = other[field]
            if field == "gpus":
                ours = yaml.safe_load(example.split(": ", 1)[1].split(" (", 1)[0])
                assert not set(ours) & set(theirs), message
            else:
                value = theirs["repo_id"] if field == "model" else str(theirs)
                assert value not in example, (field, message)
    assert "e.g. image: rag-whisper:" in validate_error(edit("whisper", image=KeyError))
    assert "e.g. port: 8004 (a port no other service uses)" in validate_error(edit("whisper", port=KeyError))
    assert "e.g. gpus: [0] (a GPU no other service uses)" in validate_error(edit("whisper", gpus=KeyError))


def validate_error(services):
    with pytest.raises(ServiceMapError) as exc:
        validate_services(services)
    return exc.value.errors[0]
