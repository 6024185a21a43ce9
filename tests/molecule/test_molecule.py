# -*- coding: utf-8 -*-
"""Every molecule scenario (molecule/*), each its full sequence: destroy, create, prepare, a
check-mode converge that must not fail, converge, idempotence (0 changed), the testinfra verifier,
destroy. Run here so that `make test` covers them and reports each one by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def molecule_env(sim):
    from gpusim import nodes

    return nodes.molecule_env()


def test_every_role_has_a_scenario():
    assert {"docker_engine", "nvidia_driver", "nvidia_container_toolkit", "host_stack", "drift_timer"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(molecule_env, scenario):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", PY_COLORS="0", ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own
    proc = subprocess.run([str(Path(sys.executable).parent / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    for step in ("check", "converge", "idempotence", "verify"):
        assert "%s > %s: Executed: Successful" % (scenario, step) in out, out[-4000:]
