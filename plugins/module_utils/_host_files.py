# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a file a role writes is (private): its content as bytes, its mode, its owner and group when the role
names none. Shared by the host_files module (which writes files) and the file_differs and files_differing
filters (which tell on the controller, from host_state's reading, whether a write has something to do), so the
two always agree."""

from __future__ import annotations

import json

# the owner and group of a file that host_files writes when the role names none
DEFAULT_OWNER = "root"
DEFAULT_GROUP = "root"


def octal_mode(value):
    """An octal mode (such as '0644') as an int, or None when the value is not one."""
    if isinstance(value, bool):
        return None
    try:
        mode = int(str(value).strip(), 8)
    except ValueError:
        return None
    return mode if 0 <= mode <= 0o7777 else None


def content_text(value):
    """The text written for a content value: a mapping or list as JSON, as ansible.builtin.copy writes one
    (ansible-core before 2.19 turns a templated string that reads as a Python literal into one)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)
