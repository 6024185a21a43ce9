#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_lock
short_description: Read and extend the models lock file, the manifests recorded at each model's first fetch
version_added: 0.2.0
description:
  - A model whose map entry lists no per-file sha256 is verified against its source's own manifest when it is first
    fetched. This module records that manifest (each file's path, size and sha256, and the sha256 of the whole list)
    in a lock file kept next to the inventory, like a package lock, keyed by repository and revision.
  - Without O(models) it reads the lock and returns its entries, so that later runs, other controllers and other
    hosts stage against the recorded files (ragops.gpu_stack.model_stage with O(ragops.gpu_stack.model_stage#module:files_from))
    and refuse a source whose content changed. An entry whose file list no longer matches its recorded digest
    (edited by hand) is refused.
  - With O(models) it adds the entries the lock lacks (an existing entry is never replaced), writing the file
    atomically. Runs on the controller.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  path:
    description: The lock file. A missing file is an empty lock.
    type: path
    required: true
  models:
    description:
      - Models to record, each with C(repo_id), C(revision) and C(files) (C(path), C(size), C(sha256) per file), such as
        the results of ragops.gpu_stack.model_stage. Models already in the lock are checked against it, not replaced.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Read the models lock
  ragops.gpu_stack.model_lock:
    path: "{{ inventory_dir }}/.models.lock.json"
  delegate_to: localhost
  run_once: true
  register: models_lock

- name: Record the models fetched for the first time
  ragops.gpu_stack.model_lock:
    path: "{{ inventory_dir }}/.models.lock.json"
    models: "{{ staged.results | rejectattr('item.files') | list }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
entries:
  description: The lock's entries by C(<repo_id>@<revision>), each C(repo_id), C(revision), C(manifest_sha256), C(files).
  returned: always
  type: dict
added:
  description: The keys recorded by this run.
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), models=dict(type="list", elements="dict")),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        entries = read_lock(path)
        added = record(path, entries, module.params["models"]) if module.params["models"] else []
        if added and not module.check_mode:
            write_lock(path, entries)
    except LockError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="models lock %s cannot be written (%s); make its directory writable for the controller's "
                             "user" % (path, exc))
    module.exit_json(changed=bool(added), entries=entries, added=added)


if __name__ == "__main__":
    main()
