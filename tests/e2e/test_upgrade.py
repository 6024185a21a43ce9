# -*- coding: utf-8 -*-
"""Upgrading the collection on a converged host restarts nothing: a node converged by the previous
release's collection (its own site.yml and roles, extracted from git into a temporary collections
path) and that release's map, then site.yml and the map of this checkout: every container the same
ID with the same labels, and no change but the staging of an image the new map needs (and, on the
controller, the models lock this release writes); then
gpu_stack_harden_existing=true recreates them with the hardened defaults.

The previous release is conftest.PREVIOUS_RELEASE."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PREVIOUS_RELEASE

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


# gpu_services' image staging (roles/gpu_services/tasks/images.yml): copies and loads, no container;
# and what this release adds beside the services
STAGING = {"Create the image staging directory", "Copy the image tarballs", "Load the images",
           "Remove the staged tarballs",
           # on the controller: the models lock next to the inventory, new in this release
           "Lock the manifests of the models fetched for the first time",
           # role gpu_metrics, new in this release: node_exporter and the metrics reader, beside the services
           "Install Debian's node_exporter", "Start node_exporter now and at boot",
           "Install the reader (the collection's NVML engine and the renderer) and its service and timer units",
           "Start node_exporter and the reader's timer now and at boot, and write the metrics now",
           # role host_python: the modules' virtualenv gains its pinned pip (pip is in the hash-locked requirements now)
           "Copy the wheels to the host (one tarball)",
           "Install the pinned packages into the virtualenv, from those wheels only (hashes checked)"}


def changed_tasks(out, host):
    """The names of the tasks that reported `changed` for the host, in a run's output."""
    names, task = [], None
    for line in out.splitlines():
        m = re.match(r"^TASK \[(?:[\w.]+ : )?(.*?)\] \*+", line)
        if m:
            task = m.group(1)
        elif line.startswith("changed: [%s" % host) and task is not None:
            names.append(task)
    return names


def containers(node):
    out = node.sh("docker ps -aq --no-trunc | xargs -r docker inspect").stdout
    return dict((c["Name"].lstrip("/"), (c["Id"], c["Config"]["Labels"], c["State"]["Running"]))
                for c in json.loads(out))


def previous_inventory(node, dest):
    """The node's inventory with the map as the previous release's inventories/a100 had it (a field
    this release added is unknown to that release), the simulator's sources as they are."""
    shutil.copytree(node.inventory, dest)
    for f in (dest / "group_vars" / "gpu_nodes").glob("*.yml"):
        if f.name.startswith("zz_"):
            continue
        old = subprocess.run(["git", "-C", str(ROOT), "show", "%s:inventories/a100/group_vars/gpu_nodes/%s"
                              % (PREVIOUS_RELEASE, f.name)], capture_output=True, text=True, check=True)
        f.write_text(old.stdout)
    return dest


def test_upgrading_the_collection_restarts_no_service(node_factory, ansible, previous_collections, tmp_path):
    node = node_factory("gpu-upgrade")
    previous = previous_collections / "ansible_collections" / "ragops" / "gpu_stack"
    env = {"ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (previous_collections, ROOT / "collections")}
    old = ansible(previous / "site.yml", previous_inventory(node, tmp_path / "previous-inventory"), env=env)
    assert old.rc == 0, old
    new_task = "Settle the services to check"  # a task of this release's gpu_health only
    assert new_task not in old.out, "the previous release's run used this checkout's roles"
    before = containers(node)
    assert sorted(before) == ["rag-dots-ocr", "rag-embedding-server", "rag-llm-server", "rag-whisper"]
    assert all(running for _id, _labels, running in before.values())
    new = ansible(ROOT / "site.yml", node.inventory)
    assert new.rc == 0, new
    # This release's map gives the Whisper and LLM services a CPU mode (failover), whose image
    # (rag-llm-gptoss) site.yml now stages ahead of need: the only changes allowed. No container is
    # touched: the same IDs, labels (configuration hashes) and state.
    changed = changed_tasks(new.out, node.name)
    assert set(changed) <= STAGING, changed
    assert new_task in new.out
    assert containers(node) == before
    # The previous release's containers predate the hardened defaults: they run on as they are, each
    # run names them, and asking for it recreates them hardened (health-gated, one at a time).
    assert " ".join(new.out.split()).count("predates the collection's hardened defaults") >= len(before), new.out
    hardened = ansible(ROOT / "site.yml", node.inventory, extra_vars={"gpu_stack_harden_existing": True})
    assert hardened.rc == 0, hardened
    after = containers(node)
    assert sorted(after) == sorted(before)
    for name, (cid, labels, running) in after.items():
        assert cid != before[name][0] and running, name
        assert labels.get("io.ragops.gpu-stack.hardening") == "1", labels
        host = node.inspect(name)["HostConfig"]
        assert (host["CapDrop"], host["ReadonlyRootfs"], host["PidsLimit"] > 0, host["Memory"] > 0) == (
            ["ALL"], True, True, True), (name, host)
    assert "predates the collection's hardened defaults" not in hardened.out
