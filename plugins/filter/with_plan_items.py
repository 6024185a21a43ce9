# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: with_plan_items
short_description: One call's results in a loop's shape, each with the plan entry it was for
version_added: 0.4.0
description:
  - Pairs the RV(ragops.gpu_stack.gpu_container#module:results) of one call with the plan entries its elements came
    from, in order, and returns each result with the entry as C(item), the shape a loop over the entries registers.
    What reads the results (the health checks, the deployment record) reads them the same either way.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The results, one per element, in order.
    type: list
    elements: dict
    required: true
  items:
    description: The plan entries the elements were made from, in the same order.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Keep one result per service, with its plan entry
  ansible.builtin.set_fact:
    containers: "{{ run.results | ragops.gpu_stack.with_plan_items(plan.services) }}"
"""

RETURN = r"""
_value:
  description: Each result with C(item) set to its plan entry.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def with_plan_items(results, items):
    results, items = list(results), list(items)
    if len(results) != len(items):
        raise AnsibleFilterError("with_plan_items: %d result(s) for %d plan entries; pass the entries the call was made "
                                 "from" % (len(results), len(items)))
    return [dict(result, item=item) for result, item in zip(results, items)]


class FilterModule:
    def filters(self):
        return {"with_plan_items": with_plan_items}
