# ragops.gpu_stack: the two commands a newcomer needs are `make setup` and `make test`;
# `make demo` runs site.yml on a simulated 8x A100 node. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup test test-matrix lint sanity unit pytest sim sim-up sim-down molecule demo bench changelog clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## .venv with the pinned toolchain, third-party collections, the collection self-link
	@scripts/setup.sh

test: ## everything CI runs: ansible-lint, ansible-test sanity, the controller matrix (sanity, units), pytest (unit, simulator, modules, molecule, end to end)
	@scripts/test.sh

test-matrix: ## every ansible-core of requirements/matrix.yml: sanity, unit tests, end to end on a simulated node
	@scripts/ensure-docker >/dev/null && scripts/test-matrix

lint: ## ansible-lint, production profile
	@$(BIN)/ansible-lint

sanity: ## ansible-test sanity on the built collection
	@scripts/sanity.sh

unit: ## the fast tests only (no Docker)
	@$(BIN)/pytest -q -m "not docker" tests

sim: ## build the simulator (library, packages, repositories, images), reusing what is unchanged
	@scripts/ensure-docker >/dev/null && scripts/gpu-sim build

sim-up: ## boot N simulated nodes (default 1; FIXTURE=..., OS=debian12|debian13) and write inventories/sim
	@scripts/ensure-docker >/dev/null && scripts/gpu-sim up --count $${N:-1} $${FIXTURE:+--fixture $$FIXTURE} $${OS:+--os $$OS}

molecule: ## the molecule scenarios (one per role, plus the host stack together)
	@scripts/ensure-docker >/dev/null && scripts/gpu-sim molecule-env >/dev/null && for s in molecule/*/molecule.yml; do s=$${s#molecule/}; $(BIN)/molecule test -s $${s%/molecule.yml} || exit 1; done

sim-down: ## remove the simulated nodes and inventories/sim
	@scripts/gpu-sim down

demo: ## site.yml on one simulated 8x A100 node (FIXTURE=..., OS=debian12|debian13), then the health tables
	@scripts/demo.sh

bench: ## benchmarks/ (figures in the README)
	@scripts/ensure-docker >/dev/null && benchmarks/run_all.sh

changelog: ## release notes from changelogs/fragments
	@$(BIN)/antsibull-changelog release

clean: ## remove build outputs (not .venv)
	rm -rf .build .cache/sanity sim/build reports
