"""Drift check wall time for one converged simulated host and for four in one run (forks >= 4;
targets: one host under 15 s, four hosts under twice one host).

    .venv/bin/python benchmarks/bench_drift.py [--rounds 3]
"""
from __future__ import annotations

import argparse

from common import ROOT, nodes, playbook, remove, save, stats


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    from gpusim import build, nodes as sim_nodes

    names, inv, _boot = nodes("bench-drift", count=4)
    single = inv.parent / "bench-drift-one"
    sim_nodes.write_sim_inventory(build.build_all(), names=names[:1], dest=single)
    try:
        playbook(ROOT / "site.yml", inv, "--forks", "8")
        one, four = [], []
        for _ in range(args.rounds):
            s, _out = playbook(ROOT / "playbooks" / "drift_check.yml", single)
            one.append(s)
            s, _out = playbook(ROOT / "playbooks" / "drift_check.yml", inv, "--forks", "8")
            four.append(s)
        save("drift", {"one_host_s": stats(one), "four_hosts_s": stats(four),
                       "four_over_one": round(stats(four)["median"] / stats(one)["median"], 2), "forks": 8})
    finally:
        remove(names)


if __name__ == "__main__":
    main()
