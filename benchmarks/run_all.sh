#!/usr/bin/env bash
# make bench: every benchmark; figures land in benchmarks/results/*.json (quoted in the README).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
"$py" benchmarks/bench_sim.py ${BENCH_COLD:+--cold}
"$py" benchmarks/bench_gpu_info.py
"$py" benchmarks/bench_model_stage.py
"$py" benchmarks/bench_containers.py
"$py" benchmarks/bench_site.py --runs 3
"$py" benchmarks/bench_fleet.py
"$py" benchmarks/bench_settings.py
"$py" benchmarks/bench_drift.py
"$py" benchmarks/bench_lb.py
"$py" benchmarks/bench_failover.py
