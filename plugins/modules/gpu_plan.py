#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_plan
short_description: Validate the inventory's GPU service map against the host and resolve it
version_added: 0.1.0
description:
  - Takes the inventory's service map (C(gpu_stack_services)) and, when given, the live result of
    M(ragops.gpu_stack.gpu_info), and returns the resolved allocation plan, or fails before anything on the host
    changes, with one message per problem naming the service(s), the GPU(s) and the fix.
  - It rejects malformed entries, GPU indices or UUIDs the host does not have or that are unhealthy, two services on
    one GPU (unless all of them set C(share_gpus) and the VRAM fits), VRAM estimates over the per-GPU limit, a
    C(tensor_parallel) size that differs from the number of GPUs, tensor-parallel GPUs without an NVLink path between
    every pair, primary services on reserved GPUs, duplicate host ports and container names, and a host that is not
    the machine the map expects.
  - C(CUDA_VISIBLE_DEVICES) given as host indices (inside a container the GPUs are renumbered from 0) is rewritten to
    container-local ordinals, or dropped, with a warning.
  - Every GPU is resolved to its UUID, so a re-enumeration after a reboot cannot move a service. The container-side
    environment gets C(NVIDIA_VISIBLE_DEVICES) by UUID, C(CUDA_DEVICE_ORDER=PCI_BUS_ID) and container-local
    C(CUDA_VISIBLE_DEVICES).
  - Without O(gpu_info) (before the driver is installed) only the checks that need no live GPU run and the plan is
    returned with C(resolved=false).
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
  - ragops.gpu_stack.attributes.actiongroup_gpu
  - ragops.gpu_stack.service_map
options:
  gpu_info:
    description:
      - The registered result of M(ragops.gpu_stack.gpu_info) on this host. Without it, the plan is static.
    type: dict
  failover:
    description:
      - The host's failover record (C(/etc/ragops/gpu-stack/failover.json), written by M(ragops.gpu_stack.gpu_failover)
        through C(playbooks/failover.yml)). The services it moved run where it says, on reserved GPUs by UUID, in
        their CPU mode, or stopped; their plan entries carry C(failover). Empty or unset, the map alone.
    type: dict
    default: {}
  strict:
    description:
      - Fail on any problem (the default). V(false) returns the plan built from what resolves, with every problem in
        RV(errors), for the health check, which shows each service even when the map cannot be deployed as it is.
    type: bool
    default: true
  thresholds:
    description:
      - C(gpu_stack_thresholds), checked here (types and ranges) so that a bad value stops the run before anything on
        the host changes; the health and drift checks use them.
    type: dict
    default: {}
  gpu_thresholds:
    description:
      - C(gpu_stack_gpu_thresholds) - per GPU index, the memory and utilisation thresholds of that GPU (over the
        service's and C(gpu_stack_thresholds)). Checked here like O(thresholds).
    type: dict
    default: {}
  image_sources:
    description:
      - C(gpu_stack_image_sources). When given, every image a service runs (its instances' and its CPU mode's) must
        have a pinned image ID there (its C(id), C(sha256:...)); one without is refused, naming the services and how to read
        the ID. Unset, images are not checked here.
    type: dict
  allow_unpinned_images:
    description:
      - C(gpu_stack_allow_unpinned_images). Let images without a pinned ID run, with a warning on every run.
    type: bool
    default: false
seealso:
  - module: ragops.gpu_stack.gpu_failover
  - module: ragops.gpu_stack.gpu_info
  - module: ragops.gpu_stack.gpu_container
"""

EXAMPLES = r"""
- name: Read the GPUs
  ragops.gpu_stack.gpu_info:
  register: gpu_facts

- name: Plan the services onto them
  ragops.gpu_stack.gpu_plan:
    services: "{{ gpu_stack_services }}"
    overrides: "{{ gpu_stack_service_overrides }}"
    common_env: "{{ gpu_stack_common_env }}"
    reserved_gpus: "{{ gpu_stack_reserved_gpus }}"
    memory_limit_pct: "{{ gpu_stack_gpu_memory_limit_pct }}"
    expected_gpus: "{{ gpu_stack_expected_gpus }}"
    gpu_info: "{{ gpu_facts }}"
  register: gpu_plan

- name: Show the allocation table
  ansible.builtin.debug:
    msg: "{{ gpu_plan.table.split('\n') }}"
"""

RETURN = r"""
plan:
  description: The resolved plan.
  returned: success
  type: dict
  contains:
    version:
      description: Plan format version.
      type: int
      sample: 1
    resolved:
      description: Whether GPUs were resolved against the live host.
      type: bool
      sample: true
    hash:
      description: Stable hash of the whole plan.
      type: str
      sample: 803e8346e8fadb5d0157669560db7f135c2d8f7358c2cada67c67d2f5bdd05ad
    services:
      description:
        - One entry per instance of each enabled service (a service without C(instances) has one) with what
          M(ragops.gpu_stack.gpu_container) needs, C(name) (the service), C(container_name), C(image), C(gpus)
          (index, uuid, name, pci_bus_id), C(gpu_uuids), C(env), C(ports), C(port) (the client port), C(health_url)
          (the instance's own), C(volumes), C(shm_size), C(ipc), C(ulimits), C(healthcheck), C(command), C(user),
          C(model), C(labels), C(config_hash), C(container) (the options for gpu_container), C(instance) (0 for the
          service's own container, then 1, 2, ...), C(behind_load_balancer), C(backend_port), and the map's own fields.
      type: list
      elements: dict
    gpus:
      description: Per host GPU, C(index), C(uuid), C(services), C(reserved), C(status).
      type: list
      elements: dict
    reserved_gpus:
      description: Reserved GPU indices.
      type: list
      elements: int
    memory_limit_pct:
      description: The per-GPU VRAM limit applied.
      type: int
    disabled_services:
      description:
        - The instances of services in the map with C(enabled=false), C(name) and C(container_name); their containers
          are removed.
      type: list
      elements: dict
    service_label:
      description: The label every container of the collection carries (its value is the service's name).
      type: str
      sample: io.ragops.gpu-stack.service
    reserve_left:
      description: Reserved GPU indices no service or instance uses.
      type: list
      elements: int
    load_balancer:
      description:
        - What the C(load_balancer) role configures. C(mode), C(enabled) (some service is behind it) and
          C(services), per service behind it C(name), C(port) and C(bind_address) (where it listens),
          C(health_path), and C(servers) (C(name) = container name, C(address), C(port)).
      type: dict
    fallback_images:
      description: The images of the services' CPU modes (C(cpu_fallback)), staged with the others.
      type: list
      elements: str
    stopped_services:
      description:
        - Instances the failover record stopped (no healthy GPU and no CPU mode), C(name), C(container_name) and
          C(failover); their containers are stopped, not removed.
      type: list
      elements: dict
    failover:
      description:
        - The failover record in force, C(active), C(moves) and C(lines) (one readable line per move).
      type: dict
warnings_list:
  description: What the plan changed or noticed (also emitted as Ansible warnings).
  returned: success
  type: list
  elements: str
  sample: ["service 'llm': CUDA_VISIBLE_DEVICES=2,3 names host GPU indices; ... rewrote it to 0,1"]
table:
  description: The allocation table (GPU, service, VRAM, model, purpose) in Markdown.
  returned: success
  type: str
map:
  description:
    - The effective map - every service entry with the override layers merged and the defaults filled in, disabled
      ones included - what C(playbooks/show_map.yml) prints.
  returned: success
  type: list
  elements: dict
service_label:
  description: The label every container of the collection carries (also on failure, as C(plan.service_label)).
  returned: always
  type: str
errors:
  description: Every reason the map cannot be deployed (with O(strict=false) also on success).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PLAN_ARGS, plan_task


def main():
    # plugins/action/gpu_plan.py runs the same plan_task in the controller's process (no module run); this
    # module is what runs when the action plugin is bypassed, and what ansible-doc documents
    module = AnsibleModule(argument_spec=PLAN_ARGS, supports_check_mode=True)
    result = plan_task(module.params)
    for warning in result.get("warnings_list", []):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
