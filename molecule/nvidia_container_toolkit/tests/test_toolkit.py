"""nvidia_container_toolkit: pinned and held, the runtime merged into daemon.json, a CDI spec for the
driver, and a container given one GPU sees exactly that GPU."""
import json


def test_toolkit_pinned_and_held(host):
    held = host.check_output("apt-mark showhold").split()
    for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base"):
        assert host.package(name).version == "1.17.4-1" and name in held


def test_runtime_merged_into_daemon_json(host):
    conf = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert conf["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert conf["log-driver"] == "json-file"  # docker_engine's keys kept
    assert "nvidia" in host.check_output("docker info --format '{{json .Runtimes}}'")


def test_cdi_spec_for_the_driver(host):
    spec = json.loads(host.file("/etc/cdi/nvidia.yaml").content_string)
    names = [d["name"] for d in spec["devices"]]
    assert names[-1] == "all" and [str(i) for i in range(8)] == names[0:16:2]
    assert "550.127.05" in host.file("/etc/cdi/nvidia.yaml").content_string


def test_one_gpu_container_sees_exactly_that_gpu(host):
    uuid = host.check_output("nvidia-smi -i 3 --query-gpu=uuid --format=csv,noheader").strip()
    out = host.check_output("docker run --rm --gpus '\"device=%s\"' rag-embedding-server:1.0.0 nvidia-smi -L" % uuid)
    assert out.strip() == "GPU 0: NVIDIA A100-SXM4-80GB (UUID: %s)" % uuid
