# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: files_differing
short_description: The files (or directories) of a list that differ on the host, for one ragops.gpu_stack.host_files call
version_added: 0.4.0
description:
  - Takes the files a role wants, in M(ragops.gpu_stack.host_files)'s form (C(path), C(content), C(mode), C(owner),
    C(group)), and M(ragops.gpu_stack.host_state)'s reading of the host, and returns the files whose path is missing,
    of another type, or has other content, mode, owner or group, in the order given. Empty when the host has them all,
    so that the write is skipped on the controller.
  - An owner or group left out is compared with the one M(ragops.gpu_stack.host_files) gives then (root), each file
    as C(ragops.gpu_stack.file_differs) compares one.
  - With O(type=directory), the directories of a list in M(ragops.gpu_stack.host_files)'s C(directories) form
    (C(path), C(mode), C(owner), C(group); no content) that are missing, not directories, or have another mode, owner
    or group.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The wanted files, each with C(path), C(content) and C(mode), and C(owner) and C(group) where not root.
    type: list
    elements: dict
    required: true
  state:
    description: M(ragops.gpu_stack.host_state)'s C(files) (a path that was not read differs).
    type: dict
    required: true
  type:
    description: What the entries are.
    type: str
    choices: [file, directory]
    default: file
"""

EXAMPLES = r"""
- name: Write the files that differ, in one call
  ragops.gpu_stack.host_files:
    files: "{{ wanted | ragops.gpu_stack.files_differing(state.files) }}"
  when: wanted | ragops.gpu_stack.files_differing(state.files) | length > 0
  vars:
    wanted:
      - {path: /etc/modprobe.d/blacklist-nouveau.conf, content: "blacklist nouveau\n", mode: "0644"}
"""

RETURN = r"""
_value:
  description: The wanted files that the host does not have as wanted.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.file_differs import file_differs
from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import DEFAULT_GROUP, DEFAULT_OWNER


def files_differing(wanted, state, type="file"):  # pylint: disable=redefined-builtin
    if not isinstance(state, dict):
        raise AnsibleFilterError("files_differing: state must be host_state's files (a mapping of path to entry), got %s"
                                 % state.__class__.__name__)
    if type not in ("file", "directory"):
        raise AnsibleFilterError("files_differing: type %r is not file or directory" % (type,))
    needs = ("path", "content", "mode") if type == "file" else ("path", "mode")
    named = "path, content and mode" if type == "file" else "path and mode"
    out = []
    for entry in wanted:
        if not isinstance(entry, dict) or any(key not in entry for key in needs):
            raise AnsibleFilterError("files_differing: each %s needs %s, as host_files takes them; got %r"
                                     % (type, named, entry))
        if file_differs(state.get(entry["path"]), content=entry.get("content"), type=type, mode=entry["mode"],
                        owner=entry.get("owner") or DEFAULT_OWNER, group=entry.get("group") or DEFAULT_GROUP):
            out.append(entry)
    return out


class FilterModule:
    def filters(self):
        return {"files_differing": files_differing}
