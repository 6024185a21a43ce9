# -*- coding: utf-8 -*-
"""Hardening on the shared converged node: daemon.json is never overwritten blindly (a file that
cannot be read stops the role before any change) and a daemon.json dockerd will not start with is
rolled back, dockerd started with the previous file, the services running on through it; the
service containers pass the container checks of the CIS Docker Benchmark (section 5) that apply;
registry credentials leave the host after a pull, even a failed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "tests" / "playbooks" / "roles.yml"
DAEMON_JSON = "/etc/docker/daemon.json"


def running(node):
    return node.sh("docker ps --no-trunc --format '{{.ID}} {{.Names}}' | sort").stdout


def test_a_daemon_json_that_cannot_be_read_stops_the_role_before_any_change(converged, ansible):
    node = converged
    node.sh("mv %s %s.test && mkdir %s" % (DAEMON_JSON, DAEMON_JSON, DAEMON_JSON))
    try:
        run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["docker_engine"]})
        still_a_directory = node.sh("test -d %s" % DAEMON_JSON, check=False).returncode == 0
    finally:
        node.sh("rmdir %s && mv %s.test %s" % (DAEMON_JSON, DAEMON_JSON, DAEMON_JSON))
    assert run.rc != 0
    said = " ".join(run.out.split())
    # the role's one read of the host (host_state) says what the path is
    cause = said.split("%s on %s cannot be read (" % (DAEMON_JSON, node.name), 1)[1].split(")", 1)
    assert "directory" in cause[0].lower(), said[-3000:]
    assert cause[1].startswith("; make it a readable file (or remove it). Nothing was changed."), said[-3000:]
    assert still_a_directory and run.recap(node.name)["changed"] == 0


@pytest.mark.parametrize("dockerd", ["running", "stopped"])
def test_a_daemon_json_dockerd_rejects_is_rolled_back_and_the_services_run_on(converged, ansible, dockerd):
    """A running dockerd is restarted with the new file; a stopped one (as on a host where Docker is about to be
    installed) has the file merged before it starts and is started with it: either way the file dockerd rejects is
    rolled back."""
    node = converged
    before, containers = node.sh("sha256sum %s" % DAEMON_JSON).stdout, running(node)
    node.dirty = True  # dockerd was restarted twice: let the next test that needs it re-converge
    if dockerd == "stopped":  # live-restore: the containers run on without it
        node.sh("systemctl stop docker.socket docker")
    run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["docker_engine"],
                                                     "docker_engine_daemon_json_extra": {"no-such-directive": True}})
    assert run.rc != 0
    said = " ".join(run.out.split())
    assert ("dockerd on %s did not start with the new %s; the file as it was before this run is back and dockerd "
            "runs with it." % (node.name, DAEMON_JSON)) in said, said[-3000:]
    assert "no-such-directive" in said.split("dockerd said:", 1)[1]  # dockerd's own reason, from its journal
    # a stopped dockerd has the file merged before it starts (and is started, not restarted, with it)
    assert ("docker_engine : Configure the daemon before dockerd starts]" in run.out) == (dockerd == "stopped")
    assert node.sh("sha256sum %s" % DAEMON_JSON).stdout == before
    assert node.sh("docker version --format '{{.Server.Version}}'").stdout.strip()
    assert running(node) == containers  # live-restore: the same containers, never stopped


# The container checks of the CIS Docker Benchmark (section 5) that apply to the services, each as
# (id, title, check over `docker inspect`): a service container passes when the check returns "".
SENSITIVE = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")


def _binds(c):
    return [m.get("Source") or "" for m in c.get("Mounts") or [] if m.get("Type") == "bind"]


CIS = (
    ("5.3", "Linux kernel capabilities are restricted",
     lambda c: "" if c["HostConfig"].get("CapDrop") == ["ALL"] and not c["HostConfig"].get("CapAdd")
     else "CapDrop=%s CapAdd=%s" % (c["HostConfig"].get("CapDrop"), c["HostConfig"].get("CapAdd"))),
    ("5.4", "privileged containers are not used",
     lambda c: "privileged" if c["HostConfig"].get("Privileged") else ""),
    ("5.5", "sensitive host system directories are not mounted",
     lambda c: " ".join(s for s in _binds(c) if s.rstrip("/") in SENSITIVE or s == "/")),
    ("5.9", "the host's network namespace is not shared",
     lambda c: "network host" if c["HostConfig"].get("NetworkMode") == "host" else ""),
    ("5.10", "memory usage is limited", lambda c: "" if c["HostConfig"].get("Memory") else "no memory limit"),
    ("5.12", "the root filesystem is mounted read-only",
     lambda c: "" if c["HostConfig"].get("ReadonlyRootfs") else "writable root"),
    ("5.13", "incoming traffic is bound to a specific host interface",
     lambda c: " ".join("%s:%s" % (b.get("HostIp"), b.get("HostPort"))
                        for bs in (c["HostConfig"].get("PortBindings") or {}).values() for b in bs or []
                        if b.get("HostIp") in ("", "0.0.0.0", "::"))),
    ("5.15", "the host's process namespace is not shared",
     lambda c: "pid host" if c["HostConfig"].get("PidMode") == "host" else ""),
    ("5.16", "the host's IPC namespace is not shared",
     lambda c: "ipc host" if c["HostConfig"].get("IpcMode") == "host" else ""),
    ("5.20", "the host's UTS namespace is not shared",
     lambda c: "uts host" if c["HostConfig"].get("UTSMode") == "host" else ""),
    ("5.21", "the default seccomp profile is not disabled",
     lambda c: " ".join(o for o in c["HostConfig"].get("SecurityOpt") or [] if o.replace("=", ":") == "seccomp:unconfined")),
    ("5.25", "the container cannot acquire additional privileges",
     lambda c: "" if any(o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
                         for o in c["HostConfig"].get("SecurityOpt") or []) else "no no-new-privileges"),
    ("5.28", "the pids cgroup limit is used",
     lambda c: "" if (c["HostConfig"].get("PidsLimit") or 0) > 0 else "no pids limit"),
    ("5.30", "the host's user namespace is not shared",
     lambda c: "userns host" if c["HostConfig"].get("UsernsMode") == "host" else ""),
    ("5.31", "the Docker socket is not mounted inside any container",
     lambda c: " ".join(s for s in _binds(c) if s.endswith("docker.sock"))),
)


def test_the_service_containers_pass_the_cis_docker_benchmark_container_checks(converged):
    node = converged
    ids = node.sh("docker ps -q --no-trunc --filter label=io.ragops.gpu-stack.service").stdout.split()
    inspected = json.loads(node.sh("docker inspect %s" % " ".join(ids)).stdout)
    names = sorted(c["Name"].lstrip("/") for c in inspected)
    assert names == ["rag-dots-ocr", "rag-embedding-server", "rag-llm-server", "rag-whisper"], names
    failures, rows = [], []
    for number, title, check in CIS:
        results = dict((c["Name"].lstrip("/"), check(c)) for c in inspected)
        bad = dict((k, v) for k, v in results.items() if v)
        rows.append("CIS %-5s %-58s %s" % (number, title, "FAIL %s" % bad if bad else "pass (%d containers)" % len(results)))
        failures.extend("CIS %s %s: %s" % (number, name, why) for name, why in bad.items())
    print("\n".join(rows))
    assert not failures, failures
    # and it holds inside: a non-root user without capabilities, the root not writable even for root;
    # the services healthy
    for name in names:
        caps = node.sh("docker exec %s grep CapEff /proc/1/status" % name).stdout.split()
        assert caps == ["CapEff:", "0000000000000000"], (name, caps)
        assert node.sh("docker exec %s id -u" % name).stdout.strip() != "0", name  # the image's non-root user
        write = node.sh("docker exec -u 0 %s touch /ragops-write-test" % name, check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, (name, write.stderr)
    # healthy as the health role asks (Docker's own status is no help here: after the rollback test
    # restarted dockerd with live-restore, Docker 20.10 runs no more healthchecks for the restored
    # containers, whose status stays "starting")
    codes = node.sh("for p in 8001 8002 8003 8004; do curl -s -o /dev/null -w '%{http_code} ' "
                    "http://127.0.0.1:$p/health; done").stdout.split()
    assert codes == ["200"] * 4, codes


FAKE_REGISTRY = r'''
import base64, json
from http.server import BaseHTTPRequestHandler, HTTPServer
WANT = "Basic " + base64.b64encode(b"ragops:s3cret-test").decode()
class Registry(BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization")
        with open("/tmp/fake-registry.log", "a") as fh:
            fh.write("%s %s\n" % (self.path, "authenticated" if auth == WANT else "anonymous"))
        if self.path in ("/v2", "/v2/") and auth != WANT:
            code, body = 401, b"{}"
        elif self.path in ("/v2", "/v2/"):
            code, body = 200, b"{}"
        else:
            code, body = 404, json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
        self.send_response(code)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
HTTPServer(("127.0.0.1", 5055), Registry).serve_forever()
'''


def test_registry_credentials_do_not_stay_on_the_host_when_the_pull_fails(converged, ansible, tmp_path):
    """gpu_services' pull logs in, pulls and logs out whatever happened: a registry that accepts the
    login but has no such image leaves no credentials in the host's Docker config."""
    node = converged
    node.sh("cat > /tmp/fake_registry.py <<'EOF'\n%s\nEOF\nrm -f /tmp/fake-registry.log; setsid -f python3 "
            "/tmp/fake_registry.py >/dev/null 2>&1; sleep 1" % FAKE_REGISTRY)
    play = tmp_path / "pull.yml"
    play.write_text(yaml.safe_dump([{"hosts": node.name, "gather_facts": False, "tasks": [{
        "name": "Pull through the role", "ansible.builtin.include_role": {
            "name": "ragops.gpu_stack.gpu_services", "tasks_from": "pull"},
        "vars": {"gpu_services_pull_images": ["127.0.0.1:5055/rag/missing:1.0"],
                 "gpu_services_registry_auth": {"registry_url": "127.0.0.1:5055", "username": "ragops",
                                                "password": "s3cret-test"}}}]}]))
    try:
        run = ansible(play, node.inventory)
        log = node.sh("cat /tmp/fake-registry.log").stdout
        config = node.sh("cat /root/.docker/config.json 2>/dev/null || echo '{}'").stdout
    finally:
        # the pattern anchored at python3, so that it does not match (and kill) this shell itself
        node.sh("pkill -f '^python3 /tmp/fake_registry.py' || true; rm -f /tmp/fake_registry.py /tmp/fake-registry.log")
    assert run.rc != 0 and "manifest unknown" in run.out, run.out[-3000:]
    assert "/v2/ authenticated" in log, log  # logged in for the pull
    logout = run.out.split("Log out of the registry (no credentials left on the host)")[1].split("TASK")[0]
    assert "changed: [%s]" % node.name in logout, logout
    assert "127.0.0.1:5055" not in json.dumps(json.loads(config).get("auths", {})), config
    assert "s3cret-test" not in run.out


def test_a_toolkit_installed_under_a_running_dockerd_restarts_it_so_that_gpus_can_be_given(converged, ansible):
    """dockerd looks for the toolkit's hook once, when it starts, to offer --gpus (device requests): a toolkit installed
    while dockerd runs, with its runtime already in daemon.json (the merge changes nothing), still restarts dockerd, and
    the smoke test's container sees its GPU. The services run on through the restart (live-restore)."""
    node = converged
    node.dirty = True  # the toolkit was removed and dockerd restarted
    node.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq --allow-change-held-packages "
            "nvidia-container-toolkit nvidia-container-toolkit-base >/dev/null && systemctl restart docker")
    containers = running(node)
    image = node.sh("docker inspect -f '{{.Config.Image}}' %s" % containers.split()[0]).stdout.strip()
    # dockerd started without the hook: it cannot give a container a GPU (what the services' restarts would meet)
    refused = node.sh("docker run --rm --network none --gpus device=0 %s true" % image, check=False)
    assert refused.returncode != 0 and "could not select device driver" in refused.stderr, refused.stderr
    run = ansible(ROLES, node.inventory, extra_vars={"test_roles": ["nvidia_container_toolkit"]})
    said = " ".join(run.out.split())
    assert run.rc == 0, said[-3000:]
    assert "RUNNING HANDLER [ragops.gpu_stack.docker_engine : Restart docker]" in said  # the file did not change
    assert "sees exactly that GPU" in said  # the smoke test's container, given GPU 0
    assert node.sh("docker run --rm --network none --gpus device=0 %s true" % image, check=False).returncode == 0
    assert running(node) == containers  # live-restore: the same containers, never stopped
