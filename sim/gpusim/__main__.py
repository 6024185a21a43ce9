"""gpu-sim command line. Run from the repository root: `python -m sim.gpusim ...` is wrapped by
`make sim`, `make sim-up`, `make sim-down` and scripts/gpu-sim."""
from __future__ import annotations

import argparse
import json
import sys

from . import build, faults, fixtures, nodes
from .util import SimError, eprint


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gpu-sim", description="The simulated NVIDIA GPU host.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the library, packages, repositories and images (cached by content)")
    up = sub.add_parser("up", help="boot simulated nodes and write inventories/sim")
    up.add_argument("-n", "--count", type=int, default=1)
    up.add_argument("--fixture", default=fixtures.DEFAULT, help="one of: " + ", ".join(fixtures.FIXTURES))
    up.add_argument("--os", default=build.DEFAULT_HOST_OS, choices=sorted(build.HOST_OS),
                    help="the node's operating system (default %(default)s)")
    up.add_argument("--privileged", action="store_true", help="run nodes --privileged (normal workstations)")
    up.add_argument("--prefix", help="node name prefix (default from the fixture, e.g. gpu-a100)")
    sub.add_parser("down", help="remove the nodes, the repository server and inventories/sim")
    sub.add_parser("status", help="list simulated nodes")
    sub.add_parser("inventory", help="rewrite inventories/sim for the running nodes")
    fx = sub.add_parser("fixtures", help="write or check sim/fixtures/*.json")
    fx.add_argument("--check", action="store_true")
    fault = sub.add_parser("fault", help="inject a fault into a node's machine",
                           epilog="faults: " + "; ".join(f"{k}: {v}" for k, v in faults.KINDS.items()))
    fault.add_argument("node")
    fault.add_argument("kind", choices=sorted(faults.KINDS) + ["clear"])
    fault.add_argument("--gpu", type=int)
    fault.add_argument("--xid", type=int, default=48)
    fault.add_argument("--count", type=int, default=1)
    fault.add_argument("--temp", type=int, default=91)
    fault.add_argument("--link", type=int, default=0)
    fault.add_argument("--pct", type=int, default=97)
    fault.add_argument("--pid", type=int, default=31337)
    fault.add_argument("--used-mib", type=int, default=2048)
    fault.add_argument("--delay-ms", type=int, default=60000)
    sub.add_parser("libdir", help="print the directory of the default libnvidia-ml.so.1 (for LD_LIBRARY_PATH)")
    sub.add_parser("molecule-env", help="prepare sim/build/molecule for the molecule scenarios")
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            info = build.build_all()
            print(json.dumps({k: info[k] for k in ("node_image", "library_dir", "base_image")}, indent=1))
        elif args.cmd == "up":
            res = nodes.up(args.count, args.fixture, args.privileged or None, args.prefix,
                           host_os=args.os)
            print(json.dumps({"nodes": res["nodes"], "boot_seconds": res["boot_seconds"]}, indent=1))
        elif args.cmd == "down":
            nodes.down()
        elif args.cmd == "status":
            for row in nodes.status():
                print("{node:20} {state:10} {os:9} {fixture}".format(**row))
        elif args.cmd == "inventory":
            nodes.write_sim_inventory(build.build_all())
        elif args.cmd == "fixtures":
            if args.check:
                bad = fixtures.stale()
                if bad:
                    eprint("stale fixtures (run gpu-sim fixtures): " + ", ".join(bad))
                    return 1
                print("fixtures up to date")
            else:
                for path in fixtures.write_all():
                    print(path)
        elif args.cmd == "fault":
            if args.kind == "clear":
                nodes.reset(args.node)
                print(f"{args.node}: machine reset to its fixture")
            else:
                print(nodes.inject(args.node, args.kind, gpu=args.gpu, xid=args.xid, count=args.count,
                                   temp=args.temp, link=args.link, pct=args.pct, pid=args.pid,
                                   used_mib=args.used_mib, delay_ms=args.delay_ms))
        elif args.cmd == "molecule-env":
            print(nodes.molecule_env())
        elif args.cmd == "libdir":
            print(build.default_library_dir())
    except SimError as exc:
        eprint(f"gpu-sim: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
