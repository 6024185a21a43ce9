#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_failover
short_description: Decide a GPU failover or failback from the map, the live GPUs and the host's record
version_added: 0.2.0
description:
  - The guide's emergency procedures as a decision, computed on the controller and changing nothing by itself.
    O(action=failover) finds every service instance whose GPUs cannot run it (see M(ragops.gpu_stack.gpu_info)'s
    failing issues; a down NVLink only matters inside a tensor-parallel group) and moves it to healthy, free reserved
    GPUs (VRAM under the limit, an NVLink path inside each tensor-parallel group, the failed GPUs' NUMA node
    preferred, then the lowest indices); when none is left, to its CPU mode (C(cpu_fallback) in the map), else it is
    stopped. It returns the new failover record; C(playbooks/failover.yml) writes it and applies it through
    M(ragops.gpu_stack.gpu_plan).
  - O(action=failback) says which moves can go back to the map's GPUs (healthy again, or a new board at that index)
    and which must wait, and why.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
  - ragops.gpu_stack.attributes.actiongroup_gpu
  - ragops.gpu_stack.service_map
options:
  gpu_info:
    description: The registered result of M(ragops.gpu_stack.gpu_info) on the host.
    type: dict
    required: true
  record:
    description: The host's failover record as read (empty when there is none).
    type: dict
    default: {}
  action:
    description: Decide a failover, or list what can fail back.
    type: str
    choices: [failover, failback]
    default: failover
  now:
    description: The time stamped on new moves (ISO 8601, UTC).
    type: str
  origin:
    description: Who decided the moves, recorded with them.
    type: str
    default: failover.yml
  min_interval_s:
    description:
      - The automatic path (the scheduled drift check, C(gpu_stack_failover_auto)). Set, moves are decided at most
        once per this many seconds, counted from the last automatic failover that moved something
        (C(last_auto_at) in the record); moves that must wait are reported in RV(skipped). The record's moves say
        C(by=drift check (automatic)).
    type: int
seealso:
  - module: ragops.gpu_stack.gpu_info
  - module: ragops.gpu_stack.gpu_plan
"""

EXAMPLES = r"""
- name: Decide the failover
  ragops.gpu_stack.gpu_failover:
    services: "{{ gpu_stack_services }}"
    reserved_gpus: "{{ gpu_stack_reserved_gpus }}"
    gpu_info: "{{ gpu_facts }}"
    record: "{{ failover_record }}"
    now: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%SZ') }}"
  delegate_to: localhost
  register: decision
"""

RETURN = r"""
record:
  description:
    - The failover record after the decision (O(action=failover)) -- C(version), C(moves) and C(last_auto_at). Each
      move has C(container_name), C(service), C(instance), C(mode) (C(gpu), C(cpu) or C(stopped)), C(mapped) (the
      map's GPUs), C(from), C(to) (C(index) and C(uuid)), C(failed) (per GPU or link the reason), C(at), C(by) and
      C(note).
  returned: always
  type: dict
changes:
  description: The moves decided in this run (empty when nothing needs to move).
  returned: always
  type: list
  elements: dict
lines:
  description: One readable line per move decided in this run.
  returned: always
  type: list
  elements: str
ready:
  description: With O(action=failback), the moves that can go back now, in order (C(container_name), C(service), C(note)).
  returned: always
  type: list
  elements: dict
waiting:
  description: With O(action=failback), the moves that must stay, with C(why).
  returned: always
  type: list
  elements: dict
skipped:
  description: With O(min_interval_s), why moves were not decided now (null when they were, or none were needed).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._failover import (
    FailoverError, automatic, describe, failback, failover, normalise_record)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import (
    MAP_ARGS, ServiceMapError, check_settings, instance_views, validate_services, with_defaults)


def main():
    module = AnsibleModule(
        argument_spec=dict(MAP_ARGS, gpu_info=dict(type="dict", required=True), record=dict(type="dict", default={}),
                           action=dict(type="str", choices=["failover", "failback"], default="failover"),
                           now=dict(type="str"), origin=dict(type="str", default="failover.yml"),
                           min_interval_s=dict(type="int")),
        supports_check_mode=True,
    )
    p = with_defaults(module.params)
    bad = check_settings(p)
    if bad:
        module.fail_json(msg="the GPU map cannot be deployed: " + " | ".join(bad), errors=bad)
    if p["gpu_info"].get("driver_state", "ok") != "ok":
        module.fail_json(msg="failover needs the GPUs: the NVIDIA driver is not usable (%s); fix the driver first"
                         % p["gpu_info"].get("driver_error"))
    try:
        normalised = validate_services(p["services"], p["overrides"], p["common_env"], p["bind_address"])
        views = [v for s in normalised if s["enabled"] for v in instance_views(s)]
        record = normalise_record(p["record"])
        if p["action"] == "failback":
            out = failback(views, p["gpu_info"], record, p["memory_limit_pct"])
            module.exit_json(changed=False, record=record, changes=[], lines=[], skipped=None, **out)
        if p["min_interval_s"] is not None:
            out = automatic(views, p["gpu_info"], p["reserved_gpus"], record, p["memory_limit_pct"], p["now"],
                            p["min_interval_s"])
        else:
            out = failover(views, p["gpu_info"], p["reserved_gpus"], record, p["memory_limit_pct"], p["now"],
                           p["origin"])
    except (ServiceMapError, FailoverError) as exc:
        module.fail_json(msg="failover: " + " | ".join(exc.errors), errors=exc.errors)
    module.exit_json(changed=False, record=out["record"], changes=out["changes"],
                     lines=[describe(m) for m in out["changes"]], ready=[], waiting=[], skipped=out.get("skipped"))


if __name__ == "__main__":
    main()
