# -*- coding: utf-8 -*-
"""image_load against the real dockerd of the converged simulated node, through ansible-playbook and the docker
connection: the tarball travels and loads only where the host lacks the image (check mode plans it, a second run
neither copies nor loads), the copy does not stay on the host, and a tarball of another image, a missing tarball and
src with path each stop with a message that names them. No mocked engine."""

from __future__ import annotations

import subprocess

import pytest
from conftest import module_steps

pytestmark = [pytest.mark.docker, pytest.mark.slow]

VENV_PY = "/opt/ragops/venv/bin/python"
IMAGE = "t-image-load:1"


def has(node, image):
    return node.sh("docker image inspect %s >/dev/null 2>&1" % image, check=False).returncode == 0


def copies_left(node):
    """Tarballs left in Ansible's remote temporary directories (ansible.cfg's remote_tmp, under /tmp)."""
    return node.sh("find /tmp -path '*/ansible-tmp-*' -name '*.tar'", check=False).stdout.split()


@pytest.fixture
def tarball(converged_node, tmp_path):
    """A one-layer image saved on the node, brought to the controller, and removed from the node."""
    node = converged_node
    node.sh("tar cf - -T /dev/null | docker import - %s >/dev/null && docker save -o /var/tmp/t-image-load.tar %s "
            "&& docker rmi %s >/dev/null" % (IMAGE, IMAGE, IMAGE))
    local = tmp_path / "t-image-load.tar"
    subprocess.run(["docker", "cp", "%s:/var/tmp/t-image-load.tar" % node.name, str(local)], check=True)
    node.sh("rm /var/tmp/t-image-load.tar")
    yield local
    node.sh("docker rmi %s >/dev/null 2>&1 || true" % IMAGE)


def test_loads_only_where_the_host_lacks_the_image_and_leaves_no_copy(converged_node, tmp_path, tarball):
    node = converged_node
    assert not has(node, IMAGE)
    check, apply, again, asked = module_steps(node, "image_load", tmp_path, python=VENV_PY, steps=[
        {"args": {"name": IMAGE, "src": str(tarball)}, "check": True},
        {"args": {"name": IMAGE, "src": str(tarball)}},
        {"args": {"name": IMAGE, "src": str(tarball)}},
        {"args": {"name": IMAGE}},
    ])
    assert not check.get("failed") and (check["changed"], check["present"]) == (True, False), check
    assert (apply["changed"], apply["present"], apply["loaded"]) == (True, False, [IMAGE]), apply
    assert (again["changed"], again["present"], again["loaded"]) == (False, True, []), again
    assert (asked["changed"], asked["present"]) == (False, True), asked
    assert has(node, IMAGE)
    assert copies_left(node) == []


def test_each_bad_input_stops_naming_it(converged_node, tmp_path, tarball):
    node = converged_node
    other, missing, both, absent = module_steps(node, "image_load", tmp_path, python=VENV_PY, steps=[
        {"args": {"name": "t-image-load:2", "src": str(tarball)}},
        {"args": {"name": IMAGE, "src": str(tmp_path / "no-such.tar")}},
        {"args": {"name": IMAGE, "src": str(tarball), "path": "/tmp/x.tar"}},
        {"args": {"name": "t-image-load:3"}},
    ])
    assert other["failed"] and other["msg"] == (
        "image_load: the tarball %s holds %s, not t-image-load:2: give the tarball that holds it, or the image it "
        "holds" % (tarball, IMAGE)), other
    assert missing["failed"] and missing["msg"] == (
        "image_load: src %s is not a file on the controller; give the image's tarball (docker save format). Nothing "
        "was copied or loaded." % (tmp_path / "no-such.tar")), missing
    assert both["failed"] and "give src (a tarball on the controller) or path (one on the host), not both" in both["msg"]
    assert not absent.get("failed") and (absent["changed"], absent["present"]) == (False, False), absent
    assert copies_left(node) == []
