# -*- coding: utf-8 -*-
"""nvidia_driver: each preflight failure stops with its message before any package changes; an
upgrade loads the new module in place when nothing holds the GPUs. site.yml's driver rollout on a
serving host: its services stopped cleanly, the module replaced in place (no reboot), verified, the
same containers healthy again; a change that cannot free the GPUs restores the host and stops."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpusim.nodes import REPO_CONTAINER, REPO_PORT

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "tests" / "playbooks" / "roles.yml"


@pytest.fixture(scope="module")
def bare(node_factory, ansible):
    node = node_factory("gpu-pre")
    setup = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["host_python"]})
    assert setup.rc == 0, setup
    return node


PREFLIGHT = [
    ("secure boot", "printf '\\006\\000\\000\\000\\001' > /tmp/secureboot",
     {"nvidia_driver_secure_boot_efivar": "/tmp/secureboot"},
     "nvidia_driver: Secure Boot is enabled on gpu-pre-01 and no module signing is planned: the unsigned nvidia "
     "module would not load. Enroll a MOK key", "true"),
    ("no kernel headers", "rm -rf /lib/modules/$(uname -r)/build", {},
     "nvidia_driver: the headers of the running kernel", "mkdir -p /lib/modules/$(uname -r)/build"),
    ("unknown branch", "true", {"nvidia_driver_branch": "999", "nvidia_driver_version": "999.1.2"},
     ("nvidia_driver: branch 999 version 999.1.2-1 is not in http://%s/cuda/debian12/x86_64/ (it offers: "
      "nothing for that branch). Pin a branch and version the repository has. Nothing was installed." % REPO_CONTAINER),
     "true"),
    ("fabric manager version", "true", {"nvidia_driver_fabricmanager_version": "550.144.03"},
     "nvidia_driver: fabric manager 550.144.03 does not match the driver 550.127.05; the fabric manager only runs "
     "with a driver of exactly its version.", "true"),
    ("repository unreachable", "true", {"nvidia_driver_repo_url": "http://%s/no-such-mirror/" % REPO_CONTAINER},
     "apt repository 'nvidia-cuda' is unreachable from gpu-pre-01: http://%s/no-such-mirror/ answered 404" % REPO_CONTAINER,
     "true"),
    ("version not of the branch", "true", {"nvidia_driver_version": "535.216.03"},
     "nvidia_driver: version 535.216.03 is not a release of branch 550", "true"),
    ("key not the pinned one", "true", {"nvidia_driver_repo_key_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567"},
     "not the pinned 0123456789ABCDEF0123456789ABCDEF01234567. The key was replaced or the URL is wrong: verify the "
     "new key with its publisher before changing the pin. Nothing was installed.", "true"),
    ("key not found", "true", {"nvidia_driver_repo_key_url": "http://127.0.0.1:%d/no-such-key.asc" % REPO_PORT},
     "apt repository 'nvidia-cuda': the controller could not fetch an ASCII-armored OpenPGP key from "
     "http://127.0.0.1:%d/no-such-key.asc (the fetch failed, see the warning above)" % REPO_PORT, "true"),
    ("key URL is a web page", "true", {"nvidia_driver_repo_key_url": "http://127.0.0.1:%d/" % REPO_PORT},
     "(it answered with something else: <!DOCTYPE HTML>", "true"),
]


@pytest.mark.parametrize("label,setup,extra,message,undo", PREFLIGHT, ids=[p[0] for p in PREFLIGHT])
def test_preflight_failure_changes_no_package(bare, ansible, label, setup, extra, message, undo):
    bare.sh(setup)
    before = bare.packages()
    try:
        run = ansible(ROLES, bare.inventory, extra_vars=dict(extra, test_roles=["nvidia_driver"]))
    finally:
        bare.sh(undo)
    assert run.rc != 0
    assert message in " ".join(run.out.split()), run
    assert bare.packages() == before


def test_a_key_block_that_also_carries_another_key_is_refused(bare, ansible, tmp_path):
    """Issue 16: the pinned key with a second key appended (apt would trust both) is refused, naming
    the extra key, before anything is installed."""
    import json
    import subprocess

    from gpusim import build

    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--yes"]
    subprocess.run(gpg + ["--passphrase", "", "--pinentry-mode", "loopback", "--quick-generate-key",
                          "intruder <intruder@example.invalid>", "ed25519", "sign", "never"], check=True,
                   capture_output=True)
    extra = [line.split(":")[9] for line in subprocess.run(gpg + ["--with-colons", "--list-keys"], check=True,
                                                           capture_output=True, text=True).stdout.splitlines()
             if line.startswith("fpr:")][0]
    info = json.loads((build.BUILD / "build.json").read_text())
    pinned = (build.BUILD / "repo" / info["repo"]["cuda_repo"] / "gpu-sim-archive-key.asc").read_text()
    served = build.BUILD / "repo" / "test-two-keys.asc"
    intruder = subprocess.run(gpg + ["--armor", "--export", extra], check=True, capture_output=True, text=True).stdout
    served.write_text(pinned + "\n" + intruder)
    before = bare.packages()
    try:
        url = "http://127.0.0.1:%d/%s" % (REPO_PORT, served.name)
        run = ansible(ROLES, bare.inventory, extra_vars={"test_roles": ["nvidia_driver"],
                                                         "nvidia_driver_repo_key_url": url})
    finally:
        served.unlink()
    assert run.rc != 0
    said = " ".join(run.out.split())
    assert ("apt repository 'nvidia-cuda': the key block at %s carries, besides the pinned %s, the key(s) %s; apt "
            "would trust them too." % (url, info["repo"]["fingerprint"], extra)) in said, said[-3000:]
    assert bare.packages() == before


def test_driver_from_nothing_then_upgraded_in_place(bare, ansible):
    """One scenario on the bare node, in its own order (the preflight tests change no package, so
    they may run before or after it): no NVML library before the driver, eight GPUs after; then an
    upgrade with no GPU users loads the new module in place, without a reboot, and holds it."""
    probe = "/opt/ragops/venv/bin/python -c 'import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount())'"
    before = bare.sh(probe, check=False)
    assert before.returncode != 0 and "NVML Shared Library Not Found" in before.stderr
    run = ansible(ROLES, bare.inventory, extra_vars={"test_roles": ["nvidia_driver"]})
    assert run.rc == 0, run
    assert bare.sh(probe).stdout.strip() == "8"
    assert "driver 550.127.05 = packages = kernel module = NVML = fabric manager" in run.out

    boot_id = bare.sh("cat /run/gpu-sim/boot_id").stdout
    run = ansible(ROLES, bare.inventory, extra_vars={"test_roles": ["nvidia_driver"],
                                                     "nvidia_driver_version": "550.144.03"})
    assert run.rc == 0, run
    assert "driver 550.144.03 = packages = kernel module = NVML = fabric manager" in run.out
    # loaded in place: the reboot task skipped (so not shown: display_skipped_hosts is off), same boot
    assert "Load the new module" in run.out and "Reboot into the new module" not in run.out
    assert bare.sh("cat /run/gpu-sim/boot_id").stdout == boot_id
    held = bare.sh("apt-mark showhold").stdout.split()
    assert {"nvidia-driver-550", "nvidia-fabricmanager-550", "libnvidia-compute-550"} <= set(held)
    again = ansible(ROLES, bare.inventory, extra_vars={"test_roles": ["nvidia_driver"],
                                                       "nvidia_driver_version": "550.144.03"})
    assert again.rc == 0 and again.recap(bare.name)["changed"] == 0, again


def service_containers(node):
    """name -> (container ID, running) of the collection's service containers."""
    out = node.sh("docker ps -a --no-trunc --filter label=io.ragops.gpu-stack.service "
                  "--format '{{.Names}} {{.ID}} {{.State}}'").stdout.split("\n")
    return dict((line.split()[0], (line.split()[1], line.split()[2] == "running")) for line in out if line.strip())


SERVICES = ["rag-whisper", "rag-embedding-server", "rag-llm-server", "rag-dots-ocr"]  # the map's order


def test_a_driver_change_under_running_services_drains_them_and_brings_them_back(converged, ansible):
    node = converged
    node.dirty = True
    boot_id = node.sh("cat /run/gpu-sim/boot_id").stdout
    before = service_containers(node)
    assert sorted(before) == sorted(SERVICES) and all(up for _id, up in before.values())
    try:
        run = ansible(ROOT / "site.yml", node.inventory, extra_vars={"nvidia_driver_version": "550.144.03"})
        assert run.rc == 0, run
        stopped = run.out.split("Stop the services cleanly")[1].split("TASK")[0]
        assert stopped.count("changed: [%s]" % node.name) == 4, stopped
        assert "Start the services again" in run.out and "Reboot into the new module" not in run.out
        assert node.sh("cat /run/gpu-sim/boot_id").stdout == boot_id  # loaded in place, no reboot
        assert "driver 550.144.03 = packages = kernel module = NVML = fabric manager" in run.out
        assert node.sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader -i 0").stdout.strip() == \
            "550.144.03"
        assert service_containers(node) == before  # the same containers, started again
        assert "UNHEALTHY" not in run.out.split("Services on")[-1].split("GPUs on")[0]
    finally:
        back = ansible(ROOT / "site.yml", node.inventory)
    assert back.rc == 0, back
    node.dirty = False
    assert "driver 550.127.05 = packages = kernel module = NVML = fabric manager" in back.out


def test_a_driver_change_that_cannot_free_the_gpus_restores_the_host_and_stops(converged, ansible):
    """A GPU process the collection does not manage keeps the module in use: with rebooting off (the
    default) the rollout stops before any package changes, the driver's daemons and the services run
    again, and no later play runs."""
    node = converged
    node.dirty = True
    before = service_containers(node)
    version = "dpkg-query -W -f='${Version}' nvidia-driver-550"
    installed = node.sh(version).stdout
    node.sh("docker rm -f t-foreign >/dev/null 2>&1 || true; docker run -d --name t-foreign --gpus '\"device=6\"' "
            "--entrypoint sleep rag-embedding-server:1.0.0 infinity")
    try:
        run = ansible(ROOT / "site.yml", node.inventory, extra_vars={"nvidia_driver_version": "550.144.03"})
    finally:
        node.sh("docker rm -f t-foreign")
    said = " ".join(run.out.split())
    assert run.rc != 0
    assert ("driver rollout stopped on %s at 'Stop when the module stays in use and rebooting is not allowed': "
            "nvidia_driver: the nvidia module on %s is still in use with the collection's services stopped ("
            % (node.name, node.name)) in said, said[-3000:]
    assert ("a process the collection does not manage holds a GPU (nvidia-smi lists it). Stop that process and run "
            "site.yml again, or set nvidia_driver_reboot_allowed: true to reboot into the new driver. The driver's "
            "daemons and the services that were running (%s) were started again; the hosts after it were not "
            "touched. Fix the cause and run site.yml again." % ", ".join(SERVICES)) in said, said[-3000:]
    assert "PLAY [Provision and deploy]" not in run.out
    assert node.sh(version).stdout == installed  # no package changed
    assert node.sh("systemctl is-active nvidia-persistenced").stdout.strip() == "active"
    assert service_containers(node) == before
    assert node.docker_health(SERVICES) == dict((n, "healthy") for n in SERVICES)


def test_host_python_fetches_through_pips_configuration_only(bare, ansible, tmp_path):
    """Issue 18: the wheels come from the role's hash-locked requirements through pip's own
    configuration. An air-gapped controller (PIP_NO_INDEX, PIP_FIND_LINKS) with no wheels stops
    before the host is touched; pointed at a directory holding them, the virtualenv is made from
    them; the retired list of URLs is refused by name."""
    import subprocess
    import sys

    venv = "/opt/ragops/venv-airgap"
    req = ROOT / "roles" / "host_python" / "files" / "requirements.txt"
    empty, house = tmp_path / "empty", tmp_path / "house"
    empty.mkdir()
    extra = {"test_roles": ["host_python"], "host_python_venv": venv,
             "host_python_controller_cache": str(tmp_path / "cache"), "host_python_wheel_dir": "/opt/ragops/wheels-airgap"}
    bare.sh("rm -rf %s /opt/ragops/wheels-airgap" % venv)

    run = ansible(ROLES, bare.inventory, extra_vars=extra, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty)})
    assert run.rc != 0
    text = " ".join(run.out.split())
    assert "pip download on the controller" in text, run
    assert "could not fetch the wheels of " in text and "roles/host_python/files/requirements.txt:" in text, run
    assert "PIP_FIND_LINKS with PIP_NO_INDEX=1" in text and "Nothing was changed on the hosts." in text
    assert bare.sh("test -e %s || test -e /opt/ragops/wheels-airgap || echo absent" % venv).stdout.strip() == "absent"

    # the wheels put in a directory by pip itself, through this machine's configured index
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--require-hashes", "-r", str(req), "-d", str(house)], check=True, timeout=300)
    run = ansible(ROLES, bare.inventory, extra_vars=extra, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(house)})
    assert run.rc == 0, run
    versions = bare.sh("%s/bin/python -c 'import docker, pynvml, importlib.metadata as m; "
                       "print(m.version(\"docker\"), m.version(\"nvidia-ml-py\"))'" % venv).stdout.split()
    assert versions == ["7.2.0", "13.615.71"]
    assert len(list((tmp_path / "cache").glob("ragops-wheels-*.tar"))) == 1

    run = ansible(ROLES, bare.inventory, extra_vars=dict(extra, host_python_wheels=[{"name": "docker"}]))
    assert run.rc != 0 and "host_python_wheels is no longer read" in " ".join(run.out.split()), run
    bare.sh("rm -rf %s /opt/ragops/wheels-airgap" % venv)
