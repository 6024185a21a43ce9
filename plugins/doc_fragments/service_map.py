# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The inventory's service map, as gpu_plan, drift_info and gpu_failover take it (arguments:
    # _service_map.MAP_ARGS). Every option is raw: _service_map.check_settings checks types and ranges
    # with messages that name the inventory variable.
    DOCUMENTATION = r"""
options:
  services:
    description:
      - The service map, C(gpu_stack_services). Each entry is documented in the collection's
        C(docs/inventory-schema.md).
    type: raw
    required: true
  overrides:
    description: Per-service partial entries merged into the map (C(gpu_stack_service_overrides)), a dict.
    type: raw
    default: {}
  common_env:
    description: Environment added to every service (C(gpu_stack_common_env)), a dict; a service's own C(env) wins.
    type: raw
    default: {}
  bind_address:
    description: Host IP address ports are published on unless a service sets its own (C(gpu_stack_bind_address)).
    type: raw
    default: 127.0.0.1
  reserved_gpus:
    description:
      - GPU indices kept for scaling and failover (C(gpu_stack_reserved_gpus)); only C(tier=secondary) services may
        use them.
      - A list of distinct GPU indices.
    type: raw
    default: []
  load_balancer:
    description:
      - Which services the load balancer fronts (C(gpu_stack_load_balancer)). C(auto) those with more than one
        instance, C(all) every service, C(none) none (a service with instances is then refused).
      - A service behind it keeps its client port (the load balancer listens there); its instances publish
        loopback backend ports.
      - One of C(auto), C(all), C(none).
    type: raw
    default: auto
  memory_limit_pct:
    description:
      - Most of a GPU's memory (percent, in (0, 100]) the VRAM estimates on it may add up to
        (C(gpu_stack_gpu_memory_limit_pct)).
    type: raw
    default: 90
  expected_gpus:
    description:
      - What the host must have, C(count), C(name) and C(nvswitch) (C(gpu_stack_expected_gpus)); checked against the
        live GPUs.
    type: raw
  models_root:
    description:
      - Host directory holding the staged Hugging Face cache, mounted read-only into every container
        (C(hf_models_root)); an absolute path of its own (not a system directory).
    type: raw
    default: /opt/models/hf
"""
