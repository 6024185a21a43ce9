"""site.yml on the simulated 8x A100 node: from a bare node to all services healthy, then the
idempotent second run and check mode (targets: first run at most 50 s, median of the runs; the second
run at most 25 % of the first, in the same run), with the controller's CPU seconds of each, and where the
first run's time goes: the CPU seconds of the controller, the node and the whole machine, its cores busy
(of the machine's), and its seconds and tasks per role and by what each task cost (over a second, a host round
trip, the controller alone).

    .venv/bin/python benchmarks/bench_site.py [--runs N]

Each run starts from a fresh node; with several runs the figures are the medians and every run is kept
(on the 2-core build machine the first run varies by several seconds from run to run).
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
from pathlib import Path

from common import ROOT, by_role, machine_busy, node_cpu, nodes, playbook_cpu, remove, save, task_times


def by_length(times):
    """A run's tasks by what they cost: over a second each (named: the installs, copies and loads), from 0.15 s to a
    second (the other host round trips: a module run on the node costs at least about that), and under 0.15 s (what
    the controller decides alone: facts, asserts, includes, skipped tasks). Counts and seconds."""
    long = [[t, s] for t, s in times if s >= 1.0]
    trips = [s for _t, s in times if 0.15 <= s < 1.0]
    local = [s for _t, s in times if s < 0.15]
    return {"over_1s": {"tasks": len(long), "seconds": round(sum(s for _t, s in long), 1), "each": long},
            "0.15_to_1s": {"tasks": len(trips), "seconds": round(sum(trips), 1)},
            "under_0.15s": {"tasks": len(local), "seconds": round(sum(local), 1)}}


def one_run():
    cache = Path.home() / ".cache" / "ragops" / "models"
    shutil.rmtree(cache, ignore_errors=True)  # the controller's model cache starts empty too
    names, inv, boot = nodes("bench-site")
    try:
        busy0, node0 = machine_busy(), node_cpu(names[0])
        first, out1, first_cpu = playbook_cpu(ROOT / "site.yml", inv)
        busy1, node1 = machine_busy(), node_cpu(names[0])
        second, out2, second_cpu = playbook_cpu(ROOT / "site.yml", inv)
        check, out3, check_cpu = playbook_cpu(ROOT / "site.yml", inv, "--check")
        recap = lambda out: re.search(r"changed=(\d+)", out.split("PLAY RECAP")[-1]).group(1)
        tasks = lambda out: re.search(r"ok=(\d+)", out.split("PLAY RECAP")[-1]).group(1)
        return {"node_boot_s": round(boot[names[0]], 2), "first_run_s": round(first, 1),
                "second_run_s": round(second, 1), "second_over_first": round(second / first, 2),
                "check_run_s": round(check, 1), "check_over_first": round(check / first, 2),
                "cpu_s": {"first": round(first_cpu, 1), "second": round(second_cpu, 1), "check": round(check_cpu, 1)},
                "changed": {"first": recap(out1), "second": recap(out2),
                                                            "check": recap(out3)},
                "tasks_ok_second": tasks(out2),
                # where the first run's time goes: the CPU of the controller (ansible-playbook and its workers), of
                # the node (its container), of the whole machine (both, and dockerd serving the connection)
                "first_run_cpu_s": {"controller": round(first_cpu, 1),
                                    "node": round(node1 - node0, 1) if node0 is not None else None,
                                    "machine": round(busy1 - busy0, 1)},
                "first_run_cores_busy": round((busy1 - busy0) / first, 2),
                "first_run_by_role": by_role(task_times(out1)),
                "first_run_by_length": by_length(task_times(out1)),
                "second_run_by_role": by_role(task_times(out2)),
                "second_run_by_length": by_length(task_times(out2)),
                "second_run_slowest": [[t, s] for t, s in task_times(out2)[:15]]}
    finally:
        remove(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    result = dict(runs[-1])
    for key in ("node_boot_s", "first_run_s", "second_run_s", "second_over_first", "check_run_s", "check_over_first",
                "first_run_cores_busy"):
        result[key] = round(statistics.median(r[key] for r in runs), 2)
    if len(runs) > 1:
        result["runs"] = runs
    save("site", result)


if __name__ == "__main__":
    main()
