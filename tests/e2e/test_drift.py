# -*- coding: utf-8 -*-
"""Drift checks on the converged simulated node: clean exits 0; each kind of drift is reported with
its type and exit 2, and the check leaves the host exactly as it found it; after site.yml
re-converges, exit 0 again. Each test that drifts the node marks it (node.dirty) or undoes what it
did; the tests that need the node as site.yml left it take the `converged` fixture, so the order
they run in does not matter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "roles" / "drift_timer" / "files" / "ragops_drift_check.py"


@pytest.fixture(scope="module")
def drift(converged_node, tmp_path_factory):
    reports = tmp_path_factory.mktemp("drift-reports")

    def check():
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        before = snapshot(converged_node)
        proc = subprocess.run([sys.executable, str(WRAPPER), "-i", str(converged_node.inventory), "--project-dir",
                               str(ROOT), "--ansible-playbook", str(Path(sys.executable).parent / "ansible-playbook"),
                               "--playbook", str(ROOT / "playbooks" / "drift_check.yml"), "--report-dir", str(reports)],
                              capture_output=True, text=True, env=env, check=False, timeout=600)
        after = snapshot(converged_node)
        assert after == before, "the drift check changed the host"
        report = json.loads((reports / "latest.json").read_text())
        return proc.returncode, report, proc.stdout + proc.stderr

    check.reports = reports
    return check


def snapshot(node):
    """Containers (identity, state, config), packages and holds, daemon.json, model manifests. Holds
    are read from dpkg's selections: `apt-mark showhold` answers from apt's package cache, which apt
    may rebuild at any time and which says something else than dpkg when dpkg's database is broken."""
    script = ("docker ps -aq --no-trunc | sort | xargs -r docker inspect -f "
              "'{{.Id}} {{.State.Status}} {{.Config.Env}} {{.HostConfig.DeviceRequests}} {{.Image}}'; "
              "dpkg-query -W -f='${Package} ${Version}\\n'; dpkg --get-selections | grep -w hold; md5sum /etc/docker/daemon.json; "
              "ls -l --time-style=+%s /opt/models/hf/hub/*/ragops-manifest-*.json")
    return node.sh(script).stdout


def types(report):
    return sorted(set(f["type"] for f in report["findings"]))


def test_clean_host_exits_0_with_no_findings(converged, drift):
    rc, report, out = drift()
    assert rc == 0, out
    assert report["status"] == "clean" and report["findings"] == [] and report["summary"]["errors"] == 0
    assert report["schema"] == "ragops.gpu_stack/drift-report/v1"
    prom = (drift.reports / "ragops_drift.prom").read_text()
    assert 'ragops_gpu_stack_drift_host_clean{host="gpu-test-01"} 1' in prom
    assert (drift.reports / ("drift-%s.json" % report["run_id"])).is_file()


def test_an_unreachable_host_keeps_its_cause_and_the_documented_keys(converged, tmp_path):
    """Issue 20 (5): the report says why a host could not be checked, as Ansible did."""
    inventory = tmp_path / "inventory"
    shutil.copytree(converged.inventory, inventory)
    (inventory / "ghost.yml").write_text("all:\n  children:\n    gpu_nodes:\n      hosts:\n        ghost-01:\n"
                                         "          ansible_host: ghost-01\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, str(WRAPPER), "-i", str(inventory), "--project-dir", str(ROOT),
                           "--ansible-playbook", str(Path(sys.executable).parent / "ansible-playbook"),
                           "--playbook", str(ROOT / "playbooks" / "drift_check.yml"), "--report-dir", str(reports)],
                          capture_output=True, text=True, env=env, check=False, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((reports / "latest.json").read_text())
    ghost = report["hosts"]["ghost-01"]
    assert ghost["status"] == "error" and ghost["error"].startswith("unreachable: ") and "ghost-01" in ghost["error"], ghost
    assert set(ghost) == set(report["hosts"][converged.name]), (sorted(ghost), sorted(report["hosts"][converged.name]))
    assert report["hosts"][converged.name]["status"] == "clean"


def test_stopped_container(converged_node, drift):
    converged_node.sh("docker stop rag-dots-ocr")
    try:
        rc, report, out = drift()
    finally:
        converged_node.sh("docker start rag-dots-ocr")
    assert rc == 2, out
    f = [x for x in report["findings"] if x["type"] == "container.stopped"]
    assert f and f[0]["object"] == "container rag-dots-ocr (service ocr)" and f[0]["severity"] == "critical"
    assert f[0]["host"] == "gpu-test-01" and f[0]["expected"] == "running" and f[0]["actual"] == "exited"
    prom = (drift.reports / "ragops_drift.prom").read_text()
    assert 'ragops_gpu_stack_drift_findings{host="gpu-test-01",type="container.stopped",severity="critical"} 1' in prom
    assert "critical container.stopped  container rag-dots-ocr (service ocr): running -> exited" in out


def test_seed_docker_run_in_place_of_the_managed_container(converged_node, drift):
    node = converged_node
    node.dirty = True
    node.adopt.append("rag-embedding-server")  # started by hand: site.yml replaces it only when told to
    node.sh("docker rm -f rag-embedding-server && docker tag rag-embedding-server:1.0.0 rag-embedding-server:latest")
    node.sh("docker run -d --name rag-embedding-server --gpus '\"device=1\"' -e CUDA_VISIBLE_DEVICES=1 "
            "-e MODEL_NAME=sentence-transformers/all-MiniLM-L6-v2 rag-embedding-server:latest")
    rc, report, out = drift()
    assert rc == 2, out
    found = {f["type"]: f for f in report["findings"] if "rag-embedding-server" in f["object"]}
    assert "container.cuda_visible_devices" in found
    assert "CUDA_VISIBLE_DEVICES=1 names GPU ordinal(s) 1" in found["container.cuda_visible_devices"]["actual"]
    assert {"container.env", "container.ports", "container.volumes"} <= set(found)
    assert "container.gpus" not in found  # device=1 is the embedding GPU: judged by UUID, the GPU is right
    assert found["container.unmanaged"]["remediation"] == (
        "site.yml leaves it alone: remove it (docker rm -f rag-embedding-server) or let site.yml replace it with "
        "gpu_stack_adopt_containers: [rag-embedding-server]")


def test_changed_env_var(converged_node, drift, ansible, tmp_path):
    # the LLM container recreated with one env var changed, as a hand edit would
    node = converged_node
    node.dirty = True
    node.adopt.append("rag-llm-server")
    c = node.inspect("rag-llm-server")
    env = [e for e in c["Config"]["Env"] if not e.startswith("MAX_NUM_SEQS=")] + ["MAX_NUM_SEQS=512"]
    args = " ".join("-e %s" % e for e in env if not e.startswith("PATH="))
    node.sh("docker rm -f rag-llm-server && docker run -d --name rag-llm-server --gpus '\"device=%s\"' --shm-size 32g "
            "-p 127.0.0.1:8003:8000 -v /opt/models/hf:/models:ro %s rag-llm-server:1.0.0"
            % (",".join(c["HostConfig"]["DeviceRequests"][0]["DeviceIDs"]), args))
    rc, report, out = drift()
    assert rc == 2
    f = [x for x in report["findings"] if x["type"] == "container.env" and "rag-llm-server" in x["object"]]
    assert f and f[0]["expected"]["MAX_NUM_SEQS"] == "256" and f[0]["actual"]["MAX_NUM_SEQS"] == "512"
    # the summary names the key that changed, not two whole dictionaries (the JSON report keeps them)
    line = [x for x in out.splitlines() if "container.env  container rag-llm-server" in x][0]
    assert "changed MAX_NUM_SEQS 256 -> 512" in line and "TENSOR_PARALLEL_SIZE" not in line


def test_container_moved_to_another_gpu(converged_node, drift):
    node = converged_node
    node.dirty = True
    node.adopt.append("rag-dots-ocr")
    c = node.inspect("rag-dots-ocr")
    uuid6 = node.sh("nvidia-smi -i 6 --query-gpu=uuid --format=csv,noheader").stdout.strip()
    args = " ".join("-e %s" % e for e in c["Config"]["Env"] if not e.startswith("PATH="))
    node.sh("docker rm -f rag-dots-ocr && docker run -d --name rag-dots-ocr --gpus '\"device=%s\"' "
            "-p 127.0.0.1:8002:8000 -v /opt/models/hf:/models:ro %s rag-dots-ocr:1.0.0" % (uuid6, args))
    rc, report, out = drift()
    assert rc == 2
    f = [x for x in report["findings"] if x["type"] == "container.gpus" and "rag-dots-ocr" in x["object"]]
    assert f and f[0]["actual"] == uuid6 and f[0]["severity"] == "critical"


def test_changed_held_package(converged_node, drift):
    converged_node.dirty = True
    converged_node.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-change-held-packages "
                      "nvidia-fabricmanager-550=550.144.03-1 >/dev/null")
    rc, report, out = drift()
    assert rc == 2
    f = [x for x in report["findings"] if x["type"] == "driver.package_version"]
    assert f and f[0]["object"] == "package nvidia-fabricmanager-550"
    assert (f[0]["expected"], f[0]["actual"]) == ("550.127.05-1", "550.144.03-1")


def test_dpkg_that_cannot_answer_is_not_reported_as_missing_packages(converged_node, drift):
    """dpkg-query failing (here: a stanza of its status database that does not parse) means the pins
    could not be checked; it never reads as 'not installed'. (A missing status file is not such a
    failure: dpkg then knows no packages, exit 1, and they are reported missing.)"""
    status = "/var/lib/dpkg/status"
    converged_node.sh("cp -p %s %s.good && printf '\\nPackage ragops-broken-stanza\\n' >> %s" % (status, status, status))
    try:
        rc, report, out = drift()
    finally:
        converged_node.sh("mv %s.good %s" % (status, status))
    assert rc == 2
    kinds = types(report)
    assert "driver.package_unchecked" in kinds and "driver.package_missing" not in kinds
    f = [x for x in report["findings"] if x["type"] == "driver.package_unchecked"]
    assert f[0]["actual"].startswith("could not check: dpkg-query exited 2: dpkg-query: error: ")
    assert "nvidia-driver-550" in " ".join(x["object"] for x in f)


def test_corrupted_model_file(converged_node, drift):
    converged_node.dirty = True
    converged_node.sh("f=$(readlink -f /opt/models/hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/"
                      "*/config.json); chmod u+w $f; printf ' ' >> $f")
    rc, report, out = drift()
    assert rc == 2
    f = [x for x in report["findings"] if x["type"] == "model.modified_file"]
    assert f and f[0]["object"].endswith("config.json") and "all-MiniLM-L6-v2" in f[0]["object"]


def test_a_wrong_refs_main_is_put_right_without_restarting_the_service(converged, drift, ansible):
    """A refs/main naming another revision is drift; site.yml writes it back and, the model's files being the
    same, leaves the service that reads the model running."""
    node = converged
    ref = "/opt/models/hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/refs/main"
    want = node.sh("cat %s" % ref).stdout
    started = node.inspect("rag-embedding-server")["State"]["StartedAt"]
    node.dirty = True
    node.sh("printf 0000000000000000000000000000000000000000 > %s" % ref)
    rc, report, out = drift()
    assert rc == 2, out
    f = [x for x in report["findings"] if x["type"] == "model.revision"]
    assert len(f) == 1 and "all-MiniLM-L6-v2" in f[0]["object"], report["findings"]
    run = ansible(ROOT / "site.yml", node.inventory)
    assert run.rc == 0, run
    assert node.sh("cat %s" % ref).stdout == want
    assert node.inspect("rag-embedding-server")["State"]["StartedAt"] == started
    rc, report, out = drift()
    assert rc == 0, json.dumps(report["findings"], indent=1)
    node.dirty = False


def test_lost_gpu_and_over_temperature(converged_node, drift):
    node = converged_node
    node.fault("lost", gpu=0)
    node.fault("overtemp", gpu=1)
    try:
        rc, report, out = drift()
    finally:
        node.clear_faults()
    assert rc == 2
    kinds = types(report)
    assert {"gpu.lost", "gpu.temperature", "gpu.slowdown", "plan.unplannable"} <= set(kinds)
    temp = [f for f in report["findings"] if f["type"] == "gpu.temperature"][0]
    assert temp["object"].startswith("GPU 1 (GPU-") and "91 C at or above the limit 83 C" in temp["actual"]
    # issue 20 (4): one fault, one headline, its consequences beneath it
    lines = out.splitlines()
    head = [i for i, line in enumerate(lines) if "critical gpu.temperature  GPU 1 (" in line]
    assert head and lines[head[0] + 1].strip().startswith("+ gpu.slowdown  GPU 1 ("), lines
    assert any(line.strip().startswith("+ plan.unplannable") and "GPU 1" in line for line in lines), lines
    assert temp["group"] == "GPU 1"
    prom = (drift.reports / "ragops_drift.prom").read_text()
    assert 'ragops_gpu_stack_gpu_health{host="gpu-test-01",gpu="1",' in prom


def gpu_rows(text, node):
    """The health check's GPU table: index -> its cells."""
    table = text[text.index("GPUs on %s" % node):].split("msg: |-", 1)[1].split("TASK [", 1)[0]
    rows = [line.split() for line in table.strip().splitlines()[1:] if line.strip()[:1].isdigit()]
    return dict((int(r[0]), r) for r in rows)


def nvml_memory(node):
    """MiB used per GPU through NVML on the node, and the processes inside the LLM container."""
    out = node.sh("nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv,noheader,nounits").stdout
    used = dict((int(i), (int(m), int(u))) for i, m, u in (line.split(", ") for line in out.splitlines()))
    inside = node.sh("docker exec rag-llm-server nvidia-smi").stdout
    return used, inside


def test_gpu_memory_and_utilisation_are_judged_against_the_plan(converged, drift, ansible):
    """vLLM's 90 % preallocation and a busy LLM are neither unhealthy nor drift; a leak over the
    preallocation and a foreign process are warnings naming the GPU, the process or service, used
    and expected."""
    node = converged
    used, inside = nvml_memory(node)
    assert {i: m for i, (m, _u) in used.items()} == {0: 15360, 1: 20480, 2: 73728, 3: 73728, 4: 25600, 5: 0, 6: 0,
                                                     7: 0}, used
    assert inside.count("73728MiB /  81920MiB") == 2 and inside.count(" python3 ") == 2, inside

    # a bounded load on the LLM (loopback, 200 requests/s for at most 60 s: four times what keeps a
    # stand-in's GPUs busy): utilisation rises on GPUs 2-3, health and drift stay clean
    node.sh("rm -f /tmp/gpu-load.stop")
    load = subprocess.Popen(["docker", "exec", "-i", node.name, "python3", "-", "http://127.0.0.1:8003/v1/completions",
                             "--concurrency", "4", "--rate", "200", "--requests", "12000", "--duration", "60",
                             "--stop-file", "/tmp/gpu-load.stop"],
                            stdin=(ROOT / "scripts" / "rag-load").open("rb"), stdout=subprocess.PIPE, text=True)
    try:
        node.sh("for i in $(seq 30); do nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -i 2 "
                "| grep -qx 100 && exit 0; sleep 1; done; exit 1")
        health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
        rc, report, out = drift()
    finally:
        node.sh("touch /tmp/gpu-load.stop")
        stats = json.loads(load.communicate(timeout=120)[0])
    assert stats["ok"] > 100 and stats["failed"] == 0, stats
    assert health.rc == 0, health
    rows = gpu_rows(health.out, node.name)
    # GPU  TEMP  MEMORY MiB used/expected  UTIL  SERVICE  PROCS  STATUS
    assert rows[2][3:] == ["73728/73728", "of", "81920", "100", "%", "HIGH", "llm", "1", "OK"], rows[2]
    assert rows[3][6:9] == ["100", "%", "HIGH"] and rows[0][6:9] == ["0", "%", "low"], rows
    said = " ".join(health.out.split())  # the callback wraps long lines
    assert "GPU 2 (%s): utilization 100%% above the 70-85%% target (capacity" % report["hosts"][node.name]["gpus"][2]["uuid"] \
        in said
    assert rc == 0, json.dumps(report["findings"], indent=1)
    info = report["hosts"][node.name]["info"]
    assert [line.split(":")[0][:5] for line in info if "100% above" in line] == ["GPU 2", "GPU 3"], info
    prom = (drift.reports / "ragops_drift.prom").read_text()
    for gpu, used, util in (("2", 73728, "1.00"), ("0", 15360, "0.00")):
        labels = '{host="%s",gpu="%s",uuid="%s"}' % (node.name, gpu, report["hosts"][node.name]["gpus"][int(gpu)]["uuid"])
        assert "ragops_gpu_stack_gpu_memory_used_bytes%s %d\n" % (labels, used * 2 ** 20) in prom, prom
        assert "ragops_gpu_stack_gpu_memory_expected_bytes%s %d\n" % (labels, used * 2 ** 20) in prom, prom
        assert "ragops_gpu_stack_gpu_utilization_ratio%s %s\n" % (labels, util) in prom, prom

    # a foreign process on GPU 1, the LLM holding 6 GiB over its preallocation on GPU 2
    node.fault("foreign-process", gpu=1, pid=31337, used_mib=3000)
    node.fault("overuse", gpu=2, used_mib=6144)
    try:
        rc, report, out = drift()
        health = ansible(ROOT / "playbooks" / "health_check.yml", node.inventory)
    finally:
        node.clear_faults()
    assert rc == 2
    found = dict((f["type"], f) for f in report["findings"])
    assert sorted(found) == ["gpu.foreign_process", "gpu.memory"], report["findings"]
    assert found["gpu.memory"]["object"].startswith("GPU 2 (GPU-")
    assert (found["gpu.memory"]["expected"], found["gpu.memory"]["actual"]) == ("73728 MiB + 4096 MiB margin", "79872 MiB")
    assert found["gpu.foreign_process"]["object"].startswith("GPU 1 (GPU-")
    assert "pid 31337 (python3, not in a container) 3000 MiB; only embedding (rag-embedding-server)" in \
        found["gpu.foreign_process"]["actual"]
    assert health.rc == 0, health  # warnings, not failures
    rows = gpu_rows(health.out, node.name)
    assert (rows[1][3], rows[1][-1], rows[2][3], rows[2][-1]) == ("23480/20480", "WARN", "79872/73728", "WARN"), rows
    assert "memory 79872 MiB used, expected 73728 MiB (llm (rag-llm-server) 73728 MiB: GPU_MEMORY_UTILIZATION=0.9 " \
           "of each GPU)" in " ".join(health.out.split())


def test_site_reconverges_and_the_check_is_clean_again(converged_node, drift, ansible):
    converged_node.sh("docker rmi rag-embedding-server:latest >/dev/null 2>&1 || true")
    run = ansible(ROOT / "site.yml", converged_node.inventory)
    assert run.rc == 0, run
    converged_node.dirty = False
    rc, report, out = drift()
    assert rc == 0, json.dumps(report["findings"], indent=1)


def test_site_repairs_every_kind_of_drift_in_one_run(converged, drift, ansible):
    """Every drift the checks above inject, and what the roles now skip on a converged host when their
    one read finds nothing to change (held packages, apt sources, modprobe and daemon.json files, units),
    all at once; one site.yml run repairs each of them and the drift check is clean again."""
    node = converged
    node.dirty = True
    uuid = {i: node.sh("nvidia-smi -i %d --query-gpu=uuid --format=csv,noheader" % i).stdout.strip() for i in (4, 6)}
    sources = "/etc/apt/sources.list.d/nvidia-cuda.sources"
    nouveau = "/etc/modprobe.d/ragops-blacklist-nouveau.conf"
    want_files = node.sh("sha1sum %s %s" % (sources, nouveau)).stdout
    # containers: one stopped with its image untagged, one recreated by hand with an env change, one moved to a
    # reserved GPU, one replaced by the guide's own docker run line
    node.sh("docker stop rag-whisper >/dev/null && docker rmi -f rag-whisper:1.0.0 >/dev/null")
    llm = node.inspect("rag-llm-server")
    env = [e for e in llm["Config"]["Env"] if not e.startswith(("MAX_NUM_SEQS=", "PATH="))] + ["MAX_NUM_SEQS=512"]
    node.sh("docker rm -f rag-llm-server >/dev/null && docker run -d --name rag-llm-server --gpus '\"device=%s\"' "
            "--shm-size 32g -p 127.0.0.1:8003:8000 -v /opt/models/hf:/models:ro %s rag-llm-server:1.0.0"
            % (",".join(llm["HostConfig"]["DeviceRequests"][0]["DeviceIDs"]), " ".join("-e " + e for e in env)))
    ocr = node.inspect("rag-dots-ocr")
    node.sh("docker rm -f rag-dots-ocr >/dev/null && docker run -d --name rag-dots-ocr --gpus '\"device=%s\"' "
            "-p 127.0.0.1:8002:8000 -v /opt/models/hf:/models:ro %s rag-dots-ocr:1.0.0"
            % (uuid[6], " ".join("-e " + e for e in ocr["Config"]["Env"] if not e.startswith("PATH="))))
    node.sh("docker rm -f rag-embedding-server >/dev/null && docker run -d --name rag-embedding-server "
            "--gpus '\"device=1\"' -e CUDA_VISIBLE_DEVICES=1 -e MODEL_NAME=sentence-transformers/all-MiniLM-L6-v2 "
            "rag-embedding-server:1.0.0")
    # packages: another version of a held one, a hold taken off
    node.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-change-held-packages "
            "nvidia-fabricmanager-550=550.144.03-1 >/dev/null && apt-mark unhold docker.io >/dev/null")
    # a model file, an apt source, a modprobe file, daemon.json, a unit
    node.sh("f=$(readlink -f /opt/models/hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/"
            "*/config.json); chmod u+w $f; printf ' ' >> $f")
    node.sh("sed -i 's/^Signed-By: .*/Signed-By: \\/etc\\/apt\\/keyrings\\/other.asc/' %s && rm %s" % (sources, nouveau))
    node.sh("sed -i 's/\"max-file\": \"5\"/\"max-file\": \"3\"/' /etc/docker/daemon.json")
    # a refs/main that names another revision (the model's files untouched)
    ref = "/opt/models/hf/hub/models--rednote-hilab--dots.ocr/refs/main"
    want_ref = node.sh("cat %s" % ref).stdout
    node.sh("printf 0000000000000000000000000000000000000000 > %s" % ref)
    node.sh("systemctl stop nvidia-persistenced")
    rc, report, out = drift()
    assert rc == 2, out
    assert {"container.stopped", "container.env", "container.gpus", "container.unmanaged", "driver.package_version",
            "model.modified_file", "model.revision"} <= set(types(report)), types(report)

    run = ansible(ROOT / "site.yml", node.inventory,
                  extra_vars={"gpu_stack_adopt_containers": ["rag-llm-server", "rag-dots-ocr", "rag-embedding-server"]})
    assert run.rc == 0, run
    node.adopt = []
    rc, report, out = drift()
    assert rc == 0, json.dumps(report["findings"], indent=1)
    node.dirty = False
    assert node.inspect("rag-whisper")["State"]["Running"] is True
    assert node.sh("docker image inspect -f '{{.Id}}' rag-whisper:1.0.0").stdout.strip()
    assert "MAX_NUM_SEQS=256" in node.inspect("rag-llm-server")["Config"]["Env"]
    assert node.inspect("rag-dots-ocr")["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [uuid[4]]
    assert node.inspect("rag-embedding-server")["Config"]["Labels"].get("io.ragops.gpu-stack.service") == "embedding"
    assert node.sh("dpkg-query -W -f='${Version}' nvidia-fabricmanager-550").stdout == "550.127.05-1"
    assert "docker.io" in node.sh("apt-mark showhold").stdout.split()
    assert node.sh("sha1sum %s %s" % (sources, nouveau)).stdout == want_files
    assert '"max-file": "5"' in node.sh("cat /etc/docker/daemon.json").stdout
    assert node.sh("cat %s" % ref).stdout == want_ref
    assert node.sh("systemctl is-active nvidia-persistenced", check=False).stdout.strip() == "active"
