#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_container
short_description: GPU-pinned service containers, compared in canonical form
version_added: 0.1.0
description:
  - Manages a service container on the host's Docker engine through the Docker SDK, pinned to its GPUs (or several in one call,
    O(containers)).
  - "Why not M(community.docker.docker_container): that module is the reference for option semantics, and this one
    keeps its surface to what a GPU service needs, adding three things it lacks: a GPU-aware comparison (device
    requests normalised to UUIDs, so a container started with C(--gpus device=1) equals one pinned to GPU 1's UUID),
    UUID pinning from M(ragops.gpu_stack.gpu_plan), and labels that record what the container is meant to be
    (service, GPU UUIDs, configuration and plan hashes, image ID, model revision) for drift checks."
  - Desired and actual configuration are compared in canonical form (env as a map without what the image itself sets,
    ports, volumes and ulimits as sets, sizes in bytes); the container is left alone, updated in place (restart
    policy only) or recreated. A change of GPUs always recreates (Docker cannot change device requests in place).
  - A recreate never leaves the service down on failure, the new container is created under a temporary name and
    started after the old one stops; if it cannot start (GPU refused, port taken) it is removed and the old one is
    started again.
  - Check mode and C(--diff) come from the same comparison.
  - The image must already be on the host; nothing is pulled.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.actiongroup_gpu
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description: Container name. Required unless O(container) names it.
    type: str
  container:
    description:
      - The container's options in one mapping, as M(ragops.gpu_stack.gpu_plan) emits them for each service
        (C(plan.services[].container)), passed through unchanged. Its keys are C(name) and the options from O(image)
        to O(security_opts), validated like the top-level options.
      - An option given both here and at the top level (other than at its default) with another value is refused.
    type: dict
  state:
    description: C(started), C(stopped) (created, not running) or C(absent).
    type: str
    choices: [started, stopped, absent]
    default: started
  image:
    description:
      - Image reference; must be present on the host. Required with O(state=started). With O(state=stopped) and no
        image, an existing container is stopped as it is, without comparing its configuration.
    type: str
  gpus:
    description:
      - GPUs for the device request, by UUID (C(GPU-...)) or index, or as the C(gpus) entries of a
        M(ragops.gpu_stack.gpu_plan) service (C(index) and C(uuid)), which also lets an index-based request of an
        existing container compare equal to the same GPU's UUID.
      - Mutually exclusive with O(gpu_count). Empty means no GPU.
    type: list
    elements: raw
    default: []
  gpu_count:
    description: Request this many GPUs (C(-1) for all) instead of specific ones. Not for pinned services.
    type: int
  env:
    description: Environment. Variables the image sets with the same value are not drift.
    type: dict
    default: {}
  ports:
    description:
      - Published ports, C([host_ip:]host_port:container_port[/proto]). Without C(host_ip) the port is published on
        O(default_host_ip).
    type: list
    elements: str
    default: []
  default_host_ip:
    description: Host address for published ports that do not name one.
    type: str
    default: 127.0.0.1
  volumes:
    description: Bind mounts, C(host_path:container_path[:ro|rw]). Models are mounted C(ro).
    type: list
    elements: str
    default: []
  shm_size:
    description: Size of C(/dev/shm), e.g. C(32g). Unset means Docker's 64 MiB.
    type: str
  ipc_mode:
    description: IPC mode. Unset leaves the engine's default and ignores it in comparisons.
    type: str
  ulimits:
    description: Limits by name, a number (soft = hard), C(soft:hard) or a dict with C(soft) and C(hard).
    type: dict
    default: {}
  cpus:
    description: CPU limit in CPUs (C(docker run --cpus)), e.g. for a service in its CPU mode. Unset leaves no limit
      and ignores it in comparisons.
    type: float
  memory:
    description: Memory limit, e.g. C(32g) (C(docker run --memory)). Unset leaves no limit. A hardening option.
    type: str
  restart_policy:
    description: Restart policy; changed in place without a restart.
    type: str
    choices: ["no", on-failure, always, unless-stopped]
    default: unless-stopped
  healthcheck:
    description: Docker healthcheck. Durations in seconds; without C(test) the image's test is used.
    type: dict
    default: {}
    suboptions:
      test:
        description: Healthcheck command, e.g. C([CMD, curl, -f, http://127.0.0.1:8000/health]).
        type: list
        elements: str
      interval:
        description: Seconds between probes.
        type: int
        default: 30
      timeout:
        description: Seconds a probe may take.
        type: int
        default: 10
      retries:
        description: Failed probes before C(unhealthy).
        type: int
        default: 3
      start_period:
        description: Seconds of grace after start while models load.
        type: int
        default: 60
  log_driver:
    description: Logging driver.
    type: str
    default: json-file
  log_options:
    description: Logging options; the default caps the log at five 50 MB files.
    type: dict
    default: {max-size: 50m, max-file: "5"}
  labels:
    description:
      - Labels. C(io.ragops.gpu-stack.plan-hash) is recorded but not compared, so a change to another service does not
        restart this one. C(managed-by) and C(image-id) labels are added.
    type: dict
    default: {}
  user:
    description: User (C(uid[:gid])). Unset keeps the image's and ignores it in comparisons.
    type: str
  command:
    description: Arguments for the image's entrypoint. Unset keeps the image's.
    type: list
    elements: str
  security_opts:
    description: Security options. The container is never privileged.
    type: list
    elements: str
    default: [no-new-privileges]
  cap_drop:
    description:
      - Capabilities dropped; by default all of them (add back what the service needs with O(cap_add)). This and
        O(cap_add), O(read_only), O(tmpfs), O(pids_limit) and O(memory) are the hardening options, set on every
        container created and compared on those created with them (label C(io.ragops.gpu-stack.hardening)); see
        O(harden).
    type: list
    elements: str
    default: [ALL]
  cap_add:
    description: Capabilities added back after O(cap_drop), such as C(SYS_NICE).
    type: list
    elements: str
    default: []
  read_only:
    description: A read-only root filesystem; give the paths the service writes to as O(tmpfs).
    type: bool
    default: false
  tmpfs:
    description: Memory-backed scratch mounts, a mapping of path to mount options, such as C(/tmp) to C(size=1g).
    type: dict
    default: {}
  pids_limit:
    description: The most processes and threads the container may run. Unset or 0 means no limit.
    type: int
  recreate:
    description: Recreate even when nothing differs.
    type: bool
    default: false
  stop_timeout:
    description: Seconds to wait for a graceful stop.
    type: int
    default: 30
  wait_healthy:
    description: After starting, wait until Docker reports the container healthy (or running, without a healthcheck).
    type: bool
    default: false
  wait_timeout:
    description: Seconds O(wait_healthy) may take.
    type: int
    default: 300
  health_url:
    description:
      - The service's health URL as the host reaches it. When set, a recreate keeps the old container (stopped)
        until the replacement answers it with 200, bounded by the replacement's healthcheck (start period, then
        retries x interval, plus its timeout) and O(wait_timeout); otherwise the replacement is removed and the old
        container runs again. Not part of the container's configuration.
    type: str
  adopt:
    description:
      - Replace or remove a container of this name that the collection did not make (no C(managed-by) label), such
        as one started by hand from the guide's C(docker run) lines. Without it such a container is left alone and
        the task fails naming it.
    type: bool
    default: false
  containers:
    description:
      - Several containers in one call (one round trip to the host instead of one per container), each element a
        mapping of this module's options (such as O(container), O(state), O(recreate), O(adopt), O(harden),
        O(health_url)), validated like them; the engine's address (O(docker_host), O(api_timeout)) comes from the top
        level and no other option may be given there.
      - Every element is validated before any container is touched. The containers are then handled in order, each
        as a call of its own would (a recreate that fails brings that container's old one back); a failure does not
        stop the others, and the task fails naming each container that failed.
      - The results come back in RV(results), one per element, in order.
    type: list
    elements: dict
  harden:
    description:
      - Recreate a container created before the hardening options (no C(io.ragops.gpu-stack.hardening) label) so that
        they apply, through the same health-gated recreate as any other change. Without it such a container keeps
        running as it is, the options that would change are returned in RV(unhardened) and a warning names them.
    type: bool
    default: false
  docker_host:
    description: Docker engine address; defaults to C(DOCKER_HOST) or the local socket.
    type: str
    aliases: [docker_url]
  api_timeout:
    description: Seconds a Docker API call may take.
    type: int
    default: 120
requirements:
  - docker (the Docker SDK for Python) on the managed host
  - a Docker engine with the NVIDIA container toolkit for GPU requests
seealso:
  - module: ragops.gpu_stack.gpu_plan
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Run the LLM service on its two GPUs, by UUID
  ragops.gpu_stack.gpu_container:
    name: rag-llm-server
    image: rag-llm-server:1.0.0
    gpus:
      - GPU-ed75865f-7207-500b-9012-48cb72a0354d
      - GPU-a99ff91a-1e9e-5580-ad82-af479641de73
    env:
      CUDA_VISIBLE_DEVICES: "0,1"
      TENSOR_PARALLEL_SIZE: "2"
      HF_HUB_OFFLINE: "1"
    ports: ["127.0.0.1:8003:8000"]
    volumes: ["/opt/models/hf:/models:ro"]
    shm_size: 32g
    ulimits: {memlock: -1, stack: 67108864}

- name: Deploy every service of the plan, each plan entry's container mapping passed through
  ragops.gpu_stack.gpu_container:
    container: "{{ item.container }}"
    state: started
  loop: "{{ gpu_plan.plan.services }}"

- name: The same in one call (one round trip to the host for all of them)
  ragops.gpu_stack.gpu_container:
    containers:
      - container: "{{ gpu_plan.plan.services[0].container }}"
      - container: "{{ gpu_plan.plan.services[1].container }}"
        recreate: true  # its model was restaged
"""

RETURN = r"""
actions:
  description: What was (or in check mode would be) done, C(create), C(start), C(recreate), C(update), C(stop),
    C(remove).
  returned: unless O(containers) is given
  type: list
  elements: str
  sample: [recreate]
changes:
  description: The compared fields that differed.
  returned: unless O(containers) is given
  type: list
  elements: str
  sample: [gpus, env]
summary:
  description: One line, the container's name and what this run does to it (or would, in check mode).
  returned: unless O(containers) is given
  type: str
  sample: "rag-llm-server: recreate (env)"
findings:
  description: Problems noticed on the existing container, such as a host-index C(CUDA_VISIBLE_DEVICES).
  returned: unless O(containers) is given
  type: list
  elements: str
unhardened:
  description: Hardening options that differ on a container created before them (see O(harden)); empty otherwise.
  returned: unless O(containers) is given
  type: list
  elements: str
  sample: [cap_drop, read_only, tmpfs, pids_limit]
container:
  description: The container after the run, C(id), C(name), C(image), C(image_id), C(status), C(health), C(gpus),
    C(labels); empty when absent.
  returned: unless O(containers) is given
  type: dict
results:
  description:
    - With O(containers), one result per element, in order, each with the keys a single call returns (RV(actions),
      RV(changes), RV(summary), RV(findings), RV(unhardened), RV(container), RV(health)); an element that failed
      has C(failed) and C(msg) instead. With C(--diff) the diffs are in the task's diff, one per element.
  returned: when O(containers) is given
  type: list
  elements: dict
health:
  description: Health when O(wait_healthy) was set.
  returned: when O(wait_healthy=true)
  type: str
  sample: healthy
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import (
    ContainerError, argument_spec, each_container, merge_container)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import (
    DOCKER_IMPORT_ERROR, HAS_DOCKER, EngineError, client)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_container import run


def run_each(module):
    """The list form: every element validated first, then each container in order; one that fails does not
    stop the others."""
    try:
        each = each_container(module.params)
        api = client(module.params["docker_host"], module.params["api_timeout"])
    except (EngineError, ContainerError) as exc:
        module.fail_json(msg=str(exc))
    results, failed = [], []
    for params in each:
        try:
            result = run(api, params, module.check_mode)
        except (EngineError, ContainerError) as exc:
            result = {"changed": False, "failed": True, "msg": str(exc), "summary": "%s: failed" % params["name"],
                      "diff": {}}
            failed.append(str(exc))
        for finding in result.get("findings", []):
            module.warn(finding)
        results.append(result)
    diffs = [result.pop("diff") for result in results]
    out = {"changed": any(result["changed"] for result in results), "results": results}
    if module._diff:
        out["diff"] = [diff for diff in diffs if diff]
    if failed:
        module.fail_json(msg="%d of %d container(s) failed: %s" % (len(failed), len(results), " / ".join(failed)), **out)
    module.exit_json(**out)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("gpus", "gpu_count")],
                           required_one_of=[("name", "container", "containers")])
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (the Docker SDK for Python)"), exception=DOCKER_IMPORT_ERROR)
    if module.params["containers"] is not None:
        run_each(module)
        return
    try:
        params = merge_container(module.params)
        api = client(params["docker_host"], params["api_timeout"])
        result = run(api, params, module.check_mode)
    except (EngineError, ContainerError) as exc:
        module.fail_json(msg=str(exc))
    for finding in result["findings"]:
        module.warn(finding)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
