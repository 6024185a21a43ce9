# -*- coding: utf-8 -*-
"""hf_models stages the union of every host's models (issue 16): a host whose override pins another
revision of a model gets that revision, the others theirs, and the controller's cache holds both.
And the models lock: the manifest of a model without per-file sha256 is recorded at its first fetch
next to the inventory; a source whose content changed later is refused. Runs the real role with
ansible-playbook on local hosts, each with its own model root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def hf_models(inv):
    """The hf_models role with ansible-playbook on the inventory's hosts."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                           str(ROOT / "tests" / "playbooks" / "roles.yml"), "-i", str(inv),
                           "-e", json.dumps({"test_roles": ["hf_models"]})],
                          capture_output=True, text=True, env=env, check=False, timeout=600)


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
    proc = hf_models(inv)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert snapshots(tmp_path / "a") == [REV_A]
    assert snapshots(tmp_path / "b") == [REV_B]
    assert snapshots(tmp_path / "controller") == [REV_A, REV_B]
    staged_b = Path(snap.repo_dir(str(tmp_path / "b"), REPO)) / "snapshots" / REV_B / "config.json"
    assert staged_b.read_bytes() == b'{"revision": "b"}'


@pytest.mark.slow
def test_the_first_fetch_locks_the_manifest_and_a_changed_source_is_refused(tmp_path):
    source = tmp_path / "bundle"
    bundle(source, REV_A, b'{"weights": "first"}')
    service = {"name": "emb", "image": "rag-emb:1.0.0", "gpus": [0], "port": 8001, "vram_estimate_gb": 1,
               "model": {"repo_id": REPO, "revision": REV_A, "source": {"bundle": str(source)}}}
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpu_stack_services": [service], "hf_models_overrides": {},
                 "hf_models_controller_root": str(tmp_path / "controller"), "hf_models_min_free_bytes": 0},
        "children": {"gpu_nodes": {"hosts": {"gpu-a": {"hf_models_root": str(tmp_path / "a")}}}}}}))
    lock = inv / ".models.lock.json"
    first = hf_models(inv)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    entry = json.loads(lock.read_text())["models"]["%s@%s" % (REPO, REV_A)]
    old_sha = hashlib.sha256(b'{"weights": "first"}').hexdigest()
    assert entry["files"] == [{"path": "config.json", "size": 20, "sha256": old_sha}]
    canon = json.dumps(entry["files"], sort_keys=True, separators=(",", ":")).encode()
    assert entry["manifest_sha256"] == hashlib.sha256(canon).hexdigest()
    again = hf_models(inv)
    assert again.returncode == 0 and json.loads(lock.read_text())["models"] == {"%s@%s" % (REPO, REV_A): entry}
    # a dot file: Ansible does not read it as part of the inventory directory (no "Skipping unexpected key")
    assert "unexpected key" not in again.stdout + again.stderr, again.stderr[-2000:]

    # the source changes under the same revision (its own manifest rewritten to match) and another
    # controller, without the cache, fetches it: refused against the lock, the host keeps its copy
    shutil.rmtree(source)
    shutil.rmtree(tmp_path / "controller")
    bundle(source, REV_A, b'{"weights": "other"}')
    changed = hf_models(inv)
    said = " ".join(changed.stdout.split())
    assert changed.returncode != 0
    new_sha = hashlib.sha256(b'{"weights": "other"}').hexdigest()
    assert ("model %s: file config.json has sha256 %s, the lock file %s says %s; nothing of it was staged: the "
            "source's content changed since the model was first fetched and locked. If the new content is intended, "
            "remove the entry %s@%s from %s and run again; otherwise restore the source"
            % (REPO, new_sha, lock, old_sha, REPO, REV_A, lock)) in said, said[-3000:]
    staged = Path(snap.repo_dir(str(tmp_path / "a"), REPO)) / "snapshots" / REV_A / "config.json"
    assert staged.read_bytes() == b'{"weights": "first"}'

    # a lock entry edited by hand is refused, naming it
    doc = json.loads(lock.read_text())
    doc["models"]["%s@%s" % (REPO, REV_A)]["files"][0]["sha256"] = new_sha
    lock.write_text(json.dumps(doc))
    edited = hf_models(inv)
    assert edited.returncode != 0
    assert ("models lock %s: entry %s@%s does not match its own manifest_sha256 (edited by hand?); restore it from "
            "version control, or remove the entry to record the source again" % (lock, REPO, REV_A)) in " ".join(
                edited.stdout.split()), edited.stdout[-3000:]


@pytest.mark.slow
def test_a_host_run_through_become_gets_its_bundle_in_the_one_staging_call(tmp_path):
    """Where the module runs on the host (here: become, so not in the controller's process), model_stage's
    action copies each bundle from the controller's cache into Ansible's remote temporary directory, stages from
    it and removes it: no copy task, no incoming area, nothing left behind. A bundle that is not on the controller
    is named, and nothing is staged."""
    bundle(tmp_path / "bundle-a", REV_A, b'{"revision": "a"}')
    service = {"name": "emb", "image": "rag-emb:1.0.0", "gpus": [0], "port": 8001, "vram_estimate_gb": 1,
               "model": {"repo_id": REPO, "revision": REV_A, "source": {"bundle": str(tmp_path / "bundle-a")}}}
    remote_tmp = tmp_path / "remote-tmp"
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "ansible_become": True, "ansible_become_method": "su", "ansible_remote_tmp": str(remote_tmp),
                 "gpu_stack_services": [service], "hf_models_overrides": {},
                 "hf_models_controller_root": str(tmp_path / "controller"), "hf_models_min_free_bytes": 0},
        "children": {"gpu_nodes": {"hosts": {"gpu-a": {"hf_models_root": str(tmp_path / "a")}}}}}}))
    proc = hf_models(inv)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    staged = Path(snap.repo_dir(str(tmp_path / "a"), REPO)) / "snapshots" / REV_A / "config.json"
    assert staged.read_bytes() == b'{"revision": "a"}'
    assert "Copy the bundles" not in proc.stdout and not (tmp_path / "a" / ".incoming").exists()
    assert remote_tmp.is_dir() and list(remote_tmp.iterdir()) == []

    play = tmp_path / "play.yml"
    missing = tmp_path / "controller" / "gone.tar"
    play.write_text(yaml.safe_dump([{"hosts": "gpu_nodes", "gather_facts": False, "tasks": [{
        "ragops.gpu_stack.model_stage": {"root": str(tmp_path / "b"), "models": [
            {"repo_id": REPO, "revision": REV_A, "source": {"copy_from": str(missing)}}]}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0")
    bad = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play), "-i", str(inv)],
                         capture_output=True, text=True, env=env, check=False, timeout=300)
    said = " ".join(bad.stdout.split())
    assert bad.returncode != 0
    assert ("model_stage: source.copy_from names no file on the controller (%s: %s); stage the models into the "
            "controller's cache first (the hf_models role does). Nothing was copied or staged." % (REPO, missing)
            ) in said, said[-3000:]
    assert not (tmp_path / "b").exists() and list(remote_tmp.iterdir()) == []
