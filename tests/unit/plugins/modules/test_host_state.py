# -*- coding: utf-8 -*-
"""host_state, run as Ansible runs it: one call reads what a role would change (files with their SHA-1,
owner and mode; packages with their version and hold), and file_differs / packages_off_pin decide on the
controller from that reading which writes have something to do. The units part runs against systemd
in the simulated node (tests/e2e/test_site.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.file_differs import file_differs
from ansible_collections.ragops.gpu_stack.plugins.filter.packages_off_pin import packages_off_pin


def dpkg_version(name):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True,
                          check=True).stdout


def test_files_are_read_with_their_digest_owner_and_mode_and_missing_ones_say_so(tmp_path, module):
    text = "blacklist nouveau\n"
    f = tmp_path / "a.conf"
    f.write_text(text)
    f.chmod(0o640)
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    res = module("host_state", {"files": [str(f), str(tmp_path / "d"), str(tmp_path / "nope")],
                                "contents": [str(f)]})
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    entry = res["files"][str(f)]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert entry["exists"] is True and entry["type"] == "file" and entry["mode"] == "0640" and entry["owner"] == me
    assert entry["sha1"] == hashlib.sha1(text.encode()).hexdigest()
    assert base64.b64decode(entry["content"]).decode() == text
    assert res["files"][str(tmp_path / "d")]["type"] == "directory"
    assert res["files"][str(tmp_path / "d")]["mode"] == "0750"
    assert res["files"][str(tmp_path / "nope")] == {"exists": False}
    # what the roles ask of the reading
    assert not file_differs(entry, content=text, mode="0640", owner=me)
    assert file_differs(entry, content=text + "#", mode="0640")
    assert file_differs(entry, content=text, mode="0644")
    assert file_differs(entry, owner="nobody-else")
    assert not file_differs(res["files"][str(tmp_path / "d")], type="directory", mode="0750")
    assert file_differs(res["files"][str(tmp_path / "d")], type="file")
    assert file_differs(res["files"][str(tmp_path / "nope")], content="")
    assert file_differs(None)


def test_relative_paths_are_refused_naming_them(module):
    res = module("host_state", {"files": ["etc/hosts"]})
    assert res.get("failed") is True
    assert res["msg"] == "host_state: etc/hosts: not absolute paths; give each file as /path/to/it"


def test_packages_report_the_installed_version_and_unknown_ones_none(module):
    res = module("host_state", {"packages": ["dpkg", "ragops-no-such-package"]})
    assert res.get("failed") is not True, res
    have = dpkg_version("dpkg")
    assert res["packages"]["dpkg"]["version"] == have
    assert res["packages"]["dpkg"]["hold"] is False
    assert res["packages"]["ragops-no-such-package"] == {"version": None, "hold": False}
    assert packages_off_pin(res["packages"], {"dpkg": have, "ragops-no-such-package": "1.0"}) == \
        ["ragops-no-such-package"]
    # a pin ending in * matches every revision of the version, as apt's name=version* does
    assert packages_off_pin(res["packages"], have.split("-")[0] + "*", names=["dpkg"]) == []
    assert packages_off_pin(res["packages"], "0.0.1*", names=["dpkg"]) == ["dpkg"]
    # held is asked separately
    assert packages_off_pin(res["packages"], have, names=["dpkg"], hold=True) == ["dpkg"]
    assert packages_off_pin({"x": {"version": "1", "hold": True}}, "1", hold=True) == []


def test_a_content_that_reads_as_a_mapping_is_compared_as_copy_writes_it():
    # ansible-core before 2.19 may turn a templated JSON text into a mapping; copy then writes json.dumps of it
    written = '{"a": 1}'
    entry = {"exists": True, "type": "file", "sha1": hashlib.sha1(written.encode()).hexdigest()}
    assert not file_differs(entry, content={"a": 1})


@pytest.mark.parametrize("call, message", [
    (lambda: file_differs({"exists": True, "type": "file"}, mode="rw-r--r--"),
     "file_differs: mode 'rw-r--r--' is not an octal mode such as '0644' (quote it in YAML)"),
    (lambda: file_differs(["x"]), "file_differs: expected one entry of host_state's files (a mapping), got list"),
    (lambda: file_differs({"exists": True, "type": "directory"}, type="directory", content="x"),
     "file_differs: content is compared for files only, not a directory"),
    (lambda: packages_off_pin({"a": {"version": "1"}}, {"b": "1"}),
     "packages_off_pin: no pin for package 'a'; give pin as a version or a mapping that names every package"),
    (lambda: packages_off_pin(["a"], "1"), "packages_off_pin: expected host_state's packages (a mapping), got list"),
])
def test_unusable_filter_input_is_refused_naming_it(call, message):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    assert str(err.value) == message


def test_units_are_unknown_where_systemd_cannot_be_asked(module, tmp_path):
    """A host without systemctl (on the PATH the module runs with, or systemd not booted): the units read as
    unknown, so the roles' unit tasks run and say why, never a failed read."""
    res = module("host_state", {"services": ["docker", "cron"]}, env={"PATH": str(tmp_path)})
    assert res.get("failed") is not True, res
    assert res["services"] == {n: {"active": "unknown", "enabled": "unknown", "loaded": "unknown"}
                               for n in ("docker", "cron")}


def test_urls_are_asked_from_the_host_and_an_unreachable_one_is_reported_not_fatal(module):
    """The reachability a role checks before adding a repository, read with the rest: a HEAD of each URL (here a
    server on 127.0.0.1, a path it has, one it lacks, and a port nothing listens on)."""
    import http.server
    import socket
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 (the handler's interface)
            self.send_response(200 if self.path == "/dists/stable/InRelease" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: refused
        base = "http://127.0.0.1:%d" % server.server_port
        try:
            res = module("host_state", {"urls": [base + "/dists/stable/InRelease", base + "/nope",
                                                 "http://127.0.0.1:%d/InRelease" % closed], "timeout": 5})
        finally:
            server.shutdown()
    assert res.get("failed") is not True, res
    assert res["urls"][base + "/dists/stable/InRelease"]["status"] == 200
    assert res["urls"][base + "/nope"]["status"] == 404
    refused = res["urls"]["http://127.0.0.1:%d/InRelease" % closed]
    assert refused["status"] == -1 and "refused" in refused["msg"].lower(), refused
    assert res["files"] == {} and res["packages"] == {}

    bad = module("host_state", {"urls": ["ftp://mirror/InRelease"]})
    assert bad.get("failed") is True
    assert bad["msg"] == ("host_state: ftp://mirror/InRelease: not http(s) URLs; urls are asked with an HTTP HEAD, "
                          "give each as http(s)://host/path")


def test_the_os_facts_are_setups_own_and_only_asked_ones_come_back(module):
    """The facts the host roles read (their OS checks, vars files and kernel headers), from the read a play starts
    with instead of a setup call: the same values setup's min subset gives on this machine."""
    import json
    import sys
    from pathlib import Path

    res = module("host_state", {"facts": True})
    assert res.get("failed") is not True, res
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "ansible.builtin.setup",
                           "-a", "gather_subset=min", "-o"], capture_output=True, text=True, check=True,
                          env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0"))
    setup = json.loads(proc.stdout.split("=>", 1)[1])["ansible_facts"]
    keys = ["distribution", "distribution_version", "distribution_major_version", "distribution_release",
            "os_family", "kernel"]
    assert {k: res["ansible_facts"][k] for k in keys} == {k: setup["ansible_" + k] for k in keys}
    assert "ansible_facts" not in module("host_state", {})
