#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: drift_info
short_description: Compare a GPU host with what site.yml would make it, read-only
version_added: 0.1.0
description:
  - Compares the host with the inventory's service map planned onto its live GPUs, the host roles' pins and the record
    the services role wrote at deploy time, and returns typed findings, each with C(type), C(host), C(object),
    C(expected), C(actual), C(severity) (critical, warning) and a C(remediation) hint. Changes nothing.
  - "Containers: missing, stopped, unhealthy, restarting, wrong image ID, wrong GPUs (by UUID), env / ports / volumes /
    shm and the other compared settings changed, a host-index C(CUDA_VISIBLE_DEVICES), an unexpected container on a
    pinned GPU."
  - "GPUs: lost or fallen off the bus, thresholds crossed (temperature, memory, ECC, row remapping, NVLink, slowdown),
    a foreign process on a pinned GPU, a different UUID at an index (board replaced)."
  - "Driver stack: package versions against the pins and holds, the loaded kernel module against the library
    (Driver/library version mismatch), the fabric manager, the nvidia runtime in daemon.json."
  - "Models: missing or modified files (size, mtime and inode; sha256 with O(full_verify)), the wrong revision."
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
  - ragops.gpu_stack.attributes.actiongroup_gpu
  - ragops.gpu_stack.service_map
options:
  thresholds:
    description: GPU health thresholds, C(gpu_stack_thresholds).
    type: dict
    default: {}
  gpu_thresholds:
    description: Memory and utilisation thresholds per GPU index, C(gpu_stack_gpu_thresholds) (docs/gpu-load.md).
    type: dict
    default: {}
  image_sources:
    description: C(gpu_stack_image_sources); a source's C(id) is the image ID containers must run.
    type: dict
    default: {}
  packages:
    description: Package name to the version it must have (apt syntax, trailing C(*) allowed).
    type: dict
    default: {}
  holds:
    description: Packages that must be held.
    type: list
    elements: str
    default: []
  fabricmanager:
    description: The fabric manager must be running.
    type: bool
    default: false
  docker_runtime:
    description: Runtime that must be in daemon.json (empty to skip).
    type: str
    default: nvidia
  daemon_json_path:
    description: Path of daemon.json.
    type: path
    default: /etc/docker/daemon.json
  deployed_state_path:
    description: The record written by the gpu_services role at deploy time.
    type: path
    default: /etc/ragops/gpu-stack/deployed.json
  failover_record_path:
    description:
      - The host's failover record (written by C(playbooks/failover.yml)). Its moves are what should run; each active
        move is a finding (C(failover.active), C(failover.cpu_fallback), C(failover.stopped)), so the check exits 2
        while a failover is in force.
    type: path
    default: /etc/ragops/gpu-stack/failover.json
  haproxy_socket:
    description:
      - HAProxy's runtime API socket, read when the plan puts services behind the load balancer (role
        C(load_balancer)). Findings are HAProxy down, a backend or server missing or extra, a server not C(UP).
    type: path
    default: /run/haproxy/admin.sock
  full_verify:
    description: Re-hash every staged model file (sha256) instead of comparing size, mtime and inode.
    type: bool
    default: false
  nvml_timeout:
    description: Seconds NVML may take.
    type: int
    default: 15
  host_label:
    description: Name to put in each finding's C(host) (the inventory hostname); defaults to the host's name.
    type: str
  docker_host:
    description: Docker engine address.
    type: str
    aliases: [docker_url]
  api_timeout:
    description: Seconds a Docker API call may take.
    type: int
    default: 60
requirements:
  - docker (the Docker SDK for Python) and nvidia-ml-py on the managed host
seealso:
  - module: ragops.gpu_stack.gpu_plan
  - module: ragops.gpu_stack.gpu_info
"""

EXAMPLES = r"""
- name: Check the host against the map and the pins
  ragops.gpu_stack.drift_info:
    services: "{{ gpu_stack_services }}"
    overrides: "{{ gpu_stack_service_overrides }}"
    common_env: "{{ gpu_stack_common_env }}"
    reserved_gpus: "{{ gpu_stack_reserved_gpus }}"
    expected_gpus: "{{ gpu_stack_expected_gpus }}"
    thresholds: "{{ gpu_stack_thresholds }}"
    packages:
      nvidia-driver-550: 550.127.05-1
    holds: [nvidia-driver-550]
    fabricmanager: true
  register: drift
"""

RETURN = r"""
status:
  description: C(clean) or C(drift).
  returned: always
  type: str
  sample: drift
findings:
  description: Typed findings.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: Finding type, e.g. C(container.stopped), C(gpu.lost), C(driver.package_version), C(model.modified_file).
      type: str
    host:
      description: Inventory hostname.
      type: str
    object:
      description: What it is about.
      type: str
    expected:
      description: What site.yml would make it.
      type: raw
    actual:
      description: What it is.
      type: raw
    severity:
      description: C(critical) or C(warning).
      type: str
    remediation:
      description: What to do.
      type: str
    detail:
      description: One short line, expected -> found; for mappings the keys changed (old -> new), missing and extra.
      type: str
    group:
      description:
        - C(GPU N) for the findings one GPU's fault causes (its C(gpu.*) findings and the C(plan.unplannable) it
          makes), printed under one headline by the summary; null for the others.
      type: str
summary:
  description: C(total), C(by_type), C(by_severity).
  returned: always
  type: dict
gpus:
  description: Per GPU, C(index), C(uuid), C(status), C(memory_used_mib), C(memory_expected_mib) (what the plan expects it
    to hold) and C(utilization_pct).
  returned: always
  type: list
  elements: dict
driver_state:
  description: The NVIDIA driver state from NVML.
  returned: always
  type: str
plan_hash:
  description: Hash of the plan the map makes today (null when it cannot be planned).
  returned: always
  type: str
deployed_plan_hash:
  description: Hash of the plan deployed last.
  returned: always
  type: str
failover:
  description: The moves of the host's failover record, one line each.
  returned: always
  type: list
  elements: str
info:
  description:
    - Capacity notes, not drift - a GPU whose utilisation is outside C(utilization_target_pct), naming the GPU and the
      figure.
  returned: always
  type: list
  elements: str
"""

import copy
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import (
    DOCKER_CLIENT_ARGS, HAS_DOCKER, EngineError, client)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._drift import run
from ansible_collections.ragops.gpu_stack.plugins.module_utils._haproxy import DEFAULT_SOCKET
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import MAP_ARGS


def main():
    argument_spec = dict(
        MAP_ARGS,
        thresholds=dict(type="dict", default={}),
        gpu_thresholds=dict(type="dict", default={}),
        image_sources=dict(type="dict", default={}),
        packages=dict(type="dict", default={}),
        holds=dict(type="list", elements="str", default=[]),
        fabricmanager=dict(type="bool", default=False),
        docker_runtime=dict(type="str", default="nvidia"),
        daemon_json_path=dict(type="path", default="/etc/docker/daemon.json"),
        deployed_state_path=dict(type="path", default="/etc/ragops/gpu-stack/deployed.json"),
        failover_record_path=dict(type="path", default="/etc/ragops/gpu-stack/failover.json"),
        haproxy_socket=dict(type="path", default=DEFAULT_SOCKET),
        full_verify=dict(type="bool", default=False),
        nvml_timeout=dict(type="int", default=15),
        host_label=dict(type="str"),
    )
    argument_spec.update(copy.deepcopy(DOCKER_CLIENT_ARGS))
    argument_spec["api_timeout"]["default"] = 60
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    api = None
    if HAS_DOCKER:
        try:
            api = client(module.params["docker_host"], module.params["api_timeout"])
        except EngineError as exc:
            module.fail_json(msg="drift check: %s" % exc)
    else:
        module.fail_json(msg="drift check: the docker SDK is missing for %s; run the host_python role" % module._name)

    def run_command(argv):
        return module.run_command(argv, check_rc=False)

    result = run(module.params, api, run_command, module.params["host_label"] or socket.gethostname())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
