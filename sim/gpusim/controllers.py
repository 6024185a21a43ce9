"""The controller matrix (`make test-matrix`): one environment per ansible-core release line.

requirements/matrix.yml lists the entries. Each gets a virtualenv core-<X.Y>/ under ENVS (below) with the
controller runtime of requirements/requirements.txt (ansible-core at the entry's pin) and pytest (with hypothesis),
every other version from requirements/constraints.txt (except the entry's `pins`). pip downloads
the wheels on this machine, for the entry's Python, into py<X.Y>/ next to it through its own
configured index; the virtualenv installs them offline (--no-index).

Python 3.11 entries use this machine's interpreter. Python 3.13 entries (ansible-core 2.20 and newer
need 3.12+) run in a Debian 13 controller container: debootstrap of trixie from this machine's
configured Debian mirror and `docker import`, the way the simulator builds its images
(gpusim.build.debian_image). The checkout and ENVS are mounted at their own paths, so a virtualenv
made in the container lives next to the others and runs only there.

Stages per entry: `sanity` (scripts/sanity.sh, that version's ansible-test), `units` (pytest, the
tests that need no Docker), `e2e` (tests/e2e/test_controllers.py on a converged simulated node).
The entry whose pin is requirements.txt's (`main: true`) is the .venv that `make setup` makes.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

from . import build
from .util import ROOT, SimError, content_key

MATRIX_FILE = ROOT / "requirements" / "matrix.yml"
# Everything the matrix makes lives outside the checkout and is kept across checkouts (a clean clone
# reuses the virtualenvs while their requirements are unchanged): the virtualenvs (core-<X.Y>), the
# wheelhouses (py<X.Y>), a container entry's ansible-test directory (its ~/.ansible/test, like the
# host's), and the last results. RAGOPS_MATRIX_DIR moves it.
ENVS = Path(os.environ.get("RAGOPS_MATRIX_DIR") or Path.home() / ".cache" / "ragops" / "matrix")
RESULTS = ENVS / "results.json"
HOST_PYTHON = "%d.%d" % sys.version_info[:2]
# The Debian 13 controller: Python 3.13, git (ansible-test finds files through it), the Docker CLI
# (the simulated nodes' connection is community.docker.docker), gnupg (the key filter's tests compare with gpg).
CONTAINER_SUITE = build.HOST_OS["debian13"]
CONTAINER_PYTHON = "3.13"
CONTAINER_PACKAGES = ("python3", "python3-venv", "git", "ca-certificates", "docker-cli", "gnupg")
# What any tested ansible-core prints for a deprecated feature it meets (one line per use, and the hint
# to set `deprecation_warnings = False`); the end-to-end tests find none in their runs.
DEPRECATION_RE = re.compile(r"\[DEPRECATION WARNING\]|\[DEPRECATED\]|deprecation_warnings")
# ansible-test bootstraps pip in its per-test virtualenvs at this version (see scripts/sanity.sh).
PIP_PIN_RE = re.compile(r"pip='([0-9.]+)'")


class Controller(object):
    """One matrix entry: an ansible-core pin, its Python, and where its virtualenv lives."""

    def __init__(self, entry: dict):
        self.core = str(entry["core"])
        self.line = ".".join(self.core.split(".")[:2])
        self.python = str(entry["python"])
        self.pins = list(entry.get("pins") or [])
        self.main = bool(entry.get("main"))
        self.venv = ROOT / ".venv" if self.main else ENVS / ("core-" + self.line)
        self.in_container = self.python != HOST_PYTHON

    def __repr__(self):
        return "ansible-core %s (Python %s%s)" % (self.core, self.python, ", container" if self.in_container else "")

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    # -- commands ------------------------------------------------------------------------------

    def command(self, argv, env=None, mounts=()):
        """argv (a list) as it runs for this controller: directly, or in the Debian 13 container."""
        env = dict(env or {})
        path = "%s:/usr/local/bin:/usr/bin:/bin" % self.bin
        if not self.in_container:
            return [str(a) for a in argv], dict(os.environ, PATH="%s:%s" % (self.bin, os.environ.get("PATH", "")),
                                                 **env)
        home = Path.home()
        cmd = ["docker", "run", "--rm", "-i", "--network", "host", "-w", str(ROOT),
               "-v", "%s:%s" % (ROOT, ROOT), "-v", "%s:%s" % (ENVS, ENVS), "-v", "/var/run/docker.sock:/var/run/docker.sock",
               "-v", "%s:/root/.cache/ragops" % (home / ".cache" / "ragops"),
               "-v", "%s:/root/.ansible/test" % (ENVS / ("ansible-test-" + self.line)),
               "-v", "%s:/wheels:ro" % wheelhouse(self.python), "-v", "%s:/etc/pip.conf:ro" % offline_pip_conf(),
               "-e", "PATH=" + path, "-e", "HOME=/root", "-e", "LANG=C.UTF-8"]
        for src in mounts:
            cmd += ["-v", "%s:%s" % (src, src)]
        for key, value in env.items():
            cmd += ["-e", "%s=%s" % (key, value)]
        (ENVS / ("ansible-test-" + self.line)).mkdir(parents=True, exist_ok=True)
        return cmd + [controller_image()] + [str(a) for a in argv], dict(os.environ)

    def run(self, argv, env=None, mounts=(), timeout=3600, capture=True):
        cmd, run_env = self.command(argv, env, mounts)
        return subprocess.run(cmd, env=run_env, cwd=ROOT, capture_output=capture, text=True, timeout=timeout,
                              check=False)

    # -- environment ---------------------------------------------------------------------------

    def requirements(self) -> tuple[list[str], list[str]]:
        """(requirements, constraints) of this entry's virtualenv."""
        reqs = []
        for line in (ROOT / "requirements" / "requirements.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append("ansible-core==" + self.core if line.startswith("ansible-core") else line)
        dev = (ROOT / "requirements" / "requirements-dev.txt").read_text()
        reqs += re.findall(r"^(?:pytest|hypothesis)==\S+", dev, re.M)
        pinned = {re.split(r"[=<>!~]", p, 1)[0].lower() for p in self.pins}
        cons = [line for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")
                and line.split("==")[0].lower() not in pinned | {"ansible-core"}]
        return reqs, cons + self.pins

    def key(self) -> str:
        return content_key("controller-env", self.core, self.python, self.requirements())

    def ensure(self) -> None:
        if self.python not in (HOST_PYTHON, CONTAINER_PYTHON):
            raise SimError("%s: ansible-core %s wants Python %s, which is neither this machine's (%s, the one .venv "
                           "runs) nor the Debian 13 controller container's (%s): run with Python %s or change its "
                           "`python`" % (MATRIX_FILE.relative_to(ROOT), self.core, self.python, HOST_PYTHON,
                                         CONTAINER_PYTHON, self.python))
        if self.main:
            if not (self.bin / "ansible-playbook").exists():
                raise SimError("no .venv: run `make setup` first")
            return
        stamp = self.venv / ".ragops-key"
        if stamp.is_file() and stamp.read_text() == self.key() and (self.bin / "ansible-playbook").exists():
            return
        t0 = time.monotonic()
        reqs, cons = self.requirements()
        house = wheelhouse(self.python)
        req_file = ENVS / ("core-%s.requirements.txt" % self.line)
        con_file = ENVS / ("core-%s.constraints.txt" % self.line)
        req_file.write_text("\n".join(reqs) + "\n")
        con_file.write_text("\n".join(cons) + "\n")
        download(self.python, ["-r", req_file, "-c", con_file])
        shutil.rmtree(self.venv, ignore_errors=True)
        # in the container its python3; here the interpreter .venv was made from, not .venv's own
        python = "python3" if self.in_container else getattr(sys, "_base_executable", sys.executable)
        steps = [[python, "-m", "venv", self.venv],
                 [self.bin / "python", "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                  "/wheels" if self.in_container else house, "-r", req_file, "-c", con_file]]
        for step in steps:
            if self.in_container:
                proc = self.run(step)
            else:
                proc = subprocess.run([str(a) for a in step], capture_output=True, text=True, check=False,
                                      env=dict(os.environ, PIP_NO_INDEX="1"))
            if proc.returncode != 0:
                raise SimError("%r: %s failed: %s" % (self, " ".join(map(str, step)), (proc.stdout + proc.stderr)[-3000:]))
        if self.in_container:
            # ansible-test's sanity virtualenvs install their pinned tools offline from the wheelhouse too
            download(self.python, sanity_requirements(self))
        stamp.write_text(self.key())
        say("%r: virtualenv %s ready in %.0fs" % (self, self.venv, time.monotonic() - t0))


def say(msg: str) -> None:
    print("test-matrix: " + msg, flush=True)


def load() -> list[Controller]:
    data = yaml.safe_load(MATRIX_FILE.read_text(encoding="utf-8"))
    return [Controller(e) for e in data["controllers"]]


def ci_e2e() -> list[str]:
    return [str(v) for v in yaml.safe_load(MATRIX_FILE.read_text(encoding="utf-8"))["ci_e2e"]]


def select(names) -> list[Controller]:
    """Matrix entries by release line ("2.16") or pin ("2.16.19"); all of them for "all"."""
    everything = load()
    if names in (None, "all") or names == ["all"]:
        return everything
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    out = []
    for name in names:
        found = [c for c in everything if name in (c.line, c.core)]
        if not found:
            raise SimError("ansible-core %s is not in %s (entries: %s)" % (
                name, MATRIX_FILE.relative_to(ROOT), ", ".join(c.line for c in everything)))
        out += found
    return out


def wheelhouse(python: str) -> Path:
    path = ENVS / ("py" + python)
    path.mkdir(parents=True, exist_ok=True)
    return path


def download(python: str, args) -> None:
    """pip download (binary wheels for `python`, through pip's configured index) into its wheelhouse."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", python, "-d", wheelhouse(python)] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SimError("pip download for Python %s failed: %s\n%s" % (python, " ".join(cmd), proc.stderr[-3000:]))


def sanity_requirements(ctl: Controller) -> list:
    """What ansible-test installs in its sanity virtualenvs (its pinned requirement files and the pip
    it bootstraps), as `pip download` arguments."""
    wheel = next(wheelhouse(ctl.python).glob("ansible_core-%s-*.whl" % ctl.core))
    out = ENVS / ("core-%s.ansible-test" % ctl.line)
    out.mkdir(parents=True, exist_ok=True)
    args = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if re.search(r"_data/requirements/sanity\.[a-z0-9-]+\.txt$", name):
                dest = out / Path(name).name
                dest.write_bytes(zf.read(name))
                args += ["-r", dest]
            elif name.endswith("_internal/python_requirements.py"):
                pip = PIP_PIN_RE.search(zf.read(name).decode())
                if pip:
                    args.append("pip==" + pip.group(1))
    return args


def offline_pip_conf() -> Path:
    """The container's pip configuration: the wheelhouse only, never an index (ansible-test passes
    few environment variables to the pip runs of its own virtualenvs, so a file rather than PIP_*)."""
    path = ENVS / "pip-offline.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[global]\nno-index = true\nfind-links = /wheels\ndisable-pip-version-check = true\n")
    return path


def controller_image() -> str:
    """The Debian 13 controller image (built once, then reused while its recipe is unchanged)."""
    return build.debian_image("ragops-controller", CONTAINER_SUITE, CONTAINER_PACKAGES,
                              ["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'])


# ---------------------------------------------------------------------------------------------
# stages


def sanity(ctl: Controller) -> subprocess.CompletedProcess:
    return ctl.run(["scripts/sanity.sh"], env={"RAGOPS_VENV": str(ctl.venv), "RAGOPS_SANITY_DIR": ".build/sanity-" + ctl.line})


def units(ctl: Controller) -> subprocess.CompletedProcess:
    # The tests that need no Docker. The one `slow` unit test loads the real model with torch on the CPU
    # (nothing of Ansible in it) and the `tools` tests check files with promtool and ansible-builder; they
    # run in .venv with the rest of `make test`.
    return ctl.run([ctl.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                    "not docker and not slow and not tools", "tests"])


def e2e(ctls: list[Controller]) -> tuple[subprocess.CompletedProcess, dict]:
    """tests/e2e/test_controllers.py for these entries (one converged node, from .venv's pytest)."""
    junit = ENVS / "e2e-junit.xml"
    env = dict(os.environ, RAGOPS_CONTROLLERS=",".join(c.line for c in ctls))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "pytest"), "-q", "-p", "no:cacheprovider",
                           "--junitxml", str(junit), "tests/e2e/test_controllers.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    times = {}
    if junit.is_file():
        import xml.etree.ElementTree as ET  # noqa: PLC0415
        for case in ET.parse(junit).getroot().iter("testcase"):
            m = re.search(r"\[(\d+\.\d+)\]", case.get("name", ""))
            if m:
                failed = any(child.tag in ("failure", "error") for child in case)
                times[m.group(1)] = ("FAIL" if failed else "pass", float(case.get("time", 0)))
    return proc, times


def summary_line(proc: subprocess.CompletedProcess, stage: str) -> str:
    """What a stage's output says in one line: sanity tests run (or the first error), pytest's count."""
    lines = (proc.stdout + proc.stderr).splitlines()
    if stage == "sanity":
        errors = [line.strip() for line in lines if re.match(r"(ERROR|FATAL)", line)]
        return errors[0] if errors else "%d sanity tests" % sum(1 for line in lines if line.startswith("Running sanity test"))
    counts = [line.strip() for line in lines if re.search(r"\d+ (passed|failed)", line)]
    return counts[-1] if counts else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="test-matrix", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="release lines or pins, comma-separated (default: all entries)")
    p.add_argument("--stages", default="sanity,units,e2e", help="comma-separated: sanity, units, e2e")
    p.add_argument("--skip-main", action="store_true",
                   help="leave out the .venv entry (make test runs its sanity and units itself)")
    p.add_argument("--e2e", help="entries for the e2e stage (default: the same as --only; 'ci': ci_e2e)")
    p.add_argument("--prepare", action="store_true", help="only make the environments")
    args = p.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    bad = set(stages) - {"sanity", "units", "e2e"}
    if bad:
        p.error("unknown stage(s) %s: choose from sanity, units, e2e" % ", ".join(sorted(bad)))
    try:
        ctls = [c for c in select(args.only) if not (args.skip_main and c.main)]
        e2e_ctls = select(ci_e2e() if args.e2e == "ci" else args.e2e) if args.e2e else ctls
        results = {c.core: {"python": c.python} for c in ctls + e2e_ctls}
        failed = []
        for ctl in {c.core: c for c in ctls + e2e_ctls}.values():
            t0 = time.monotonic()
            ctl.ensure()
            results[ctl.core]["env_s"] = round(time.monotonic() - t0, 1)
        if args.prepare:
            return 0
        if "units" in stages:
            build.default_library_dir()  # the stand-in NVML the unit tests load (the container has no compiler)
        for ctl in ctls:
            for stage, fn in (("sanity", sanity), ("units", units)):
                if stage not in stages:
                    continue
                say("%r: %s ..." % (ctl, stage))
                t0 = time.monotonic()
                proc = fn(ctl)
                secs = round(time.monotonic() - t0, 1)
                ok = proc.returncode == 0
                results[ctl.core][stage] = {"ok": ok, "seconds": secs, "summary": summary_line(proc, stage)}
                say("%r: %s %s in %.0fs %s" % (ctl, stage, "passed" if ok else "FAILED", secs,
                                               results[ctl.core][stage]["summary"]))
                if not ok:
                    failed.append("%s %s" % (ctl.core, stage))
                    print((proc.stdout + proc.stderr)[-8000:], file=sys.stderr)
        if "e2e" in stages and e2e_ctls:
            say("end to end for %s ..." % ", ".join(c.core for c in e2e_ctls))
            t0 = time.monotonic()
            proc, times = e2e(e2e_ctls)
            for ctl in e2e_ctls:
                verdict, secs = times.get(ctl.line, ("FAIL", 0.0))
                results[ctl.core]["e2e"] = {"ok": verdict == "pass" and proc.returncode == 0, "seconds": round(secs, 1)}
                if not results[ctl.core]["e2e"]["ok"]:
                    failed.append("%s e2e" % ctl.core)
            results["e2e_wall_s"] = round(time.monotonic() - t0, 1)
            print(proc.stdout[-6000:])
            if proc.returncode != 0:
                print(proc.stderr[-4000:], file=sys.stderr)
        ENVS.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        print(table(results))
        if failed:
            print("test-matrix: FAILED: " + ", ".join(failed), file=sys.stderr)
            return 1
        return 0
    except SimError as exc:
        print("test-matrix: %s" % exc, file=sys.stderr)
        return 1


def table(results: dict) -> str:
    rows = ["%-14s %-7s %-22s %-22s %-14s" % ("ansible-core", "python", "sanity", "units", "e2e")]
    for core, res in results.items():
        if not isinstance(res, dict):
            continue

        def cell(stage):
            r = res.get(stage)
            if not r:
                return "-"
            return "%s %.0fs" % ("pass" if r["ok"] else "FAIL", r["seconds"])
        rows.append("%-14s %-7s %-22s %-22s %-14s" % (core, res["python"], cell("sanity"), cell("units"), cell("e2e")))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())

