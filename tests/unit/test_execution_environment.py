# -*- coding: utf-8 -*-
"""execution-environment.yml (ansible-builder schema 3) for AWX / Ansible Automation Platform:
`ansible-builder create` writes a build context with the collection as built from this checkout,
the runtime's Python requirements and their exact versions, the third-party collections and the
system packages. The image itself needs a registry (its base image), so it is not built here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.tools
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                            str(ROOT / ".build" / "ee"), str(ROOT)], capture_output=True, text=True, timeout=300,
                           check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    out = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", str(ROOT / "execution-environment.yml"),
                           "--context", str(out), "--output-filename", "Containerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    print(proc.stdout)
    assert proc.returncode == 0 and "Complete!" in proc.stdout, proc.stdout + proc.stderr
    return out, version


def test_the_definition_is_schema_3_with_the_projects_own_files():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    assert ee["dependencies"] == {"galaxy": "requirements.yml", "python": "requirements/requirements.txt",
                                  "system": "bindep.txt"}
    # no registry host in the base image: it is the user's, given at build time
    assert "/" not in ee["images"]["base_image"]["name"]


def test_the_build_context_holds_what_the_image_needs(context):
    out, version = context
    build = out / "_build"
    for name, source in (("requirements.txt", "requirements/requirements.txt"), ("requirements.yml", "requirements.yml"),
                         ("bindep.txt", "bindep.txt"), ("configs/constraints.txt", "requirements/constraints.txt")):
        assert (build / name).read_text() == (ROOT / source).read_text(), name
    tarballs = sorted(p.name for p in (build / "collections").iterdir())
    assert tarballs == ["ragops-gpu_stack-%s.tar.gz" % version]
    with tarfile.open(build / "collections" / tarballs[0]) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert (manifest["collection_info"]["namespace"], manifest["collection_info"]["name"]) == ("ragops", "gpu_stack")
    for path in ("playbooks/site.yml", "playbooks/drift_check.yml", "roles/gpu_metrics/tasks/main.yml",
                 "roles/host_python/files/requirements.txt", "plugins/modules/gpu_info.py", "meta/runtime.yml"):
        assert path in names, path
    assert not [n for n in names if n.startswith(("sim/build", ".venv", "collections/"))]
    containerfile = (out / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="ragops-ee-base:latest"' in containerfile
    assert "ENV PIP_CONSTRAINT=/build/constraints.txt" in containerfile
    galaxy_stage = containerfile[containerfile.index("AS galaxy"):containerfile.index("AS builder")]
    assert re.search(r"ansible-galaxy collection install --offline --collections-path /usr/share/ansible/collections "
                     r"/build/collections/ragops-gpu_stack-\*\.tar\.gz", galaxy_stage)
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in containerfile.split("AS final")[1]


def test_bindep_names_the_packages_for_both_families():
    from bindep.depends import Depends

    deps = Depends((ROOT / "bindep.txt").read_text())
    for profile, expected in ((["platform:dpkg"], {"tar", "openssh-client"}), (["platform:rpm"], {"tar", "openssh-clients"})):
        assert {rule[0] for rule in deps.active_rules(profile)} == expected, profile
