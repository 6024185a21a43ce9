#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_room
short_description: Check there is room on the host's disks before copying or loading large files
version_added: 0.2.0
description:
  - Sums what is about to be written per filesystem (several paths may share one) and fails, before anything is
    copied, when a filesystem has less free space than that plus a margin. The message names each path, the bytes
    needed and the bytes free, so a full disk is a clear stop instead of a half-written file.
  - A path that does not exist yet is measured at its nearest existing parent.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
options:
  need:
    description: What is about to be written.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Where it goes (a directory or a file).
        type: path
        required: true
      bytes:
        description: How many bytes it takes.
        type: int
        required: true
      what:
        description: What it is, for the message.
        type: str
        default: files
  margin_bytes:
    description: Free space to leave on each filesystem after the writes.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Check the tarballs fit before copying them
  ragops.gpu_stack.disk_room:
    need:
      - {path: /var/lib/ragops/images, bytes: 4294967296, what: image tarballs}
      - {path: /var/lib/docker, bytes: 4294967296, what: the loaded images}
"""

RETURN = r"""
filesystems:
  description: Per filesystem, its paths, the bytes needed and the bytes free.
  returned: always
  type: list
  elements: dict
  sample: [{paths: [/var/lib/ragops/images, /var/lib/docker], need_bytes: 8589934592, free_bytes: 53687091200}]
"""

import os

from ansible.module_utils.basic import AnsibleModule


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def measure(need, margin):
    """[{paths, need_bytes, free_bytes, short}] per filesystem, in the order the paths were given."""
    by_dev = {}
    for item in need:
        where = _existing(item["path"])
        st = os.statvfs(where)
        dev = os.stat(where).st_dev
        fs = by_dev.setdefault(dev, {"paths": [], "whats": [], "need_bytes": 0,
                                     "free_bytes": st.f_bavail * st.f_frsize})
        fs["paths"].append(item["path"])
        fs["whats"].append("%s (%d bytes)" % (item.get("what") or "files", item["bytes"]))
        fs["need_bytes"] += item["bytes"]
    out = list(by_dev.values())
    for fs in out:
        fs["short"] = fs["need_bytes"] + margin > fs["free_bytes"]
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            need=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="path", required=True),
                bytes=dict(type="int", required=True),
                what=dict(type="str", default="files"),
            )),
            margin_bytes=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    filesystems = measure(module.params["need"], module.params["margin_bytes"])
    short = [fs for fs in filesystems if fs["short"]]
    if short:
        module.fail_json(msg="not enough disk space: " + "; ".join(
            "%s need %d bytes%s on the filesystem of %s, which has %d free (short by %d); free space there or point "
            "the setting at a volume with room. Nothing was written." % (
                " + ".join(fs["whats"]), fs["need_bytes"],
                " + %d to keep free" % module.params["margin_bytes"] if module.params["margin_bytes"] else "",
                ", ".join(fs["paths"]), fs["free_bytes"],
                fs["need_bytes"] + module.params["margin_bytes"] - fs["free_bytes"]) for fs in short),
            filesystems=filesystems)
    module.exit_json(changed=False, filesystems=filesystems)


if __name__ == "__main__":
    main()
