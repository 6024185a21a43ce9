#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: host_files
short_description: Write several small files in one call, each only where it differs, and make their directories
version_added: 0.4.0
description:
  - The write that goes with M(ragops.gpu_stack.host_state). A role that has read its files in one call and decided on
    the controller which of them differ writes those in one call too, instead of one M(ansible.builtin.copy) or
    M(ansible.builtin.template) task per file (each of which costs the host a round trip or two).
  - The directories given are made first where missing (with their missing parents, as C(mkdir -p) makes them) and
    given their owner and mode where those differ, so that a role's directory and the files in it take one call, not
    one M(ansible.builtin.file) task more.
  - Every directory and file is checked before any is written (an absolute path given once, an octal mode, an owner
    and a group the host knows; for a file an existing parent directory or one that the directories given make (one
    of them or a parent of one), and no directory in the way; for a directory nothing else in the way); all problems
    are named at once and nothing is
    written. In check mode a missing parent directory is not a problem (a task before this one would create it).
  - Each file is compared with what is there (its content's SHA-1, owner, group and mode). A file whose content
    differs is written to a temporary file in the same directory, flushed to disk, given its owner and mode and
    renamed into place, so a reader sees the old file or the new one, never a part. A file whose content is the same
    but whose owner or mode differs is only given them. A link at the path is replaced by the file (as
    M(ansible.builtin.copy) does by default).
  - Each file and directory is handled on its own; one that cannot be written does not stop the others, and the task
    fails naming each that failed.
  - For text files of the collection's own making (configuration, units, scripts), whose content is given in the task. Not
    for large or binary files, and no SELinux contexts are set (the collection's hosts are Debian and Ubuntu).
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One diff per file whose content changes, named after the file.
options:
  directories:
    description: The directories to make (or to give their owner and mode), before the files. A link to a directory
      counts as one (its target is given the owner and mode).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      mode:
        description: The directory's mode, an octal string such as C("0755") (quote it in YAML).
        type: raw
        required: true
      owner:
        description: The directory's owner (a user name the host knows).
        type: str
        default: root
      group:
        description: The directory's group (a group name the host knows).
        type: str
        default: root
  files:
    description: The files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist or be made by O(directories).
        type: path
        required: true
      content:
        description: The file's content (text, written as UTF-8). A mapping or list is written as JSON, as
          M(ansible.builtin.copy) writes one.
        type: raw
        required: true
      mode:
        description: The file's mode, an octal string such as C("0644") (quote it in YAML).
        type: raw
        required: true
      owner:
        description: The file's owner (a user name the host knows).
        type: str
        default: root
      group:
        description: The file's group (a group name the host knows).
        type: str
        default: root
"""

EXAMPLES = r"""
- name: Read the files this role writes
  ragops.gpu_stack.host_state:
    files: [/etc/modprobe.d/blacklist-nouveau.conf, /etc/apt/preferences.d/nvidia-driver]
  register: state

- name: Write those that differ, in one call
  ragops.gpu_stack.host_files:
    files: "{{ wanted | ragops.gpu_stack.files_differing(state.files) }}"
  when: wanted | ragops.gpu_stack.files_differing(state.files) | length > 0
  vars:
    wanted:
      - {path: /etc/modprobe.d/blacklist-nouveau.conf, content: "blacklist nouveau\n", mode: "0644"}
      - {path: /etc/apt/preferences.d/nvidia-driver, content: "{{ preferences }}", mode: "0644"}
  register: written

- name: Update the initramfs when the blacklist changed
  ansible.builtin.command: update-initramfs -u
  changed_when: true
  when: "'/etc/modprobe.d/blacklist-nouveau.conf' in written.changed_paths | default([])"
"""

RETURN = r"""
changed_paths:
  description: The directories and files made, written or given another owner or mode (in check mode, those that would
    be), directories first, in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/modprobe.d/blacklist-nouveau.conf]
files:
  description: Per path C(changed), C(content_changed) (the content itself was, or would be, replaced) and C(sha1) (of
    the content given).
  returned: always
  type: dict
  sample: {/etc/modprobe.d/blacklist-nouveau.conf: {changed: true, content_changed: true,
           sha1: 0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33}}
directories:
  description: Per directory given, C(changed) (made, or given another owner or mode).
  returned: always
  type: dict
  sample: {/var/lib/node_exporter/textfile_collector: {changed: true}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import DEFAULT_GROUP, DEFAULT_OWNER, run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                mode=dict(type="raw", required=True),
                owner=dict(type="str", default=DEFAULT_OWNER),
                group=dict(type="str", default=DEFAULT_GROUP),
            )),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                content=dict(type="raw", required=True),
                mode=dict(type="raw", required=True),
                owner=dict(type="str", default=DEFAULT_OWNER),
                group=dict(type="str", default=DEFAULT_GROUP),
            )),
        ),
        supports_check_mode=True,
    )
    result = run(module.params["files"], module.check_mode, module._diff, module.params["directories"])
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
