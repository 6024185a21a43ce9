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
             ("docker_engine", "nvidia_driver", "nvidia_container_toolkit", "gpu_services", "gpu_health")]
    assert order == sorted(order)
    # (hf_models runs inside docker_engine while Docker installs: included, so not listed)
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


def test_the_controller_matrix_agrees_with_runtime_setup_and_readme():
    """requirements/matrix.yml is the one list of tested ansible-core versions: meta/runtime.yml
    requires its oldest, its main entry is the pin `make setup` installs, and the README's support
    table names every entry and the end-to-end choice for CI."""
    import re

    import yaml
    from gpusim import controllers

    ctls = controllers.load()
    key = [tuple(int(x) for x in c.core.split(".")) for c in ctls]
    assert key == sorted(key), "requirements/matrix.yml: list the entries oldest first"
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=%s.0" % ctls[0].line
    pin = re.search(r"^ansible-core==(\S+)", (ROOT / "requirements" / "requirements.txt").read_text(), re.M).group(1)
    assert [c.core for c in ctls if c.main] == [pin]
    readme = (ROOT / "README.md").read_text()
    support = readme[readme.index("## Requirements and support"):readme.index("## Aiming it at real hosts")]
    for ctl in ctls:
        assert "%s (Python %s)" % (ctl.core, ctl.python) in support, "README support table lacks %r" % ctl
    assert "end to end for %s" % " and ".join(controllers.ci_e2e()) in support
    for role in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        assert yaml.safe_load(role.read_text())["galaxy_info"]["min_ansible_version"] == ctls[0].line, role
