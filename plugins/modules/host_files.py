#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: host_files
short_description: Write several small files in one call, each only where it differs
version_added: 0.4.0
description:
  - The write that goes with M(ragops.gpu_stack.host_state). A role that has read its files in one call and decided on
    the controller which of them differ writes those in one call too, instead of one M(ansible.builtin.copy) or
    M(ansible.builtin.template) task per file (each of which costs the host a round trip or two).
  - Every file is checked before any is written (an absolute path given once, an octal mode, an owner and a group the
    host knows, an existing parent directory, no directory in the way); all problems are named at once and nothing is
    written. In check mode a missing parent directory is not a problem (a task before this one would create it).
  - Each file is compared with what is there (its content's SHA-1, owner, group and mode). A file whose content
    differs is written to a temporary file in the same directory, flushed to disk, given its owner and mode and
    renamed into place, so a reader sees the old file or the new one, never a part. A file whose content is the same
    but whose owner or mode differs is only given them. A link at the path is replaced by the file (as
    M(ansible.builtin.copy) does by default).
  - Each file is handled on its own; one that cannot be written does not stop the others, and the task fails naming
    each that failed.
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
  files:
    description: The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist.
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
  description: The paths written or given another owner or mode (in check mode, those that would be), in the order
    given.
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
"""

import grp
import hashlib
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import (DEFAULT_GROUP, DEFAULT_OWNER,
                                                                                   content_text, octal_mode)

TMP_PREFIX = ".ragops-host-files-"
DIFF_LIMIT = 1 << 20


def check(files, check_mode=False):
    """Every problem with the files given, all at once (nothing is written when there is one). In check mode a
    missing directory is not one: a task before this one would have created it."""
    problems, seen = [], set()
    for entry in files:
        path = entry["path"]
        if not os.path.isabs(path):
            problems.append("%s: not an absolute path; give it as /path/to/the/file" % path)
            continue
        if path in seen:
            problems.append("%s: given twice; give each file once" % path)
        seen.add(path)
        if octal_mode(entry["mode"]) is None:
            problems.append("%s: mode %r is not an octal mode such as '0644'; quote it in YAML" % (path, entry["mode"]))
        try:
            pwd.getpwnam(entry["owner"])
        except KeyError:
            problems.append("%s: owner %s is not a user on this host; create the user first or name another"
                            % (path, entry["owner"]))
        try:
            grp.getgrnam(entry["group"])
        except KeyError:
            problems.append("%s: group %s is not a group on this host; create the group first or name another"
                            % (path, entry["group"]))
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if check_mode and not os.path.lexists(parent):
                continue
            problems.append("%s: its directory %s does not exist; create it first" % (path, parent))
        elif os.path.isdir(path) and not os.path.islink(path):
            problems.append("%s: is a directory; remove it or write the file elsewhere" % path)
    return problems


def current(path):
    """(sha1 of the content, uid, gid, mode) of a regular file at path; None when there is none (or a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _old_text(path):
    try:
        if os.path.islink(path) or os.path.getsize(path) > DIFF_LIMIT:
            return ""
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def write(path, data, uid, gid, mode):
    """The file in one step for a reader: a temporary file beside it, flushed, owned, then renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(files, check_mode=False, diff=False):
    problems = check(files, check_mode)
    if problems:
        return {"changed": False, "failed": True, "changed_paths": [], "files": {},
                "msg": "host_files: nothing was written: %s" % " / ".join(problems)}
    result = {"changed_paths": [], "files": {}}
    diffs, failed = [], []
    for entry in files:
        path = entry["path"]
        text = content_text(entry["content"])
        data = text.encode("utf-8")
        sha1 = hashlib.sha1(data).hexdigest()
        uid, gid, mode = pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid, octal_mode(entry["mode"])
        try:
            now = current(path)
            content_changed = now is None or now[0] != sha1
            changed = content_changed or now[1:] != (uid, gid, mode)
            if content_changed and diff:
                diffs.append({"before_header": path, "after_header": path,
                              "before": _old_text(path) if os.path.lexists(path) else "", "after": text})
            if changed and not check_mode:
                if content_changed:
                    write(path, data, uid, gid, mode)
                else:
                    os.chown(path, uid, gid)
                    os.chmod(path, mode)
        except OSError as exc:
            failed.append("%s: %s" % (path, exc.strerror or exc))
            result["files"][path] = {"changed": False, "content_changed": False, "sha1": sha1, "failed": True}
            continue
        result["files"][path] = {"changed": changed, "content_changed": content_changed, "sha1": sha1}
        if changed:
            result["changed_paths"].append(path)
    result["changed"] = bool(result["changed_paths"])
    if diff:
        result["diff"] = diffs
    if failed:
        result.update(failed=True, msg="host_files: %d of %d file(s) could not be written: %s; the others were"
                      % (len(failed), len(files), " / ".join(failed)))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="path", required=True),
                content=dict(type="raw", required=True),
                mode=dict(type="raw", required=True),
                owner=dict(type="str", default=DEFAULT_OWNER),
                group=dict(type="str", default=DEFAULT_GROUP),
            )),
        ),
        supports_check_mode=True,
    )
    result = run(module.params["files"], module.check_mode, module._diff)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
