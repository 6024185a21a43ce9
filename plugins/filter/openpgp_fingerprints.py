# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: openpgp_fingerprints
short_description: The fingerprints of the keys in an OpenPGP public key block
version_added: 0.1.0
description:
  - Parses an ASCII-armored (or binary) OpenPGP public key block in pure Python and returns the fingerprint of each
    primary key and subkey in it, upper-case hex without spaces, in the order they appear. What
    C(gpg --show-keys --with-colons) lists as C(fpr), without needing gpg on the controller.
  - Version 4 keys get their SHA-1 fingerprint, version 5 and 6 keys their SHA-256 one (RFC 4880, RFC 9580).
    Version 3 keys (long obsolete, refused by apt) are left out.
  - Fails naming the problem when the input is not an OpenPGP key block.
author:
  - ragops developers (@ragops)
options:
  _input:
    description: The key block, as text (ASCII armor) or bytes.
    type: raw
    required: true
  which:
    description:
      - C(all) the primary keys and their subkeys, C(primary) the primary keys only, one per key the block carries
        (a block that should hold one key and lists two primaries carries an extra key).
    type: str
    choices: [all, primary]
    default: all
"""

EXAMPLES = r"""
- name: Refuse a key that is not the pinned one
  ansible.builtin.assert:
    that: my_pinned_fingerprint in (my_key_text | ragops.gpu_stack.openpgp_fingerprints)

- name: Refuse a block that carries any key but the pinned one
  ansible.builtin.assert:
    that: (my_key_text | ragops.gpu_stack.openpgp_fingerprints(which='primary')) == [my_pinned_fingerprint]
"""

RETURN = r"""
_value:
  description: The fingerprints, upper-case hex, primary keys and subkeys alike (or the primary keys only).
  type: list
  elements: str
"""

import base64
import binascii
import hashlib
import re

from ansible.errors import AnsibleFilterError

_ARMOR = re.compile(
    r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S
)
_PUBLIC_KEY = 6
_PUBLIC_SUBKEY = 14


def _dearmor(text):
    """The binary packets of every armored block in text."""
    blocks = _ARMOR.findall(text)
    if not blocks:
        raise AnsibleFilterError(
            "openpgp_fingerprints: the input has no '-----BEGIN PGP PUBLIC KEY BLOCK-----' block; "
            "give it an ASCII-armored public key (an HTML page or an error text is not one)"
        )
    out = b""
    for block in blocks:
        lines = block.splitlines()
        # armor headers ("Version: ..."), if any, end at the first empty line
        if any(not line.strip() for line in lines):
            lines = lines[next(i for i, line in enumerate(lines) if not line.strip()) + 1:]
        body = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
        try:
            out += base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AnsibleFilterError("openpgp_fingerprints: the armored block is not valid base64 (%s)" % e)
    return out


def _packets(data):
    """(tag, body) of each OpenPGP packet in data."""
    i = 0
    while i < len(data):
        first = data[i]
        if not first & 0x80:
            raise AnsibleFilterError("openpgp_fingerprints: byte %d is not an OpenPGP packet header" % i)
        if first & 0x40:  # new format
            tag = first & 0x3F
            if i + 1 >= len(data):
                raise AnsibleFilterError("openpgp_fingerprints: the key block is truncated")
            o = data[i + 1]
            if o < 192:
                length, start = o, i + 2
            elif o < 224:
                length, start = ((o - 192) << 8) + data[i + 2] + 192, i + 3
            elif o == 255:
                length, start = int.from_bytes(data[i + 2:i + 6], "big"), i + 6
            else:
                raise AnsibleFilterError("openpgp_fingerprints: partial body lengths do not occur in key blocks")
        else:  # old format
            tag, kind = (first >> 2) & 0x0F, first & 0x03
            if kind == 3:
                length, start = len(data) - i - 1, i + 1
            else:
                size = (1, 2, 4)[kind]
                length, start = int.from_bytes(data[i + 1:i + 1 + size], "big"), i + 1 + size
        if start + length > len(data):
            raise AnsibleFilterError("openpgp_fingerprints: the key block is truncated")
        yield tag, data[start:start + length]
        i = start + length


def _fingerprint(body):
    version = body[0] if body else 0
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    return None


def openpgp_fingerprints(data, which="all"):
    if isinstance(data, (bytes, bytearray)) and not bytes(data).lstrip().startswith(b"-----BEGIN"):
        binary = bytes(data)
    elif isinstance(data, (str, bytes, bytearray)):
        text = data.decode("ascii", "replace") if isinstance(data, (bytes, bytearray)) else data
        binary = _dearmor(text)
    else:
        raise AnsibleFilterError("openpgp_fingerprints: expected the key block as text or bytes, got %s"
                                 % type(data).__name__)
    if which not in ("all", "primary"):
        raise AnsibleFilterError("openpgp_fingerprints: which=%r is not all or primary" % (which,))
    tags = (_PUBLIC_KEY,) if which == "primary" else (_PUBLIC_KEY, _PUBLIC_SUBKEY)
    out = []
    for tag, body in _packets(binary):
        if tag in tags:
            fpr = _fingerprint(body)
            if fpr:
                out.append(fpr)
    if not out:
        raise AnsibleFilterError("openpgp_fingerprints: the block holds no version 4, 5 or 6 public key")
    return out


class FilterModule:
    def filters(self):
        return {"openpgp_fingerprints": openpgp_fingerprints}
