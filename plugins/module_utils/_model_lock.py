# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The models lock (module model_lock, and its action plugin that runs it in the controller's process)."""

from __future__ import annotations

import hashlib
import json
import os

LOCK_VERSION = 1
NOTE = ("ragops.gpu_stack models lock: the manifest of each model whose map lists no per-file sha256, recorded at its "
        "first fetch. Commit it with the inventory. To accept a changed source, remove the model's entry.")


class LockError(Exception):
    """A lock file that cannot be used, with the fix."""


def digest(files):
    """sha256 of the canonical file list (sorted by path; path, size, sha256 only)."""
    canon = sorted(({"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in files),
                   key=lambda f: f["path"])
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def read_lock(path):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LockError("models lock %s cannot be read (%s); restore it from version control, or remove it to record "
                        "every model's manifest again at its next fetch" % (path, exc))
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or doc.get("version") != LOCK_VERSION:
        raise LockError("models lock %s is not a version %d lock (a mapping with version and models); restore it from "
                        "version control, or remove it" % (path, LOCK_VERSION))
    for key, entry in entries.items():
        try:
            ok = digest(entry["files"]) == entry["manifest_sha256"]
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise LockError("models lock %s: entry %s does not match its own manifest_sha256 (edited by hand?); "
                            "restore it from version control, or remove the entry to record the source again"
                            % (path, key))
    return entries


def record(path, entries, models):
    added = []
    for model in models:
        key = "%s@%s" % (model.get("repo_id"), model.get("revision"))
        files = model.get("files") or []
        if not files or not all(f.get("sha256") for f in files):
            raise LockError("models lock %s: %s has no sha256 for every file to record; stage it first" % (path, key))
        files = sorted(({"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in files),
                       key=lambda f: f["path"])
        if key in entries:
            if entries[key]["manifest_sha256"] != digest(files):
                raise LockError("models lock %s: %s was staged with other files than the lock records; the source's "
                                "content changed since it was locked" % (path, key))
            continue
        entries[key] = {"repo_id": model["repo_id"], "revision": model["revision"], "manifest_sha256": digest(files),
                        "files": files}
        added.append(key)
    return added


def write_lock(path, entries):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"note": NOTE, "version": LOCK_VERSION, "models": entries}, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


LOCK_ARGS = dict(path=dict(type="path", required=True), models=dict(type="list", elements="dict"))


def lock_task(params, check_mode):
    """The task's result (``failed`` and ``msg`` when the lock cannot be used or written)."""
    path = params["path"]
    try:
        entries = read_lock(path)
        added = record(path, entries, params["models"]) if params["models"] else []
        if added and not check_mode:
            write_lock(path, entries)
    except LockError as exc:
        return {"failed": True, "msg": str(exc)}
    except OSError as exc:
        return {"failed": True, "msg": "models lock %s cannot be written (%s); make its directory writable for the "
                                       "controller's user" % (path, exc)}
    return {"changed": bool(added), "entries": entries, "added": added}
