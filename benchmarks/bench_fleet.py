"""site.yml on a fleet of simulated 8x A100 nodes: 1, 4 and 8 nodes (forks 8) from bare to healthy, then the
converged rerun (changed=0 on every host). Target: the 8-node rerun at most 3x the 1-node rerun. Reported
next to the wall times: the controller's CPU seconds (user + system of the ansible-playbook process tree,
the docker exec clients of the connection included), in all and per host.

    .venv/bin/python benchmarks/bench_fleet.py [--sizes 1,4,8]

The controller's model cache is kept between sizes (the first size's first run fills it), so the first runs
of the larger fleets copy models from the controller only, as a fleet's later hosts do.
"""
from __future__ import annotations

import argparse
import re

from common import ROOT, nodes, playbook_cpu, remove, save

FORKS = 8


def changed(out, names):
    recap = out.split("PLAY RECAP")[-1]
    return {n: int(re.search(r"^%s\s*:.*?changed=(\d+)" % re.escape(n), recap, re.M).group(1)) for n in names}


def one_size(count):
    names, inv, _boot = nodes("bench-fleet", count=count)
    try:
        first, _out, first_cpu = playbook_cpu(ROOT / "site.yml", inv, "--forks", str(FORKS))
        rerun, out, rerun_cpu = playbook_cpu(ROOT / "site.yml", inv, "--forks", str(FORKS))
        return {"nodes": count, "first_run_s": round(first, 1), "first_run_cpu_s": round(first_cpu, 1),
                "rerun_s": round(rerun, 1), "rerun_cpu_s": round(rerun_cpu, 1),
                "rerun_cpu_s_per_host": round(rerun_cpu / count, 2), "rerun_changed": changed(out, names)}
    finally:
        remove(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    runs = {str(n): one_size(n) for n in sizes}
    result = {"forks": FORKS, "sizes": runs}
    if "1" in runs:
        for n in sizes[1:]:
            result["rerun_%d_over_1" % n] = round(runs[str(n)]["rerun_s"] / runs["1"]["rerun_s"], 2)
        result["target"] = "rerun_8_over_1 <= 3"
    save("fleet", result)


if __name__ == "__main__":
    main()
