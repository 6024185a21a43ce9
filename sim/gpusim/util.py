"""Small helpers shared by the simulator's build and node commands."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent.parent
ROOT = SIM_DIR.parent
BUILD = SIM_DIR / "build"
STATE = SIM_DIR / "state"


class SimError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


def log(msg: str) -> None:
    print(f"gpu-sim: {msg}", flush=True)


def run(cmd, *, check=True, capture=False, input=None, cwd=None, env=None, quiet=False):
    """Run a command; on failure raise SimError with its output."""
    if not quiet and os.environ.get("GPU_SIM_VERBOSE"):
        log("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], input=input, cwd=cwd, env=env, check=False,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None,
                          text=not isinstance(input, bytes))
    if check and proc.returncode != 0:
        out = ""
        if capture:
            out = "\n" + ((proc.stdout or "") + (proc.stderr or ""))[-4000:]
        raise SimError(f"command failed ({proc.returncode}): {' '.join(str(c) for c in cmd)}{out}")
    return proc


def docker(*args, check=True, capture=True, input=None):
    return run(["docker", *args], check=check, capture=capture, input=input, quiet=True)


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def content_key(*parts, files=()) -> str:
    """Hash of parameters and file contents: the cache key of a build step."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    for f in sorted(Path(p) for p in files):
        h.update(str(f.relative_to(ROOT) if f.is_absolute() and ROOT in f.parents else f).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def require_tools(*tools: str, packages: dict | None = None) -> None:
    """Make sure host tools exist; as root on Debian/Ubuntu install the missing packages."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    pkgs = sorted({(packages or {}).get(t, t) for t in missing})
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {', '.join(pkgs)} (needed: {', '.join(missing)})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env, capture=True)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs], env=env, capture=True)
        return
    raise SimError(f"missing tools {', '.join(missing)}; install: sudo apt-get install {' '.join(pkgs)}")


def docker_ready() -> None:
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        raise SimError("no Docker engine answers; run scripts/ensure-docker (installs docker.io and starts "
                       "dockerd when run as root) or start your Docker daemon")


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SimError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
