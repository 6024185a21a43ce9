"""site.yml on a fleet of simulated 8x A100 nodes: 1, 4 and 8 nodes (forks 8) from bare to healthy, then the
converged rerun (changed=0 on every host). Target: the 8-node rerun at most 3x the 1-node rerun. Reported
next to the wall times: the controller's CPU seconds (user + system of the ansible-playbook process tree,
the docker exec clients of the connection included), in all and per host; and the whole machine's busy CPU
seconds during the rerun (controller, dockerd, the nodes), which on these shared cores bound the ratio from
below: floor_N_over_1 is that CPU spread over every core, over the 1-node rerun.

    .venv/bin/python benchmarks/bench_fleet.py [--sizes 1,4,8]

The controller's model cache is kept between sizes (the first size's first run fills it), so the first runs
of the larger fleets copy models from the controller only, as a fleet's later hosts do.
"""
from __future__ import annotations

import argparse
import re

import os

from common import ROOT, machine_busy, nodes, playbook_cpu, remove, save

FORKS = 8


def changed(out, names):
    recap = out.split("PLAY RECAP")[-1]
    return {n: int(re.search(r"^%s\s*:.*?changed=(\d+)" % re.escape(n), recap, re.M).group(1)) for n in names}


def one_size(count):
    names, inv, _boot = nodes("bench-fleet", count=count)
    try:
        first, _out, first_cpu = playbook_cpu(ROOT / "site.yml", inv, "--forks", str(FORKS))
        busy0 = machine_busy()
        rerun, out, rerun_cpu = playbook_cpu(ROOT / "site.yml", inv, "--forks", str(FORKS))
        busy = machine_busy() - busy0
        return {"nodes": count, "first_run_s": round(first, 1), "first_run_cpu_s": round(first_cpu, 1),
                "rerun_s": round(rerun, 1), "rerun_cpu_s": round(rerun_cpu, 1),
                "rerun_cpu_s_per_host": round(rerun_cpu / count, 2),
                "rerun_machine_cpu_s": round(busy, 1), "rerun_machine_cpu_s_per_host": round(busy / count, 2),
                "rerun_cores_busy": round(busy / rerun, 2), "rerun_changed": changed(out, names)}
    finally:
        remove(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    runs = {str(n): one_size(n) for n in sizes}
    result = {"forks": FORKS, "sizes": runs}
    if "1" in runs:
        cores = os.cpu_count()
        for n in sizes[1:]:
            result["rerun_%d_over_1" % n] = round(runs[str(n)]["rerun_s"] / runs["1"]["rerun_s"], 2)
            # the same work spread perfectly over every core still takes its machine CPU / cores: the least
            # ratio this machine allows for that work
            result["floor_%d_over_1" % n] = round(runs[str(n)]["rerun_machine_cpu_s"] / cores / runs["1"]["rerun_s"], 2)
        result["target"] = "rerun_8_over_1 <= 3"
    save("fleet", result)


if __name__ == "__main__":
    main()
