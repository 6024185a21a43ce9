# -*- coding: utf-8 -*-
"""The controller matrix end to end: each selected ansible-core version (requirements/matrix.yml)
against the shared converged node: site.yml again with changed=0, health_check.yml, the drift check
with exit 0, and no deprecation warning in any of them.

Which versions: RAGOPS_CONTROLLERS (release lines, comma-separated, or "all"); by default the
matrix's `ci_e2e` (the oldest and the newest). `make test-matrix` runs every entry."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from gpusim import controllers

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SELECTED = controllers.select(os.environ.get("RAGOPS_CONTROLLERS") or controllers.ci_e2e())
DEPRECATION = controllers.DEPRECATION_RE


def run(ctl, argv, inventory, report_dir):
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_DEPRECATION_WARNINGS": "1"}
    proc = ctl.run(argv, env=env, mounts=(inventory.parent, report_dir), timeout=1200)
    out = proc.stdout + proc.stderr
    assert not DEPRECATION.search(out), "%r printed deprecation warnings:\n%s" % (
        ctl, "\n".join(line for line in out.splitlines() if DEPRECATION.search(line)))
    return proc.returncode, out


@pytest.mark.parametrize("ctl", SELECTED, ids=[c.line for c in SELECTED])
def test_converged_node_under_controller(ctl, converged, tmp_path):
    ctl.ensure()
    inv = converged.inventory
    # another controller's site.yml could change the node; until it is shown not to, later tests
    # that need the node as site.yml leaves it re-converge it first
    converged.dirty = True
    rc, out = run(ctl, [ctl.bin / "ansible-playbook", "site.yml", "-i", inv], inv, tmp_path)
    assert rc == 0, out[-6000:]
    recap = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0" % re.escape(converged.name), out, re.M)
    assert recap and recap.group(1) == "0", "%r: site.yml on the converged node changed something:\n%s" % (ctl, out[-6000:])

    rc, out = run(ctl, [ctl.bin / "ansible-playbook", "playbooks/health_check.yml", "-i", inv], inv, tmp_path)
    assert rc == 0, out[-6000:]
    table = out[out.index("Services on %s" % converged.name):]
    assert table.count(" healthy ") >= 4 and "UNHEALTHY" not in table, table[:3000]

    rc, out = run(ctl, [ctl.bin / "python", "roles/drift_timer/files/ragops_drift_check.py", "--project-dir", ROOT,
                        "--ansible-playbook", ctl.bin / "ansible-playbook", "--playbook", ROOT / "playbooks/drift_check.yml",
                        "--report-dir", tmp_path, "-i", inv], inv, tmp_path)
    assert rc == 0, "%r: the drift check exited %d on the converged node:\n%s" % (ctl, rc, out[-6000:])
    converged.dirty = False
