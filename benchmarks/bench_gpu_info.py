"""gpu_info against a bare pynvml script reading the same fields, on the simulator's 8x A100
fixture, in one run (target: gpu_info within 1.5x); and the module's round trip on a node through
Ansible (target: under 1 s).

    .venv/bin/python benchmarks/bench_gpu_info.py [--rounds 200] [--no-node]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from common import ROOT, WORK, nodes, playbook, remove, save, stats


def bare(pynvml):
    """The same fields gpu_info reads, with pynvml directly, in-process: the floor."""
    pynvml.nvmlInit()
    out = {"driver": pynvml.nvmlSystemGetDriverVersion(), "nvml": pynvml.nvmlSystemGetNVMLVersion(),
           "cuda": pynvml.nvmlSystemGetCudaDriverVersion_v2(), "gpus": []}
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        g = {"uuid": pynvml.nvmlDeviceGetUUID(h), "name": pynvml.nvmlDeviceGetName(h),
             "serial": pynvml.nvmlDeviceGetSerial(h), "pci": pynvml.nvmlDeviceGetPciInfo(h).busId,
             "numa": pynvml.nvmlDeviceGetNumaNodeId(h), "cpus": list(pynvml.nvmlDeviceGetCpuAffinity(h, 16)),
             "mem": pynvml.nvmlDeviceGetMemoryInfo(h).used, "util": pynvml.nvmlDeviceGetUtilizationRates(h).gpu,
             "temp": pynvml.nvmlDeviceGetTemperature(h, 0),
             "thresholds": [pynvml.nvmlDeviceGetTemperatureThreshold(h, t) for t in (0, 1, 2, 3)],
             "power": (pynvml.nvmlDeviceGetPowerUsage(h), pynvml.nvmlDeviceGetEnforcedPowerLimit(h)),
             "persistence": pynvml.nvmlDeviceGetPersistenceMode(h), "mig": pynvml.nvmlDeviceGetMigMode(h),
             "cc": pynvml.nvmlDeviceGetCudaComputeCapability(h), "ecc_mode": pynvml.nvmlDeviceGetEccMode(h),
             "ecc": [pynvml.nvmlDeviceGetTotalEccErrors(h, e, c) for e in (0, 1) for c in (0, 1)],
             "rows": pynvml.nvmlDeviceGetRemappedRows(h),
             "reasons": pynvml.nvmlDeviceGetCurrentClocksEventReasons(h), "links": [],
             "procs": pynvml.nvmlDeviceGetComputeRunningProcesses(h)}
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                state = pynvml.nvmlDeviceGetNvLinkState(h, link)
            except pynvml.NVMLError:
                break
            g["links"].append((state, pynvml.nvmlDeviceGetNvLinkRemoteDeviceType(h, link),
                               pynvml.nvmlDeviceGetNvLinkRemotePciInfo(h, link).busId))
        out["gpus"].append(g)
    pynvml.nvmlShutdown()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--no-node", action="store_true")
    args = p.parse_args()
    from gpusim import build, fixtures

    libdir = build.default_library_dir()
    ctypes.CDLL(str(libdir / "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
    machine = fixtures.load(fixtures.DEFAULT)
    machine.pop("kernel_module")
    fx = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(machine, fx)
    fx.close()
    os.environ["GPU_SIM_FIXTURE"] = fx.name
    import pynvml
    from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import gather

    bare_s, engine_s = [], []
    for _ in range(args.rounds):  # interleaved, so both see the same machine state
        t0 = time.perf_counter()
        bare(pynvml)
        bare_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gather()
        engine_s.append(time.perf_counter() - t0)
    result = {"in_process": {"bare_pynvml_s": stats(bare_s), "gpu_info_engine_s": stats(engine_s),
                             "ratio_median": round(stats(engine_s)["median"] / stats(bare_s)["median"], 2)}}
    # Per call as processes: `python bare_script.py` against the module file run as Ansible runs it
    # (its own interpreter, argument parsing, the forked NVML child, JSON out).
    script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    script.write("import pynvml, json, sys\nsys.path.insert(0, %r)\nfrom bench_gpu_info import bare\n"
                 "print(json.dumps(bare(pynvml), default=str)[:10])\n" % str(ROOT / "benchmarks"))
    script.close()
    args_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"ANSIBLE_MODULE_ARGS": {}}, args_file)
    args_file.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"), LD_LIBRARY_PATH=str(libdir))
    proc_bare, proc_module = [], []
    for _ in range(max(args.rounds // 10, 10)):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, script.name], env=env, check=True, capture_output=True)
        proc_bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "plugins/modules/gpu_info.py"), args_file.name], env=env,
                       check=True, capture_output=True)
        proc_module.append(time.perf_counter() - t0)
    result["per_call_process"] = {"bare_pynvml_script_s": stats(proc_bare), "gpu_info_module_s": stats(proc_module),
                                  "ratio_median": round(stats(proc_module)["median"] / stats(proc_bare)["median"], 2)}
    if not args.no_node:
        names, inv, _boot = nodes("bench-info")
        try:
            playbook(ROOT / "tests" / "playbooks" / "roles.yml", inv,
                     extra_vars={"test_roles": ["host_python", "nvidia_driver"]})
            calls = 10
            pb = WORK / "gpu_info_x10.yml"
            pb.write_text("- hosts: gpu_nodes\n  gather_facts: false\n  roles: [ragops.gpu_stack.gpu_stack]\n  tasks:\n"
                          + "".join("    - name: gpu_info %d\n      ragops.gpu_stack.gpu_info:\n      vars:\n"
                                    "        ansible_python_interpreter: \"{{ gpu_stack_python }}\"\n" % i
                                    for i in range(calls)))
            _s, out = playbook(pb, inv)
            per = [float(m) for m in re.findall(r"gpu_info \d+ -+ ([0-9.]+)s", out)]
            result["module_round_trip_on_node_s"] = stats(per)
        finally:
            remove(names)
    save("gpu_info", result)


if __name__ == "__main__":
    main()
