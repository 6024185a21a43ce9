# -*- coding: utf-8 -*-
"""openpgp_fingerprints: the same fingerprints gpg lists, for keys gpg makes; clear errors otherwise."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.openpgp_fingerprints import openpgp_fingerprints


def gpg(home, *args, text=True):
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", *args],
                          capture_output=True, text=text, check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two keys made by gpg: RSA 3072 with an RSA subkey, Ed25519 with a Curve25519 subkey."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    out = {}
    for name, algo, sub in (("rsa", "rsa3072", "rsa3072"), ("ed", "ed25519", "cv25519")):
        uid = "ragops test %s <%s@example.invalid>" % (name, name)
        gpg(home, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-generate-key", uid, algo, "sign", "never")
        fpr = [line.split(":")[9] for line in gpg(home, "--with-colons", "--list-keys", uid).splitlines()
               if line.startswith("fpr:")][0]
        gpg(home, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key", fpr, sub, "encr", "never")
        armored = gpg(home, "--armor", "--export", fpr)
        out[name] = {"armored": armored, "binary": gpg(home, "--export", fpr, text=False), "fpr": fpr}
        shown = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--show-keys"],
                               input=armored, capture_output=True, text=True, check=True).stdout
        out[name]["gpg_fprs"] = [line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:")]
    yield out
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


@pytest.mark.parametrize("name", ["rsa", "ed"])
def test_same_fingerprints_as_gpg(keys, name):
    key = keys[name]
    assert len(key["gpg_fprs"]) == 2  # the primary key and its subkey
    assert openpgp_fingerprints(key["armored"]) == key["gpg_fprs"]
    assert openpgp_fingerprints(key["armored"])[0] == key["fpr"]


@pytest.mark.parametrize("name", ["rsa", "ed"])
def test_binary_export(keys, name):
    assert openpgp_fingerprints(keys[name]["binary"]) == keys[name]["gpg_fprs"]


def test_two_blocks_and_armor_headers(keys):
    text = keys["rsa"]["armored"].replace(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: test\n\n")
    assert openpgp_fingerprints(text + "\n" + keys["ed"]["armored"]) == keys["rsa"]["gpg_fprs"] + keys["ed"]["gpg_fprs"]


def new_format(binary):
    """The same packets with new-format headers (gpg writes the old format)."""
    out, i = b"", 0
    while i < len(binary):
        first = binary[i]
        tag, kind = (first >> 2) & 0x0F, first & 0x03
        size = (1, 2, 4)[kind]
        length = int.from_bytes(binary[i + 1:i + 1 + size], "big")
        body = binary[i + 1 + size:i + 1 + size + length]
        if length < 192:
            header = bytes([0xC0 | tag, length])
        elif length < 8384:
            header = bytes([0xC0 | tag, ((length - 192) >> 8) + 192, (length - 192) & 0xFF])
        else:
            header = bytes([0xC0 | tag, 255]) + length.to_bytes(4, "big")
        out += header + body
        i += 1 + size + length
    return out


def test_new_format_packets(keys):
    binary = new_format(keys["rsa"]["binary"])
    assert binary != keys["rsa"]["binary"]
    assert openpgp_fingerprints(binary) == keys["rsa"]["gpg_fprs"]
    armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%s\n-----END PGP PUBLIC KEY BLOCK-----\n" % (
        base64.b64encode(binary).decode())
    assert openpgp_fingerprints(armored) == keys["rsa"]["gpg_fprs"]


@pytest.mark.parametrize("data, message", [
    ("<html><body>404 Not Found</body></html>", "has no '-----BEGIN PGP PUBLIC KEY BLOCK-----' block"),
    ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot*base64!\n-----END PGP PUBLIC KEY BLOCK-----\n", "not valid base64"),
    (b"\x01\x02\x03", "byte 0 is not an OpenPGP packet header"),
    (b"\x99\x01\x0d\x04", "truncated"),
    (b"\xb4\x05hello", "holds no version 4, 5 or 6 public key"),  # a user id packet alone
    (42, "expected the key block as text or bytes, got int"),
])
def test_errors_name_the_problem(data, message):
    with pytest.raises(AnsibleFilterError, match="openpgp_fingerprints: .*" + re.escape(message)):
        openpgp_fingerprints(data)


def test_truncated_key_from_gpg(keys):
    with pytest.raises(AnsibleFilterError, match="truncated"):
        openpgp_fingerprints(keys["ed"]["binary"][:40])


def test_primary_keys_only_tell_an_extra_key_in_a_block(keys):
    """What apt_repo checks: one primary key, the pinned one; a second key in the block (another
    armored block, or packets appended to the first) is listed, its subkeys are not."""
    both = keys["rsa"]["armored"] + "\n" + keys["ed"]["armored"]
    assert openpgp_fingerprints(keys["rsa"]["armored"], which="primary") == [keys["rsa"]["fpr"]]
    assert openpgp_fingerprints(both, which="primary") == [keys["rsa"]["fpr"], keys["ed"]["fpr"]]
    appended = keys["rsa"]["binary"] + keys["ed"]["binary"]
    assert openpgp_fingerprints(appended, which="primary") == [keys["rsa"]["fpr"], keys["ed"]["fpr"]]
    with pytest.raises(AnsibleFilterError, match="which='subkeys' is not all or primary"):
        openpgp_fingerprints(both, which="subkeys")
