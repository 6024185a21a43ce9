# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: apt_repo_files
short_description: The paths role apt_repo writes for a repository, for a calling role to read with its own state
version_added: 0.4.0
description:
  - Given a repository's name (C(apt_repo_name)) and the keyring directory (C(apt_repo_keyring_dir)), the three paths
    role C(ragops.gpu_stack.apt_repo) reads and writes, in this order - the keyring directory, the key
    (C(<dir>/<name>.asc)) and the deb822 source (C(/etc/apt/sources.list.d/<name>.sources)).
  - A role that adds a repository through C(apt_repo) reads them in its own M(ragops.gpu_stack.host_state) call and
    hands the reading over (C(apt_repo_read)); C(apt_repo) itself names its paths with this filter, so that both
    agree.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The repository's name (C(apt_repo_name)).
    type: str
    required: true
  keyring_dir:
    description: The directory the key goes in (C(apt_repo_keyring_dir)); absolute.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read the driver's files and the CUDA repository's in one call
  ragops.gpu_stack.host_state:
    files: "{{ ['/etc/modprobe.d/blacklist-nouveau.conf'] + 'nvidia-cuda' | ragops.gpu_stack.apt_repo_files(gpu_stack_apt_keyring_dir) }}"
  register: state
"""

RETURN = r"""
_value:
  description: The keyring directory, the key's path and the source's path.
  type: list
  elements: str
  sample: [/etc/apt/keyrings, /etc/apt/keyrings/nvidia-cuda.asc, /etc/apt/sources.list.d/nvidia-cuda.sources]
"""

import re

from ansible.errors import AnsibleFilterError

SOURCES_DIR = "/etc/apt/sources.list.d"


def apt_repo_files(name, keyring_dir):
    if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", name):
        raise AnsibleFilterError("apt_repo_files: the repository name must be [a-z0-9-] (apt_repo_name), got %r" % (name,))
    if not isinstance(keyring_dir, str) or not keyring_dir.startswith("/"):
        raise AnsibleFilterError("apt_repo_files: keyring_dir must be an absolute path (apt_repo_keyring_dir), got %r"
                                 % (keyring_dir,))
    keyring_dir = keyring_dir.rstrip("/") or "/"
    return [keyring_dir, "%s/%s.asc" % (keyring_dir.rstrip("/"), name), "%s/%s.sources" % (SOURCES_DIR, name)]


class FilterModule:
    def filters(self):
        return {"apt_repo_files": apt_repo_files}
