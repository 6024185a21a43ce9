# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: as_loop_results
short_description: One call's results in a loop's shape, each with the entry it was made from
version_added: 0.4.0
description:
  - Pairs the results of one call of a module's list form (RV(ragops.gpu_stack.gpu_container#module:results),
    RV(ragops.gpu_stack.model_stage#module:results)) with the entries its elements were made from, in order, and
    returns each result with its entry as C(item), the shape a loop over the entries registers. What reads the
    results (the health checks, the deployment record, the staging of what a host lacks) reads them the same either
    way.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The results, one per element, in order.
    type: list
    elements: dict
    required: true
  items:
    description: The entries the elements were made from (such as a plan's services), in the same order.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Keep one result per service, with its plan entry
  ansible.builtin.set_fact:
    containers: "{{ run.results | ragops.gpu_stack.as_loop_results(plan.services) }}"
"""

RETURN = r"""
_value:
  description: Each result with C(item) set to its entry.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def as_loop_results(results, items):
    results, items = list(results), list(items)
    if len(results) != len(items):
        raise AnsibleFilterError("as_loop_results: %d result(s) for %d entries; pass the entries the call's elements were "
                                 "made from" % (len(results), len(items)))
    return [dict(result, item=item) for result, item in zip(results, items)]


class FilterModule:
    def filters(self):
        return {"as_loop_results": as_loop_results}
