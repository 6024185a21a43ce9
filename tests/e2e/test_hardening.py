# -*- coding: utf-8 -*-
"""Hardening on the shared converged node: daemon.json is never overwritten blindly (a file that
cannot be read stops the role before any change) and a daemon.json dockerd will not start with is
rolled back, dockerd started with the previous file, the services running on through it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "tests" / "playbooks" / "roles.yml"
DAEMON_JSON = "/etc/docker/daemon.json"


def running(node):
    return node.sh("docker ps --no-trunc --format '{{.ID}} {{.Names}}' | sort").stdout


def test_a_daemon_json_that_cannot_be_read_stops_the_role_before_any_change(converged, ansible):
    node = converged
    node.sh("mv %s %s.test && mkdir %s" % (DAEMON_JSON, DAEMON_JSON, DAEMON_JSON))
    try:
        run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["docker_engine"]})
        still_a_directory = node.sh("test -d %s" % DAEMON_JSON, check=False).returncode == 0
    finally:
        node.sh("rmdir %s && mv %s.test %s" % (DAEMON_JSON, DAEMON_JSON, DAEMON_JSON))
    assert run.rc != 0
    said = " ".join(run.out.split())
    # slurp's own words vary with ansible-core ("source is a directory ...", "Source is a directory ...: PATH")
    cause = said.split("%s on %s cannot be read (" % (DAEMON_JSON, node.name), 1)[1].split(")", 1)
    assert "directory" in cause[0].lower(), said[-3000:]
    assert cause[1].startswith("; make it a readable file (or remove it). Nothing was changed."), said[-3000:]
    assert still_a_directory and run.recap(node.name)["changed"] == 0


def test_a_daemon_json_dockerd_rejects_is_rolled_back_and_the_services_run_on(converged, ansible):
    node = converged
    before, containers = node.sh("sha256sum %s" % DAEMON_JSON).stdout, running(node)
    node.dirty = True  # dockerd was restarted twice: let the next test that needs it re-converge
    run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["docker_engine"],
                                                     "docker_engine_daemon_json_extra": {"no-such-directive": True}})
    assert run.rc != 0
    said = " ".join(run.out.split())
    assert ("dockerd on %s did not start with the new %s; the file as it was before this run is back and dockerd "
            "runs with it." % (node.name, DAEMON_JSON)) in said, said[-3000:]
    assert "no-such-directive" in said.split("dockerd said:", 1)[1]  # dockerd's own reason, from its journal
    assert node.sh("sha256sum %s" % DAEMON_JSON).stdout == before
    assert node.sh("docker version --format '{{.Server.Version}}'").stdout.strip()
    assert running(node) == containers  # live-restore: the same containers, never stopped
