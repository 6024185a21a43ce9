# -*- coding: utf-8 -*-
"""The site project works from the repository root after make setup: playbooks parse against the
seed's inventory and every module's documentation renders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))


def run(*cmd):
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          check=False, timeout=300)


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/health_check.yml", "playbooks/drift_check.yml",
                                      "playbooks/drift_timer.yml"])
def test_playbooks_pass_syntax_check_against_the_a100_inventory(playbook):
    proc = run("ansible-playbook", playbook, "-i", "inventories/a100", "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_site_lists_its_tasks_in_order():
    proc = run("ansible-playbook", "site.yml", "-i", "inventories/a100", "--list-tasks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    order = [proc.stdout.index("ragops.gpu_stack.%s :" % role) for role in
             ("docker_engine", "nvidia_driver", "nvidia_container_toolkit", "hf_models", "gpu_services", "gpu_health")]
    assert order == sorted(order)
    assert proc.stdout.index("Preflight") < order[0]


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_renders(module):
    proc = run("ansible-doc", "ragops.gpu_stack.%s" % module)
    assert proc.returncode == 0, proc.stderr
    assert "ragops.gpu_stack.%s" % module in proc.stdout and "EXAMPLES" in proc.stdout and "RETURN VALUES" in proc.stdout


def test_filter_documentation_renders():
    proc = run("ansible-doc", "-t", "filter", "ragops.gpu_stack.openpgp_fingerprints")
    assert proc.returncode == 0, proc.stderr
    assert "ragops.gpu_stack.openpgp_fingerprints" in proc.stdout and "RETURN VALUES" in proc.stdout
    assert "WARNING" not in proc.stderr, proc.stderr
