# -*- coding: utf-8 -*-
"""Upgrading the collection on a converged host restarts nothing: a node converged by the previous
release's collection (its own site.yml and roles, extracted from git into a temporary collections
path), then site.yml of this checkout: changed=0, every container the same ID with the same labels.

The previous release is conftest.PREVIOUS_RELEASE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def containers(node):
    out = node.sh("docker ps -aq --no-trunc | xargs -r docker inspect").stdout
    return dict((c["Name"].lstrip("/"), (c["Id"], c["Config"]["Labels"], c["State"]["Running"]))
                for c in json.loads(out))


def test_upgrading_the_collection_restarts_no_service(node_factory, ansible, previous_collections):
    node = node_factory("gpu-upgrade")
    previous = previous_collections / "ansible_collections" / "ragops" / "gpu_stack"
    env = {"ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (previous_collections, ROOT / "collections")}
    old = ansible(previous / "site.yml", node.inventory, env=env)
    assert old.rc == 0, old
    new_task = "Settle the services to check"  # a task of this release's gpu_health only
    assert new_task not in old.out, "the previous release's run used this checkout's roles"
    before = containers(node)
    assert sorted(before) == ["rag-dots-ocr", "rag-embedding-server", "rag-llm-server", "rag-whisper"]
    assert all(running for _id, _labels, running in before.values())
    new = ansible(ROOT / "site.yml", node.inventory)
    assert new.rc == 0, new
    assert new.recap(node.name)["changed"] == 0, new
    assert new_task in new.out
    assert containers(node) == before
