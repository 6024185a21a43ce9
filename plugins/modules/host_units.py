#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: host_units
short_description: Start, stop or restart several systemd units and enable or disable them, in one call
version_added: 0.4.0
description:
  - The unit changes that go with M(ragops.gpu_stack.host_state). A role that has read its units in one call and
    decided on the controller which of them are not as wanted changes those in one call too, instead of one
    M(ansible.builtin.systemd_service) task (and round trip) per unit.
  - Units are handled in the order given, each as M(ansible.builtin.systemd_service) would handle it - enabled or
    disabled where C(systemctl is-enabled) says otherwise, then started where it is not active (a oneshot service, which
    is inactive once it ran, runs again), stopped where it is, or restarted. systemd's configuration is reloaded
    first when O(daemon_reload) is set.
  - The first unit that cannot be changed stops the call (the units after it are left as they are); the message names
    the unit, what systemctl said and the last lines of its journal (a service's own words on why it did not start).
  - Each unit is asked for before it is changed, so a unit that is already as wanted is left alone and reported
    unchanged.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  units:
    description: The units, in the order they are changed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit's name (C(.service) where it has no suffix).
        type: str
        required: true
      state:
        description: V(started) starts it where it is not active; V(stopped) stops it where it is; V(restarted) always
          restarts it. Left as it is when not given.
        type: str
        choices: [started, stopped, restarted]
      enabled:
        description: Whether it starts at boot. Left as it is when not given.
        type: bool
  daemon_reload:
    description: Reload systemd's configuration first (after a unit file changed).
    type: bool
    default: false
  journal_lines:
    description: Lines of a failed unit's journal in the message.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Start node_exporter and the reader's timer now and at boot, and write the metrics now
  ragops.gpu_stack.host_units:
    daemon_reload: true
    units:
      - {name: prometheus-node-exporter, state: started, enabled: true}
      - {name: ragops-gpu-metrics.timer, state: started, enabled: true}
      - {name: ragops-gpu-metrics.service, state: started}
"""

RETURN = r"""
units:
  description: Per unit given, in order (up to the one that failed), what was done (or, in check mode, would be).
  returned: always
  type: list
  elements: dict
  sample: [{name: ragops-gpu-metrics.timer, active: inactive, enabled: false, actions: [enabled, started],
            changed: true}]
"""

from ansible.module_utils.basic import AnsibleModule

ACTIVE = ("active", "activating", "reloading")


class UnitError(Exception):
    pass


def systemctl(run, *args):
    rc, out, err = run(["systemctl"] + list(args))
    return rc, out.strip(), err.strip()


def journal(run, name, lines):
    _rc, out, _err = run(["journalctl", "--unit", name, "--lines", str(lines), "--no-pager", "--output", "cat"])
    return " / ".join(line for line in out.strip().splitlines() if line.strip()) or "nothing"


def one(run, unit, check_mode, lines):
    name = unit["name"]
    rc, out, _err = systemctl(run, "show", name, "--property=LoadState,ActiveState")
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if rc != 0 or props.get("LoadState") == "not-found":
        raise UnitError("%s is not a unit systemd knows on this host; install the package or the unit file that "
                        "provides it first" % name)
    active = props.get("ActiveState", "unknown")
    enabled = systemctl(run, "is-enabled", name)[0] == 0
    actions = []
    if unit["enabled"] is not None and unit["enabled"] != enabled:
        actions.append("enabled" if unit["enabled"] else "disabled")
    if unit["state"] == "started" and active not in ACTIVE:
        actions.append("started")
    elif unit["state"] == "stopped" and active in ACTIVE:
        actions.append("stopped")
    elif unit["state"] == "restarted":
        actions.append("restarted")
    if not check_mode:
        for action in actions:
            verb = {"enabled": "enable", "disabled": "disable", "started": "start", "stopped": "stop",
                    "restarted": "restart"}[action]
            rc, _out, err = systemctl(run, verb, name)
            if rc != 0:
                raise UnitError("systemctl %s %s failed (exit %d: %s); its journal: %s" % (
                    verb, name, rc, err or "no message", journal(run, name, lines)))
    return {"name": name, "active": active, "enabled": enabled, "actions": actions, "changed": bool(actions)}


def run_units(params, check_mode, run):
    """The units in order; returns the result (failed, with msg, at the first unit that could not be changed)."""
    done = []
    if params["daemon_reload"] and not check_mode:
        rc, _out, err = systemctl(run, "daemon-reload")
        if rc != 0:
            return {"failed": True, "changed": False, "units": done,
                    "msg": "host_units: systemctl daemon-reload failed (exit %d: %s); no unit was changed" % (rc, err)}
    for unit in params["units"]:
        try:
            done.append(one(run, unit, check_mode, params["journal_lines"]))
        except UnitError as exc:
            before = any(u["changed"] for u in done)
            return {"failed": True, "changed": before, "units": done,
                    "msg": "host_units: %s%s" % (exc, "; the units before it were changed" if before else "")}
    return {"changed": any(u["changed"] for u in done), "units": done}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", choices=["started", "stopped", "restarted"]),
                enabled=dict(type="bool"),
            )),
            daemon_reload=dict(type="bool", default=False),
            journal_lines=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )

    def run(argv):
        return module.run_command(argv, check_rc=False, environ_update={"SYSTEMD_PAGER": "", "LC_ALL": "C"})

    result = run_units(module.params, module.check_mode, run)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
