# -*- coding: utf-8 -*-
"""health_wait, run as Ansible runs it, against a real HTTP server on 127.0.0.1: every endpoint is asked
until it answers 200 or its attempts are used up, the answers come back in the order given, an endpoint
that never answers is reported, not fatal; unusable arguments are refused naming them."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Handler(BaseHTTPRequestHandler):
    seen = {}

    def do_GET(self):  # noqa: N802 (the http.server API)
        n = self.seen[self.path] = self.seen.get(self.path, 0) + 1
        if self.path == "/ok" or (self.path == "/late" and n >= 3):
            code, body = 200, {"status": "ok"}
        elif self.path == "/late":
            code, body = 503, {"status": "loading"}
        else:
            code, body = 500, {"status": "fail", "reasons": ["GPU 0 lost"]}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.seen = {}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_endpoint_is_asked_until_healthy_or_out_of_attempts_in_order(server, module):
    refused = "http://127.0.0.1:%d/health" % closed_port()
    res = module("health_wait", {"checks": [{"url": server + "/late", "attempts": 5},
                                            {"url": server + "/bad", "attempts": 3},
                                            {"url": server + "/ok", "attempts": 5},
                                            {"url": refused, "attempts": 2}],
                                 "delay": 0.05, "timeout": 5})
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    late, bad, ok, gone = res["results"]
    assert (late["url"], late["status"], late["attempts"], late["json"]) == (server + "/late", 200, 3, {"status": "ok"})
    assert (bad["status"], bad["attempts"]) == (500, 3)
    assert bad["json"]["reasons"] == ["GPU 0 lost"] and bad["msg"].startswith("HTTP Error 500")
    assert (ok["status"], ok["attempts"]) == (200, 1)
    assert gone["status"] == 0 and gone["attempts"] == 2 and gone["msg"].startswith("Request failed")
    assert "json" not in gone
    assert Handler.seen == {"/late": 3, "/bad": 3, "/ok": 1}


def test_unusable_arguments_are_refused_naming_each(module):
    res = module("health_wait", {"checks": [{"url": "127.0.0.1:8001/health"}, {"url": "http://x/", "attempts": 0}],
                                 "delay": -1})
    assert res.get("failed") is True
    assert res["msg"] == (
        "health_wait: checks[0]: url '127.0.0.1:8001/health' is not an http(s) URL; write e.g. "
        "http://127.0.0.1:8001/health; checks[1]: attempts 0 must be 1 or more; delay must be >= 0 and timeout > 0 "
        "(got delay=-1.0, timeout=10.0)")


@pytest.mark.docker
def test_with_the_containers_read_in_the_call_one_that_does_not_run_is_asked_once(server, module, sim):
    """The containers come with the answers (one call), read first: an endpoint whose container is there but not
    running, or not there at all, is asked once instead of waiting out its attempts; one whose container runs, or
    that names none, is asked as before."""
    import os
    import subprocess

    stopped = "ragops-health-wait-test-%d" % os.getpid()
    subprocess.run(["docker", "create", "--name", stopped, sim["base_image"], "true"], check=True, capture_output=True)
    try:
        res = module("health_wait", {"checks": [{"url": server + "/bad", "attempts": 3, "container": stopped},
                                                {"url": server + "/bad", "attempts": 3, "container": stopped + "-gone"},
                                                {"url": server + "/late", "attempts": 5}],
                                     "delay": 0.05, "timeout": 5, "containers": True})
    finally:
        subprocess.run(["docker", "rm", "-f", stopped], check=True, capture_output=True)
    assert res.get("failed") is not True, res
    created, gone, late = res["results"]
    assert (created["status"], created["attempts"]) == (500, 1)
    assert (gone["status"], gone["attempts"]) == (500, 1)
    assert (late["status"], late["attempts"]) == (200, 3)
    mine = [c for c in res["containers"] if "/" + stopped in c["Names"]]
    assert len(mine) == 1 and mine[0]["State"] == "created", mine
    assert "containers" not in module("health_wait", {"checks": [{"url": server + "/ok"}]})


def test_containers_without_a_docker_engine_to_ask_fail_naming_it(server, module):
    res = module("health_wait", {"checks": [{"url": server + "/ok"}], "containers": True},
                 env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert res.get("failed") is True
    assert res["msg"].startswith("health_wait: the Docker engine could not be asked for its containers ("), res
    assert res["msg"].endswith("); is dockerd running (systemctl status docker)?")


def test_the_gpus_are_read_after_the_wait_in_the_same_call(server, module, machine, nvml_lib, tmp_path):
    """gpu_info's reading, after the answers, in the one call (its engine over the real pynvml and the stand-in
    library); a driver that cannot be loaded is reported in the reading, not fatal; a bad threshold is named."""
    machine()
    with_lib = {"LD_LIBRARY_PATH": str(nvml_lib)}
    res = module("health_wait", {"checks": [{"url": server + "/ok"}], "gpus": {"thresholds": {"temperature_warn_c": 75}}},
                 env=with_lib)
    assert res.get("failed") is not True, res
    assert res["results"][0]["status"] == 200
    gpus = res["gpus"]
    assert (gpus["driver_state"], gpus["driver_version"], len(gpus["gpus"])) == ("ok", "550.127.05", 8), gpus
    assert gpus["health"]["thresholds"]["temperature_warn_c"] == 75 and gpus["health"]["status"] == "ok"
    assert "gpus" not in module("health_wait", {"checks": [{"url": server + "/ok"}]}, env=with_lib)
    gone = module("health_wait", {"checks": [{"url": server + "/ok"}], "gpus": {}}, env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert gone.get("failed") is not True and gone["gpus"]["driver_state"] != "ok", gone
    bad = module("health_wait", {"checks": [{"url": server + "/ok"}], "gpus": {"thresholds": {"memory_alert_pct": 150}}},
                 env=with_lib)
    assert bad["failed"] and "gpus.thresholds: memory_alert_pct 150 is not a percentage (0-100)" in bad["msg"], bad
