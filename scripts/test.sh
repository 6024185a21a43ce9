#!/usr/bin/env bash
# make test: the single test entry point (.ci/run calls it). Stages:
#   1. ansible-lint, production profile (collections/ excluded)
#   2. ansible-test sanity on the built collection, from a physical ansible_collections/ragops/gpu_stack
#   3. the controller matrix (requirements/matrix.yml): ansible-test sanity and the unit tests with every
#      other ansible-core release line (2.16-2.18 here, 2.20-2.21 in a Debian 13 controller container)
#   4. pytest: unit, simulator, modules against the real dockerd, molecule scenarios, end to end (the
#      controller matrix's end-to-end pass for its oldest and newest entries among them)
# Every stage runs even when an earlier one failed, so one run shows everything; the exit status is
# non-zero if any stage failed, and the last line is pytest's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "test: no .venv; run 'make setup' first" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
failed=()
stage() { printf '\n===== %s =====\n' "$1"; }

stage "ansible-lint (production)"
ansible-lint || failed+=("ansible-lint")

stage "ansible-test sanity"
scripts/sanity.sh || failed+=("ansible-test sanity")

stage "Docker engine for the simulator, module and molecule tests"
scripts/ensure-docker || failed+=("ensure-docker")

stage "controller matrix: sanity and unit tests of the other ansible-core versions"
scripts/test-matrix --skip-main --stages sanity,units || failed+=("controller matrix")

stage "pytest"
if [ ${#failed[@]} -gt 0 ]; then
  echo "earlier stages failed: ${failed[*]}"
fi
pytest -ra --durations=25 tests  # the slowest, to keep CI in its budget
rc=$?
if [ $rc -ne 0 ] || [ ${#failed[@]} -gt 0 ]; then
  [ ${#failed[@]} -gt 0 ] && echo "FAILED stages: ${failed[*]}" >&2
  exit 1
fi
