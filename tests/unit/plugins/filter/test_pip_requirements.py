# -*- coding: utf-8 -*-
"""pip_requirements: the packages of a hash-locked requirements file; every other line refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.pip_requirements import pip_requirements

ROOT = Path(__file__).resolve().parents[4]
H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "0123456789" * 6 + "beef"


def test_the_roles_file_lists_every_package_with_its_hash():
    out = pip_requirements((ROOT / "roles/host_python/files/requirements.txt").read_text())
    names = [p["name"] for p in out]
    assert names[:2] == ["docker", "nvidia-ml-py"] and len(names) == len(set(names)) == 8 and "pip" in names
    assert all(len(p["hashes"]) == 1 and p["hashes"][0].startswith("sha256:") for p in out)
    assert {"name": "docker", "version": "7.2.0",
            "hashes": ["sha256:a3f45fdeb9165e2d25d9a1d02ddf3bc70fb572cf5ebbf9b58558c22caf29b71f"]} in out


def test_pip_compile_style_continuations_comments_and_several_hashes():
    text = ("# generated\n\ndocker==7.2.0 \\\n    --hash=%s \\\n    --hash=%s\n    # via -r requirements.in\n"
            "idna==3.20 --hash=%s  # trailing comment\n" % (H2, H1, H1))
    assert pip_requirements(text) == [{"name": "docker", "version": "7.2.0", "hashes": sorted([H1, H2])},
                                      {"name": "idna", "version": "3.20", "hashes": [H1]}]


@pytest.mark.parametrize("text, words", [
    ("docker>=7.0 --hash=%s\n" % H1, ["line 1", "not an exact pin", "NAME==VERSION"]),
    ("docker\n", ["line 1", "not an exact pin"]),
    ("docker==7.2.0\n", ["line 1", "no --hash=sha256", "pip hash"]),
    ("docker==7.2.0 --hash=md5:abc\n", ["'--hash=md5:abc' is not a --hash=sha256:HEX"]),
    ("--index-url http://pkgs.mirror.example/simple\ndocker==7.2.0 --hash=%s\n" % H1,
     ["line 1", "pip's own configuration"]),
    ("docker==7.2.0 --hash=%s\n\n# x\nDocker==7.1.0 --hash=%s\n" % (H1, H1), ["line 4", "pinned twice"]),
    ("# nothing\n\n", ["no packages"]),
])
def test_refusals_name_the_line_and_the_fix(text, words):
    with pytest.raises(AnsibleFilterError) as err:
        pip_requirements(text, source="host_python_requirements /tmp/r.txt")
    for word in words:
        assert word in str(err.value), str(err.value)
    assert "host_python_requirements /tmp/r.txt" in str(err.value)


def test_a_package_the_caller_requires_must_be_pinned():
    text = "docker==7.2.0 --hash=%s\n" % H1
    with pytest.raises(AnsibleFilterError) as err:
        pip_requirements(text, source="host_python_requirements /tmp/r.txt", require=["pip"])
    assert str(err.value) == ("host_python_requirements /tmp/r.txt: no pin for pip, which it must pin; "
                              "add pip==VERSION --hash=sha256:HEX")
    # the name as pip compares it
    assert [p["name"] for p in pip_requirements(text + "Pip==26.3 --hash=%s\n" % H1, require=["pip"])] == ["docker", "Pip"]


def test_not_text():
    with pytest.raises(AnsibleFilterError, match="expected the file's text, got list"):
        pip_requirements(["docker==1"])
