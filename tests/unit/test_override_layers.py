# -*- coding: utf-8 -*-
"""Override layers (issue 20, 3): a group's and a host's overrides add up per service instead of one
replacing the other, in the documented order, and playbooks/show_map.yml prints the map a host
will get. Runs ansible-playbook on the controller only (a local host; nothing is deployed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def effective(tmp_path, group_vars, host_vars):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "a100" / "group_vars", inv / "group_vars")
    (inv / "group_vars" / "gpu_nodes" / "zz_test.yml").write_text(yaml.safe_dump(group_vars))
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "gpu-x.yml").write_text(yaml.safe_dump(host_vars))
    (inv / "hosts.yml").write_text("all:\n  children:\n    gpu_nodes:\n      hosts:\n        gpu-x:\n"
                                   "          ansible_connection: local\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "show_map.yml"),
                           "-i", str(inv)], capture_output=True, text=True, env=env, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    msg = [t["hosts"]["gpu-x"]["msg"] for t in tasks if t["task"]["name"].startswith("Effective map")][0]
    return msg["override_layers"], dict((s["name"], s) for s in msg["services"])


def test_group_and_host_layers_add_up_per_service(tmp_path):
    layers, services = effective(
        tmp_path,
        {"gpu_stack_service_overrides__10_gpu_nodes": {"llm": {"env": {"MAX_NUM_SEQS": "128"}},
                                                       "ocr": {"healthcheck": {"retries": 5}}}},
        {"gpu_stack_service_overrides__50_host": {"llm": {"env": {"GPU_MEMORY_UTILIZATION": "0.8"}}}})
    assert layers == ["gpu_stack_service_overrides__10_gpu_nodes", "gpu_stack_service_overrides__50_host"]
    env = services["llm"]["env"]
    assert (env["MAX_NUM_SEQS"], env["GPU_MEMORY_UTILIZATION"], env["MAX_NUM_BATCHED_TOKENS"]) == ("128", "0.8", "2048")
    assert services["ocr"]["healthcheck"]["retries"] == 5 and services["ocr"]["healthcheck"]["interval"] == 30


def test_a_later_layer_wins_over_an_earlier_one_and_over_the_plain_variable(tmp_path):
    layers, services = effective(
        tmp_path,
        {"gpu_stack_service_overrides": {"llm": {"env": {"MAX_NUM_SEQS": "64", "NCCL_DEBUG": "INFO"}}},
         "gpu_stack_service_overrides__10_gpu_nodes": {"llm": {"env": {"MAX_NUM_SEQS": "128"}}}},
        {"gpu_stack_service_overrides__50_host": {"llm": {"env": {"MAX_NUM_SEQS": "32"}}}})
    assert layers[0] == "gpu_stack_service_overrides"
    assert services["llm"]["env"]["MAX_NUM_SEQS"] == "32" and services["llm"]["env"]["NCCL_DEBUG"] == "INFO"


def test_the_simulated_inventory_keeps_its_limits_in_a_layer_of_its_own(tmp_path, monkeypatch):
    """A host_vars override (the README's OOM knobs) must not drop the simulator's memlock limit."""
    from gpusim import nodes

    monkeypatch.setattr(nodes, "sim_vars", lambda info: {})
    monkeypatch.setattr(nodes, "memlock_overrides", lambda: {"llm": {"ulimits": {"memlock": 8388608}}})
    dest = nodes.write_sim_inventory({}, names=["gpu-x"], dest=tmp_path / "sim")
    written = yaml.safe_load((dest / "group_vars" / "gpu_nodes" / "zz_sim.yml").read_text())
    assert written[nodes.SIM_OVERRIDES_LAYER] == {"llm": {"ulimits": {"memlock": 8388608}}}
    # ... and the layer survives a host's own plain override
    layers, services = effective(tmp_path, {nodes.SIM_OVERRIDES_LAYER: written[nodes.SIM_OVERRIDES_LAYER]},
                                 {"gpu_stack_service_overrides": {"llm": {"env": {"MAX_NUM_BATCHED_TOKENS": "1024"}}}})
    assert services["llm"]["ulimits"]["memlock"] == 8388608 and services["llm"]["env"]["MAX_NUM_BATCHED_TOKENS"] == "1024"
