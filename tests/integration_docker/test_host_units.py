# -*- coding: utf-8 -*-
"""host_units against the real systemd of the converged simulated node, through ansible-playbook and the docker
connection: check mode plans without changing anything, a unit is enabled and started, a oneshot runs again each time it is
started, a second run changes nothing, stop and restart, and a unit that fails or that systemd does not know stops the
call naming it (with the service's own words from its journal). No mocked systemctl."""

from __future__ import annotations


import pytest
from conftest import module_steps

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UNITS = {
    "t-units-daemon.service": "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
    "t-units-once.service": "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo ran >> /var/tmp/t-units-once'\n",
    "t-units-fails.service": "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo the reader says no; exit 3'\n",
}


def state(node, name):
    return (node.sh("systemctl is-active %s" % name, check=False).stdout.strip(),
            node.sh("systemctl is-enabled %s" % name, check=False).stdout.strip())


def runs(node):
    return len(node.sh("cat /var/tmp/t-units-once 2>/dev/null", check=False).stdout.split())


@pytest.fixture
def units(converged_node):
    node = converged_node
    for name, text in UNITS.items():
        node.sh("printf '%s' > /etc/systemd/system/%s" % (text.replace("'", "'\\''"), name))
    yield node
    # a failed unit stays in systemd's failed list (the node "degraded") until reset: the node is shared
    node.sh("systemctl disable --now t-units-daemon.service >/dev/null 2>&1; systemctl reset-failed %s 2>/dev/null; "
            "rm -f /var/tmp/t-units-once %s; systemctl daemon-reload"
            % (" ".join(UNITS), " ".join("/etc/systemd/system/%s" % n for n in UNITS)))
    assert "t-units" not in node.sh("systemctl list-units --all --failed --no-legend", check=False).stdout


def test_units_are_changed_only_where_not_as_wanted(units, tmp_path):
    node = units
    want = [{"name": "t-units-daemon.service", "state": "started", "enabled": True},
            {"name": "t-units-once.service", "state": "started"}]
    check, apply, again, stop, restart = module_steps(node, "host_units", tmp_path, [
        {"args": {"daemon_reload": True, "units": want}, "check": True},
        {"args": {"daemon_reload": True, "units": want}},
        {"args": {"units": want}},
        {"args": {"units": [{"name": "t-units-daemon", "state": "stopped", "enabled": False}]}},
        {"args": {"units": [{"name": "t-units-daemon.service", "state": "restarted"}]}},
    ])
    assert [u["actions"] for u in check["units"]] == [["enabled", "started"], ["started"]] and check["changed"], check
    # check mode changed nothing: the apply after it finds all to do
    assert [u["actions"] for u in apply["units"]] == [["enabled", "started"], ["started"]] and apply["changed"]
    # ... the daemon runs on (nothing to do); the oneshot, inactive once it ran, runs again
    assert [u["actions"] for u in again["units"]] == [[], ["started"]], again
    assert runs(node) == 2
    assert stop["units"][0]["actions"] == ["disabled", "stopped"] and stop["changed"]
    assert restart["units"][0]["actions"] == ["restarted"]
    assert state(node, "t-units-daemon.service") == ("active", "disabled")
    assert [u["actions"] for u in again["units"]][0] == [] and state(node, "t-units-once.service")[0] == "inactive"


def test_a_unit_that_fails_or_that_systemd_does_not_know_is_named(units, tmp_path):
    node = units
    node.sh("systemctl daemon-reload")
    failed, unknown = module_steps(node, "host_units", tmp_path, [
        {"args": {"units": [{"name": "t-units-once.service", "state": "started"},
                            {"name": "t-units-fails.service", "state": "started"},
                            {"name": "t-units-daemon.service", "state": "started"}]}},
        {"args": {"units": [{"name": "t-units-nowhere.service", "state": "started"}]}},
    ])
    assert failed["failed"] and [u["name"] for u in failed["units"]] == ["t-units-once.service"], failed
    assert failed["msg"].startswith("host_units: systemctl start t-units-fails.service failed (exit "), failed["msg"]
    assert "its journal: " in failed["msg"] and "the reader says no" in failed["msg"].split("its journal: ", 1)[1]
    assert failed["msg"].endswith("; the units before it were changed")
    assert state(node, "t-units-daemon.service")[0] == "inactive"  # the call stopped at the failed unit
    assert unknown["failed"] and unknown["msg"] == (
        "host_units: t-units-nowhere.service is not a unit systemd knows on this host; install the package or the "
        "unit file that provides it first")
