# -*- coding: utf-8 -*-
"""host_files, run as Ansible runs it, on real files: several files written in one call, each only where it
differs (content, owner, mode), in one step for a reader; every bad entry named before anything is written; a
file that cannot be written does not stop the others. files_differing, on the controller, picks from
host_state's reading the files that call needs."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter.files_differing import files_differing


def test_writes_what_differs_and_a_second_call_changes_nothing(tmp_path, module):
    same, other, new = tmp_path / "same.conf", tmp_path / "other.conf", tmp_path / "new.conf"
    same.write_text("keep\n")
    same.chmod(0o644)
    other.write_text("old\n")
    other.chmod(0o600)
    inode = same.stat().st_ino
    files = [{"path": str(same), "content": "keep\n", "mode": "0644"},
             {"path": str(other), "content": "new text\n", "mode": "0640", "group": "adm"},
             {"path": str(new), "content": {"a": 1}, "mode": "0755"}]
    res = module("host_files", {"files": files, "_ansible_diff": True})
    assert res.get("failed") is not True, res
    assert res["changed"] is True and res["changed_paths"] == [str(other), str(new)]
    assert res["files"][str(same)] == {"changed": False, "content_changed": False,
                                       "sha1": hashlib.sha1(b"keep\n").hexdigest()}
    assert other.read_text() == "new text\n" and oct(other.stat().st_mode & 0o7777) == "0o640"
    assert other.group() == "adm" and other.owner() == "root"
    assert new.read_text() == '{"a": 1}' and oct(new.stat().st_mode & 0o7777) == "0o755"
    assert same.stat().st_ino == inode
    assert [d["after_header"] for d in res["diff"]] == [str(other), str(new)]
    assert res["diff"][0]["before"] == "old\n" and res["diff"][0]["after"] == "new text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.conf", "other.conf", "same.conf"]  # no temporary file left
    again = module("host_files", {"files": files})
    assert again["changed"] is False and again["changed_paths"] == [], again


def test_a_mode_or_owner_change_alone_keeps_the_file_and_check_mode_writes_nothing(tmp_path, module):
    f = tmp_path / "unit.service"
    f.write_text("[Unit]\n")
    f.chmod(0o666)
    os.chown(f, 65534, 65534)
    inode = f.stat().st_ino
    wanted = [{"path": str(f), "content": "[Unit]\n", "mode": "0644"}]
    check = module("host_files", {"files": wanted}, check_mode=True)
    assert check["changed"] is True and check["files"][str(f)]["content_changed"] is False, check
    assert oct(f.stat().st_mode & 0o7777) == "0o666" and f.stat().st_uid == 65534
    missing = tmp_path / "missing.conf"
    check = module("host_files", {"files": [{"path": str(missing), "content": "x", "mode": "0644"},
                                            {"path": str(tmp_path / "new-dir" / "f"), "content": "x", "mode": "0644"}]},
                   check_mode=True)
    # in check mode a missing directory is one that an earlier task would have made
    assert check["changed_paths"] == [str(missing), str(tmp_path / "new-dir" / "f")], check
    assert not missing.exists() and not (tmp_path / "new-dir").exists()
    res = module("host_files", {"files": wanted})
    assert res["changed_paths"] == [str(f)], res
    assert f.stat().st_ino == inode and oct(f.stat().st_mode & 0o7777) == "0o644" and f.owner() == "root"


def test_a_link_at_the_path_is_replaced_and_its_target_left_alone(tmp_path, module):
    target, link = tmp_path / "target", tmp_path / "link.conf"
    target.write_text("target\n")
    link.symlink_to(target)
    res = module("host_files", {"files": [{"path": str(link), "content": "file\n", "mode": "0644"}]})
    assert res["changed"] is True, res
    assert not link.is_symlink() and link.read_text() == "file\n" and target.read_text() == "target\n"


def test_every_bad_entry_is_named_and_nothing_is_written(tmp_path, module):
    good = tmp_path / "good.conf"
    (tmp_path / "adir").mkdir()
    files = [{"path": str(good), "content": "x", "mode": "0644"},
             {"path": "etc/relative.conf", "content": "x", "mode": "0644"},
             {"path": str(good), "content": "y", "mode": "0644"},
             {"path": str(tmp_path / "m.conf"), "content": "x", "mode": "rw-r--r--"},
             {"path": str(tmp_path / "o.conf"), "content": "x", "mode": "0644", "owner": "no-such-user-ragops"},
             {"path": str(tmp_path / "g.conf"), "content": "x", "mode": "0644", "group": "no-such-group-ragops"},
             {"path": str(tmp_path / "nodir" / "f.conf"), "content": "x", "mode": "0644"},
             {"path": str(tmp_path / "adir"), "content": "x", "mode": "0644"}]
    res = module("host_files", {"files": files})
    assert res.get("failed") is True and res["changed"] is False
    msg = res["msg"]
    assert msg.startswith("host_files: nothing was written: ")
    for part in ("etc/relative.conf: not an absolute path", "%s: given twice" % good,
                 "mode 'rw-r--r--' is not an octal mode such as '0644'", "owner no-such-user-ragops is not a user",
                 "group no-such-group-ragops is not a group", "its directory %s does not exist; create it first"
                 % (tmp_path / "nodir"), "%s: is a directory" % (tmp_path / "adir")):
        assert part in msg, msg
    assert not good.exists()


def test_a_file_that_cannot_be_written_does_not_stop_the_others(tmp_path, module):
    ok = tmp_path / "ok.conf"
    res = module("host_files", {"files": [{"path": "/proc/ragops-host-files-test", "content": "x", "mode": "0644"},
                                          {"path": str(ok), "content": "written\n", "mode": "0644"}]})
    assert res.get("failed") is True, res
    assert res["msg"].startswith("host_files: 1 of 2 path(s) could not be written: /proc/ragops-host-files-test: ")
    assert res["changed_paths"] == [str(ok)] and ok.read_text() == "written\n"


def test_files_differing_picks_the_files_host_state_says_differ(tmp_path, module):
    same, moded = tmp_path / "same", tmp_path / "moded"
    for f in (same, moded):
        f.write_text("text\n")
        f.chmod(0o644)
    state = module("host_state", {"files": [str(same), str(moded), str(tmp_path / "absent")]})["files"]
    wanted = [{"path": str(same), "content": "text\n", "mode": "0644"},
              {"path": str(moded), "content": "text\n", "mode": "0600"},
              {"path": str(tmp_path / "absent"), "content": "", "mode": "0644"},
              {"path": str(same), "content": "text\n", "mode": "0644", "owner": "nobody"}]
    assert files_differing(wanted, state) == wanted[1:]
    assert files_differing(wanted[:1], state) == []
    with pytest.raises(AnsibleFilterError, match="each file needs path, content and mode"):
        files_differing([{"path": str(same)}], state)
    with pytest.raises(AnsibleFilterError, match="state must be host_state's files"):
        files_differing(wanted, [])


def test_directories_are_made_before_the_files_in_them_and_fixed_where_they_differ(tmp_path, module):
    top, nested, moded = tmp_path / "textfile", tmp_path / "a" / "b" / "reader", tmp_path / "moded"
    moded.mkdir(mode=0o777)
    os.chmod(moded, 0o777)
    kept = moded / "kept"
    kept.write_text("kept\n")
    directories = [{"path": str(top), "mode": "0755"}, {"path": str(nested), "mode": "0750", "group": "adm"},
                   {"path": str(moded), "mode": "0755"}]
    # a file in a made directory, and one in a parent that making a directory below it makes
    files = [{"path": str(nested / "reader.py"), "content": "print()\n", "mode": "0644"},
             {"path": str(tmp_path / "a" / "entry.py"), "content": "main()\n", "mode": "0644"}]
    plan = module("host_files", {"directories": directories, "files": files}, check_mode=True)
    assert plan["changed_paths"] == [str(top), str(nested), str(moded), str(nested / "reader.py"),
                                     str(tmp_path / "a" / "entry.py")], plan
    assert not top.exists() and not (tmp_path / "a").exists() and oct(moded.stat().st_mode & 0o7777) == "0o777"
    res = module("host_files", {"directories": directories, "files": files})
    assert res.get("failed") is not True, res
    assert res["directories"] == {str(top): {"changed": True}, str(nested): {"changed": True},
                                  str(moded): {"changed": True}}
    assert res["changed_paths"] == [str(top), str(nested), str(moded), str(nested / "reader.py"),
                                    str(tmp_path / "a" / "entry.py")]
    assert (tmp_path / "a" / "entry.py").read_text() == "main()\n"
    assert oct(top.stat().st_mode & 0o7777) == "0o755" and oct(nested.stat().st_mode & 0o7777) == "0o750"
    assert nested.group() == "adm" and (nested / "reader.py").read_text() == "print()\n"
    assert oct(moded.stat().st_mode & 0o7777) == "0o755" and kept.read_text() == "kept\n"
    again = module("host_files", {"directories": directories, "files": files})
    assert again["changed"] is False and again["changed_paths"] == [], again
    # host_state's reading says which directories differ, on the controller
    os.chmod(top, 0o700)
    state = module("host_state", {"files": [str(top), str(nested), str(tmp_path / "gone")]})["files"]
    wanted = directories[:2] + [{"path": str(tmp_path / "gone"), "mode": "0755"}]
    assert files_differing(wanted, state, type="directory") == [wanted[0], wanted[2]]
    with pytest.raises(AnsibleFilterError, match="each directory needs path and mode"):
        files_differing([{"path": str(top)}], state, type="directory")


def test_something_in_the_way_of_a_directory_is_named_and_nothing_is_made(tmp_path, module):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    res = module("host_files", {"directories": [{"path": str(tmp_path / "fresh"), "mode": "0755"},
                                                {"path": str(blocker), "mode": "0755"},
                                                {"path": str(blocker / "below"), "mode": "0755"}],
                                "files": [{"path": str(tmp_path / "fresh" / "f"), "content": "x", "mode": "0644"}]})
    assert res.get("failed") is True and res["changed"] is False, res
    assert "%s: is in the way of a directory" % blocker in res["msg"], res["msg"]
    assert "%s: %s is in the way (it is not a directory)" % (blocker / "below", blocker) in res["msg"], res["msg"]
    assert not (tmp_path / "fresh").exists() and blocker.read_text() == "a file\n"
    # a file in a directory below one that is made is not made with it
    res = module("host_files", {"directories": [{"path": str(tmp_path / "made"), "mode": "0755"}],
                                "files": [{"path": str(tmp_path / "made" / "below" / "f"), "content": "x", "mode": "0644"}]})
    assert res.get("failed") is True and "its directory %s does not exist" % (tmp_path / "made" / "below") in res["msg"]
    assert not (tmp_path / "made").exists()
