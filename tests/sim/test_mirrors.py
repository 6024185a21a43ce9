# -*- coding: utf-8 -*-
"""debootstrap's Debian mirror comes from the build machine's apt sources (deb822 or one-line), or
from GPU_SIM_DEBIAN_MIRROR; nothing in the repository names a package host."""

from __future__ import annotations

import pytest
from gpusim import build
from gpusim.util import SimError


@pytest.fixture
def apt(tmp_path, monkeypatch):
    monkeypatch.delenv("GPU_SIM_DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("GPU_SIM_DEBIAN_SECURITY_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_deb822_sources_give_the_archive_and_the_security_archive(apt):
    (apt / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: http://vendor.example/node\nSuites: nodistro\nComponents: main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert build.debian_mirrors(apt) == ("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_one_line_sources_and_disabled_stanzas(apt):
    (apt / "sources.list").write_text("# deb http://old.example/debian bookworm main\n"
                                      "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian trixie main\n")
    (apt / "sources.list.d" / "off.sources").write_text(
        "Types: deb\nEnabled: no\nURIs: http://off.example/debian-security\nSuites: trixie-security\n")
    assert build.debian_mirrors(apt) == ("http://one.example/debian", None)


def test_the_environment_overrides_the_sources(apt, monkeypatch):
    (apt / "sources.list").write_text("deb http://one.example/debian bookworm main\n")
    monkeypatch.setenv("GPU_SIM_DEBIAN_MIRROR", "http://local.example/debian")
    assert build.debian_mirrors(apt)[0] == "http://local.example/debian"


def test_no_debian_source_is_an_error_that_says_what_to_set(apt):
    (apt / "sources.list.d" / "vendor.sources").write_text("Types: deb\nURIs: http://vendor.example\nSuites: nodistro\n")
    with pytest.raises(SimError) as exc:
        build.debian_mirrors(apt)
    assert "set GPU_SIM_DEBIAN_MIRROR" in str(exc.value)


def test_an_unknown_host_os_names_the_choices():
    with pytest.raises(SimError) as exc:
        build.node_ref("debian11")
    assert "choose one of debian12, debian13" in str(exc.value)
