# -*- coding: utf-8 -*-
"""GPU metrics (role gpu_metrics, part of site.yml) on the shared converged node: Debian's real
prometheus-node-exporter serves the textfile the timer writes, a scrape of its /metrics shows the
GPU series in dcgm-exporter's names with each GPU's service, a change on a GPU reaches the scrape
within the timer's interval, the switch removes everything it installed and puts it back, and the
dcgm-exporter mode runs a container on all GPUs instead (a stand-in image: NVIDIA's needs a registry)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "tests" / "playbooks" / "roles.yml"
TEXTFILE = "/var/lib/prometheus/node-exporter/ragops_gpu.prom"
SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$', re.M)
LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(node):
    """node_exporter's /metrics, as Prometheus would scrape it (from inside the node)."""
    return node.sh("curl -sf --max-time 10 http://127.0.0.1:9100/metrics").stdout


def series(text, name):
    return [(dict(LABEL_RE.findall(labels)), float(value)) for n, labels, value in SAMPLE_RE.findall(text) if n == name]


def test_node_exporter_serves_the_gpu_series_with_each_gpus_service(converged):
    node = converged
    assert node.sh("systemctl is-active prometheus-node-exporter ragops-gpu-metrics.timer").stdout.split() == [
        "active", "active"]
    text = scrape(node)
    shown = ("DCGM_FI_DEV_GPU_TEMP", "# HELP DCGM_FI_DEV_GPU_TEMP", "# TYPE DCGM_FI_DEV_GPU_TEMP",
             "node_textfile_scrape_error", "ragops_gpu_stack_gpu_metrics_success")
    print("\n".join(line for line in text.splitlines() if line.startswith(shown)))  # the scrape excerpt
    # node_exporter parsed the file: no scrape error, and the file's mtime is reported
    assert series(text, "node_textfile_scrape_error") == [({}, 0.0)]
    assert any(labels.get("file", "").endswith("ragops_gpu.prom")
               for labels, _v in series(text, "node_textfile_mtime_seconds"))
    deployed = json.loads(node.sh("cat /etc/ragops/gpu-stack/deployed.json").stdout)
    by_uuid = {}
    for svc in deployed["services"]:
        for uuid in svc["gpu_uuids"]:
            by_uuid.setdefault(uuid, set()).add(svc["name"])
    temps = series(text, "DCGM_FI_DEV_GPU_TEMP")
    assert sorted(int(labels["gpu"]) for labels, _v in temps) == list(range(8))
    gpus = {g["index"]: g["uuid"] for g in deployed["gpus"]}
    for labels, value in temps:
        index = int(labels["gpu"])
        assert labels["UUID"] == gpus[index] and labels["device"] == "nvidia%d" % index
        assert labels["modelName"] == "NVIDIA A100-SXM4-80GB" and labels["Hostname"] == node.name
        assert labels["service"] == ",".join(sorted(by_uuid.get(gpus[index], ())))
        assert 20 <= value < 80
    # the guide's map: Whisper on 0, embedding on 1, the LLM on 2-3, OCR on 4, 5-7 reserved
    assert [labels["service"] for labels, _v in sorted(temps, key=lambda t: int(t[0]["gpu"]))] == [
        "whisper", "embedding", "llm", "llm", "ocr", "", "", ""]
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
                 "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                 "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "ragops_gpu_stack_gpu_status"):
        assert len(series(text, name)) == 8, name
    # the LLM's GPUs hold vLLM's preallocation (the simulator models what the services use)
    used = {labels["gpu"]: v for labels, v in series(text, "DCGM_FI_DEV_FB_USED")}
    assert used["2"] > 0 and used["3"] > 0 and used["6"] == 0
    assert len(series(text, "DCGM_FI_DEV_NVLINK_LINK_STATUS")) == 8 * 12
    assert series(text, "ragops_gpu_stack_gpu_metrics_success") == [({"Hostname": node.name}, 1.0)]


def test_a_change_on_a_gpu_reaches_the_scrape_within_the_interval(converged):
    node = converged
    node.fault("overtemp", gpu=6, temp=88)
    try:
        deadline, seen = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            seen = {labels["gpu"]: v for labels, v in series(scrape(node), "DCGM_FI_DEV_GPU_TEMP")}.get("6")
            if seen == 88:
                break
            time.sleep(2)
        assert seen == 88, "the scrape still shows GPU 6 at %s °C a minute after it reached 88 °C" % seen
        status = {labels["gpu"]: v for labels, v in series(scrape(node), "ragops_gpu_stack_gpu_status")}
        assert status["6"] == 2 and status["5"] == 0
    finally:
        node.clear_faults()
        node.sh("systemctl start ragops-gpu-metrics.service")


# Each thing the role keeps, broken alone: a converged host skips the deployment on the role's one read
# (__gpu_metrics_deploy_needed), so each must open that gate by itself and be put back.
DRIFTS = {
    "timer stopped and disabled": ("systemctl disable --now ragops-gpu-metrics.timer",
                                   "systemctl is-active ragops-gpu-metrics.timer; systemctl is-enabled ragops-gpu-metrics.timer",
                                   "active\nenabled"),
    "reader edited": ("echo '# edited' >> /opt/ragops/gpu-metrics/ragops_gpu_metrics.py",
                      "grep -c '# edited' /opt/ragops/gpu-metrics/ragops_gpu_metrics.py || true", "0"),
    "node_exporter stopped": ("systemctl stop prometheus-node-exporter",
                              "systemctl is-active prometheus-node-exporter", "active"),
    "textfile removed": ("rm %s" % TEXTFILE, "test -s %s && echo there" % TEXTFILE, "there"),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_each_drift_of_the_metrics_is_put_back_by_the_role(converged, ansible, drift):
    node = converged
    breaks, check, healthy = DRIFTS[drift]
    assert node.sh(check, check=False).stdout.strip() == healthy  # as converged
    node.sh(breaks)
    try:
        run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["gpu_metrics"]})
        now = node.sh(check, check=False).stdout.strip()
    finally:
        node.sh("systemctl enable --now ragops-gpu-metrics.timer prometheus-node-exporter; "
                "sed -i '/^# edited$/d' /opt/ragops/gpu-metrics/ragops_gpu_metrics.py; "
                "test -e %s || systemctl start ragops-gpu-metrics.service" % TEXTFILE, check=False)
    assert run.rc == 0 and run.recap(node.name)["changed"] >= 1, run
    assert now == healthy, (drift, now)


def test_the_switch_removes_the_reader_and_puts_it_back(converged, ansible):
    node = converged
    containers = node.sh("docker ps -q --no-trunc | sort").stdout
    off = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["gpu_metrics"], "gpu_stack_gpu_metrics": False})
    assert off.rc == 0, off
    try:
        left = node.sh("for f in %s /etc/systemd/system/ragops-gpu-metrics.timer /etc/systemd/system/ragops-gpu-metrics.service "
                       "/opt/ragops/gpu-metrics/lib /opt/ragops/gpu-metrics/ragops_gpu_metrics.py; do test -e $f && echo $f; "
                       "done; systemctl show -p LoadState --value ragops-gpu-metrics.timer" % TEXTFILE, check=False).stdout.split()
        assert left == ["not-found"], left
        assert "DCGM_FI_DEV_GPU_TEMP" not in scrape(node)
        again = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["gpu_metrics"], "gpu_stack_gpu_metrics": False})
        assert again.rc == 0 and again.recap(node.name)["changed"] == 0, again
    finally:
        on = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["gpu_metrics"]})
    assert on.rc == 0, on
    assert node.sh("systemctl is-active ragops-gpu-metrics.timer").stdout.strip() == "active"
    assert len(series(scrape(node), "DCGM_FI_DEV_GPU_TEMP")) == 8
    # the services were not touched
    assert node.sh("docker ps -q --no-trunc | sort").stdout == containers


def test_the_dcgm_exporter_mode_runs_one_container_on_all_gpus_instead(converged, ansible):
    """NVIDIA's dcgm-exporter image needs a registry; a service's stand-in image (staged from its
    tarball source like any image) shows what the role does with it: the container on every GPU, the
    reader gone; back to textfile, the container gone."""
    node = converged
    extra = {"test_roles": ["gpu_metrics"], "gpu_metrics_exporter": "dcgm-exporter",
             "gpu_metrics_dcgm_exporter_image": "rag-embedding-server:1.0.0"}
    bad = ansible(ROLES, node.inventory, extra_vars=dict(extra, gpu_metrics_dcgm_exporter_image="dcgm-exporter:4.0.0"))
    assert bad.rc != 0
    assert ("the dcgm-exporter image dcgm-exporter:4.0.0 has no entry in gpu_stack_image_sources" in " ".join(bad.out.split())), bad
    assert node.inspect("ragops-dcgm-exporter") is None and node.sh("test -e %s && echo yes" % TEXTFILE).stdout.strip() == "yes"
    run = ansible(ROLES, node.inventory, extra_vars=extra)
    try:
        assert run.rc == 0, run
        c = node.inspect("ragops-dcgm-exporter")
        assert c["State"]["Running"] and c["HostConfig"]["DeviceRequests"][0]["Count"] == -1
        assert c["HostConfig"]["PortBindings"]["9400/tcp"][0]["HostPort"] == "9400"
        assert c["Config"]["Labels"]["io.ragops.gpu-stack.managed-by"] == "ragops.gpu_stack.gpu_metrics"
        listed = node.sh("docker exec ragops-dcgm-exporter nvidia-smi -L").stdout.splitlines()
        host = node.sh("nvidia-smi -L").stdout.splitlines()
        assert len(listed) == 8 and listed == host
        assert node.sh("test -e %s || systemctl is-active ragops-gpu-metrics.timer" % TEXTFILE,
                       check=False).stdout.strip() in ("inactive", "unknown")
        again = ansible(ROLES, node.inventory, extra_vars=extra)
        assert again.rc == 0 and again.recap(node.name)["changed"] == 0, again
    finally:
        back = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["gpu_metrics"]})
    assert back.rc == 0, back
    assert node.inspect("ragops-dcgm-exporter") is None
    assert node.sh("test -e /opt/ragops/gpu-metrics/dcgm-exporter.json || echo gone").stdout.strip() == "gone"
    assert len(series(scrape(node), "DCGM_FI_DEV_GPU_TEMP")) == 8
