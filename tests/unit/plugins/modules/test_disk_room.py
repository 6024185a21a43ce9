# -*- coding: utf-8 -*-
"""disk_room, run as Ansible runs it: a full disk is a clear stop before any copy, naming the path,
the bytes needed and the bytes free; paths on one filesystem add up."""

from __future__ import annotations

import os


def free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_room_enough_passes_and_reports_the_filesystem(tmp_path, module):
    res = module("disk_room", {"need": [{"path": str(tmp_path / "images" / "not-yet"), "bytes": 1024,
                                         "what": "image tarballs"}]})
    assert res.get("failed") is not True, res
    assert res["changed"] is False and res["filesystems"][0]["need_bytes"] == 1024
    assert res["filesystems"][0]["paths"] == [str(tmp_path / "images" / "not-yet")]


def test_a_full_disk_is_refused_naming_path_and_bytes(tmp_path, module):
    have = free(str(tmp_path))
    # each fits alone, the two together do not: they share the filesystem (with room for other writers
    # on this disk to change the free space meanwhile)
    half = have * 3 // 5
    res = module("disk_room", {"need": [{"path": str(tmp_path / "a"), "bytes": half, "what": "image tarballs"},
                                        {"path": str(tmp_path / "b"), "bytes": half, "what": "model bundles"}]})
    assert res.get("failed") is True, res
    msg = res["msg"]
    assert msg.startswith("not enough disk space: image tarballs (%d bytes) + model bundles (%d bytes) need %d bytes on "
                          "the filesystem of %s, %s, which has " % (half, half, 2 * half, tmp_path / "a",
                                                                    tmp_path / "b")), msg
    assert msg.endswith("free space there or point the setting at a volume with room. Nothing was written.")
    assert module("disk_room", {"need": [{"path": str(tmp_path / "a"), "bytes": half}]}).get("failed") is not True
    margin = module("disk_room", {"need": [{"path": str(tmp_path / "a"), "bytes": 1}], "margin_bytes": 2 * have})
    assert margin.get("failed") is True and " + %d to keep free" % (2 * have) in margin["msg"]
