# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: service_containers
short_description: A plan's services as the elements of one gpu_container call
version_added: 0.4.0
description:
  - Turns M(ragops.gpu_stack.gpu_plan)'s C(plan.services) into the O(ragops.gpu_stack.gpu_container#module:containers)
    list, so that every service's container is compared (and changed where it differs) in one round trip to the host.
  - Each element passes the service's C(container) mapping through unchanged, with C(state=started), the service's
    C(health_url), and C(recreate), C(adopt) and C(harden) decided per service as the role's settings say.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The plan's C(services).
    type: list
    elements: dict
    required: true
  restart_models:
    description: Repository IDs of models restaged in this run; a service of one of them is recreated.
    type: list
    elements: str
    default: []
  rolling:
    description: Services changed one instance at a time through the load balancer; never recreated here.
    type: list
    elements: str
    default: []
  adopt:
    description: Container names that may replace a container the collection did not make.
    type: list
    elements: str
    default: []
  harden:
    description: Recreate containers made before the hardening options.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Run each service pinned to its GPUs, in one call
  ragops.gpu_stack.gpu_container:
    containers: "{{ plan.services | ragops.gpu_stack.service_containers(restart_models=['BAAI/bge-m3']) }}"
"""

RETURN = r"""
_value:
  description: One O(ragops.gpu_stack.gpu_container#module:containers) element per service, in the plan's order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def service_containers(services, restart_models=None, rolling=None, adopt=None, harden=False):
    restart_models, rolling, adopt = restart_models or [], rolling or [], adopt or []
    out = []
    for service in services:
        if not isinstance(service, dict) or "container" not in service:
            raise AnsibleFilterError("service_containers: expected gpu_plan's plan.services (mappings with a container), "
                                     "got %r" % (service,))
        element = {"container": service["container"], "state": "started",
                   "recreate": (service.get("model") or {}).get("repo_id") in restart_models
                   and service.get("name") not in rolling,
                   "adopt": service.get("container_name") in adopt, "harden": bool(harden)}
        if service.get("health_url"):
            element["health_url"] = service["health_url"]
        out.append(element)
    return out


class FilterModule:
    def filters(self):
        return {"service_containers": service_containers}
