# -*- coding: utf-8 -*-
"""hf_models stages the union of every host's models (issue 16): a host whose override pins another
revision of a model gets that revision, the others theirs, and the controller's cache holds both.
Runs the real role with ansible-playbook on two local hosts, each with its own model root."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _model_snapshot as snap

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/tiny-model"
REV_A, REV_B = "a" * 40, "b" * 40


def bundle(path, revision, content):
    path.mkdir(parents=True)
    (path / "config.json").write_bytes(content)
    manifest = [{"path": "config.json", "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}]
    (path / snap.BUNDLE_MANIFEST).write_text(json.dumps({"repo_id": REPO, "revision": revision, "files": manifest}))


def snapshots(root):
    base = Path(snap.repo_dir(str(root), REPO)) / "snapshots"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


@pytest.mark.slow
def test_each_host_gets_its_own_revision_and_the_controller_stages_the_union(tmp_path):
    bundle(tmp_path / "bundle-a", REV_A, b'{"revision": "a"}')
    bundle(tmp_path / "bundle-b", REV_B, b'{"revision": "b"}')
    service = {"name": "emb", "image": "rag-emb:1.0.0", "gpus": [0], "port": 8001, "vram_estimate_gb": 1,
               "model": {"repo_id": REPO, "revision": REV_A, "source": {"bundle": str(tmp_path / "bundle-a")}}}
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpu_stack_services": [service], "hf_models_overrides": {},
                 "hf_models_controller_root": str(tmp_path / "controller"), "hf_models_min_free_bytes": 0},
        "children": {"gpu_nodes": {"hosts": {"gpu-a": {"hf_models_root": str(tmp_path / "a")},
                                             "gpu-b": {"hf_models_root": str(tmp_path / "b")}}}}}}))
    # a host override: gpu-b runs the other revision
    (inv / "host_vars" / "gpu-b.yml").write_text(yaml.safe_dump({"hf_models_overrides": {"emb": {"model": {
        "revision": REV_B, "source": {"bundle": str(tmp_path / "bundle-b")}}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                           str(ROOT / "tests" / "playbooks" / "roles.yml"), "-i", str(inv),
                           "-e", json.dumps({"test_roles": ["hf_models"]})],
                          capture_output=True, text=True, env=env, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert snapshots(tmp_path / "a") == [REV_A]
    assert snapshots(tmp_path / "b") == [REV_B]
    assert snapshots(tmp_path / "controller") == [REV_A, REV_B]
    staged_b = Path(snap.repo_dir(str(tmp_path / "b"), REPO)) / "snapshots" / REV_B / "config.json"
    assert staged_b.read_bytes() == b'{"revision": "b"}'
