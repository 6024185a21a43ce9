# -*- coding: utf-8 -*-
"""Shared test fixtures: the simulated NVML library on the controller, simulated nodes, and a
helper to run Ansible from the repository root.

Real components only: pynvml is the real nvidia-ml-py loading the simulator's libnvidia-ml.so.1;
Docker is the real engine (scripts/ensure-docker starts one when none answers); Ansible is the
real ansible-playbook.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
A100 = "a100-sxm4-80gb-x8"
# The last commit before a change to what the plan deploys or how containers are labelled and
# hashed (here: the container option table and the plan's `container` mapping). Upgrade tests
# converge with it and then with this checkout; move it forward when such a change lands with its
# migration.
PREVIOUS_RELEASE = "c65da6d9c225037da985b0b36e57cd54c35eec8f"


@pytest.fixture(scope="session")
def previous_collections(tmp_path_factory):
    """A collections path holding ragops.gpu_stack as it was at PREVIOUS_RELEASE (from git)."""
    import io
    import tarfile

    proc = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE],
                          capture_output=True, check=False)
    assert proc.returncode == 0, ("git archive %s failed (a shallow clone? fetch the history): %s"
                                  % (PREVIOUS_RELEASE, proc.stderr.decode()))
    root = tmp_path_factory.mktemp("previous-release")
    collection = root / "ansible_collections" / "ragops" / "gpu_stack"
    collection.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        tf.extractall(collection)
    return root


# ---------------------------------------------------------------------------------------------
# the NVML library on the controller


@pytest.fixture(scope="session")
def nvml_lib():
    """Build the stand-in library and load it so that pynvml's CDLL("libnvidia-ml.so.1") finds it
    (an already loaded object with that soname), as LD_LIBRARY_PATH would on a real host."""
    from gpusim import build

    libdir = build.default_library_dir()
    ctypes.CDLL(str(libdir / "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
    return libdir


class Machine(object):
    """A machine fixture in a temporary file, pointed at by GPU_SIM_FIXTURE."""

    def __init__(self, path: Path, name: str):
        from gpusim import fixtures

        self.path = path
        self.data = fixtures.load(name)
        # On the controller the "kernel module" is taken as loaded at the library's version.
        self.data.pop("kernel_module", None)
        self.write()

    def write(self):
        self.path.write_text(json.dumps(self.data), encoding="utf-8")

    def fault(self, kind, **kwargs):
        from gpusim import faults

        msg = faults.apply(self.data, kind, **kwargs)
        self.write()
        return msg

    def kernel_module(self, version):
        self.data["kernel_module"] = {"version": version}
        self.write()

    def gpu(self, slot):
        return self.data["gpus"][slot]


@pytest.fixture
def machine(tmp_path, monkeypatch, nvml_lib):
    """factory: machine(name) -> Machine, the fixture NVML reads from now on."""

    def make(name=A100):
        m = Machine(tmp_path / f"{name}.json", name)
        monkeypatch.setenv("GPU_SIM_FIXTURE", str(m.path))
        return m

    return make


# ---------------------------------------------------------------------------------------------
# Ansible


class Run(object):
    def __init__(self, proc: subprocess.CompletedProcess, seconds: float):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.seconds = seconds

    def recap(self, host):
        m = re.search(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(host),
                      self.out, re.M)
        assert m, "no PLAY RECAP line for %s in:\n%s" % (host, self.out[-3000:])
        return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups())))

    def __repr__(self):
        return "<ansible rc=%s %.1fs>\n%s" % (self.rc, self.seconds, self.out[-6000:])


def ansible_playbook(playbook, inventory, *args, extra_vars=None, timeout=1200, env=None):
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", str(inventory)]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", json.dumps({key: value})]
    cmd += list(args)
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    run_env.pop("GPU_SIM_FIXTURE", None)
    run_env.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    proc.stdout = proc.stdout + proc.stderr
    return Run(proc, time.monotonic() - t0)


@pytest.fixture(scope="session")
def ansible():
    return ansible_playbook


def module_steps(node, module, tmp_path, steps, python=None):
    """Run one module's tasks on the node in order, through ansible-playbook; each task's registered result, in order
    (a failed one with its msg: the tasks ignore errors so that every step runs). A step is {"args": ..., "check":
    True for check mode}; `python` is the interpreter on the node."""
    import yaml

    out = tmp_path / "results.json"
    tasks = []
    for i, step in enumerate(steps):
        task = {"name": "step %d" % i, "ragops.gpu_stack.%s" % module: step["args"], "register": "r%d" % i,
                "ignore_errors": True}
        if python:
            task["vars"] = {"ansible_python_interpreter": python}
        if step.get("check"):
            task["check_mode"] = True
        tasks.append(task)
    tasks.append({"name": "collect", "ansible.builtin.copy": {
        "content": "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(steps))),
        "dest": str(out), "mode": "0644"}, "delegate_to": "localhost"})
    pb = tmp_path / "steps.yml"
    pb.write_text(yaml.safe_dump([{"name": module, "hosts": node.name, "gather_facts": False, "tasks": tasks}],
                                 sort_keys=False))
    run = ansible_playbook(pb, node.inventory)
    assert run.rc == 0, run
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------
# simulated nodes


def docker_exec(node, *cmd, check=True, input=None):
    proc = subprocess.run(["docker", "exec", "-i", node, *cmd], capture_output=True, text=True, input=input,
                          check=False, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError("docker exec %s %s failed (%d): %s%s" % (node, " ".join(cmd), proc.returncode,
                                                                      proc.stdout, proc.stderr))
    return proc


@pytest.fixture(scope="session")
def docker_engine():
    proc = subprocess.run([str(ROOT / "scripts" / "ensure-docker")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "no Docker engine: %s%s" % (proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def sim(docker_engine):
    from gpusim import build

    return build.build_all()


class Node(object):
    """A simulated node with its own inventory (not inventories/sim)."""

    def __init__(self, name, inventory, fixture):
        self.name = name
        self.inventory = inventory
        self.fixture = fixture

    def sh(self, script, check=True):
        return docker_exec(self.name, "sh", "-c", script, check=check)

    def fault(self, kind, **kwargs):
        from gpusim import nodes

        return nodes.inject(self.name, kind, **kwargs)

    def clear_faults(self):
        from gpusim import nodes

        nodes.reset(self.name)

    def docker_health(self, names, timeout=180):
        """Wait until Docker reports each container healthy (its first probe comes an interval after
        the start, later than the service answers); returns name -> the last status read."""
        deadline = time.monotonic() + timeout
        while True:
            status = dict((n, self.sh("docker inspect --format '{{.State.Health.Status}}' %s" % n).stdout.strip())
                          for n in names)
            if all(v == "healthy" for v in status.values()) or time.monotonic() > deadline:
                return status
            time.sleep(3)

    def packages(self):
        return self.sh("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' | sort").stdout

    def inspect(self, container):
        out = self.sh("docker inspect %s" % container, check=False)
        return json.loads(out.stdout)[0] if out.returncode == 0 else None


@pytest.fixture(scope="session")
def node_factory(sim, tmp_path_factory):
    """node_factory(prefix, fixture=A100, host_os=default) -> Node, booted and with an inventory; removed at the end."""
    from gpusim import build, nodes

    made = []

    def make(prefix, fixture=A100, count=1, host_os=build.DEFAULT_HOST_OS):
        inv = tmp_path_factory.mktemp("inventory-%s" % prefix)
        res = nodes.up(count=count, fixture=fixture, prefix=prefix, inventory=inv / "sim", host_os=host_os)
        made.extend(res["nodes"])
        group = [Node(n, inv / "sim", fixture) for n in res["nodes"]]
        for n in group:
            n.boot_seconds = res["boot_seconds"][n.name]
        return group if count > 1 else group[0]

    yield make
    if os.environ.get("RAGOPS_KEEP_NODES") != "1":
        for name in made:
            nodes.remove(name)


@pytest.fixture(scope="session")
def converged_node(node_factory, ansible):
    """One simulated 8x A100 node taken from bare to serving by site.yml, shared by the end-to-end
    tests (the first run's result is kept on the node object). A test that leaves it drifted sets
    ``node.dirty``; the ``converged`` fixture then re-converges it before the next test that needs
    it as site.yml left it, so no test depends on the order the tests run in."""
    node = node_factory("gpu-test")
    node.first_run = ansible(ROOT / "site.yml", node.inventory)
    assert node.first_run.rc == 0, node.first_run
    node.dirty = False
    node.adopt = []
    return node


@pytest.fixture
def converged(converged_node, ansible):
    """The shared node as site.yml leaves it: re-converged first when an earlier test drifted it. A
    test that started a container by hand under a service's name lists it in ``node.adopt``: site.yml
    replaces only containers the collection made, unless told to adopt one."""
    if converged_node.dirty:
        extra = {"gpu_stack_adopt_containers": converged_node.adopt} if converged_node.adopt else None
        run = ansible(ROOT / "site.yml", converged_node.inventory, extra_vars=extra)
        assert run.rc == 0, run
        converged_node.dirty = False
        converged_node.adopt = []
    return converged_node


def pytest_collection_modifyitems(config, items):
    """RAGOPS_TEST_ORDER=reverse runs the tests backwards (within the suite's own fixtures), to show
    that the end-to-end tests do not depend on their order."""
    if os.environ.get("RAGOPS_TEST_ORDER") == "reverse":
        items.reverse()


# ---------------------------------------------------------------------------------------------
# modules, run for real (the module file as Ansible runs it, with its JSON arguments)


def run_module(name, args, check_mode=False, python=None, env=None):
    """Run plugins/modules/<name>.py like Ansible does (arguments as a JSON file); returns its result."""
    import tempfile

    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, fh)
        path = fh.name
    try:
        run_env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
        run_env.update(env or {})
        proc = subprocess.run([python or sys.executable, str(ROOT / "plugins" / "modules" / ("%s.py" % name)), path],
                              capture_output=True, text=True, env=run_env, check=False, timeout=300)
    finally:
        os.unlink(path)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc %d): %s %s"
                             % (name, proc.returncode, proc.stdout, proc.stderr))


@pytest.fixture(scope="session")
def module():
    return run_module
