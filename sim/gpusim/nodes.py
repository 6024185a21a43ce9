"""Simulated nodes: boot, tear down, inventory, fault injection."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import yaml

from . import build, faults, fixtures, models
from .util import ROOT, STATE, SimError, docker, log, wait_for, write_json

NETWORK = "gpu-sim"
# Each checkout has its own repository server (name, network alias and port), so two checkouts on
# one Docker host do not replace each other's; its nodes carry the checkout, and a node name that
# another checkout's node already has is refused, not taken over.
CHECKOUT = hashlib.sha1(str(ROOT.resolve()).encode("utf-8")).hexdigest()[:8]
REPO_CONTAINER = "gpu-sim-repo-" + CHECKOUT
REPO_PORT = int(os.environ.get("GPU_SIM_REPO_PORT") or 18080 + int(CHECKOUT, 16) % 900)
APT_CACHE_VOLUME = "gpu-sim-apt-archives"
LABEL = "io.ragops.gpu-sim"
SIM_INVENTORY = ROOT / "inventories" / "sim"
SOURCE_INVENTORY = ROOT / "inventories" / "a100"

# Every capability but SYS_RESOURCE, which the sandboxes these tests run in do not grant (so
# --privileged fails there); docker 20.10 also rejects BPF, PERFMON and CHECKPOINT_RESTORE by name.
CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
    "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
    "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
)

HOST_PREFIX = {"a100-sxm4-80gb-x8": "gpu-a100", "a100-pcie-80gb-x8": "gpu-a100p", "h100-sxm5-80gb-x4": "gpu-h100"}


def node_view(machine: dict) -> dict:
    """A fixture as a node sees it: the kernel module and persistence follow the stand-in packages,
    and container processes come from the container hook."""
    view = json.loads(json.dumps(machine))
    view["kernel_module"] = {"state_file": "/run/gpu-sim/nvidia.ko.version"}
    view["runtime_processes_dir"] = "/run/gpu-sim/processes.d"
    for gpu in view["gpus"]:
        gpu["persistence_mode"] = "daemon"
    return view


def state_dir(name: str) -> Path:
    return STATE / name


def machine_path(name: str) -> Path:
    return state_dir(name) / "machine.json"


def nodes() -> list[str]:
    """This checkout's nodes."""
    out = docker("ps", "-a", "--filter", f"label={LABEL}.checkout={CHECKOUT}", "--format", "{{.Names}}").stdout.split()
    return sorted(out)


def owner(name: str) -> str | None:
    """The checkout directory a container of the simulator belongs to, if it is another's."""
    proc = docker("inspect", "--format", "{{index .Config.Labels \"" + LABEL + ".checkout\"}} "
                  "{{index .Config.Labels \"" + LABEL + ".root\"}}", name, check=False)
    if proc.returncode != 0:
        return None
    theirs, root = (proc.stdout.split() + ["", ""])[:2]
    if theirs in ("", "<no", CHECKOUT):  # ours, or made before nodes carried their checkout: replaced as before
        return None
    if root and not (Path(root) / "sim" / "gpusim").is_dir():
        return None  # its checkout is gone (a deleted clone, an interrupted CI run): a stale node, replaced
    return root or "checkout " + theirs


def ensure_network() -> None:
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", NETWORK)


def _serves(marker: str) -> bool:
    import urllib.request  # noqa: PLC0415
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{REPO_PORT}/.serve-id", timeout=3) as resp:
            return resp.read().decode().strip() == marker
    except OSError:
        return False


def ensure_repo_server(base_image: str) -> None:
    """The HTTP server for the stand-in apt repositories and the model mirror. Recreated when it does
    not serve this checkout's current sim/build/repo (e.g. after the build directory was replaced)."""
    import uuid  # noqa: PLC0415
    serve = str(build.BUILD / "repo")
    marker_file = build.BUILD / "repo" / ".serve-id"
    if not marker_file.is_file():
        marker_file.write_text(str(uuid.uuid4()))
    marker = marker_file.read_text().strip()
    proc = docker("inspect", "--format", "{{.State.Running}} {{index .Config.Labels \"" + LABEL + ".serve\"}} "
                  "{{.Config.Image}}", REPO_CONTAINER, check=False)
    if proc.returncode == 0:
        running, served, image = (proc.stdout.split() + ["", "", ""])[:3]
        if running == "true" and served == serve and image == base_image and _serves(marker):
            return
        docker("rm", "-f", REPO_CONTAINER)
    ensure_network()
    docker("run", "-d", "--name", REPO_CONTAINER, "--network", NETWORK, "--network-alias", REPO_CONTAINER,
           "--label", f"{LABEL}.serve={serve}", "--label", f"{LABEL}.repo=true", "--restart", "unless-stopped",
           "-p", f"127.0.0.1:{REPO_PORT}:80", "-v", f"{serve}:/srv:ro", base_image,
           "python3", "-m", "http.server", "80", "--directory", "/srv")
    wait_for(lambda: _serves(marker), 30, what="the repository server")


def run_args(name: str, image: str, privileged: bool, shared_apt_cache: bool = True) -> list[str]:
    args = ["run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
            "--label", f"{LABEL}.node=true", "--label", f"{LABEL}.checkout={CHECKOUT}",
            "--label", f"{LABEL}.root={ROOT.resolve()}", "--restart", "unless-stopped",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec",
            "-v", f"{name}-docker:/var/lib/docker", "-v", f"{state_dir(name)}:/etc/gpu-sim"]
    if shared_apt_cache:
        # One download of docker.io and friends for every node booted one after another. Nodes that
        # install at the same time cannot share it (apt locks the archive directory).
        args += ["-v", f"{APT_CACHE_VOLUME}:/var/cache/apt/archives"]
    if privileged:
        args.append("--privileged")
    else:
        for cap in CAPABILITIES:
            args += ["--cap-add", cap]
    return args + [image]


def booted(name: str):
    proc = docker("exec", name, "systemctl", "is-system-running", check=False)
    state = proc.stdout.strip()
    return state if state in ("running", "degraded") else None


def up(count: int = 1, fixture: str = fixtures.DEFAULT, privileged: bool | None = None,
       prefix: str | None = None, write_inventory: bool = True, inventory: Path | None = None,
       host_os: str = build.DEFAULT_HOST_OS) -> dict:
    info = build.build_all()
    image = build.node_image(host_os)
    if privileged is None:
        privileged = os.environ.get("GPU_SIM_PRIVILEGED") == "1"
    ensure_network()
    ensure_repo_server(info["base_image"])
    machine = fixtures.load(fixture)
    prefix = prefix or HOST_PREFIX.get(machine.get("machine"), "gpu-node")
    names = [f"{prefix}-{i:02d}" for i in range(1, count + 1)]
    timings = {}
    for name in names:
        other = owner(name)
        if other:
            raise SimError(f"node {name} belongs to the simulator of {other}; run `scripts/gpu-sim down` there, or "
                           f"boot these under another name (--prefix)")
    for name in names:
        if docker("inspect", name, check=False).returncode == 0:
            docker("rm", "-f", name)
        # a fresh node: none of an earlier one's Docker state (its volume outlives a container removed by hand)
        docker("volume", "rm", "-f", f"{name}-docker", check=False)
        sdir = state_dir(name)
        shutil.rmtree(sdir, ignore_errors=True)
        sdir.mkdir(parents=True)
        write_json(sdir / "machine.json", node_view(machine))
        (sdir / "kernel-headers").write_text("present\n")
        (sdir / "fixture").write_text(fixture + "\n")
        (sdir / "os").write_text(host_os + "\n")
        t0 = time.monotonic()
        docker(*run_args(name, image, privileged, shared_apt_cache=count == 1))
        state = wait_for(lambda n=name: booted(n), 90, interval=0.2, what=f"{name} to boot")
        timings[name] = time.monotonic() - t0
        log(f"{name}: booted ({state}) in {timings[name]:.1f}s [{machine['description']}, {host_os}]")
    models.write_mirror(SOURCE_INVENTORY)
    if write_inventory:
        write_sim_inventory(info, names=None if inventory is None else names, dest=inventory)
    return {"nodes": names, "boot_seconds": timings, "build": info}


def remove(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)
    docker("volume", "rm", "-f", f"{name}-docker", check=False)
    shutil.rmtree(state_dir(name), ignore_errors=True)


def down() -> None:
    names = nodes()
    for name in names:
        docker("rm", "-f", "-v", name, check=False)
        docker("volume", "rm", "-f", f"{name}-docker", check=False)
        shutil.rmtree(state_dir(name), ignore_errors=True)
        log(f"{name}: removed")
    docker("rm", "-f", REPO_CONTAINER, check=False)
    docker("network", "rm", NETWORK, check=False)
    if SIM_INVENTORY.exists():
        shutil.rmtree(SIM_INVENTORY)
        log(f"removed {SIM_INVENTORY.relative_to(ROOT)}")


# ---------------------------------------------------------------------------------------------
# inventory


def sim_vars(info: dict) -> dict:
    """What differs between the simulated node and a real one: where packages, images and
    models come from, and how a reboot is recognised. Everything else is inventories/a100."""
    repo = info["repo"]
    base = f"http://{REPO_CONTAINER}"  # as the nodes reach the repository server
    ctl = f"http://127.0.0.1:{REPO_PORT}"  # as the controller reaches it
    images = {}
    for ref, meta in info["images"].items():
        images[ref] = {"tarball": str(build.BUILD / "images" / meta["tarball"]), "sha256": meta["sha256"],
                       "id": meta["id"]}
    out = {
        "ansible_connection": "community.docker.docker",
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "nvidia_driver_repo_url": f"{base}/{repo['cuda_repo']}/",
        "nvidia_driver_repo_key_url": f"{ctl}/{repo['cuda_repo']}/gpu-sim-archive-key.asc",
        "nvidia_driver_repo_key_fingerprint": repo["fingerprint"],
        "nvidia_container_toolkit_repo_url": f"{base}/{repo['toolkit_repo']}/",
        "nvidia_container_toolkit_repo_key_url": f"{ctl}/{repo['toolkit_repo']}/gpu-sim-archive-key.asc",
        "nvidia_container_toolkit_repo_key_fingerprint": repo["fingerprint"],
        # A container shares the host kernel's boot_id; the node writes a fresh one at each boot.
        "nvidia_driver_reboot_boot_time_command": "cat /run/gpu-sim/boot_id",
        "gpu_stack_image_sources": images,
        # The container toolkit's smoke test runs one of the stand-in images (they carry python3 for
        # the nvidia-smi the hook injects, as CUDA images carry the real one).
        "nvidia_container_toolkit_smoke_image": "rag-embedding-server:%s" % build.SERVICE_IMAGE_TAG,
        "nvidia_container_toolkit_smoke_image_tarball": images["rag-embedding-server:%s" % build.SERVICE_IMAGE_TAG]["tarball"],
        "gpu_stack_model_mirror_url": f"http://127.0.0.1:{REPO_PORT}/models",
    }
    return out


SIM_OVERRIDES_LAYER = "gpu_stack_service_overrides__00_simulator"


def memlock_overrides() -> dict:
    """Services asking for unlimited memlock get this machine's hard limit when it cannot grant more.

    Raising RLIMIT_MEMLOCK needs CAP_SYS_RESOURCE, which the sandboxes these tests run in lack; on a
    real host `memlock: -1` (what the map asks for the LLM) works as written."""
    import resource  # noqa: PLC0415
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard == resource.RLIM_INFINITY:
        return {}
    out = {}
    for f in sorted((SOURCE_INVENTORY / "group_vars").rglob("*.yml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for svc in data.get("gpu_stack_services") or []:
            if (svc.get("ulimits") or {}).get("memlock") == -1:
                out[svc["name"]] = {"ulimits": {"memlock": hard}}
    return out


def source_overrides() -> dict:
    merged = {}
    for f in sorted((SOURCE_INVENTORY / "group_vars").rglob("*.yml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        merged.update(data.get("gpu_stack_service_overrides") or {})
    return merged


def _merge(base: dict, extra: dict) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_sim_inventory(info: dict, names: list[str] | None = None, dest: Path | None = None) -> Path:
    """Write an inventory for simulated nodes (default: every running node, into inventories/sim)."""
    names = nodes() if names is None else names
    dest = dest or SIM_INVENTORY
    if dest.exists():
        shutil.rmtree(dest)
    gv = dest / "group_vars" / "gpu_nodes"
    gv.mkdir(parents=True)
    src = SOURCE_INVENTORY / "group_vars" / "gpu_nodes"
    copied = []
    if src.is_dir():
        for f in sorted(src.glob("*.yml")):
            text = f.read_text(encoding="utf-8")
            header = f"# Generated by gpu-sim from {f.relative_to(ROOT)}; edit that file, not this copy.\n"
            (gv / f.name).write_text(header + text, encoding="utf-8")
            copied.append(f.name)
    hosts = {name: {"ansible_host": name} for name in names}
    (dest / "hosts.yml").write_text(
        "# Generated by `gpu-sim up`: the simulated GPU nodes (docker connection). Removed by `gpu-sim down`.\n"
        + yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": hosts}}}}, sort_keys=False),
        encoding="utf-8")
    sv = sim_vars(info)
    limits = memlock_overrides()
    if limits:
        # A layer of its own, so that a host's or a run's overrides add to it instead of replacing it;
        # also in the plain variable for releases that predate override layers (test_upgrade).
        sv[SIM_OVERRIDES_LAYER] = limits
        sv["gpu_stack_service_overrides"] = _merge(source_overrides(), limits)
    (gv / "zz_sim.yml").write_text(
        "# Generated by `gpu-sim up`: the simulated node's sources (local apt repositories, image tarballs,\n"
        "# model mirror) and connection. Everything else comes from inventories/a100.\n"
        + ("# memlock: this machine cannot grant unlimited locked memory (no CAP_SYS_RESOURCE); the\n"
           "# services that ask for it get the hard limit instead (%s).\n" % SIM_OVERRIDES_LAYER if limits else "")
        + yaml.safe_dump(sv, sort_keys=True), encoding="utf-8")
    log(f"wrote {dest} ({len(names)} host(s); copied {', '.join(copied) or 'no'} group_vars from inventories/a100)")
    return dest


# ---------------------------------------------------------------------------------------------
# faults


def inject(name: str, kind: str, **kwargs) -> str:
    path = machine_path(name)
    if not path.is_file():
        raise SimError(f"{name} is not a running simulated node (no {path}); see `gpu-sim status`")
    machine = json.loads(path.read_text(encoding="utf-8"))
    message = faults.apply(machine, kind, **kwargs)
    write_json(path, machine)
    return message


def reset(name: str) -> None:
    fixture = (state_dir(name) / "fixture").read_text().strip()
    write_json(machine_path(name), node_view(fixtures.load(fixture)))


def status() -> list[dict]:
    out = []
    for name in nodes():
        running = docker("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        fixture = (state_dir(name) / "fixture").read_text().strip() if (state_dir(name) / "fixture").exists() else "?"
        host_os = (state_dir(name) / "os").read_text().strip() if (state_dir(name) / "os").exists() else "?"
        out.append({"node": name, "state": running, "fixture": fixture, "os": host_os})
    return out


MOLECULE_DIR = build.BUILD / "molecule"


def molecule_env(fixture: str = fixtures.DEFAULT) -> Path:
    """What molecule scenarios need: the images, the repository server, and under sim/build/molecule
    the group_vars of a simulated node (inventories/a100 + the simulator's sources) and the machine
    file the scenarios' prepare step installs as /etc/gpu-sim/machine.json."""
    info = build.build_all()
    ensure_network()
    ensure_repo_server(info["base_image"])
    models.write_mirror(SOURCE_INVENTORY)
    tmp = MOLECULE_DIR.with_name("molecule.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_sim_inventory(info, names=[], dest=tmp / "inventory")
    write_json(tmp / "machine.json", node_view(fixtures.load(fixture)))
    shutil.rmtree(MOLECULE_DIR, ignore_errors=True)
    tmp.rename(MOLECULE_DIR)
    log(f"molecule environment ready in {MOLECULE_DIR.relative_to(ROOT)}")
    return MOLECULE_DIR
