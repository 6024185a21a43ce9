# -*- coding: utf-8 -*-
"""The second tested GPU host OS: a simulated 8x A100 node built from Debian 13 (trixie), taken from
bare to four healthy services by site.yml, then changed=0 on the rerun and a clean drift check.
Debian 13 differs where the roles say so: docker.io 26.1 with the client in its own docker-cli
package (pinned and held with it), and Python 3.13 for the modules' virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_debian13_node_from_bare_to_healthy_and_clean(node_factory, ansible, tmp_path):
    node = node_factory("gpu-deb13", host_os="debian13")
    assert node.sh(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip() == "trixie"

    first = ansible(ROOT / "site.yml", node.inventory)
    assert first.rc == 0, first
    table = first.out[first.out.index("Services on %s" % node.name):]
    assert table.count(" healthy ") >= 4 and "UNHEALTHY" not in table.split("GPUs on")[0], table[:3000]
    assert node.sh("/opt/ragops/venv/bin/python -c 'import sys; print(sys.version_info[:2])'").stdout.strip() == "(3, 13)"
    held = node.sh("apt-mark showhold").stdout.split()
    assert {"docker.io", "docker-cli", "nvidia-driver-550"} <= set(held), held
    assert node.sh("docker version --format '{{.Server.Version}}'").stdout.startswith("26.1.5")

    again = ansible(ROOT / "site.yml", node.inventory)
    assert again.rc == 0, again
    assert again.recap(node.name)["changed"] == 0, again

    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    bindir = Path(sys.executable).parent
    drift = subprocess.run([sys.executable, str(ROOT / "roles/drift_timer/files/ragops_drift_check.py"),
                            "--project-dir", str(ROOT), "--ansible-playbook", str(bindir / "ansible-playbook"),
                            "--playbook", str(ROOT / "playbooks/drift_check.yml"), "--report-dir", str(tmp_path),
                            "-i", str(node.inventory)], cwd=ROOT, env=env, capture_output=True, text=True,
                           check=False, timeout=600)
    assert drift.returncode == 0, (drift.stdout + drift.stderr)[-6000:]
