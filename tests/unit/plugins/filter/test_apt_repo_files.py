# -*- coding: utf-8 -*-
"""apt_repo_files: the paths role apt_repo writes, named once for apt_repo and for the roles that read them with their
own state and hand the reading over (apt_repo_read)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.apt_repo_files import apt_repo_files

ROOT = Path(__file__).resolve().parents[4]


def test_the_keyring_directory_the_key_and_the_source():
    assert apt_repo_files("nvidia-cuda", "/etc/apt/keyrings") == [
        "/etc/apt/keyrings", "/etc/apt/keyrings/nvidia-cuda.asc", "/etc/apt/sources.list.d/nvidia-cuda.sources"]
    # a trailing slash names the same directory (apt_repo compares these paths with the reading's keys)
    assert apt_repo_files("docker", "/srv/keys/") == [
        "/srv/keys", "/srv/keys/docker.asc", "/etc/apt/sources.list.d/docker.sources"]


@pytest.mark.parametrize("name, keyring_dir, message", [
    ("Nvidia_CUDA", "/etc/apt/keyrings", "the repository name must be [a-z0-9-] (apt_repo_name), got 'Nvidia_CUDA'"),
    ("", "/etc/apt/keyrings", "the repository name must be [a-z0-9-] (apt_repo_name), got ''"),
    ("nvidia-cuda", "etc/apt/keyrings",
     "keyring_dir must be an absolute path (apt_repo_keyring_dir), got 'etc/apt/keyrings'"),
])
def test_a_bad_name_or_directory_is_refused_naming_it(name, keyring_dir, message):
    with pytest.raises(AnsibleFilterError) as err:
        apt_repo_files(name, keyring_dir)
    assert str(err.value) == "apt_repo_files: " + message


def test_the_keyring_directory_is_one_setting_the_roles_share():
    """apt_repo's default is the shared setting the reading roles name the paths with: a reading made with it holds
    what apt_repo looks for."""
    apt_repo = yaml.safe_load((ROOT / "roles" / "apt_repo" / "defaults" / "main.yml").read_text())
    shared = yaml.safe_load((ROOT / "roles" / "gpu_stack" / "defaults" / "main.yml").read_text())
    assert apt_repo["apt_repo_keyring_dir"] == "{{ gpu_stack_apt_keyring_dir }}"
    assert shared["gpu_stack_apt_keyring_dir"] == "/etc/apt/keyrings"
