# -*- coding: utf-8 -*-
"""model_lock, run as Ansible runs it: entries are added, never replaced; a lock that cannot be
used (not JSON, another version, an entry edited by hand) is refused naming the file and the fix;
check mode writes nothing."""

from __future__ import annotations

import json

FILES = [{"path": "b.json", "size": 2, "sha256": "b" * 64}, {"path": "a.json", "size": 1, "sha256": "a" * 64}]


def model(revision="1" * 40, files=None):
    return {"repo_id": "acme/m", "revision": revision, "files": files or FILES}


def test_entries_are_added_once_and_read_back(tmp_path, module):
    lock = tmp_path / ".models.lock.json"
    check = module("model_lock", {"path": str(lock), "models": [model()]}, check_mode=True)
    assert check["changed"] is True and not lock.exists()
    first = module("model_lock", {"path": str(lock), "models": [model()]})
    assert first["changed"] is True and first["added"] == ["acme/m@" + "1" * 40]
    entry = json.loads(lock.read_text())["models"]["acme/m@" + "1" * 40]
    assert [f["path"] for f in entry["files"]] == ["a.json", "b.json"]  # sorted: one digest per content
    again = module("model_lock", {"path": str(lock), "models": [model(files=list(reversed(FILES)))]})
    assert again["changed"] is False and again["added"] == []
    read = module("model_lock", {"path": str(lock)})
    assert read["changed"] is False and read["entries"] == {"acme/m@" + "1" * 40: entry}
    other = module("model_lock", {"path": str(lock), "models": [model(files=[dict(FILES[0], sha256="c" * 64)])]})
    assert other["failed"] and other["msg"] == (
        "models lock %s: acme/m@%s was staged with other files than the lock records; the source's content changed "
        "since it was locked" % (lock, "1" * 40))


def test_a_lock_that_cannot_be_used_is_refused_naming_it(tmp_path, module):
    lock = tmp_path / ".models.lock.json"
    lock.write_text("{not json")
    res = module("model_lock", {"path": str(lock)})
    assert res["failed"] and res["msg"].startswith("models lock %s cannot be read (" % lock)
    assert res["msg"].endswith("); restore it from version control, or remove it to record every model's manifest "
                               "again at its next fetch")
    lock.write_text(json.dumps({"version": 9, "models": {}}))
    res = module("model_lock", {"path": str(lock)})
    assert res["msg"] == ("models lock %s is not a version 1 lock (a mapping with version and models); restore it "
                          "from version control, or remove it" % lock)
    res = module("model_lock", {"path": str(lock), "models": [model(files=[dict(FILES[0], sha256=None)])]})
    assert res["failed"]
    lock.unlink()
    res = module("model_lock", {"path": str(lock), "models": [model(files=[dict(FILES[0], sha256=None)])]})
    assert res["msg"] == ("models lock %s: acme/m@%s has no sha256 for every file to record; stage it first"
                          % (lock, "1" * 40))
