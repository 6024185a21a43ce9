"""Helpers for the benchmarks: run Ansible from the repository root, boot simulated nodes."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sim"))
sys.path.insert(0, str(ROOT / "collections"))
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
# generated inventories and playbooks live outside the checkout
WORK = Path(tempfile.mkdtemp(prefix="ragops-bench-"))


def playbook(pb, inventory, *args, extra_vars=None, check=True, env=None):
    seconds, out, _cpu = playbook_cpu(pb, inventory, *args, extra_vars=extra_vars, check=check, env=env)
    return seconds, out


def children_cpu():
    """User + system CPU seconds of this process's finished children and theirs (ansible-playbook and the
    workers it forks), as getrusage counts them."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy():
    """CPU seconds the whole machine has spent busy since boot (every core; /proc/stat's first line less idle
    and iowait): the controller, dockerd and the simulated nodes alike."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def node_cpu(name):
    """CPU seconds a simulated node's container has used since it started: its cgroup's count (the node's own
    dockerd, apt, pip and the modules Ansible runs there), read from the cgroup files for cgroup v1 and v2 and
    Docker's two cgroup drivers (Docker 20.10's stats API answers 0 inside some containers). None when none is
    found."""
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True,
                         check=True).stdout.strip()
    base = Path("/sys/fs/cgroup")
    for path in (base / "cpuacct" / "docker" / cid / "cpuacct.usage",
                 base / "cpuacct" / "system.slice" / ("docker-%s.scope" % cid) / "cpuacct.usage"):
        if path.is_file():
            return int(path.read_text()) / 1e9
    for path in (base / "system.slice" / ("docker-%s.scope" % cid) / "cpu.stat", base / "docker" / cid / "cpu.stat"):
        if path.is_file():
            fields = dict(line.split() for line in path.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    return None


def playbook_cpu(pb, inventory, *args, extra_vars=None, check=True, env=None):
    """(wall seconds, output, controller CPU seconds of the ansible-playbook process tree)."""
    cmd = [str(BIN / "ansible-playbook"), str(pb), "-i", str(inventory), *args]
    for k, v in (extra_vars or {}).items():
        cmd += ["-e", json.dumps({k: v})]
    # task timings in the benchmarks' own output (users get the plain default callback)
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
                   PATH="%s:%s" % (BIN, os.environ["PATH"]))
    run_env.update(env or {})
    cpu0, t0 = children_cpu(), time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, check=False)
    seconds, cpu = time.monotonic() - t0, children_cpu() - cpu0
    if check and proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (pb, (proc.stdout + proc.stderr)[-4000:]))
    return seconds, proc.stdout + proc.stderr, cpu


def nodes(prefix, count=1, fixture="a100-sxm4-80gb-x8"):
    from gpusim import nodes as sim_nodes

    inv = WORK / prefix
    res = sim_nodes.up(count=count, fixture=fixture, prefix=prefix, inventory=inv)
    return res["nodes"], inv, res["boot_seconds"]


def remove(names):
    from gpusim import nodes as sim_nodes

    for n in names:
        sim_nodes.remove(n)


def stats(samples):
    return {"median": round(statistics.median(samples), 4), "min": round(min(samples), 4),
            "max": round(max(samples), 4), "n": len(samples)}


def save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = dict(data, machine={"cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    (RESULTS / ("%s.json" % name)).write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data, indent=1))


def task_times(out):
    """The profile_tasks recap of a run: [(task, seconds)], slowest first."""
    import re

    recap = out.split("TASKS RECAP")[-1]
    return [(m.group(1).strip(), float(m.group(2))) for m in re.finditer(r"^(.+?) -+ (\d+\.\d+)s$", recap, re.M)]


def by_role(times):
    """Seconds and tasks per role (the part of a task name before ' : ', 'play' for the plays' own tasks)."""
    out = {}
    for task, seconds in times:
        role = task.split(" : ")[0].replace("ragops.gpu_stack.", "") if " : " in task else "play"
        acc = out.setdefault(role, {"seconds": 0.0, "tasks": 0})
        acc["seconds"] = round(acc["seconds"] + seconds, 2)
        acc["tasks"] += 1
    return out
