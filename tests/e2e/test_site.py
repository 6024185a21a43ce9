# -*- coding: utf-8 -*-
"""site.yml end to end on a simulated 8x A100 node: bare host to four healthy GPU-pinned services,
idempotent, check mode clean, bad maps refused before any container changes, health_check.yml
failing by name. The first converge runs in the session fixture `converged_node`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpusim.controllers import DEPRECATION_RE

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"rag-whisper": (8004, [0]), "rag-embedding-server": (8001, [1]), "rag-llm-server": (8003, [2, 3]),
            "rag-dots-ocr": (8002, [4])}


def containers(node):
    out = node.sh("docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.Status}}' | sort").stdout
    return [line.split(" ", 2)[:2] for line in out.splitlines()]


def test_bare_node_converges_with_all_services_healthy(converged_node):
    run = converged_node.first_run
    assert run.recap(converged_node.name)["failed"] == 0
    for name in SERVICES:
        assert name in run.out
    table = run.out[run.out.index("Services on %s" % converged_node.name):]
    assert table.count(" healthy ") >= 4 and "UNHEALTHY" not in table.split("GPUs on")[0]
    assert "driver 550.127.05 = packages = kernel module = NVML = fabric manager" in run.out
    # issue 20 (4): the allocation table is printed whole (not wrapped mid-row) and the health tables
    # fit 120 columns (short UUIDs; the full ones are in gpu_info and the drift report)
    assert "| 2-3 | LLM | ~120GB | microsoft/DialoGPT-medium | Language generation (tensor parallel) |\n" in run.out
    for title in ("Services on", "GPUs on"):
        block = run.out[run.out.index("%s %s" % (title, converged_node.name)):].split("msg: |-", 1)[1].split("TASK [")[0]
        lines = [line[8:] for line in block.strip("\n").splitlines() if line.strip()]
        assert lines and max(len(line) for line in lines) <= 120, lines
    assert not DEPRECATION_RE.search(run.out), [ln for ln in run.out.splitlines() if DEPRECATION_RE.search(ln)]


def printed_rows(out, title, node):
    """The rows of a table the run printed: the indented lines of its `msg: |-` block."""
    rows = []
    for line in out[out.index("%s %s" % (title, node)):].split("msg: |-", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith(" "):
            break  # the block ends at the next unindented line (TASK, PLAY RECAP, a warning)
        if line.strip():
            rows.append(line.split())
    return rows


def test_the_readme_sample_is_what_a_fresh_run_prints(converged_node):
    """Issue 20 (8): the README's tables are this run's, but for the image IDs (they differ per build)
    and the Docker state (a first run's containers may still be starting)."""
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("then `playbooks/health_check.yml`, which prints:", 1)[1].split("```")[1]
    services_sample, gpus_sample = [[line.split() for line in part.strip().splitlines()]
                                    for part in sample.strip().split("\n\n")]
    out = converged_node.first_run.out
    drop = (6, 7)  # DOCKER, IMAGE ID
    assert [[c for i, c in enumerate(r) if i not in drop] for r in printed_rows(out, "Services on", converged_node.name)] \
        == [[c for i, c in enumerate(r) if i not in drop] for r in services_sample]
    assert printed_rows(out, "GPUs on", converged_node.name) == gpus_sample


def test_second_run_changes_nothing(converged, ansible):
    run = ansible(ROOT / "site.yml", converged.inventory)
    assert run.rc == 0, run
    assert run.recap(converged.name)["changed"] == 0, run
    assert not DEPRECATION_RE.search(run.out), [ln for ln in run.out.splitlines() if DEPRECATION_RE.search(ln)]
    # handed-over readings: the preflight's read brings the OS facts (no role gathers them), the driver's and the
    # toolkit's reads bring their repositories' files (apt_repo asks the host nothing); a skipped task prints nothing
    assert "[ragops.gpu_stack.gpu_services : Read the collection's Python" in run.out, run.out[-3000:]
    for asked in ("Gather the OS facts this role needs", "apt_repo : Read the keyring directory"):
        assert asked not in run.out, asked


def test_check_mode_on_the_converged_node_reports_no_change(converged, ansible):
    run = ansible(ROOT / "site.yml", converged.inventory, "--check", "--diff")
    assert run.rc == 0, run
    assert run.recap(converged.name)["changed"] == 0, run


def test_seed_health_check_loop_reports_all_healthy(converged):
    """The guide's own GPU Health Check Script loop, run inside the node."""
    script = r'''
services=("8004:Whisper" "8001:Embedding" "8003:LLM" "8002:OCR")
for service in "${services[@]}"; do
    IFS=':' read -r port name <<< "$service"
    if curl -s -o /dev/null -w "%{http_code}" "http://localhost:$port/health" | grep -q "200"; then
        echo "✓ $name: Healthy"
    else
        echo "✗ $name: Unhealthy"
    fi
done
'''
    out = converged.sh("bash -c '%s'" % script.replace("'", "'\\''")).stdout.strip().splitlines()
    assert out == ["✓ Whisper: Healthy", "✓ Embedding: Healthy", "✓ LLM: Healthy", "✓ OCR: Healthy"]


def test_containers_are_pinned_by_uuid_without_host_indices(converged):
    node = converged
    uuids = node.sh("nvidia-smi --query-gpu=uuid --format=csv,noheader").stdout.split()
    for name, (port, gpus) in SERVICES.items():
        c = node.inspect(name)
        assert c["State"]["Running"] and c["State"]["Health"]["Status"] in ("healthy", "starting")
        req = c["HostConfig"]["DeviceRequests"]
        assert [r["DeviceIDs"] for r in req] == [sorted(uuids[i] for i in gpus)]
        env = dict(e.split("=", 1) for e in c["Config"]["Env"])
        assert env["CUDA_VISIBLE_DEVICES"] == ",".join(str(i) for i in range(len(gpus)))
        assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids[i] for i in gpus)
        assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
        assert c["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert c["HostConfig"]["Binds"] == ["/opt/models/hf:/models:ro"]
        assert c["HostConfig"]["Privileged"] is False and "no-new-privileges" in c["HostConfig"]["SecurityOpt"]
        assert c["Config"]["Labels"]["io.ragops.gpu-stack.gpu-uuids"] == ",".join(uuids[i] for i in gpus)
    llm = node.inspect("rag-llm-server")
    env = dict(e.split("=", 1) for e in llm["Config"]["Env"])
    assert {k: env[k] for k in ("TENSOR_PARALLEL_SIZE", "GPU_MEMORY_UTILIZATION", "MAX_MODEL_LEN",
                                "MAX_NUM_BATCHED_TOKENS", "ENABLE_CHUNKED_PREFILL", "ENABLE_PREFIX_CACHING",
                                "MAX_NUM_SEQS", "VLLM_USE_TRITON")} == {
        "TENSOR_PARALLEL_SIZE": "2", "GPU_MEMORY_UTILIZATION": "0.9", "MAX_MODEL_LEN": "2048",
        "MAX_NUM_BATCHED_TOKENS": "2048", "ENABLE_CHUNKED_PREFILL": "true", "ENABLE_PREFIX_CACHING": "true",
        "MAX_NUM_SEQS": "256", "VLLM_USE_TRITON": "0"}
    assert llm["HostConfig"]["ShmSize"] == 32 * 1024 ** 3


def test_bad_map_is_refused_before_any_container_changes(converged, ansible):
    node = converged
    before = containers(node), node.packages()
    run = ansible(ROOT / "site.yml", node.inventory,
                  extra_vars={"gpu_stack_service_overrides": {"ocr": {"gpus": [1]}}})
    assert run.rc != 0
    assert ("services 'embedding' and 'ocr' both use GPU 1 (GPU-2c21db9b-a12d-5c5b-a647-960bc8970dfa); give each "
            "its own GPU, or set share_gpus: true on all of them") in run.out
    assert "TASK [ragops.gpu_stack.docker_engine" not in run.out  # stopped in the preflight play
    assert (containers(node), node.packages()) == before


def test_health_check_fails_naming_the_service_for_a_missing_image_and_a_missing_model(converged, ansible):
    node = converged
    ok = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    assert ok.rc == 0, ok
    node.dirty = True
    node.sh("docker rm -f rag-whisper && docker rmi rag-whisper:1.0.0")
    node.sh("rm -rf /opt/models/hf/hub/models--rednote-hilab--dots.ocr")
    bad = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory,
                  extra_vars={"gpu_health_retries": 3, "gpu_health_delay": 1})
    assert bad.rc != 0
    fail = [line for line in bad.out.splitlines() if "is unhealthy:" in line][0]
    assert "service whisper (rag-whisper):" in fail
    assert ("service ocr (rag-dots-ocr): model rednote-hilab/dots.ocr is not staged: "
            "/models/hub/models--rednote-hilab--dots.ocr does not exist") in fail
    fixed = ansible(ROOT / "site.yml", node.inventory)
    assert fixed.rc == 0, fixed
    node.dirty = False
    assert ansible(ROOT / "playbooks" / "health_check.yml", node.inventory).rc == 0


def test_per_service_override_is_an_inventory_edit(converged, ansible):
    """The guide's OOM knobs as an override: only the LLM container is recreated."""
    node = converged
    ids = dict((n, i) for i, n in containers(node))
    knobs = {"llm": {"env": {"MAX_NUM_BATCHED_TOKENS": "1024", "GPU_MEMORY_UTILIZATION": "0.8"}}}
    # the README's example as written: a host layer in host_vars, over the group's layers (the
    # simulator's memlock limit is one: it must survive)
    host_vars = node.inventory / "host_vars" / ("%s.yml" % node.name)
    host_vars.parent.mkdir(exist_ok=True)
    host_vars.write_text(json.dumps({"gpu_stack_service_overrides__50_host": knobs}))
    node.dirty = True
    try:
        run = ansible(ROOT / "site.yml", node.inventory)
    finally:
        host_vars.unlink()
    assert run.rc == 0, run
    after = dict((n, i) for i, n in containers(node))
    assert after["rag-llm-server"] != ids["rag-llm-server"]
    assert all(after[n] == ids[n] for n in ("rag-whisper", "rag-embedding-server", "rag-dots-ocr"))
    env = dict(e.split("=", 1) for e in node.inspect("rag-llm-server")["Config"]["Env"])
    assert (env["MAX_NUM_BATCHED_TOKENS"], env["GPU_MEMORY_UTILIZATION"]) == ("1024", "0.8")
    import yaml
    sim = yaml.safe_load((node.inventory / "group_vars" / "gpu_nodes" / "zz_sim.yml").read_text())
    for name, extra in (sim.get("gpu_stack_service_overrides__00_simulator") or {}).items():
        limits = dict((u["Name"], u["Hard"]) for u in node.inspect("rag-llm-server")["HostConfig"]["Ulimits"] or [])
        assert name != "llm" or limits["memlock"] == extra["ulimits"]["memlock"], limits
    back = ansible(ROOT / "site.yml", node.inventory)
    assert back.rc == 0 and back.recap(node.name)["failed"] == 0
    node.dirty = False


def test_health_names_a_stopped_container_at_once_with_its_exit_code_and_last_log_lines(converged, ansible):
    """Issue 20 (2): no two-minute wait on a container that is not running, and the reason from it."""
    node = converged
    node.sh("docker stop rag-dots-ocr")
    try:
        run = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    finally:
        node.sh("docker start rag-dots-ocr")
    assert run.rc != 0
    said = " ".join(run.out.split())
    assert "service ocr (rag-dots-ocr): container exited (exit code 0); last log lines:" in said, said[-3000:]
    assert "stopped: the requests in flight were answered" in said
    assert "docker start rag-dots-ocr, or run site.yml" in said
    assert "FAILED - RETRYING" not in run.out


def test_check_mode_with_a_port_change_says_what_would_change_and_passes(converged, ansible):
    """Issue 20 (1): a dry run that moves a port does not wait for a port it did not create."""
    node = converged
    run = ansible(ROOT / "site.yml", node.inventory, "--check", "--diff", "-e",
                  json.dumps({"gpu_stack_service_overrides__zz_test": {"whisper": {"port": 8014}}}))
    assert run.rc == 0, run
    assert run.recap(node.name)["changed"] >= 1 and run.recap(node.name)["failed"] == 0
    table = run.out[run.out.index("Services on %s" % node.name):].split("TASK [")[0]
    row = [line for line in table.splitlines() if " rag-whisper " in line]
    assert row and "WOULD CHANGE (check mode)" in row[0] and "8014" in row[0], table
    assert "UNHEALTHY" not in table and "FAILED - RETRYING" not in run.out
    # issue 20 (4): one line per changed container, and a diff that names it
    assert "rag-whisper: recreate (ports" in run.out and "container rag-whisper, as it is" in run.out, run.out[-4000:]
    assert node.inspect("rag-whisper")["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostPort"] == "8004"


def test_host_state_reads_units_packages_and_holds_as_systemd_and_dpkg_see_them(converged):
    """What the roles' one read per role (host_state) sees on a converged host, against the node's own
    systemctl and dpkg: the decisions that skip the writes rest on it."""
    import os
    import subprocess
    import sys

    units = ["docker", "nvidia-persistenced", "nvidia-fabricmanager", "ragops-no-such-unit"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), converged.name, "-i", str(converged.inventory),
                           "-m", "ragops.gpu_stack.host_state",
                           "-a", json.dumps({"services": units, "packages": ["docker.io", "nvidia-driver-550"],
                                             "files": ["/etc/docker/daemon.json"]})],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][converged.name]
    for unit in units:
        active = converged.sh("systemctl is-active %s" % unit, check=False).stdout.strip()
        enabled = converged.sh("systemctl is-enabled %s" % unit, check=False).stdout.strip()
        assert res["services"][unit]["active"] == active, (unit, res["services"][unit])
        if unit != "ragops-no-such-unit":
            assert res["services"][unit]["enabled"] == enabled, (unit, res["services"][unit])
    assert res["services"]["docker"]["active"] == "active"
    assert res["services"]["ragops-no-such-unit"]["loaded"] == "not-found"
    held = converged.sh("apt-mark showhold").stdout.split()
    for pkg in ("docker.io", "nvidia-driver-550"):
        version = converged.sh("dpkg-query -W -f='${Version}' %s" % pkg).stdout
        assert res["packages"][pkg] == {"version": version, "hold": pkg in held}, pkg
    sha1 = converged.sh("sha1sum /etc/docker/daemon.json").stdout.split()[0]
    assert res["files"]["/etc/docker/daemon.json"]["sha1"] == sha1
