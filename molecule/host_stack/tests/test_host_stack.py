"""The three host roles together: the version contract and a GPU container, through the real tools."""
import json


def test_version_contract(host):
    versions = host.check_output(
        "dpkg-query -W -f='${Version}\\n' nvidia-driver-550 libnvidia-compute-550 nvidia-dkms-550 nvidia-utils-550 "
        "nvidia-fabricmanager-550").split()
    assert set(versions) == {"550.127.05-1"}
    assert host.file("/run/gpu-sim/nvidia.ko.version").content_string.strip() == "550.127.05"
    assert host.check_output("nvidia-smi --query-gpu=driver_version --format=csv,noheader -i 0").strip() == "550.127.05"
    assert host.service("nvidia-fabricmanager").is_running


def test_services_enabled_and_running(host):
    for unit in ("docker", "nvidia-persistenced", "nvidia-fabricmanager"):
        assert host.service(unit).is_enabled and host.service(unit).is_running, unit


def test_daemon_json_has_both_roles_keys(host):
    conf = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert conf["live-restore"] is True and "nvidia" in conf["runtimes"]


def test_gpu_pinned_container_by_uuid(host):
    uuid = host.check_output("nvidia-smi -i 7 --query-gpu=uuid --format=csv,noheader").strip()
    out = host.check_output("docker run --rm --gpus '\"device=%s\"' rag-embedding-server:1.0.0 nvidia-smi -L" % uuid)
    assert out.strip() == "GPU 0: NVIDIA A100-SXM4-80GB (UUID: %s)" % uuid
