"""Staging a multi-GB synthetic model with model_stage against `rsync -a` of the same files
followed by `sha256sum` (which reads every byte twice; staging reads once, hashing while it copies,
in parallel across files). Targets: first stage at least as fast as the baseline (ratio >= 1.0);
a rerun on unchanged files at least 10x faster than the first stage. Page caches are dropped before
each timed step when the machine allows it.

    .venv/bin/python benchmarks/bench_model_stage.py [--gb 3] [--files 6] [--dir /var/tmp/ragops-bench]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import save

REPO, REV = "bench/synthetic", "b" * 40


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def make_source(src: Path, total_gb: float, files: int):
    src.mkdir(parents=True)
    block = os.urandom(16 * 1024 * 1024)
    per = int(total_gb * 1024 ** 3 / files)
    manifest = []
    for i in range(files):
        h = hashlib.sha256()
        path = src / ("model-%05d-of-%05d.safetensors" % (i + 1, files))
        with open(path, "wb") as fh:
            written = 0
            counter = i << 40  # distinct content per file (identical files would share one blob)
            while written < per:
                chunk = (counter.to_bytes(8, "little") + block)[: min(len(block) + 8, per - written)]
                fh.write(chunk)
                h.update(chunk)
                written += len(chunk)
                counter += 1
        manifest.append({"path": path.name, "size": per, "sha256": h.hexdigest()})
    return manifest


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gb", type=float, default=3.0)
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--dir", default="/var/tmp/ragops-bench")
    args = p.parse_args()
    from ansible_collections.ragops.gpu_stack.plugins.module_utils import _model_stage as ms

    base = Path(args.dir)
    shutil.rmtree(base, ignore_errors=True)
    src, dst, root = base / "src", base / "rsync-dst", base / "hf"
    manifest = make_source(src, args.gb, args.files)
    total = sum(f["size"] for f in manifest)
    try:
        dropped = drop_caches()
        t0 = time.monotonic()
        subprocess.run(["rsync", "-a", "%s/" % src, "%s/" % dst], check=True)
        out = subprocess.run("sha256sum %s/*" % dst, shell=True, check=True, capture_output=True, text=True).stdout
        baseline = time.monotonic() - t0
        assert sorted(line.split()[0] for line in out.splitlines()) == sorted(f["sha256"] for f in manifest)
        shutil.rmtree(dst)
        drop_caches()
        params = {"repo_id": REPO, "revision": REV, "root": str(root), "files": manifest, "allow_patterns": None,
                  "require_safetensors": True, "source": {"path": str(src)}, "verify": "quick", "workers": None,
                  "min_free_bytes": 0, "ref": "main"}
        t0 = time.monotonic()
        first = ms.run(params)
        stage = time.monotonic() - t0
        drop_caches()
        t0 = time.monotonic()
        again = ms.run(params)
        rerun = time.monotonic() - t0
        assert first["changed"] and not again["changed"]
        save("model_stage", {
            "bytes": total, "files": args.files, "caches_dropped": dropped,
            "rsync_plus_sha256sum_s": round(baseline, 2), "model_stage_first_s": round(stage, 2),
            "model_stage_rerun_s": round(rerun, 3),
            "first_vs_baseline_ratio": round(baseline / stage, 2), "rerun_speedup": round(stage / rerun, 1),
            "model_stage_throughput_mb_s": first["throughput_mb_s"]})
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
