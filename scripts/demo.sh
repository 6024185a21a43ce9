#!/usr/bin/env bash
# make demo: the main job on a simulated 8x A100 SXM node.
#   1. a Docker engine (scripts/ensure-docker), 2. the simulator (built once, reused),
#   3. one node booted (gpu-a100-01; FIXTURE=... and OS=debian12|debian13 choose the machine and
#      its operating system) and inventories/sim written, 4. site.yml,
#   5. playbooks/health_check.yml: the service and GPU tables.
# The node keeps running for you to look at (docker exec -it gpu-a100-01 bash); make sim-down removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/ansible-playbook ] || { echo "demo: run 'make setup' first" >&2; exit 1; }
export ANSIBLE_CONFIG="$PWD/ansible.cfg" PATH="$PWD/.venv/bin:$PATH"
scripts/ensure-docker
scripts/gpu-sim up --count 1 ${FIXTURE:+--fixture "$FIXTURE"} ${OS:+--os "$OS"}
echo "demo: site.yml -i inventories/sim (a bare node to the four services)"
start=$(date +%s)
ansible-playbook site.yml -i inventories/sim
echo "demo: site.yml took $(( $(date +%s) - start )) s"
ansible-playbook playbooks/health_check.yml -i inventories/sim
echo "demo: done. Look around: docker exec -it gpu-a100-01 nvidia-smi ; remove it: make sim-down"
