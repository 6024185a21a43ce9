# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The model cache layout the collection stages into, and what reads it (private).

Layout under ``root`` (HF_HOME)::

    hub/models--<org>--<name>/blobs/<sha256>                 content, read-only
    hub/models--<org>--<name>/snapshots/<revision>/<path>    -> ../../blobs/<sha256>
    hub/models--<org>--<name>/refs/main                      <revision>
    hub/models--<org>--<name>/ragops-manifest-<revision>.json  what was staged and verified

Here: the paths, the manifest written after staging, the read-only inspection the drift check runs
(``inspect_snapshot``) and the distribution bundle (``write_bundle``). Staging itself is
_model_stage; where files come from is _model_sources.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import read_json

CHUNK = 8 * 1024 * 1024
BUNDLE_MANIFEST = "ragops-bundle.json"
TMP_PREFIX = ".ragops-tmp-"


class StageError(Exception):
    """A staging failure; the message names the model, the file and the fix."""


def repo_dir(root, repo_id):
    return os.path.join(root, "hub", "models--" + repo_id.replace("/", "--"))


def manifest_path(root, repo_id, revision):
    return os.path.join(repo_dir(root, repo_id), "ragops-manifest-%s.json" % revision)


def write_json_atomic(path, data):
    tmp = "%s.%s%d" % (path, TMP_PREFIX, os.getpid())
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o444)
    os.rename(tmp, path)


def hash_stream(src, out=None):
    """(sha256, size) of what ``src`` reads, written on to ``out`` on the way when given: every file
    is read once, whether it is verified in place or staged."""
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        h.update(chunk)
        if out is not None:
            out.write(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def sha256_file(path):
    with open(path, "rb") as fh:
        return hash_stream(fh)[0]


def read_first(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError):
        return None


def inspect_snapshot(root, repo_id, revision, full=False):
    """What a staged revision looks like now, against the manifest recorded when it was staged.

    Read-only (drift checks): {'manifest': bool, 'ref': str|None, 'missing': [...], 'modified': [...],
    'extra': [...]}; ``full`` re-hashes every file instead of comparing size, mtime and inode."""
    recorded = read_json(manifest_path(root, repo_id, revision))
    snapshot = os.path.join(repo_dir(root, repo_id), "snapshots", revision)
    out = {"manifest": recorded is not None, "snapshot": os.path.isdir(snapshot),
           "ref": read_first(os.path.join(repo_dir(root, repo_id), "refs", "main")),
           "missing": [], "modified": [], "extra": []}
    if recorded is None:
        return out
    listed = set()
    for f in recorded.get("files", []):
        listed.add(f["path"])
        full_path = os.path.join(snapshot, f["path"])
        try:
            st = os.stat(full_path)
        except OSError:
            out["missing"].append(f["path"])
            continue
        if st.st_size != f.get("size"):
            out["modified"].append(f["path"])
        elif full:
            if sha256_file(full_path) != f.get("sha256"):
                out["modified"].append(f["path"])
        elif st.st_mtime_ns != f.get("mtime_ns") or st.st_ino != f.get("ino"):
            out["modified"].append(f["path"])
    if os.path.isdir(snapshot):
        for dirpath, _dirs, names in os.walk(snapshot):
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), snapshot)
                if rel not in listed:
                    out["extra"].append(rel)
    return out


def write_bundle(root, repo_id, revision, files, bundle_path):
    """An uncompressed tar of the staged revision (files by value, plus ragops-bundle.json) for
    distribution: one file to copy to each host. Rewritten only when its manifest differs."""
    manifest = {"repo_id": repo_id, "revision": revision,
                "files": [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in files]}
    if os.path.isfile(bundle_path):
        try:
            with tarfile.open(bundle_path, "r:") as tf:
                current = json.loads(tf.extractfile(BUNDLE_MANIFEST).read().decode("utf-8"))
            if current == manifest:
                return False
        except (tarfile.TarError, KeyError, ValueError, AttributeError):
            pass
    snapshot = os.path.join(repo_dir(root, repo_id), "snapshots", revision)
    os.makedirs(os.path.dirname(bundle_path) or ".", exist_ok=True)
    tmp = "%s.%s%d" % (bundle_path, TMP_PREFIX, os.getpid())
    data = json.dumps(manifest, indent=1).encode("utf-8")
    with tarfile.open(tmp, "w:") as tf:
        info = tarfile.TarInfo(BUNDLE_MANIFEST)
        info.size = len(data)
        info.mode = 0o444
        tf.addfile(info, io.BytesIO(data))
        for f in files:
            tf.add(os.path.realpath(os.path.join(snapshot, f["path"])), arcname=f["path"], recursive=False)
    os.rename(tmp, bundle_path)
    return True
