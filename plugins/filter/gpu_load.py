# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_load
short_description: GPU memory and utilisation judged against the plan
version_added: 0.2.0
description:
  - Compares what each GPU holds (M(ragops.gpu_stack.gpu_info)) with what the plan expects there (each plan entry's
    C(gpu_memory) - a preallocating service's fraction of each GPU, else its VRAM estimate split over its GPUs) and
    names the GPU, the service or process, the memory used and the memory expected in each warning.
  - Warnings - use above the expectation by more than C(memory_margin_pct) of the GPU's memory, memory on a GPU that
    should be idle, the plain C(memory_alert_pct) alert on GPUs with no preallocating service, a process that is not
    in a container planned on the GPU. Utilisation outside C(utilization_target_pct) is a capacity note, not a
    warning. See docs/gpu-load.md.
  - Fails naming the key, the value and the fix when a threshold is not usable.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The plan's services (M(ragops.gpu_stack.gpu_plan)'s C(plan.services)).
    type: list
    elements: dict
    required: true
  gpu_info:
    description: What M(ragops.gpu_stack.gpu_info) returned on the host.
    type: dict
    required: true
  thresholds:
    description: C(gpu_stack_thresholds).
    type: dict
    default: {}
  gpu_thresholds:
    description: C(gpu_stack_gpu_thresholds), per GPU index.
    type: dict
    default: {}
  containers:
    description:
      - The host's containers, as C(community.docker.docker_host_info) lists them (C(Id) and C(Names)), to attribute
        each GPU process to its container. Omitted, processes are not judged.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Warn about GPU memory that does not match the plan
  ansible.builtin.debug:
    msg: "{{ (plan.services | ragops.gpu_stack.gpu_load(gpu_info=gpus, containers=host.containers)).warnings }}"
"""

RETURN = r"""
_value:
  description: C(gpus) (per GPU C(index), C(uuid), C(used_mib), C(expected_mib), C(margin_mib), C(services),
    C(processes), C(utilization_pct), C(utilization_verdict) (above, below, in target), C(status), C(warnings),
    C(notes)), C(warnings) (each C(kind), C(gpu), C(uuid), C(message)) and C(notes).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_load import LoadError, judge


def gpu_load(services, gpu_info, thresholds=None, gpu_thresholds=None, containers=None):
    ids = None
    if containers is not None:
        ids = dict((c.get("Id"), (c.get("Names") or ["/?"])[0].lstrip("/")) for c in containers)
    try:
        return judge(services, gpu_info, thresholds, gpu_thresholds, ids)
    except LoadError as exc:
        raise AnsibleFilterError("gpu_load: %s" % exc)


class FilterModule:
    def filters(self):
        return {"gpu_load": gpu_load}
