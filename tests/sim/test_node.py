# -*- coding: utf-8 -*-
"""The simulated node: what the real tools see through the stand-in driver pieces."""

from __future__ import annotations

import json
import shutil
import time

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EMB = "rag-embedding-server:1.0.0"


def run_container(node, name, *args, image=EMB):
    node.sh("docker rm -f %s >/dev/null 2>&1 || true" % name)
    return node.sh("docker run -d --name %s %s %s" % (name, " ".join(args), image), check=False)


def wait_health(node, port, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        out = node.sh("curl -s -o /tmp/h.json -w '%%{http_code}' http://127.0.0.1:%d/health; cat /tmp/h.json" % port,
                      check=False).stdout
        if out[:3] in ("200", "503"):
            return int(out[:3]), json.loads(out[3:])
        if time.monotonic() > deadline:
            raise AssertionError("no answer on %d: %s" % (port, out))
        time.sleep(0.3)


def test_node_boots_quickly(converged_node):
    assert converged_node.boot_seconds < 20
    assert converged_node.sh("systemctl is-system-running").stdout.strip() == "running"


def test_nvidia_smi_reads_the_machine_through_nvml(converged_node):
    from gpusim import fixtures

    machine = fixtures.load("a100-sxm4-80gb-x8")
    out = converged_node.sh("nvidia-smi -L").stdout.strip().splitlines()
    assert out == ["GPU %d: NVIDIA A100-SXM4-80GB (UUID: %s)" % (i, g["uuid"]) for i, g in enumerate(machine["gpus"])]
    csv = converged_node.sh("nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader").stdout
    assert csv.splitlines()[7] == "7, NVIDIA A100-SXM4-80GB, 550.127.05, 81920 MiB"


def test_gpu_request_reaches_the_containers_main_process(converged_node):
    node = converged_node
    assert run_container(node, "t-env", "--gpus '\"device=1\"'", image=EMB + " sleep 60").returncode == 0
    env = node.sh("docker exec t-env cat /proc/1/environ | tr '\\0' '\\n'").stdout.splitlines()
    assert "NVIDIA_VISIBLE_DEVICES=1" in env
    inspect = node.inspect("t-env")
    assert inspect["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ["1"]
    # inside, NVML sees exactly one GPU, renumbered 0: GPU 1 of the host
    uuid1 = node.sh("nvidia-smi -i 1 --query-gpu=uuid --format=csv,noheader").stdout.strip()
    assert node.sh("docker exec t-env nvidia-smi -L").stdout.strip() == \
        "GPU 0: NVIDIA A100-SXM4-80GB (UUID: %s)" % uuid1
    node.sh("docker rm -f t-env")


def test_hook_refuses_unknown_and_lost_devices(converged_node):
    node = converged_node
    bad = run_container(node, "t-bad", "--gpus '\"device=9\"'", image=EMB + " true")
    assert bad.returncode != 0 and "nvidia-container-cli: device error: 9: unknown device" in bad.stderr
    bogus = run_container(node, "t-bad", "--gpus '\"device=GPU-00000000-0000-0000-0000-000000000000\"'",
                          image=EMB + " true")
    assert bogus.returncode != 0 and "unknown device" in bogus.stderr
    node.fault("lost", gpu=6)
    try:
        lost = run_container(node, "t-bad", "--gpus '\"device=6\"'", image=EMB + " true")
        assert lost.returncode != 0 and "nvidia-container-cli: detection error: nvml error: gpu is lost" in lost.stderr
    finally:
        node.clear_faults()
        node.sh("docker rm -f t-bad >/dev/null 2>&1 || true")


def test_seed_cuda_visible_devices_mistake_is_unhealthy_and_the_fix_is_healthy(converged_node):
    node = converged_node
    common = ("--gpus '\"device=2,3\"' -e TENSOR_PARALLEL_SIZE=2 -e HF_HUB_OFFLINE=1 -e HF_HOME=/models "
              "-e MODEL_NAME=microsoft/DialoGPT-medium -v /opt/models/hf:/models:ro")
    run_container(node, "t-seed", common, "-e CUDA_VISIBLE_DEVICES=2,3", "-p 127.0.0.1:18103:8000",
                  image="rag-llm-server:1.0.0")
    code, body = wait_health(node, 18103)
    assert code == 503
    assert body["reasons"] == ["CUDA_VISIBLE_DEVICES=2,3 names ordinal 2, but the container sees 2 GPU(s) numbered "
                               "0-1 (inside a container GPUs are renumbered from 0; use container-local ordinals or "
                               "drop it)"]
    run_container(node, "t-fixed", common, "-e CUDA_VISIBLE_DEVICES=0,1", "-p 127.0.0.1:18104:8000",
                  image="rag-llm-server:1.0.0")
    code, body = wait_health(node, 18104)
    assert (code, body["status"], body["gpus_usable"]) == (200, "ok", 2)
    node.sh("docker rm -f t-seed t-fixed")


def test_running_containers_show_as_gpu_processes_holding_what_the_services_use(converged_node):
    """The LLM preallocates GPU_MEMORY_UTILIZATION (0.9) of each of its GPUs, the others hold their
    map's estimate (15, 20 and 25 GB), the reserve nothing; one process on each busy GPU."""
    out = converged_node.sh("nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits").stdout
    used = dict(line.split(", ") for line in out.strip().splitlines())
    assert [used[str(i)] for i in range(8)] == ["15360", "20480", "73728", "73728", "25600", "0", "0", "0"]


def test_another_checkouts_node_is_refused_not_taken_over(sim, tmp_path):
    """Issue 20 (7): a second checkout on the same Docker host neither replaces this one's
    repository server nor its nodes; a node whose checkout is gone (a deleted clone) is stale and
    is replaced."""
    import subprocess

    from gpusim import build, nodes
    from gpusim.util import SimError

    other = tmp_path / "other-checkout"
    (other / "sim" / "gpusim").mkdir(parents=True)
    name = "gpu-othercheckout-01"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "create", "--name", name, "--label", "%s.node=true" % nodes.LABEL,
                    "--label", "%s.checkout=0badc0de" % nodes.LABEL, "--label", "%s.root=%s" % (nodes.LABEL, other),
                    build.base_image(), "true"], capture_output=True, check=True)
    try:
        with pytest.raises(SimError) as exc:
            nodes.up(prefix="gpu-othercheckout", write_inventory=False)
        assert str(exc.value) == ("node gpu-othercheckout-01 belongs to the simulator of %s; run "
                                  "`scripts/gpu-sim down` there, or boot these under another name (--prefix)" % other)
        assert name not in nodes.nodes()  # nor is it this checkout's to list, write into an inventory or remove
        assert nodes.REPO_CONTAINER == "gpu-sim-repo-" + nodes.CHECKOUT
        shutil.rmtree(other)
        assert nodes.owner(name) is None  # its checkout is gone: stale, this checkout may replace it
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_a_node_boots_bare_even_where_an_earlier_ones_docker_volume_was_left(sim):
    """A node whose container was removed by hand (`docker rm -f`) leaves its Docker volume behind; a node booted
    under that name again starts without that Docker state (the benchmarks' "bare node" must be bare)."""
    import subprocess

    from gpusim import build, nodes

    name, volume = "gpu-stalevol-01", "gpu-stalevol-01-docker"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "volume", "create", volume], capture_output=True, check=True)
    subprocess.run(["docker", "run", "--rm", "-v", "%s:/v" % volume, "--entrypoint", "touch", build.base_image(),
                    "/v/left-by-an-earlier-node"], capture_output=True, check=True)
    try:
        nodes.up(prefix="gpu-stalevol", write_inventory=False)
        listed = subprocess.run(["docker", "exec", name, "ls", "-A", "/var/lib/docker"], capture_output=True,
                                text=True, check=True).stdout.split()
        assert "left-by-an-earlier-node" not in listed, listed
    finally:
        nodes.remove(name)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)
