"""An idempotent pass over the guide's four containers: gpu_container against
community.docker.docker_container given the same four containers (device requests by UUID, env,
ports, volumes, shm, healthcheck, labels), in one run on the same engine of a simulated node.
Both must report no change on the second pass.

    .venv/bin/python benchmarks/bench_containers.py [--passes 5]
"""
from __future__ import annotations

import argparse
import re

from common import ROOT, WORK, nodes, playbook, remove, save, stats

PLAY = """
- name: Container passes
  hosts: gpu_nodes
  gather_facts: false
  roles:
    - ragops.gpu_stack.gpu_stack  # gpu_stack_python
  tasks:
    - name: Plan
      ansible.builtin.include_role:
        name: ragops.gpu_stack.gpu_services
        tasks_from: plan
    - name: gpu_container pass
      ragops.gpu_stack.gpu_container:
        container: "{{ item.container }}"
      vars:
        ansible_python_interpreter: "{{ gpu_stack_python }}"
      loop: "{{ gpu_services_plan.plan.services }}"
      register: ours
    # the peer's own options, mapped from the plan entry here (ours takes the entry's container mapping)
    - name: docker_container pass
      community.docker.docker_container:
        name: "{{ item.container_name }}-peer"
        image: "{{ item.image }}"
        device_requests:
          - driver: nvidia
            device_ids: "{{ item.gpu_uuids }}"
            # docker 20.10 reports Count 0 next to DeviceIDs; without this the peer recreates every time
            count: 0
            capabilities: [[gpu]]
        env: "{{ item.env }}"
        published_ports: ["{{ item.ports[0].host_ip }}:{{ item.ports[0].host_port + 100 }}:{{ item.ports[0].container_port }}"]
        volumes: "{{ item.volumes }}"
        shm_size: "{{ item.shm_size | default(omit, true) }}"
        ipc_mode: "{{ item.ipc | default(omit, true) }}"
        ulimits: "{{ item.ulimits | dict2items | map(attribute='key') | zip(item.ulimits | dict2items | map(attribute='value')) | map('join', ':') | map('regex_replace', '^(\\\\w+):(-?\\\\d+)$', '\\\\1:\\\\2:\\\\2') | list }}"
        healthcheck:
          interval: "{{ item.healthcheck.interval }}s"
          timeout: "{{ item.healthcheck.timeout }}s"
          retries: "{{ item.healthcheck.retries }}"
          start_period: "{{ item.healthcheck.start_period }}s"
        labels: "{{ item.labels }}"
        restart_policy: unless-stopped
        security_opts: [no-new-privileges]
        log_driver: json-file
        log_options: {max-size: 50m, max-file: "5"}
        state: started
      vars:
        ansible_python_interpreter: "{{ gpu_stack_python }}"
      loop: "{{ gpu_services_plan.plan.services }}"
      register: peer
    - name: Report
      ansible.builtin.debug:
        msg: "ours_changed={{ ours.results | selectattr('changed') | list | length }} peer_changed={{ peer.results | selectattr('changed') | list | length }}"
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--passes", type=int, default=5)
    args = p.parse_args()
    names, inv, _boot = nodes("bench-ctr")
    pb = WORK / "containers.yml"
    pb.write_text(PLAY)
    try:
        playbook(ROOT / "site.yml", inv)
        playbook(pb, inv)  # creates the peer's containers
        ours, peer, changed = [], [], []
        for _ in range(args.passes):
            _s, out = playbook(pb, inv)
            ours.append(float(re.search(r"gpu_container pass -+ ([0-9.]+)s", out).group(1)))
            peer.append(float(re.search(r"docker_container pass -+ ([0-9.]+)s", out).group(1)))
            changed.append(re.search(r"ours_changed=(\d+) peer_changed=(\d+)", out).groups())
        save("containers", {"gpu_container_pass_s": stats(ours), "docker_container_pass_s": stats(peer),
                            "changed_on_repeat_passes": sorted(set(changed)),
                            "ratio_median": round(stats(ours)["median"] / stats(peer)["median"], 2)})
    finally:
        remove(names)


if __name__ == "__main__":
    main()
