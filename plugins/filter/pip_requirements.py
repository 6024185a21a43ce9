# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: pip_requirements
short_description: The packages of a hash-locked pip requirements file
version_added: 0.4.0
description:
  - Reads the text of a requirements file in which every package is pinned exactly and carries its hashes
    (C(NAME==VERSION --hash=sha256:...), as C(pip-compile --generate-hashes) writes it; backslash continuations,
    comments and several hashes per package are fine) and returns one entry per package, in file order.
  - Refuses, naming the line and the fix, a package without an exact pin or without a sha256 hash, and any pip
    option other than C(--hash) (an index or find-links line would bypass pip's own configuration).
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The file's text.
    type: str
    required: true
  source:
    description: The file's name, for the error messages.
    type: str
    default: requirements
  require:
    description: Packages the file must pin (role host_python needs pip's own wheel to fill a virtualenv).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: The pinned names and versions
  ansible.builtin.debug:
    msg: "{{ lookup('ansible.builtin.file', 'requirements.txt') | ragops.gpu_stack.pip_requirements }}"
"""

RETURN = r"""
_value:
  description: One entry per package, in file order.
  type: list
  elements: dict
  contains:
    name:
      description: The package name as written.
      type: str
    version:
      description: The pinned version.
      type: str
    hashes:
      description: Its C(sha256:HEX) hashes, sorted.
      type: list
      elements: str
"""

import re

from ansible.errors import AnsibleFilterError

PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)$")
HASH_RE = re.compile(r"^--hash=(sha256:[0-9a-f]{64})$")


def _logical_lines(text):
    """(first line number, text) of each logical line: comments dropped, continuations joined."""
    out, buf, start = [], "", None
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if start is None:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf, start = "", None
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def pip_requirements(text, source="requirements", require=()):
    if not isinstance(text, str):
        raise AnsibleFilterError("pip_requirements: expected the file's text, got %s" % text.__class__.__name__)
    out, seen = [], set()
    for number, line in _logical_lines(text):
        where = "%s line %d (%r)" % (source, number, line[:120])
        words = line.split()
        pin = PIN_RE.match(words[0])
        if not pin:
            raise AnsibleFilterError("%s: not an exact pin; write NAME==VERSION --hash=sha256:HEX (pip options such as "
                                     "--index-url belong in pip's own configuration, not in this file)" % where)
        hashes = []
        for word in words[1:]:
            found = HASH_RE.match(word)
            if not found:
                raise AnsibleFilterError("%s: %r is not a --hash=sha256:HEX option; only hashes may follow the pin"
                                         % (where, word))
            hashes.append(found.group(1))
        if not hashes:
            raise AnsibleFilterError("%s: no --hash=sha256:...; add the sha256 of the package's wheel (`pip hash "
                                     "FILE`, or `pip-compile --generate-hashes`)" % where)
        name = pin.group(1)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            raise AnsibleFilterError("%s: %s is pinned twice; keep one line per package" % (where, name))
        seen.add(key)
        out.append({"name": name, "version": pin.group(2), "hashes": sorted(set(hashes))})
    if not out:
        raise AnsibleFilterError("%s: no packages; list NAME==VERSION --hash=sha256:HEX lines" % source)
    missing = [name for name in require or () if re.sub(r"[-_.]+", "-", name).lower() not in seen]
    if missing:
        raise AnsibleFilterError("%s: no pin for %s, which it must pin; add %s" % (
            source, " or ".join(missing), ", ".join("%s==VERSION --hash=sha256:HEX" % name for name in missing)))
    return out


class FilterModule:
    def filters(self):
        return {"pip_requirements": pip_requirements}
