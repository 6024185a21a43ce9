"""The simulator: the node image built from nothing (target under 5 min on 2 cores), reused when
unchanged, and a node booted to `systemctl is-system-running` = running (target under 20 s).
--cold removes the simulator's images first (then debootstrap runs again).

    .venv/bin/python benchmarks/bench_sim.py [--cold]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import time

from common import ROOT, nodes, remove, save


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cold", action="store_true")
    args = p.parse_args()
    from gpusim import build

    if args.cold:
        out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                             text=True, check=True).stdout.split()
        drop = [i for i in out if i.split(":")[0] in ("gpu-sim-node", "gpu-sim-node-rootfs", "gpu-sim-base")
                or i.split(":")[0] in build.SERVICE_IMAGES]
        if drop:
            subprocess.run(["docker", "rmi", "-f", *drop], check=True, capture_output=True)
        shutil.rmtree(build.BUILD, ignore_errors=True)
    t0 = time.monotonic()
    build.build_all()
    first = time.monotonic() - t0
    t0 = time.monotonic()
    build.build_all()
    again = time.monotonic() - t0
    names, _inv, boot = nodes("bench-boot", count=3)
    remove(names)
    save("sim", {"build_s": round(first, 1), "build_cold": args.cold, "rebuild_unchanged_s": round(again, 2),
                 "boot_to_running_s": [round(v, 2) for v in boot.values()]})


if __name__ == "__main__":
    main()
