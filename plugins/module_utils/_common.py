# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts and helpers the collection's engines share (private): one home each.

* ``LABEL_PREFIX``: the prefix of every label the collection puts on a container.
* ``UUID_RE``, ``REVISION_RE``: a GPU UUID as NVML prints it; a pinned 40-hex model commit.
* ``parse_size``: Docker's size notation (``32g``) in bytes.
* ``read_json``: a JSON file, or None when it is missing or not JSON (deployment records, model
  manifests, daemon.json as the drift check reads it).
"""

from __future__ import annotations

import json
import re

LABEL_PREFIX = "io.ragops.gpu-stack."
UUID_RE = re.compile(r"^GPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
REVISION_RE = re.compile(r"^[0-9a-f]{40}$")
SIZE_RE = re.compile(r"^([0-9]+)([bkmg]?)$")
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(value):
    """'32g' -> bytes. Docker's units: b, k, m, g (powers of 1024). ValueError when it is not a size."""
    m = SIZE_RE.match(str(value).strip().lower())
    if not m:
        raise ValueError("%r is not a size such as 32g or 512m" % (value,))
    return int(m.group(1)) * SIZE_UNITS[m.group(2)]


def read_json(path):
    """A JSON file's content, or None when it is missing or not JSON."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return None
