# -*- coding: utf-8 -*-
"""Package sources come from configuration: no tracked file names a public package host.

Every http(s) URL in the repository is a documentation link, a loopback / simulated / reserved-name
host (tests, examples, templated addresses), or one of the vendor repositories that are the roles'
defaults for real hosts (NVIDIA's CUDA and container-toolkit repositories, Docker's), which an
inventory overrides with its own mirror."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
URL_RE = re.compile(r"https?://[^\s\"'<>)`\]\\,|]+")

# Documentation links: the licence texts (and their publisher) and the project's own repository.
DOC_LINKS = ("https://www.gnu.org/licenses/", "https://fsf.org/", "https://github.com/ragops/gpu_stack")
# The vendor repositories that are inventory defaults for real hosts (roles' defaults/main.yml).
VENDOR_DEFAULTS = ("https://developer.download.nvidia.com/compute/cuda/repos",
                   "https://nvidia.github.io/libnvidia-container/",
                   "https://download.docker.com/linux/")
# Names that never resolve to a public host (RFC 2606 / RFC 6761, and the .internal names of examples).
RESERVED_SUFFIXES = (".example", ".invalid", ".test", ".localhost", ".internal")
LOCAL_NAMES = ("localhost",)


def tracked_files():
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                               timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("git ls-files failed in %s: the URL check reads the tracked files" % ROOT)
    return [ROOT / n for n in names if n and (ROOT / n).is_file()]


def classify(url: str) -> str | None:
    """Why this URL may be in the repository ("doc", "local", "vendor"), or None when it may not."""
    if any(url == d or url.startswith(d.rstrip("/") + "/") for d in DOC_LINKS):
        return "doc"
    if url.startswith(VENDOR_DEFAULTS):
        return "vendor"
    host = urlsplit(url).hostname or ""
    if not host or re.search(r"[%{}$]", url.split("//", 1)[1].split("/", 1)[0]):
        return "local"  # a templated address (%s, {REPO}, {{ var }}): filled in at run time
    if host in LOCAL_NAMES or host.startswith("gpu-sim-") or "." not in host or host.endswith(RESERVED_SUFFIXES):
        return "local"
    try:
        if ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_private:
            return "local"
    except ValueError:
        pass
    return None


def urls_in(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return  # binary (a fixture tarball): no text to link from
    for number, line in enumerate(text.splitlines(), 1):
        for match in URL_RE.finditer(line):
            yield number, match.group(0).rstrip(".:;")


def test_every_url_in_tracked_files_is_a_doc_link_a_local_host_or_a_vendor_default():
    found, bad = {"doc": 0, "local": 0, "vendor": 0}, []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue  # this file's counter-examples below (fictional public hosts)
        for number, url in urls_in(path):
            kind = classify(url)
            if kind is None:
                bad.append("%s:%d: %s" % (path.relative_to(ROOT), number, url))
            else:
                found[kind] += 1
    assert not bad, ("public package hosts in tracked files (package sources come from configuration: pip's "
                     "index, apt's sources, inventory defaults):\n" + "\n".join(bad))
    # the scan sees the repository: the licence links, the tests' loopback URLs and the vendor defaults
    assert found["doc"] >= 2 and found["local"] >= 10 and found["vendor"] >= 3, found


@pytest.mark.parametrize("url, kind", [
    ("https://www.gnu.org/licenses/gpl-3.0.txt", "doc"),
    ("https://github.com/ragops/gpu_stack", "doc"),
    ("https://github.com/ragops/gpu_stack_fork/archive.tar.gz", None),
    ("https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/", "vendor"),
    ("http://127.0.0.1:8001/health", "local"),
    ("http://%s/cuda/debian12/x86_64/", "local"),
    ("http://gpu-sim-repo-1a2b/cuda/", "local"),
    ("http://mirror.example/debian", "local"),
    ("https://mirror.internal/hf", "local"),
    ("https://pkgs.acme-mirror.net/simple/docker/", None),
    ("http://ftp.acme-university.edu/debian", None),
    ("https://8.8.4.4/wheels/", None),
    ("https://nvidia.github.io.acme-mirror.net/libnvidia-container/", None),
])
def test_the_classifier(url, kind):
    assert classify(url) == kind


def test_the_roles_wheels_come_from_the_hash_locked_requirements_not_urls():
    text = (ROOT / "roles" / "host_python" / "files" / "requirements.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$", text, re.M)
    constraints = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", (ROOT / "requirements" / "constraints.txt").read_text(),
                                  re.M))
    assert {"docker", "nvidia-ml-py", "pip"} <= set(dict(pins))
    # the hosts run the same versions as the controller's tests (pip's own aside: the lock leaves pip out, and
    # the hosts' pip fills their virtualenv from its wheel)
    hosts = {name: version for name, version in pins if name != "pip"}
    assert hosts == {name: constraints.get(name) for name in hosts}
