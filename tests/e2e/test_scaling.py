# -*- coding: utf-8 -*-
"""The guide's scaling sections end to end on the shared simulated node, under load.

Horizontal (examples/scale-out.yml): six healthy containers, HAProxy with two healthy instances
each for the LLM and the embedding service, the guide's health loop on 8001-8004, both LLM
instances answering 8003; a bounded load (loopback, in the node) runs while scale-out is applied,
while both LLM instances are recreated by an environment change, and while one is killed. Back to
the plain map: the extra containers and HAProxy go, drift is clean, a rerun changes nothing.

Vertical (examples/scale-up.yml): Whisper on GPUs 0 and 5 sees both UUIDs as 0,1; only Whisper and
OCR are recreated.

Each test starts from the node as site.yml leaves it (`converged`) and puts it back; a failure on
the way marks it dirty for the next test.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCALE_OUT = ["-e", "@%s" % (ROOT / "examples" / "scale-out.yml")]
SCALE_UP = ["-e", "@%s" % (ROOT / "examples" / "scale-up.yml")]
LOAD = ROOT / "scripts" / "rag-load"
STOP = "/tmp/rag-load.stop"


class Load(object):
    """scripts/rag-load running inside the node against one of its loopback ports, until stopped."""

    def __init__(self, node, url, *args):
        node.sh("rm -f %s" % STOP)
        self.node = node
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", node.name, "python3", "-", url, "--stop-file", STOP, *args],
            stdin=LOAD.open("rb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        self.node.sh("touch %s" % STOP)
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        result = json.loads(out)
        print("load %s: %d requests, %d failed %s, %.0f req/s, p50 %.1f ms, p99 %.1f ms, by instance %s" % (
            result["url"], result["requests"], result["failed"], result["failures"], result["requests_per_s"],
            result["latency_ms"]["p50"] or 0, result["latency_ms"]["p99"] or 0,
            dict((k, v["requests"]) for k, v in result["servers"].items())))
        return result


def bounded(node, url, post=True, rate=40):
    """A few thousand requests at most, 16 at a time, rate-capped so that it spans a site.yml run."""
    args = ["--concurrency", "16", "--requests", "6000", "--duration", "300", "--rate", str(rate)]
    if post:
        args += ["--post", '{"prompt": "What is the capital of France?"}']
    return Load(node, url, *args)


def container_ids(node):
    out = node.sh("docker ps -a --no-trunc --format '{{.Names}} {{.ID}} {{.Status}}'").stdout
    return dict((line.split()[0], (line.split()[1], line.split(" ", 2)[2])) for line in out.splitlines())


def instance_health(node):
    """Each running container's own /health, on the host port it publishes: {container: HTTP status};
    Docker's verdict too, where its first probe (30 s after the start) has run."""
    out = node.sh("docker ps --format '{{.Names}} {{.Status}} {{.Ports}}'").stdout
    codes = {}
    for line in out.splitlines():
        name = line.split()[0]
        assert "(unhealthy)" not in line, line
        port = line.rsplit("127.0.0.1:", 1)[1].split("->", 1)[0]
        codes[name] = int(node.sh("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%s/health" % port).stdout)
    return codes


def haproxy_servers(node):
    """{backend: {server: status}} through HAProxy's runtime API in the node."""
    out = node.sh("echo 'show stat' | python3 -c \"import socket,sys; s=socket.socket(socket.AF_UNIX); "
                  "s.connect('/run/haproxy/admin.sock'); s.sendall(sys.stdin.buffer.read()); "
                  "sys.stdout.write(s.makefile().read())\"").stdout
    rows = {}
    header = out.splitlines()[0][2:].split(",")
    for line in out.splitlines()[1:]:
        if not line.strip():
            continue
        row = dict(zip(header, line.split(",")))
        if row["svname"] not in ("FRONTEND", "BACKEND"):
            rows.setdefault(row["pxname"], {})[row["svname"]] = row["status"]
    return rows


def guide_health_loop(node):
    """The guide's `for port in 8001 8002 8003 8004; do curl -f localhost:$port/health; done`."""
    out = node.sh("for port in 8001 8002 8003 8004; do curl -sf -o /dev/null -w \"$port %{http_code}\\n\" "
                  "http://127.0.0.1:$port/health || echo \"$port failed\"; done").stdout
    return dict(line.split() for line in out.splitlines())


def served_by(node, port, count):
    """Who answered `count` GET requests on the port: {container: n}; the body names the same one."""
    script = ("import json, urllib.request, collections\n"
              "c = collections.Counter()\n"
              "for _ in range(%d):\n"
              "    r = urllib.request.urlopen('http://127.0.0.1:%d/v1/completions', timeout=10)\n"
              "    body = json.load(r)\n"
              "    assert body['served_by'] == r.headers['X-Served-By'], (body['served_by'], dict(r.headers))\n"
              "    c[body['served_by']] += 1\n"
              "print(json.dumps(c))\n" % (count, port))
    return json.loads(node.sh("python3 -c \"%s\"" % script.replace('"', '\\"')).stdout)


def drift(ansible, node, *args):
    run = ansible(ROOT / "playbooks" / "drift_check.yml", node.inventory, *args,
                  env={"RAGOPS_DRIFT_REPORT_DIR": "/tmp/ragops-scaling-drift"})
    report = json.loads(Path("/tmp/ragops-scaling-drift/latest.json").read_text())
    return run, sorted(set(f["type"] for f in report["findings"]))


def applied_under_load(node, ansible, *args):
    """site.yml with these arguments while POST requests go to the LLM's client port: none may fail."""
    load = bounded(node, "http://127.0.0.1:8003/v1/completions")
    run = ansible(ROOT / "site.yml", node.inventory, *args)
    result = load.stop()
    assert run.rc == 0, run
    assert result["requests"] >= 1000 and result["failed"] == 0, result
    return run


def test_scale_out_under_load_rolling_kill_and_back(converged, ansible):
    node = converged
    node.dirty = True
    before = container_ids(node)

    # (a) scale-out applied under load: the LLM's client port moves from its container to HAProxy
    applied_under_load(node, ansible, *SCALE_OUT)
    ids = container_ids(node)
    assert sorted(ids) == ["rag-dots-ocr", "rag-embedding-server", "rag-embedding-server-2", "rag-llm-server",
                           "rag-llm-server-2", "rag-whisper"]
    assert instance_health(node) == dict((name, 200) for name in ids), ids
    # Whisper and OCR were not touched
    untouched = ("rag-whisper", "rag-dots-ocr")
    assert [ids[n][0] for n in untouched] == [before[n][0] for n in untouched]
    assert node.sh("systemctl is-active haproxy").stdout.strip() == "active"
    assert haproxy_servers(node) == {
        "embedding": {"rag-embedding-server": "UP", "rag-embedding-server-2": "UP"},
        "llm": {"rag-llm-server": "UP", "rag-llm-server-2": "UP"}}
    assert guide_health_loop(node) == {"8001": "200", "8002": "200", "8003": "200", "8004": "200"}
    shares = served_by(node, 8003, 200)
    assert set(shares) == {"rag-llm-server", "rag-llm-server-2"} and min(shares.values()) >= 80, shares
    metrics = node.sh("curl -sf http://127.0.0.1:8404/metrics").stdout
    assert 'haproxy_server_status{proxy="llm",server="rag-llm-server-2",state="UP"} 1' in metrics
    rerun = ansible(ROOT / "site.yml", node.inventory, *SCALE_OUT)
    assert rerun.rc == 0 and rerun.recap(node.name)["changed"] == 0, rerun
    checked, types = drift(ansible, node, *SCALE_OUT)
    assert checked.rc == 0 and types == [], (types, checked)

    # (b) an environment change recreates both LLM instances, one at a time through HAProxy
    change = SCALE_OUT + ["-e", json.dumps({"gpu_stack_service_overrides__zz_test": {"llm": {"env": {
        "MAX_NUM_SEQS": "128"}}}})]
    before = container_ids(node)
    run = applied_under_load(node, ansible, *change)
    ids = container_ids(node)
    assert [n for n in sorted(ids) if ids[n][0] != before[n][0]] == ["rag-llm-server", "rag-llm-server-2"]
    drained = [line for line in run.out.splitlines() if line.startswith("TASK [") and "Drain in HAProxy" in line]
    assert len(drained) == 2 and all("rag-llm-server" in line for line in drained), drained
    assert node.sh("docker exec rag-llm-server-2 printenv MAX_NUM_SEQS").stdout.strip() == "128"

    # (c) one LLM instance killed: out of rotation within 6 s, idempotent requests still answered
    load = bounded(node, "http://127.0.0.1:8003/v1/completions", post=False, rate=200)
    time.sleep(3)
    node.sh("docker kill rag-llm-server-2")
    killed = time.monotonic()
    while not haproxy_servers(node)["llm"]["rag-llm-server-2"].startswith("DOWN"):  # "UP 1/3": still in
        assert time.monotonic() - killed < 30, "HAProxy still sends requests to a killed instance"
        time.sleep(0.2)
    out_after = time.monotonic() - killed
    time.sleep(3)
    result = load.stop()
    print("killed rag-llm-server-2: out of rotation after %.1f s; %d of %d requests failed"
          % (out_after, result["failed"], result["requests"]))
    assert out_after <= 6.0
    # Idempotent requests are sent again when an instance dies before answering; one it dies in the
    # middle of answering cannot be (its headers are out): at most the requests in flight then.
    assert result["failed"] <= 16, result
    # the drift check sees HAProxy's side: an instance down (stopped: a killed one is restarted by its
    # restart policy), one missing, one extra; HAProxy down
    node.sh("docker stop rag-llm-server-2 && sed -i -e '/server rag-embedding-server-2 /d' -e 's/^backend llm$/backend llm\\n    server stray "
            "127.0.0.1:9 check/' /etc/haproxy/haproxy.cfg && systemctl reload haproxy")
    checked, types = drift(ansible, node, *change)
    assert checked.rc != 0 and {"lb.server_missing", "lb.server_extra", "lb.server_down"} <= set(types), types
    node.sh("systemctl stop haproxy")
    checked, types = drift(ansible, node, *change)
    assert checked.rc != 0 and "lb.down" in types, types

    # back to the plain map: the extra containers and HAProxy go, the services publish their ports
    run = ansible(ROOT / "site.yml", node.inventory)
    assert run.rc == 0, run
    assert sorted(container_ids(node)) == ["rag-dots-ocr", "rag-embedding-server", "rag-llm-server", "rag-whisper"]
    assert node.sh("dpkg-query -W haproxy", check=False).returncode != 0
    assert guide_health_loop(node) == {"8001": "200", "8002": "200", "8003": "200", "8004": "200"}
    # the host is what site.yml makes of the plain map (a rerun's changed=0 there is test_site's)
    checked, types = drift(ansible, node)
    assert checked.rc == 0 and types == [], (types, checked)
    node.dirty = False


def test_scale_up_grows_whisper_and_ocr_only(converged, ansible):
    node = converged
    node.dirty = True
    before = container_ids(node)
    run = ansible(ROOT / "site.yml", node.inventory, *SCALE_UP)
    assert run.rc == 0, run
    assert "Reserve left: GPU 6 (1 of 3 reserved GPUs: 5-7)" in run.out
    ids = container_ids(node)
    assert sorted(n for n in ids if ids[n][0] != before[n][0]) == ["rag-dots-ocr", "rag-whisper"]
    whisper = node.inspect("rag-whisper")
    env = dict(e.split("=", 1) for e in whisper["Config"]["Env"])
    uuids = whisper["HostConfig"]["DeviceRequests"][0]["DeviceIDs"]
    assert len(uuids) == 2 and env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["DATA_PARALLEL_SIZE"] == "2"
    seen = json.loads(node.sh("curl -sf http://127.0.0.1:8004/health").stdout)
    assert sorted(seen["gpus_visible"]) == sorted(uuids) and seen["gpus_usable"] == 2
    assert guide_health_loop(node) == {"8001": "200", "8002": "200", "8003": "200", "8004": "200"}
    run = ansible(ROOT / "site.yml", node.inventory)
    assert run.rc == 0, run
    node.dirty = False
