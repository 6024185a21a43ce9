"""HAProxy's cost: the same bounded load straight to an LLM instance and through HAProxy, in one run.

A simulated node is converged with gpu_stack_load_balancer: all, so the LLM has one instance
behind HAProxy: 127.0.0.1:18003 is the instance itself, 127.0.0.1:8003 the same instance through
HAProxy. scripts/rag-load runs inside the node (loopback only), 16 connections with keep-alive, a
fixed number of POST requests per round, the rounds alternating direct and through HAProxy; the
medians are reported. Two loads: a fixed rate well below saturation (--rate, the latency HAProxy
adds to a request; target: p50 overhead under 10 %), and as fast as it goes (the most requests per
second; on two cores HAProxy, the service and the load generator share the CPUs).

    .venv/bin/python benchmarks/bench_lb.py [--rounds 5] [--requests 4000] [--rate 300]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess

from common import ROOT, nodes, playbook, remove, save

LOAD = ROOT / "scripts" / "rag-load"
BODY = '{"prompt": "What is the capital of France?"}'


def load(node, url, requests, concurrency, rate=0):
    proc = subprocess.run(["docker", "exec", "-i", node, "python3", "-", url, "--post", BODY, "--keepalive",
                           "--requests", str(requests), "--concurrency", str(concurrency), "--duration", "600",
                           "--rate", str(rate)],
                          stdin=LOAD.open("rb"), capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    if result["failed"]:
        raise SystemExit("%s: %d requests failed: %s" % (url, result["failed"], result["failures"]))
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=int, default=300)
    args = p.parse_args()
    names, inv, _boot = nodes("bench-lb")
    node = names[0]
    try:
        playbook(ROOT / "site.yml", inv, extra_vars={"gpu_stack_load_balancer": "all"})
        urls = {"direct": "http://127.0.0.1:18003/v1/completions", "haproxy": "http://127.0.0.1:8003/v1/completions"}
        load(node, urls["haproxy"], 500, args.concurrency)  # warm up both paths
        load(node, urls["direct"], 500, args.concurrency)
        out = {"requests_per_round": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
               "keepalive": True}
        for name, rate in (("fixed_rate", args.rate), ("saturated", 0)):
            runs = {"direct": [], "haproxy": []}
            for _ in range(args.rounds):
                for way in ("direct", "haproxy"):
                    runs[way].append(load(node, urls[way], args.requests, args.concurrency, rate))
            part = {"rate": rate or None}
            for way, results in runs.items():
                part[way] = {"requests_per_s": round(statistics.median(r["requests_per_s"] for r in results), 1),
                             "p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in results), 3),
                             "p99_ms": round(statistics.median(r["latency_ms"]["p99"] for r in results), 3)}
            part["p50_overhead_pct"] = round(100.0 * (part["haproxy"]["p50_ms"] / part["direct"]["p50_ms"] - 1), 1)
            part["p99_overhead_pct"] = round(100.0 * (part["haproxy"]["p99_ms"] / part["direct"]["p99_ms"] - 1), 1)
            out[name] = part
        save("lb", out)
    finally:
        remove(names)


if __name__ == "__main__":
    main()
