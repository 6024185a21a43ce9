# -*- coding: utf-8 -*-
"""GPU metrics (role gpu_metrics): gpu_info's reading of the simulated GPUs through the real pynvml,
rendered in dcgm-exporter's names and labels with the service on each GPU; the faults show up as
the values NVIDIA's dashboards read; the file is replaced atomically; the reader script writes it;
and promtool (Debian's prometheus package) accepts the exposition."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info as gi
from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_metrics as gm

ROOT = Path(__file__).resolve().parents[4]
SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\} (\S+)$')
LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
# promtool's style lints that dcgm-exporter's own names and labels draw (its counters end in upper-case
# _TOTAL; its labels modelName, UUID, Hostname are camelCase), also on the collection's series that carry
# those labels so that they join with dcgm-exporter's
DCGM_LINT = re.compile(r"^(?:(DCGM_FI_[A-Z0-9_]+) counter metrics should have \"_total\" suffix"
                       r"|(DCGM_FI_[A-Z0-9_]+|ragops_gpu_stack_[a-z_]+) label names should be written in 'snake_case' not "
                       r"'camelCase')$")


def samples(text):
    """[(name, {label: value}, value)] of every sample line; every other line a HELP or TYPE."""
    out = []
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        out.append((m.group(1), dict(LABEL_RE.findall(m.group(2))), float(m.group(3))))
    return out


def series(text, name):
    return dict((labels["gpu"] + ("/" + labels["link"] if "link" in labels else ""), (labels, value))
                for n, labels, value in samples(text) if n == name)


def reading(m, services=None):
    facts = gi.gather(timeout=20)
    return gm.render(facts, "gpu-a100-01", gm.services_by_uuid(services or {}), 1700000000), facts


@pytest.fixture(scope="module")
def promtool():
    from gpusim.util import require_tools

    require_tools("promtool", packages={"promtool": "prometheus"})
    return "promtool"


def check_metrics(promtool, text):
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    return proc.returncode, [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def test_every_gpu_in_dcgm_exporters_names_and_labels_with_its_service(machine):
    m = machine()
    uuids = [m.gpu(i)["uuid"] for i in range(8)]
    record = {"services": [{"name": "whisper", "gpu_uuids": [uuids[0]]}, {"name": "embedding", "gpu_uuids": [uuids[1]]},
                           {"name": "llm", "gpu_uuids": uuids[2:4]}, {"name": "ocr", "gpu_uuids": [uuids[4]]},
                           {"name": "embedding", "container_name": "rag-embedding-server-2", "gpu_uuids": [uuids[1]]}]}
    text, facts = reading(m, record)
    # every metric of the list, each with one series per GPU (the NVLink state one per link)
    assert [n for n in gm.metric_names() if n not in {n for n, _l, _v in samples(text)}] == []
    for name in [m_[0] for m_ in gm.METRICS] + ["ragops_gpu_stack_gpu_status"]:
        assert len(series(text, name)) == 8, name
    temp = series(text, "DCGM_FI_DEV_GPU_TEMP")
    assert sorted(temp, key=int) == [str(i) for i in range(8)]
    for i in range(8):
        labels, value = temp[str(i)]
        g = m.gpu(i)
        assert labels == {"gpu": str(i), "UUID": g["uuid"], "device": "nvidia%d" % i, "modelName": "NVIDIA A100-SXM4-80GB",
                          "Hostname": "gpu-a100-01", "service": ["whisper", "embedding", "llm", "llm", "ocr", "", "", ""][i]}
        assert value == g["temperature"]["gpu_c"]
        assert series(text, "DCGM_FI_DEV_FB_FREE")[str(i)][1] == 81920
        assert series(text, "DCGM_FI_DEV_FB_USED")[str(i)][1] == 0
        assert series(text, "DCGM_FI_DEV_SM_CLOCK")[str(i)][1] == g["clocks"]["sm_mhz"]
        assert series(text, "DCGM_FI_DEV_MEM_CLOCK")[str(i)][1] == g["clocks"]["memory_mhz"]
        assert series(text, "DCGM_FI_DEV_XID_ERRORS")[str(i)][1] == 0
        assert series(text, "ragops_gpu_stack_gpu_status")[str(i)][1] == 0
    # every NVLink of every GPU, up
    links = series(text, "DCGM_FI_DEV_NVLINK_LINK_STATUS")
    assert len(links) == sum(len(g["nvlink"]) for g in facts["gpus"]) == 8 * 12  # HGX A100: 12 links per GPU
    assert {v for _l, v in links.values()} == {gm.NVLINK_UP}
    ok = [(labels, value) for n, labels, value in samples(text) if n == "ragops_gpu_stack_gpu_metrics_success"]
    assert ok == [({"Hostname": "gpu-a100-01"}, 1.0)]


def test_faults_show_as_the_values_the_dashboards_read(machine):
    m = machine()
    m.fault("xid", gpu=2, xid=79)
    m.fault("ecc", gpu=3, count=4)
    m.fault("remap-failure", gpu=5)
    m.fault("nvlink-down", gpu=6, link=1)
    m.fault("lost", gpu=7)
    m.fault("overtemp", gpu=0, temp=91)
    text, _facts = reading(m)
    assert series(text, "DCGM_FI_DEV_XID_ERRORS")["2"][1] == 79
    assert series(text, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")["3"][1] == 4
    assert series(text, "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL")["3"][1] == 4
    assert series(text, "DCGM_FI_DEV_ROW_REMAP_FAILURE")["5"][1] == 1
    assert series(text, "DCGM_FI_DEV_ROW_REMAP_FAILURE")["4"][1] == 0
    assert series(text, "DCGM_FI_DEV_NVLINK_LINK_STATUS")["6/1"][1] == gm.NVLINK_DOWN
    assert series(text, "DCGM_FI_DEV_NVLINK_LINK_STATUS")["6/0"][1] == gm.NVLINK_UP
    assert series(text, "DCGM_FI_DEV_GPU_TEMP")["0"][1] == 91
    # the lost GPU: no dcgm-exporter series (NVML has no values), listed as failed by the collection's own
    assert "7" not in series(text, "DCGM_FI_DEV_GPU_TEMP")
    status = series(text, "ragops_gpu_stack_gpu_status")
    assert {k: v for k, (_l, v) in status.items()} == {"0": 2, "1": 0, "2": 2, "3": 2, "4": 0, "5": 2, "6": 2, "7": 2}
    assert status["7"][0]["UUID"] == "" and status["7"][0]["device"] == "nvidia7"


def test_a_failed_reading_says_so_and_lists_no_gpu():
    facts = gi.missing_driver_facts("not_loaded", "the nvidia kernel module is not loaded")
    text = gm.render(facts, 'host"1', {}, 1700000000.7)
    assert samples(text) == [("ragops_gpu_stack_gpu_metrics_success", {"Hostname": 'host\\"1'}, 0.0),
                             ("ragops_gpu_stack_gpu_metrics_timestamp_seconds", {"Hostname": 'host\\"1'}, 1700000000.0)]


def test_services_by_uuid_reads_the_deployment_record(tmp_path):
    path = tmp_path / "deployed.json"
    assert gm.read_record(str(path)) == {}
    path.write_text("{not json")
    assert gm.read_record(str(path)) == {}
    path.write_text(json.dumps({"services": [{"name": "b", "gpu_uuids": ["U1"]}, {"name": "a", "gpu_uuids": ["U1", "U2"]},
                                             {"name": "cpu-mode", "gpu_uuids": []}]}))
    assert gm.services_by_uuid(gm.read_record(str(path))) == {"U1": "a,b", "U2": "a"}


def test_write_atomic_replaces_the_file_whole(tmp_path):
    path = tmp_path / "ragops_gpu.prom"
    path.write_text("old\n")
    before = path.stat().st_ino
    gm.write_atomic(str(path), "new\n")
    assert path.read_text() == "new\n" and path.stat().st_ino != before
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragops_gpu.prom"]  # no temporary file left
    with pytest.raises(OSError):
        gm.write_atomic(str(tmp_path / "missing" / "x.prom"), "x")


def test_the_reader_script_writes_the_textfile(machine, nvml_lib, tmp_path):
    m = machine()
    record = tmp_path / "deployed.json"
    record.write_text(json.dumps({"services": [{"name": "whisper", "gpu_uuids": [m.gpu(0)["uuid"]]}]}))
    out = tmp_path / "tf" / "ragops_gpu.prom"
    out.parent.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"), LD_LIBRARY_PATH=str(nvml_lib))
    proc = subprocess.run([sys.executable, str(ROOT / "roles/gpu_metrics/files/ragops_gpu_metrics.py"), "--textfile",
                           str(out), "--record", str(record), "--timeout", "20", "--hostname", "node-1"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert series(text, "DCGM_FI_DEV_GPU_UTIL")["0"][0]["service"] == "whisper"
    assert series(text, "DCGM_FI_DEV_GPU_UTIL")["0"][0]["Hostname"] == "node-1"
    # a directory it cannot write to: exit 1 with the path in the message
    proc = subprocess.run([sys.executable, str(ROOT / "roles/gpu_metrics/files/ragops_gpu_metrics.py"), "--textfile",
                           str(tmp_path / "nope" / "x.prom"), "--record", str(record)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "cannot write %s" % (tmp_path / "nope" / "x.prom") in proc.stderr


@pytest.mark.tools
def test_promtool_accepts_the_gpu_metrics(machine, promtool):
    """promtool parses the exposition (a syntax error is exit 1). Its style lints (exit 3) may name only
    what dcgm-exporter itself does: the upper-case _TOTAL counters and the camelCase labels (modelName,
    UUID, Hostname) that its dashboards select on. The collection's own series pass clean."""
    m = machine()
    m.fault("xid", gpu=2, xid=79)
    m.fault("ecc", gpu=3, count=4)
    text, _facts = reading(m)
    rc, lines = check_metrics(promtool, text)
    assert rc in (0, 3), lines
    assert lines and all(DCGM_LINT.match(line) for line in lines), lines
    # the names it lints are the textfile's own (no other finding)
    linted = {DCGM_LINT.match(line).group(1) or DCGM_LINT.match(line).group(2) for line in lines}
    assert linted <= set(gm.metric_names()) and "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in linted
    # a broken exposition is caught: promtool is really checking
    rc, lines = check_metrics(promtool, text.replace("# TYPE DCGM_FI_DEV_GPU_TEMP gauge", "# TYPE DCGM_FI_DEV_GPU_TEMP gauge x"))
    assert rc == 1, lines


@pytest.mark.tools
def test_promtool_accepts_the_drift_metrics(promtool):
    # as Ansible's template module renders it (trim_blocks, the trailing newline kept)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "playbooks" / "templates")), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    findings = [{"type": "container.env", "severity": "critical"}, {"type": "container.env", "severity": "critical"},
                {"type": "driver.package_version", "severity": "warning"}]
    report = {"hosts": {
        "gpu-a100-01": {"status": "drift", "findings": findings,
                        "gpus": [{"index": 0, "uuid": "GPU-1", "status": "ok", "memory_used_mib": 10,
                                  "memory_expected_mib": 12, "utilization_pct": 50},
                                 {"index": 1, "uuid": None, "status": "fail"}]},
        "gpu-a100-02": {"status": "error", "findings": [], "gpus": []}}}

    class Now(object):
        def timestamp(self):
            return 1700000000.5

    text = env.get_template("drift_metrics.prom.j2").render(drift_report=report, now=lambda utc=True: Now())
    assert 'ragops_gpu_stack_drift_findings{host="gpu-a100-01",type="container.env",severity="critical"} 2' in text
    rc, lines = check_metrics(promtool, text)
    assert (rc, lines) == (0, []), lines
