"""Time to recover from a GPU failure: a fault injected on a converged node, then every service
healthy again, through playbooks/failover.yml (target: under 30 s) and through the drift check's
automatic path (gpu_stack_failover_auto). Each round: inject, recover (timed from the injection
until the playbook has ended and all four /health answer 200 inside the node), clear the fault,
failback (also timed: every moved service back and healthy). Medians over the rounds.

Faults: GPU 0 lost (Whisper, one GPU), and Xid 48 on GPU 3 (the LLM's tensor-parallel pair moves
as a pair).

    .venv/bin/python benchmarks/bench_failover.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import subprocess
import time

from common import ROOT, nodes, playbook, remove, save, stats

PORTS = (8001, 8002, 8003, 8004)


def all_healthy(node):
    script = "; ".join("curl -sf -o /dev/null http://127.0.0.1:%d/health || exit 1" % p for p in PORTS)
    return subprocess.run(["docker", "exec", node, "sh", "-c", script], check=False).returncode == 0


def wait_healthy(node, limit=300):
    deadline = time.monotonic() + limit
    while not all_healthy(node):
        if time.monotonic() > deadline:
            raise SystemExit("%s: services not healthy after %d s" % (node, limit))
        time.sleep(0.2)


def main():
    from gpusim import nodes as sim_nodes

    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    names, inv, _boot = nodes("bench-fo")
    node = names[0]
    faults = {"gpu0_lost": [("lost", {"gpu": 0})], "gpu3_xid48_tp_pair": [("xid", {"gpu": 3, "xid": 48})]}
    paths = {"failover_yml": (ROOT / "playbooks" / "failover.yml", {}),
             # every round moves: no interval between the automatic runs
             "automatic": (ROOT / "playbooks" / "drift_check.yml",
                           {"gpu_stack_failover_auto": True, "gpu_stack_failover_auto_interval_s": 0})}
    try:
        playbook(ROOT / "site.yml", inv)
        wait_healthy(node)
        out = {"rounds": args.rounds, "target_s": 30}
        for fname, injections in faults.items():
            for pname, (pb, extra) in paths.items():
                recover, back = [], []
                for _ in range(args.rounds):
                    t0 = time.monotonic()
                    for kind, kw in injections:
                        sim_nodes.inject(node, kind, **kw)
                    playbook(pb, inv, extra_vars=extra, check=pname == "failover_yml")  # drift exits 2
                    wait_healthy(node)
                    recover.append(time.monotonic() - t0)
                    sim_nodes.reset(node)
                    t1 = time.monotonic()
                    playbook(ROOT / "playbooks" / "failback.yml", inv)
                    wait_healthy(node)
                    back.append(time.monotonic() - t1)
                out["%s_%s" % (fname, pname)] = {"recover_s": stats(recover), "failback_s": stats(back)}
        save("failover", out)
    finally:
        remove(names)


if __name__ == "__main__":
    main()
