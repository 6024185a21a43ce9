#!/usr/bin/env python3
"""Install the third-party collections named in requirements.yml into ./collections.

Normal path: ``ansible-galaxy collection install -r requirements.yml``. When Galaxy cannot be
reached (the machines this project is built on have no route to it), take the same collections
from the pinned ``ansible`` community package on PyPI: download its wheel once into .cache/, and
unpack only the requested collections and their dependencies, checking each version against the
range in requirements.yml. Prints one line saying which path it took.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "collections"
CACHE = ROOT / ".cache" / "ansible-package"
# The community package whose bundled collections serve as the offline fallback. Keep it paired
# with the ansible-core pin in requirements/requirements.txt (ansible 12.x <-> ansible-core 2.19).
ANSIBLE_PACKAGE = "ansible==12.3.0"
GALAXY_UNREACHABLE_HINTS = ("urlopen error", "Name or service not known", "timed out",
                            "Temporary failure in name resolution", "Connection refused",
                            "Network is unreachable", "Failed to resolve", "call Galaxy")


def wanted() -> dict[str, SpecifierSet]:
    data = yaml.safe_load((ROOT / "requirements.yml").read_text(encoding="utf-8")) or {}
    out = {}
    for entry in data.get("collections", []):
        out[entry["name"]] = SpecifierSet(str(entry.get("version", "*")).replace("*", ""))
    return out


def installed_version(name: str) -> Version | None:
    ns, coll = name.split(".")
    for meta in ("MANIFEST.json", "galaxy.yml"):
        path = DEST / "ansible_collections" / ns / coll / meta
        if path.is_file():
            if meta == "MANIFEST.json":
                return Version(json.loads(path.read_text())["collection_info"]["version"])
            return Version(yaml.safe_load(path.read_text())["version"])
    return None


def satisfied(reqs: dict[str, SpecifierSet]) -> bool:
    for name, spec in reqs.items():
        ver = installed_version(name)
        if ver is None or ver not in spec:
            return False
    return True


def from_galaxy() -> tuple[bool, str]:
    cmd = ["ansible-galaxy", "collection", "install", "-r", str(ROOT / "requirements.yml"),
           "-p", str(DEST), "--timeout", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def wheel_path() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    version = ANSIBLE_PACKAGE.split("==")[1]
    found = sorted(CACHE.glob(f"ansible-{version}-*.whl"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", ANSIBLE_PACKAGE, "-d", str(CACHE)], check=True)
    return sorted(CACHE.glob(f"ansible-{version}-*.whl"))[0]


def from_ansible_package(reqs: dict[str, SpecifierSet]) -> list[str]:
    whl = wheel_path()
    done: list[str] = []
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        queue = list(reqs.items())
        seen = set()
        while queue:
            name, spec = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            ns, coll = name.split(".")
            prefix = f"ansible_collections/{ns}/{coll}/"
            manifest = json.loads(zf.read(prefix + "MANIFEST.json"))["collection_info"]
            version = Version(manifest["version"])
            if version not in spec:
                sys.exit(f"setup: {ANSIBLE_PACKAGE} carries {name} {version}, outside the range "
                         f"'{spec}' in requirements.yml; pick another ansible release in "
                         f"scripts/install_collections.py or widen the range")
            target = DEST / "ansible_collections" / ns / coll
            if target.exists():
                shutil.rmtree(target)
            for member in names:
                if member.startswith(prefix) and not member.endswith("/"):
                    out = DEST / member
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(member))
            done.append(f"{name} {version}")
            for dep, dep_range in (manifest.get("dependencies") or {}).items():
                queue.append((dep, SpecifierSet(dep_range.replace("*", ""))))
    return done


def main() -> int:
    reqs = wanted()
    DEST.mkdir(exist_ok=True)
    if satisfied(reqs):
        have = ", ".join(f"{n} {installed_version(n)}" for n in reqs)
        print(f"collections: already installed ({have})")
        return 0
    if os.environ.get("RAGOPS_SKIP_GALAXY") != "1":
        ok, output = from_galaxy()
        if ok:
            print("collections: installed from Ansible Galaxy per requirements.yml")
            return 0
        if not any(h in output for h in GALAXY_UNREACHABLE_HINTS):
            sys.stderr.write(output)
            print("collections: ansible-galaxy failed (not a connectivity problem; output above)")
            return 1
    done = from_ansible_package(reqs)
    print(f"collections: Galaxy unreachable, installed {', '.join(done)} "
          f"from the {ANSIBLE_PACKAGE} package on PyPI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
