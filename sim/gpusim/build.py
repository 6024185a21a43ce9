"""`gpu-sim build`: everything the simulator needs, rebuilt only when its inputs change.

Steps, each keyed by a hash of its inputs (a step whose output exists under its key is skipped):
  header     NVIDIA's nvml.h from the nvidia-nvml-dev wheel (fetched, never committed)
  libraries  libnvidia-ml.so.<version> for each simulated driver version
  packages   stand-in .debs named like NVIDIA's: driver, fabric manager, container toolkit
  repos      two signed flat apt repositories (CUDA-style and libnvidia-container-style)
  base       gpu-sim-base image: debootstrap bookworm minbase + python3 (docker import)
  services   rag-* stand-in service images, saved as tarballs with a manifest (IDs, sha256)
  node       gpu-sim-node image per host OS (HOST_OS: Debian 12 bookworm, Debian 13 trixie):
             debootstrap with systemd as PID 1 and python3; the default OS's is built by `build`,
             another OS's when a node of it is first booted

debootstrap takes its Debian mirror from the build machine's own apt sources (deb822 `.sources`
or `sources.list`); GPU_SIM_DEBIAN_MIRROR (and GPU_SIM_DEBIAN_SECURITY_MIRROR) override them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from .util import (BUILD, SIM_DIR, SimError, content_key, docker, docker_ready, image_exists, image_id,
                   log, require_tools, run, sha256_file, write_json)

NVML_DEV = ("nvidia-nvml-dev", "13.5.37")
# The simulated GPU host's operating systems: name -> Debian suite. The service images and the
# repository server use the default's suite whatever OS the nodes run.
HOST_OS = {"debian12": "bookworm", "debian13": "trixie"}
DEFAULT_HOST_OS = "debian12"
DEBIAN_SUITE = HOST_OS[DEFAULT_HOST_OS]
APT_SOURCES = Path("/etc/apt")

# Simulated driver releases: two point releases of the 550 branch (upgrade and drift tests) and an
# older branch. The CUDA driver API version is what nvmlSystemGetCudaDriverVersion reports.
DRIVERS = (
    {"branch": "550", "version": "550.127.05", "cuda": 12040},
    {"branch": "550", "version": "550.144.03", "cuda": 12040},
    {"branch": "535", "version": "535.216.03", "cuda": 12020},
)
TOOLKIT_VERSIONS = ("1.17.3", "1.17.4")
DEFAULT_DRIVER = "550.127.05"
DEFAULT_TOOLKIT = "1.17.4"
PKG_REVISION = "1"

SERVICE_IMAGE_TAG = "1.0.0"
SERVICE_IMAGES = {
    "rag-whisper": "whisper",
    "rag-embedding-server": "embedding",
    "rag-llm-server": "llm",
    "rag-dots-ocr": "ocr",
    "rag-llm-gptoss": "llm-gptoss",
}

# Bump when the way images are made changes (their cache keys include it).
IMAGE_RECIPE = 3
# The stand-in services run as this user (uid:gid), not root, as a hardened image would.
SERVICE_USER = "10001:10001"
NODE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "python3-venv", "ca-certificates",
                 "gnupg", "iproute2", "procps", "kmod", "curl", "sudo", "initramfs-tools", "apt-utils",
                 "iptables", "less", "udev")
BASE_PACKAGES = ("python3",)

CUDA_REPO = "cuda/debian12/x86_64"
TOOLKIT_REPO = "libnvidia-container/stable/deb/amd64"
KEY_NAME = "gpu-sim archive signing key <gpu-sim@localhost>"

PKG_DIR = SIM_DIR / "packages"
LIB_DIR = SIM_DIR / "libnvml"


# ---------------------------------------------------------------------------------------------
# header and libraries


def header() -> Path:
    out = BUILD / "include" / "nvml.h"
    if out.is_file():
        return out
    name, version = NVML_DEV
    cache = BUILD / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        log(f"fetching nvml.h from {name}=={version} (PyPI)")
        run(["python3", "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux2014_x86_64", f"{name}=={version}", "-d", cache], capture=True)
        wheels = list(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        member = next(n for n in zf.namelist() if n.endswith("/nvml.h"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(zf.read(member))
    return out


def library(version: str, cuda: int) -> Path:
    """Build libnvidia-ml.so.<version>; returns its path (libnvidia-ml.so.1 links to it)."""
    hdr = header()
    sources = sorted(LIB_DIR.glob("*.[ch]")) + [LIB_DIR / "exports.map"]
    key = content_key("lib", version, cuda, files=[*sources, hdr])
    outdir = BUILD / "lib" / version
    out = outdir / f"libnvidia-ml.so.{version}"
    stamp = outdir / ".key"
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return out
    require_tools("gcc")
    outdir.mkdir(parents=True, exist_ok=True)
    run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
         f"-I{hdr.parent}", f'-DGPU_SIM_DRIVER_VERSION="{version}"', f"-DGPU_SIM_CUDA_DRIVER_VERSION={cuda}",
         f"-Wl,--version-script={LIB_DIR / 'exports.map'}", "-Wl,-soname,libnvidia-ml.so.1",
         "-o", out, LIB_DIR / "nvml_sim.c", LIB_DIR / "json.c", "-lpthread"], capture=True)
    link = outdir / "libnvidia-ml.so.1"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(out.name)
    stamp.write_text(key)
    log(f"built libnvidia-ml.so.{version}")
    return out


def default_library_dir() -> Path:
    """Directory holding libnvidia-ml.so.1 of the default driver (for LD_LIBRARY_PATH on the controller)."""
    driver = next(d for d in DRIVERS if d["version"] == DEFAULT_DRIVER)
    return library(driver["version"], driver["cuda"]).parent


# ---------------------------------------------------------------------------------------------
# Debian packages


def _control(name, version, description, depends=(), extra=None):
    lines = [f"Package: {name}", f"Version: {version}-{PKG_REVISION}", "Architecture: amd64",
             "Maintainer: gpu-sim <gpu-sim@localhost>", "Section: non-free/libs", "Priority: optional"]
    if depends:
        lines.append("Depends: " + ", ".join(depends))
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    lines.append(f"Description: {description} (gpu-sim stand-in)")
    lines.append(" Simulated NVIDIA user-space component for testing on hosts without a GPU.")
    return "\n".join(lines) + "\n"


def _install(root: Path, rel: str, src: Path | None = None, text: str | None = None, mode=0o644):
    dest = root / rel.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src is not None:
        shutil.copyfile(src, dest)
    else:
        dest.write_text(text or "", encoding="utf-8")
    os.chmod(dest, mode)
    return dest


def _script(root: Path, name: str, body: str):
    _install(root, f"DEBIAN/{name}", text="#!/bin/sh\nset -e\n" + body, mode=0o755)


def _deb(root: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    control = (root / "DEBIAN" / "control").read_text()
    name = control.split("Package: ", 1)[1].split("\n", 1)[0]
    ver = control.split("Version: ", 1)[1].split("\n", 1)[0]
    out = out_dir / f"{name}_{ver}_amd64.deb"
    # Fixed timestamps: the same inputs give the same .deb.
    for path in root.rglob("*"):
        os.utime(path, (1700000000, 1700000000), follow_symlinks=False)
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, out], capture=True, env=env)
    return out


def _driver_packages(drv: dict, work: Path, out: Path) -> list[Path]:
    branch, version = drv["branch"], drv["version"]
    lib = library(version, drv["cuda"])
    other = [d["branch"] for d in DRIVERS if d["branch"] != branch]
    debs = []

    root = work / f"libnvidia-compute-{branch}_{version}"
    _install(root, "DEBIAN/control", text=_control(
        f"libnvidia-compute-{branch}", version, "NVIDIA libcompute package (libnvidia-ml.so)",
        extra={"Conflicts": ", ".join(f"libnvidia-compute-{b}" for b in sorted(set(other))) or "nothing-else"}))
    _install(root, f"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{version}", src=lib, mode=0o755)
    (root / "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1").symlink_to(f"libnvidia-ml.so.{version}")
    _install(root, "/usr/lib/gpu-sim/python/gpusim_nvml.py", src=PKG_DIR / "common/gpusim_nvml.py")
    _script(root, "postinst", "ldconfig\n")
    _script(root, "postrm", "ldconfig\n")
    debs.append(_deb(root, out))

    root = work / f"nvidia-dkms-{branch}_{version}"
    _install(root, "DEBIAN/control", text=_control(
        f"nvidia-dkms-{branch}", version, "NVIDIA DKMS package (kernel module)", depends=("kmod",),
        extra={"Conflicts": ", ".join(f"nvidia-dkms-{b}" for b in sorted(set(other))) or "nothing-else"}))
    _install(root, "/usr/lib/gpu-sim/modules/nvidia.version", text=version + "\n")
    _install(root, "/usr/lib/gpu-sim/nvidia-kmod", src=PKG_DIR / "driver/nvidia-kmod", mode=0o755)
    _install(root, "/etc/modprobe.d/nvidia-gpu-sim.conf", src=PKG_DIR / "driver/nvidia-gpu-sim.conf")
    _install(root, "/lib/systemd/system/gpu-sim-nvidia-kmod.service",
             src=PKG_DIR / "driver/gpu-sim-nvidia-kmod.service")
    _install(root, "DEBIAN/conffiles", text="/etc/modprobe.d/nvidia-gpu-sim.conf\n")
    # Like DKMS: building the module needs the running kernel's headers.
    _script(root, "preinst", f"""\
if [ "$1" = install ] || [ "$1" = upgrade ]; then
  if [ ! -d "/lib/modules/$(uname -r)/build" ]; then
    echo "Error! Your kernel headers for kernel $(uname -r) cannot be found at /lib/modules/$(uname -r)/build" >&2
    echo "Please install the linux-headers-$(uname -r) package" >&2
    exit 1
  fi
fi
""")
    _script(root, "postinst", f"""\
if [ "$1" = configure ]; then
  echo "Building module nvidia/{version} for kernel $(uname -r) ... done."
  deb-systemd-helper enable gpu-sim-nvidia-kmod.service >/dev/null || true
  loaded=$(cat /run/gpu-sim/nvidia.ko.version 2>/dev/null || true)
  if [ -z "$loaded" ]; then
    modprobe nvidia || true
  elif [ "$loaded" != "{version}" ]; then
    echo "*** nvidia $loaded is loaded; a reboot (or module reload) activates {version} ***"
    touch /run/reboot-required
    echo "nvidia-dkms-{branch}" >> /run/reboot-required.pkgs
  fi
fi
""")
    _script(root, "postrm", """\
if [ "$1" = purge ] || [ "$1" = remove ]; then
  deb-systemd-helper purge gpu-sim-nvidia-kmod.service >/dev/null || true
fi
""")
    debs.append(_deb(root, out))

    root = work / f"nvidia-utils-{branch}_{version}"
    _install(root, "DEBIAN/control", text=_control(
        f"nvidia-utils-{branch}", version, "NVIDIA driver support binaries (nvidia-smi, nvidia-persistenced)",
        depends=(f"libnvidia-compute-{branch} (= {version}-{PKG_REVISION})", "python3")))
    _install(root, "/usr/bin/nvidia-smi", src=PKG_DIR / "driver/nvidia-smi", mode=0o755)
    _install(root, "/usr/bin/nvidia-persistenced", src=PKG_DIR / "driver/nvidia-persistenced", mode=0o755)
    _install(root, "/lib/systemd/system/nvidia-persistenced.service",
             src=PKG_DIR / "driver/nvidia-persistenced.service")
    _script(root, "postinst", """\
if [ "$1" = configure ]; then
  deb-systemd-helper enable nvidia-persistenced.service >/dev/null || true
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -e /run/gpu-sim/nvidia.ko.version ]; then
      deb-systemd-invoke restart nvidia-persistenced.service >/dev/null || true
    fi
  fi
fi
""")
    _script(root, "prerm", """\
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  deb-systemd-invoke stop nvidia-persistenced.service >/dev/null || true
fi
""")
    debs.append(_deb(root, out))

    root = work / f"nvidia-driver-{branch}_{version}"
    dep = f"(= {version}-{PKG_REVISION})"
    _install(root, "DEBIAN/control", text=_control(
        f"nvidia-driver-{branch}", version, "NVIDIA driver metapackage",
        depends=(f"libnvidia-compute-{branch} {dep}", f"nvidia-dkms-{branch} {dep}", f"nvidia-utils-{branch} {dep}")))
    _install(root, f"/usr/share/doc/nvidia-driver-{branch}/README.gpu-sim",
             text=f"Stand-in NVIDIA driver {version} (branch {branch}).\n")
    debs.append(_deb(root, out))

    root = work / f"nvidia-fabricmanager-{branch}_{version}"
    _install(root, "DEBIAN/control", text=_control(
        f"nvidia-fabricmanager-{branch}", version, "Fabric Manager for NVSwitch based systems",
        depends=("python3",)))
    fm = (PKG_DIR / "fabricmanager/nv-fabricmanager").read_text().replace("@VERSION@", version)
    _install(root, "/usr/bin/nv-fabricmanager", text=fm, mode=0o755)
    _install(root, "/lib/systemd/system/nvidia-fabricmanager.service",
             src=PKG_DIR / "fabricmanager/nvidia-fabricmanager.service")
    _script(root, "postinst", """\
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
""")
    _script(root, "prerm", """\
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  deb-systemd-invoke stop nvidia-fabricmanager.service >/dev/null || true
fi
""")
    debs.append(_deb(root, out))
    return debs


def _toolkit_packages(version: str, work: Path, out: Path) -> list[Path]:
    debs = []
    root = work / f"nvidia-container-toolkit-base_{version}"
    _install(root, "DEBIAN/control", text=_control(
        "nvidia-container-toolkit-base", version, "NVIDIA Container Toolkit Base", depends=("python3",)))
    ctk = (PKG_DIR / "toolkit/nvidia-ctk").read_text().replace("@VERSION@", version)
    ctk = ctk.replace('sys.path.insert(0, "/usr/lib/gpu-sim/python")',
                      'sys.path.insert(0, "/usr/lib/gpu-sim/ctk")')
    _install(root, "/usr/bin/nvidia-ctk", text=ctk, mode=0o755)
    _install(root, "/usr/lib/gpu-sim/ctk/gpusim_nvml.py", src=PKG_DIR / "common/gpusim_nvml.py")
    _install(root, "/usr/bin/nvidia-container-runtime", src=PKG_DIR / "toolkit/nvidia-container-runtime", mode=0o755)
    debs.append(_deb(root, out))

    root = work / f"nvidia-container-toolkit_{version}"
    _install(root, "DEBIAN/control", text=_control(
        "nvidia-container-toolkit", version, "NVIDIA Container toolkit",
        depends=(f"nvidia-container-toolkit-base (= {version}-{PKG_REVISION})", "python3")))
    _install(root, "/usr/bin/nvidia-container-runtime-hook",
             src=PKG_DIR / "toolkit/nvidia-container-runtime-hook", mode=0o755)
    debs.append(_deb(root, out))
    return debs


def _gpg(*args, capture=True, input=None):
    home = BUILD / "gnupg"
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return run(["gpg", "--homedir", home, "--batch", "--yes", *args], capture=capture, input=input)


def signing_key() -> str:
    """Fingerprint of the archive key, generated once and kept under sim/build/gnupg."""
    proc = run(["gpg", "--homedir", BUILD / "gnupg", "--batch", "--with-colons", "--list-secret-keys"],
               check=False, capture=True) if (BUILD / "gnupg").is_dir() else None
    if proc is None or "fpr:" not in (proc.stdout or ""):
        log("generating the simulated archive signing key")
        _gpg("--passphrase", "", "--pinentry-mode", "loopback", "--quick-generate-key", KEY_NAME,
             "rsa3072", "sign", "never")
        proc = run(["gpg", "--homedir", BUILD / "gnupg", "--batch", "--with-colons", "--list-secret-keys"],
                   capture=True)
    for line in proc.stdout.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise SimError("could not read the archive key fingerprint")


def packages_and_repos() -> dict:
    try:
        return _packages_and_repos()
    finally:
        # reading or using the key started a gpg-agent for sim/build/gnupg; it has nothing left to do
        if (BUILD / "gnupg").is_dir():
            run(["gpgconf", "--homedir", BUILD / "gnupg", "--kill", "gpg-agent"], check=False, capture=True)


def _packages_and_repos() -> dict:
    require_tools("dpkg-deb", "apt-ftparchive", "gpg", packages={"apt-ftparchive": "apt-utils", "dpkg-deb": "dpkg"})
    inputs = sorted(p for p in PKG_DIR.rglob("*") if p.is_file())
    lib_inputs = sorted(LIB_DIR.glob("*.[ch]")) + [LIB_DIR / "exports.map"]
    key = content_key("packages", DRIVERS, TOOLKIT_VERSIONS, PKG_REVISION, files=[*inputs, *lib_inputs])
    repo_root = BUILD / "repo"
    stamp = repo_root / ".key"
    fpr = signing_key()
    if stamp.is_file() and stamp.read_text() == key + fpr:
        return repo_info(fpr)
    log("building stand-in NVIDIA packages and signed apt repositories")
    for sub in (CUDA_REPO, TOOLKIT_REPO):
        shutil.rmtree(repo_root / sub, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        work = Path(tmp)
        for drv in DRIVERS:
            _driver_packages(drv, work, repo_root / CUDA_REPO)
        for version in TOOLKIT_VERSIONS:
            _toolkit_packages(version, work, repo_root / TOOLKIT_REPO)
    for sub in (CUDA_REPO, TOOLKIT_REPO):
        d = repo_root / sub
        packages = run(["apt-ftparchive", "packages", "."], cwd=d, capture=True).stdout
        (d / "Packages").write_text(packages)
        run(["gzip", "-kf9n", "Packages"], cwd=d, capture=True)
        release = run(["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=gpu-sim",
                       "-o", "APT::FTPArchive::Release::Label=gpu-sim stand-in NVIDIA packages",
                       "release", "."], cwd=d, capture=True).stdout
        (d / "Release").write_text(release)
        _gpg("--local-user", fpr, "--clearsign", "-o", d / "InRelease", d / "Release")
        _gpg("--local-user", fpr, "-abs", "-o", d / "Release.gpg", d / "Release")
        run(["gpg", "--homedir", BUILD / "gnupg", "--batch", "--yes", "--export", "-o",
             d / "gpu-sim-archive-keyring.gpg", fpr], capture=True)
        run(["gpg", "--homedir", BUILD / "gnupg", "--batch", "--yes", "--armor", "--export", "-o",
             d / "gpu-sim-archive-key.asc", fpr], capture=True)
    stamp.write_text(key + fpr)
    return repo_info(fpr)


def repo_info(fpr: str) -> dict:
    return {"fingerprint": fpr, "cuda_repo": CUDA_REPO, "toolkit_repo": TOOLKIT_REPO,
            "drivers": list(DRIVERS), "toolkit_versions": list(TOOLKIT_VERSIONS),
            "default_driver": DEFAULT_DRIVER, "default_toolkit": DEFAULT_TOOLKIT}


# ---------------------------------------------------------------------------------------------
# images


_DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
                  "oldoldstable", "oldstable", "stable", "testing", "unstable")


def _apt_entries(apt_dir: Path = APT_SOURCES) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled `deb` entry in the apt sources under apt_dir."""
    entries = []
    files = [apt_dir / "sources.list"] + sorted((apt_dir / "sources.list.d").glob("*.list"))
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 2:
                entries.append((words[0], [words[1]]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            fields = {}
            key = None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, value = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    return entries


def debian_mirrors(apt_dir: Path = APT_SOURCES) -> tuple[str, str | None]:
    """(Debian mirror, security mirror or None): GPU_SIM_DEBIAN_MIRROR / GPU_SIM_DEBIAN_SECURITY_MIRROR,
    else the first Debian archive and security archive in the build machine's apt sources. The
    repository names no package host: whatever this machine is configured to use, the images use."""
    main = os.environ.get("GPU_SIM_DEBIAN_MIRROR")
    security = os.environ.get("GPU_SIM_DEBIAN_SECURITY_MIRROR")
    for uri, suites in _apt_entries(apt_dir):
        for suite in suites:
            base, _sep, pocket = suite.partition("-")
            if base not in _DEBIAN_SUITES:
                continue
            if pocket == "security":
                security = security or uri.rstrip("/")
            elif pocket in ("", "updates"):
                main = main or uri.rstrip("/")
    if not main:
        raise SimError(f"no Debian mirror in this machine's apt sources ({apt_dir}/sources.list, "
                       f"{apt_dir}/sources.list.d/*.sources): set GPU_SIM_DEBIAN_MIRROR to the Debian "
                       "archive debootstrap should use (and GPU_SIM_DEBIAN_SECURITY_MIRROR for security updates)")
    return main, security


def _debootstrap(dest: Path, variant: str, include: tuple[str, ...], suite: str = DEBIAN_SUITE) -> None:
    require_tools("debootstrap")
    mirror, security = debian_mirrors()
    t0 = time.monotonic()
    log(f"debootstrap {suite} ({variant}, +{len(include)} packages) from {mirror}")
    run(["debootstrap", f"--variant={variant}", f"--include={','.join(include)}", suite, dest, mirror],
        capture=True)
    # Smaller images: no package cache, lists, docs or man pages.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"):
        target = dest / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name not in ("lock",):
                    child.unlink(missing_ok=True)
    # Empty package lists: make them look stale so that apt's cache_valid_time refreshes them.
    os.utime(dest / "var/lib/apt/lists", (0, 0))
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    (dest / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    log(f"debootstrap done in {time.monotonic() - t0:.0f}s")


def debian_image(ref_name: str, suite: str, packages: tuple[str, ...], changes: list[str], recipe=()) -> str:
    """An image of a minbase debootstrap of suite with packages (docker import), tagged by content."""
    ref = f"{ref_name}:{content_key(ref_name, IMAGE_RECIPE, suite, packages, changes, recipe)}"
    if image_exists(ref):
        return ref
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(rootfs, "minbase", packages, suite)
        _import_tree(rootfs, ref, changes)
    old = [r for r in docker("images", "--format", "{{.Repository}}:{{.Tag}}", ref_name).stdout.split() if r != ref]
    if old:
        docker("rmi", *old, check=False)
    log(f"built {ref}")
    return ref


def _import_tree(rootfs: Path, ref: str, changes: list[str]) -> None:
    cmd = ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."]
    imp = ["docker", "import"]
    for c in changes:
        imp += ["--change", c]
    imp += ["-", ref]
    tar = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    res = subprocess.run(imp, stdin=tar.stdout, capture_output=True, text=True, check=False)
    tar.stdout.close()
    if tar.wait() != 0 or res.returncode != 0:
        raise SimError(f"docker import of {rootfs} failed: {res.stderr[-2000:]}")


def _docker_build(context: Path, ref: str, extra_tags=()) -> None:
    args = ["build", "-q", "-t", ref]
    for tag in extra_tags:
        args += ["-t", tag]
    proc = docker(*args, str(context), check=False)
    if proc.returncode != 0:
        raise SimError(f"docker build {ref} failed: {(proc.stdout + proc.stderr)[-3000:]}")


def base_image() -> str:
    key = content_key("base", IMAGE_RECIPE, DEBIAN_SUITE, BASE_PACKAGES)
    ref = f"gpu-sim-base:{key}"
    if image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(rootfs, "minbase", BASE_PACKAGES)
        _import_tree(rootfs, ref, ['CMD ["/usr/bin/python3"]', "ENV LANG=C.UTF-8"])
    log(f"built {ref}")
    return ref


def service_images() -> dict:
    base = base_image()
    server = SIM_DIR / "images" / "rag_standin.py"
    key = content_key("services", IMAGE_RECIPE, base, SERVICE_IMAGES, SERVICE_IMAGE_TAG, SERVICE_USER, files=[server])
    out_dir = BUILD / "images"
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and all(
                (out_dir / m["tarball"]).is_file() and image_exists(m["image"]) for m in manifest["images"].values()):
            return manifest
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    images = {}
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        ctx = Path(tmp)
        shutil.copyfile(server, ctx / "rag_standin.py")
        for repo, kind in SERVICE_IMAGES.items():
            ref = f"{repo}:{SERVICE_IMAGE_TAG}"
            (ctx / "Dockerfile").write_text(f"""\
FROM {base}
COPY rag_standin.py /usr/local/bin/rag_standin.py
ENV RAG_SERVICE_KIND={kind} PORT=8000 PYTHONUNBUFFERED=1
USER {SERVICE_USER}
LABEL org.opencontainers.image.title="{repo}" org.opencontainers.image.version="{SERVICE_IMAGE_TAG}" \\
      io.ragops.standin="true"
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --retries=3 CMD ["python3", "/usr/local/bin/rag_standin.py", "--probe"]
CMD ["python3", "/usr/local/bin/rag_standin.py"]
""")
            _docker_build(ctx, ref)
            images[ref] = {"image": ref, "id": image_id(ref)}
    # One tarball for the release, as air-gapped sites receive it: the images share their base
    # layer, so one `docker save` of all of them is barely larger than one of them.
    bundle = out_dir / f"rag-images_{SERVICE_IMAGE_TAG}.tar"
    docker("save", "-o", str(bundle), *images)
    digest = sha256_file(bundle)
    for meta in images.values():
        meta.update({"tarball": bundle.name, "sha256": digest, "size": bundle.stat().st_size})
    manifest = {"key": key, "base": base, "images": images}
    write_json(manifest_path, manifest)
    log(f"built {len(images)} service images -> {out_dir}")
    return manifest


NODE_FILES = SIM_DIR / "node"


def _host_suite(host_os: str) -> str:
    if host_os not in HOST_OS:
        raise SimError(f"unknown host OS {host_os!r}: choose one of {', '.join(HOST_OS)} (OS=... make sim-up)")
    return HOST_OS[host_os]


def node_rootfs_ref(host_os: str = DEFAULT_HOST_OS) -> str:
    return f"gpu-sim-node-rootfs:{content_key('node-rootfs', IMAGE_RECIPE, _host_suite(host_os), NODE_PACKAGES)}"


def node_ref(host_os: str = DEFAULT_HOST_OS) -> str:
    files = sorted(p for p in NODE_FILES.rglob("*") if p.is_file())
    return f"gpu-sim-node:{content_key('node', IMAGE_RECIPE, _host_suite(host_os), NODE_PACKAGES, files=files)}"


def node_image(host_os: str = DEFAULT_HOST_OS) -> str:
    """The simulated GPU node of host_os (built on first use, then reused while its inputs are unchanged)."""
    suite = _host_suite(host_os)
    ref = node_ref(host_os)
    current = "gpu-sim-node:current" if host_os == DEFAULT_HOST_OS else f"gpu-sim-node:current-{host_os}"
    if image_exists(ref):
        docker("tag", ref, current)
        return ref
    rootfs_ref = node_rootfs_ref(host_os)
    if not image_exists(rootfs_ref):
        with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
            rootfs = Path(tmp) / "rootfs"
            _debootstrap(rootfs, "minbase", NODE_PACKAGES, suite)
            _import_tree(rootfs, rootfs_ref, ["ENV container=docker LANG=C.UTF-8", 'CMD ["/lib/systemd/systemd"]'])
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        ctx = Path(tmp)
        shutil.copytree(NODE_FILES, ctx / "node")
        (ctx / "Dockerfile").write_text(f"""\
FROM {rootfs_ref}
COPY node/ /
RUN chmod 0755 /usr/lib/gpu-sim/node-boot && systemctl enable gpu-sim-boot.service \\
 && systemctl mask getty@tty1.service console-getty.service systemd-firstboot.service \\
 && : > /etc/machine-id && rm -f /var/lib/dbus/machine-id \\
 && mkdir -p /etc/gpu-sim && touch /etc/gpu-sim/kernel-headers
STOPSIGNAL SIGRTMIN+3
ENV container=docker LANG=C.UTF-8
CMD ["/lib/systemd/systemd"]
""")
        _docker_build(ctx, ref, extra_tags=[current])
    log(f"built {ref} ({host_os})")
    return ref


def prune(keep: set[str]) -> None:
    """Remove earlier builds of the simulator's images (other tags of its repositories, and stand-in
    service images left untagged by a rebuild); nothing else is touched."""
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    old = [ref for ref in out if ref.split(":")[0] in ("gpu-sim-node", "gpu-sim-node-rootfs", "gpu-sim-base")
           and ref not in keep and not ref.endswith(":current")]
    if old:
        docker("rmi", *old, check=False)
    docker("image", "prune", "-f", "--filter", "label=io.ragops.standin=true", check=False)


def build_all() -> dict:
    docker_ready()
    BUILD.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    libdir = default_library_dir()
    for drv in DRIVERS:
        library(drv["version"], drv["cuda"])
    repo = packages_and_repos()
    services = service_images()
    node = node_image()
    info = {"node_image": node, "library_dir": str(libdir), "repo": repo,
            "images": services["images"], "base_image": services["base"]}
    keep = {services["base"], *services["images"]}
    keep |= {ref for host_os in HOST_OS for ref in (node_ref(host_os), node_rootfs_ref(host_os))}
    prune(keep)
    write_json(BUILD / "build.json", info)
    log(f"build complete in {time.monotonic() - t0:.1f}s (node image {node})")
    return info
