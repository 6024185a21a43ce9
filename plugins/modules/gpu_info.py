#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_info
short_description: NVIDIA GPU facts and health through NVML
version_added: 0.1.0
description:
  - Reads every NVIDIA GPU on the host through NVML (the C(nvidia-ml-py) binding of C(libnvidia-ml.so.1)) in one
    session and reports identity, locality, memory, utilisation, thermals, power, modes, ECC and row-remapper
    counters, clock event reasons, the NVLink topology and running compute processes, plus driver, NVML and CUDA
    driver versions.
  - Judges each GPU C(ok), C(warn) or C(fail) with reasons, against thresholds that default to the GPU allocation
    guide's values. Hard faults (a lost GPU, uncorrectable ECC errors, a pending row remap or a remap failure, an
    NVLink link down on an NVSwitch system, hardware slowdown) are C(fail).
  - A GPU that errors (lost, fallen off the bus) is reported with its error instead of failing the whole call.
  - NVML runs in a child process with a hard timeout, so a hung driver fails the task instead of the play.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
  - ragops.gpu_stack.attributes.actiongroup_gpu
options:
  thresholds:
    description:
      - Health thresholds. Unset keys keep the defaults.
    type: dict
    default: {}
    suboptions:
      temperature_warn_c:
        description: Temperature (C) at which a GPU is C(warn).
        type: int
        default: 80
      temperature_limit_c:
        description: Temperature (C) at which a GPU is C(fail).
        type: int
        default: 83
      memory_alert_pct:
        description:
          - Memory use (percent) worth a note here. Whether it is a warning depends on what runs on the GPU (a vLLM
            service preallocates 90 %); the health check and the drift check judge it against the plan.
        type: int
        default: 85
      memory_margin_pct:
        description:
          - Percent of a GPU's memory its use may exceed the plan's expectation by before the health check and the
            drift check warn. Not used here.
        type: int
        default: 5
      utilization_target_pct:
        description: Utilisation target range; outside it is a note (capacity, not health).
        type: list
        elements: int
        default: [70, 85]
  timeout:
    description: Seconds NVML may take for the whole read before the task fails.
    type: int
    default: 15
  tolerate_missing_driver:
    description:
      - When no usable driver is found (library or binding missing, kernel module not loaded, driver/library version
        mismatch, or NVML hanging past O(timeout)), return C(driver_installed) / C(driver_state) and C(gpu_count=0)
        instead of failing.
    type: bool
    default: false
  kmod_version_path:
    description: Where the loaded kernel module reports its version.
    type: path
    default: /sys/module/nvidia/version
requirements:
  - nvidia-ml-py (import name C(pynvml)) on the managed host
  - the NVIDIA driver (C(libnvidia-ml.so.1))
seealso:
  - module: ragops.gpu_stack.gpu_plan
notes:
  - Memory figures are MiB, power watts, temperatures degrees Celsius.
"""

EXAMPLES = r"""
- name: Read the GPUs
  ragops.gpu_stack.gpu_info:
    thresholds: "{{ gpu_stack_thresholds }}"
  register: gpus

- name: Fail when a GPU is unhealthy
  ansible.builtin.assert:
    that: gpus.health.status != 'fail'
    fail_msg: "GPUs {{ gpus.health.failing_gpus }} are failing"

- name: Before the driver is installed
  ragops.gpu_stack.gpu_info:
    tolerate_missing_driver: true
  register: gpus
"""

RETURN = r"""
driver_installed:
  description: Whether an NVIDIA driver is installed (false when the library or binding is missing).
  returned: always
  type: bool
  sample: true
host_cpus:
  description: The host's CPU count (the most a service in its CPU mode may be given).
  returned: always
  type: int
  sample: 256
driver_state:
  description:
    - C(ok), C(not_installed), C(not_loaded), C(version_mismatch), or C(hung) (NVML did not answer within O(timeout);
      only with O(tolerate_missing_driver), otherwise the task fails).
  returned: always
  type: str
  sample: ok
driver_error:
  description: Why the driver is unusable, with what to do; null when it is usable.
  returned: always
  type: str
  sample: null
driver_version:
  description: Driver version (the loaded kernel module's).
  returned: always
  type: str
  sample: 550.127.05
kernel_module_version:
  description: The loaded nvidia kernel module's version.
  returned: always
  type: str
  sample: 550.127.05
nvml_version:
  description: NVML library version.
  returned: always
  type: str
  sample: 12.550.127.05
cuda_driver_version:
  description: CUDA driver API version.
  returned: always
  type: str
  sample: "12.4"
gpu_count:
  description: Number of GPUs NVML enumerates (lost GPUs included).
  returned: always
  type: int
  sample: 8
nvswitch:
  description: Whether the GPUs are connected through NVSwitches.
  returned: always
  type: bool
  sample: true
gpus:
  description: One entry per GPU, by index. A GPU that errors has only C(index), C(error), C(error_message), C(status)
    and C(reasons) (and C(pci_bus_id) when known).
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML index.
      type: int
      sample: 2
    uuid:
      description: GPU UUID.
      type: str
      sample: GPU-ed75865f-7207-500b-9012-48cb72a0354d
    name:
      description: Product name.
      type: str
      sample: NVIDIA A100-SXM4-80GB
    pci_bus_id:
      description: PCI bus id.
      type: str
      sample: 00000000:47:00.0
    numa_node:
      description: NUMA node, or null.
      type: int
      sample: 1
    cpu_affinity:
      description: CPUs local to the GPU.
      type: str
      sample: 16-31,144-159
    memory:
      description: C(total_mib), C(used_mib), C(free_mib), C(used_pct).
      type: dict
    utilization:
      description: C(gpu_pct), C(memory_pct).
      type: dict
    temperature:
      description: C(gpu_c) and the driver's C(slowdown_c), C(shutdown_c), C(gpu_max_c), C(memory_max_c).
      type: dict
    power:
      description: C(draw_w), C(limit_w).
      type: dict
    clocks:
      description: The current C(sm_mhz) and C(memory_mhz) clocks (null where the GPU does not report them).
      type: dict
      version_added: 0.4.0
    persistence_mode:
      description: Persistence mode.
      type: bool
    mig_mode:
      description: MIG mode (current).
      type: bool
    compute_capability:
      description: CUDA compute capability.
      type: str
      sample: "8.0"
    ecc:
      description: C(enabled) and uncorrected / corrected counts, C(volatile) (since boot) and C(aggregate).
      type: dict
    remapped_rows:
      description: C(correctable), C(uncorrectable), C(pending), C(failure).
      type: dict
    clocks_event_reasons:
      description: Active clock event (throttle) reasons.
      type: list
      elements: str
      sample: [gpu_idle]
    nvlink:
      description: Per link C(link), C(active), C(remote_type) (gpu / switch) and C(remote_pci_bus_id).
      type: list
      elements: dict
    nvlink_peers:
      description: Indices of the GPUs this one reaches over NVLink.
      type: list
      elements: int
    processes:
      description: Running compute processes, C(pid), C(used_mib), C(name), and C(container_id) (the container it runs
        in, from its cgroup; null outside a container).
      type: list
      elements: dict
    status:
      description: C(ok), C(warn) or C(fail).
      type: str
    reasons:
      description: Why the status is not C(ok).
      type: list
      elements: str
    issues:
      description: The reasons as C(kind) (C(gpu.lost), C(gpu.temperature), C(gpu.ecc), C(gpu.row_remap),
        C(gpu.slowdown), C(gpu.nvlink), C(gpu.persistence), C(gpu.mig), C(gpu.xid)), C(severity) (fail or warn)
        and C(message).
      type: list
      elements: dict
    notes:
      description: Informational observations (memory over the alert, utilisation outside the target, application Xids).
      type: list
      elements: str
health:
  description: Summary, C(status), C(failing_gpus), C(warning_gpus) and the C(thresholds) applied.
  returned: always
  type: dict
  sample: {status: ok, failing_gpus: [], warning_gpus: [], thresholds: {temperature_warn_c: 80}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import (
    DriverUnavailable, NvmlError, gather)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            thresholds=dict(type="dict", default={}, options=dict(
                temperature_warn_c=dict(type="int", default=80),
                temperature_limit_c=dict(type="int", default=83),
                memory_alert_pct=dict(type="int", default=85),
                memory_margin_pct=dict(type="int", default=5),
                utilization_target_pct=dict(type="list", elements="int", default=[70, 85]),
            )),
            timeout=dict(type="int", default=15),
            tolerate_missing_driver=dict(type="bool", default=False),
            kmod_version_path=dict(type="path", default="/sys/module/nvidia/version"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        facts = gather(p["thresholds"], p["timeout"], p["tolerate_missing_driver"], p["kmod_version_path"])
    except DriverUnavailable as exc:
        module.fail_json(msg="NVIDIA driver unusable (%s): %s" % (exc.state, exc), driver_state=exc.state)
    except NvmlError as exc:
        module.fail_json(msg="NVML failed: %s" % exc, nvml_error=exc.name)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
