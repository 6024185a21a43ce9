"""nvidia_driver: the exact pin, held and kept from unattended-upgrades, nouveau blacklisted, the
daemons running, and NVML through the real pynvml: no library before the role, 8 GPUs after."""
import json

PKGS = ["nvidia-driver-550", "libnvidia-compute-550", "nvidia-dkms-550", "nvidia-utils-550", "nvidia-fabricmanager-550"]


def test_packages_at_the_pin_and_held(host):
    held = host.check_output("apt-mark showhold").split()
    for name in PKGS:
        pkg = host.package(name)
        assert pkg.is_installed and pkg.version == "550.127.05-1", name
        assert name in held
    unattended = host.file("/etc/apt/apt.conf.d/51ragops-nvidia-driver").content_string
    assert all('"%s";' % name in unattended for name in PKGS)
    assert "Pin: version 550.127.05-1" in host.file("/etc/apt/preferences.d/ragops-nvidia-driver").content_string


def test_repository_signed_by_the_pinned_key_only(host):
    source = host.file("/etc/apt/sources.list.d/nvidia-cuda.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in source
    assert host.file("/etc/apt/keyrings/nvidia-cuda.asc").mode == 0o644


def test_nouveau_blacklisted(host):
    conf = host.file("/etc/modprobe.d/ragops-blacklist-nouveau.conf")
    assert "blacklist nouveau" in conf.content_string and conf.mode == 0o644


def test_daemons_enabled_and_running(host):
    for unit in ("nvidia-persistenced", "nvidia-fabricmanager"):
        svc = host.service(unit)
        assert svc.is_enabled and svc.is_running, unit


def test_nvml_no_library_before_eight_gpus_after(host):
    assert host.file("/var/tmp/nvml-before-driver.txt").content_string.strip().endswith("NVML Shared Library Not Found")
    probe = ("import json, pynvml; pynvml.nvmlInit(); "
             "print(json.dumps([pynvml.nvmlSystemGetDriverVersion(), pynvml.nvmlDeviceGetCount(), "
             "pynvml.nvmlDeviceGetPersistenceMode(pynvml.nvmlDeviceGetHandleByIndex(0))]))")
    out = json.loads(host.check_output("/opt/ragops/venv/bin/python -c '%s'" % probe))
    assert out == ["550.127.05", 8, 1]


def test_kernel_module_matches_the_packages(host):
    assert host.file("/run/gpu-sim/nvidia.ko.version").content_string.strip() == "550.127.05"
