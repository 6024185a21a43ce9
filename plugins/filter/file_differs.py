# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: file_differs
short_description: Whether a file or directory on the host differs from what a role wants
version_added: 0.3.0
description:
  - Compares one entry of M(ragops.gpu_stack.host_state)'s C(files) with the wanted content, type, mode, owner and
    group, on the controller. True when the role's write task has something to change (the path is missing, of
    another type, with other content, mode, owner or group), false when the write can be skipped.
  - An entry that could not be read (C(error)) or is missing altogether differs, so the write task runs and says
    what is wrong.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: One entry of M(ragops.gpu_stack.host_state)'s C(files) (or nothing, when the path was not read).
    type: dict
    required: true
  content:
    description: The wanted content of a file (compared by SHA-1 of its UTF-8 bytes; a mapping or list as
      M(ansible.builtin.copy) writes it, as JSON). Omitted, only the metadata is compared.
    type: raw
  type:
    description: The wanted type.
    type: str
    choices: [file, directory]
    default: file
  mode:
    description: The wanted mode, four octal digits as a string ("0644"). Omitted, not compared.
    type: str
  owner:
    description: The wanted owner's name. Omitted, not compared.
    type: str
  group:
    description: The wanted group's name. Omitted, not compared.
    type: str
"""

EXAMPLES = r"""
- name: Write the source file only when it is not what it should be
  ansible.builtin.copy:
    dest: /etc/apt/sources.list.d/example.sources
    content: "{{ source_text }}"
    owner: root
    group: root
    mode: "0644"
  when: >-
    state.files['/etc/apt/sources.list.d/example.sources']
    | ragops.gpu_stack.file_differs(content=source_text, owner='root', group='root', mode='0644')
"""

RETURN = r"""
_value:
  description: True when the host's file or directory is not the wanted one.
  type: bool
"""

import hashlib

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import content_text, octal_mode


def _mode(value):
    mode = octal_mode(value)
    if mode is None:
        raise AnsibleFilterError("file_differs: mode %r is not an octal mode such as '0644' (quote it in YAML)" % (value,))
    return "%04o" % mode


def file_differs(entry, content=None, type="file", mode=None, owner=None, group=None):  # pylint: disable=redefined-builtin
    if entry is None or entry == "":
        return True
    if not isinstance(entry, dict):
        raise AnsibleFilterError("file_differs: expected one entry of host_state's files (a mapping), got %s"
                                 % entry.__class__.__name__)
    if type not in ("file", "directory"):
        raise AnsibleFilterError("file_differs: type %r is not file or directory" % (type,))
    if entry.get("error") or not entry.get("exists") or entry.get("type") != type:
        return True
    if mode is not None and entry.get("mode") != _mode(mode):
        return True
    if (owner is not None and entry.get("owner") != owner) or (group is not None and entry.get("group") != group):
        return True
    if content is not None:
        if type != "file":
            raise AnsibleFilterError("file_differs: content is compared for files only, not a %s" % type)
        return entry.get("sha1") != hashlib.sha1(content_text(content).encode("utf-8")).hexdigest()
    return False


class FilterModule:
    def filters(self):
        return {"file_differs": file_differs}
