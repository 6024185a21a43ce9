# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: packages_off_pin
short_description: The packages that are not installed at their pinned version (or not held)
version_added: 0.3.0
description:
  - Compares M(ragops.gpu_stack.host_state)'s C(packages) with a version pin, on the controller, and returns the
    names of the packages that are missing or installed at another version (with O(hold), also those not held), in
    the order given. Empty, the role's install (or hold) task has nothing to do.
  - A pin may end in C(*), as in apt's C(name=version*), to match every revision of a version.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: M(ragops.gpu_stack.host_state)'s C(packages).
    type: dict
    required: true
  pin:
    description: The pinned version of every package (or a mapping of package name to its pin).
    type: raw
    required: true
  names:
    description: The packages to compare. Omitted, every package of the input.
    type: list
    elements: str
  hold:
    description: Also return the packages that are not held (apt-mark hold).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Install Docker at the pin only when a package is missing or at another version
  ansible.builtin.apt:
    name: docker.io=20.10.24+dfsg1*
  when: state.packages | ragops.gpu_stack.packages_off_pin('20.10.24+dfsg1*') | length > 0
"""

RETURN = r"""
_value:
  description: The names of the packages that are off their pin (or not held, with O(hold)).
  type: list
  elements: str
"""

import fnmatch

from ansible.errors import AnsibleFilterError


def packages_off_pin(packages, pin, names=None, hold=False):
    if not isinstance(packages, dict):
        raise AnsibleFilterError("packages_off_pin: expected host_state's packages (a mapping), got %s"
                                 % packages.__class__.__name__)
    out = []
    for name in packages if names is None else names:
        want = pin.get(name) if isinstance(pin, dict) else pin
        if not want:
            raise AnsibleFilterError("packages_off_pin: no pin for package %r; give pin as a version or a mapping "
                                     "that names every package" % (name,))
        have = packages.get(name) or {}
        version = have.get("version")
        if version is None or not fnmatch.fnmatchcase(str(version), str(want)) or (hold and not have.get("hold")):
            out.append(name)
    return out


class FilterModule:
    def filters(self):
        return {"packages_off_pin": packages_off_pin}
