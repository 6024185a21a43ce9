# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where model files come from, for ragops.gpu_stack.model_stage (private): a directory (a bundle, a
snapshot or an HF cache root), a tarball of a bundle, an HTTP(S) mirror in the Hub's layout, or the
Hugging Face Hub itself (controller only). ``files()`` lists what a source holds, ``open(path)``
reads one file, ``manifest()`` is the bundle's own file list when it has one."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import threading

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import read_json
from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_snapshot import (
    BUNDLE_MANIFEST, CHUNK, TMP_PREFIX, StageError, repo_dir)


class Source(object):
    """Where files come from. ``files()`` lists what it holds; ``open(path)`` reads one."""

    label = "source"

    def manifest(self):
        return None

    def files(self):
        return None

    def open(self, path):
        raise NotImplementedError

    def close(self):
        pass


class DirSource(Source):
    """A directory: a bundle (files + ragops-bundle.json), a snapshot directory, or an HF cache root."""

    def __init__(self, path, repo_id, revision):
        self.label = path
        snap = os.path.join(repo_dir(path, repo_id), "snapshots", revision)
        other = os.path.join(path, "models--" + repo_id.replace("/", "--"), "snapshots", revision)
        self.repo_id = repo_id
        # Files may link only within the source: a snapshot's links into its cache's blobs/ stay inside
        # the repository's directory; a bundle's files stay inside the bundle.
        if os.path.isdir(snap):
            self.base, self.inside = snap, repo_dir(path, repo_id)
        elif os.path.isdir(other):
            self.base, self.inside = other, os.path.join(path, "models--" + repo_id.replace("/", "--"))
        else:
            cache = os.path.join(repo_dir(path, repo_id), "snapshots")
            if os.path.isdir(cache):
                present = sorted(os.listdir(cache))
                held = ", ".join(present)
                raise StageError("model %s: source %s holds revision(s) %s, not the pinned %s; stage the pinned "
                                 "revision into the source or pin one it holds" % (repo_id, path, held, revision))
            self.base = self.inside = path
        self._manifest = read_json(os.path.join(self.base, BUNDLE_MANIFEST))

    def _contained(self, full):
        """`full` when it resolves inside the source, else StageError naming the file and its target."""
        target = os.path.realpath(full)
        inside = os.path.realpath(self.inside)
        if target != inside and not target.startswith(inside.rstrip(os.sep) + os.sep):
            raise StageError("model %s: %s in source %s resolves to %s, outside the source; a bundle holds its "
                             "files itself (copy them in, or stage the bundle again)"
                             % (self.repo_id, os.path.relpath(full, self.base), self.label, target))
        return full

    def manifest(self):
        return self._manifest

    def files(self):
        out = {}
        for dirpath, _dirs, names in os.walk(self.base):
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.base)
                if rel == BUNDLE_MANIFEST or name.startswith(TMP_PREFIX):
                    continue
                out[rel] = os.path.getsize(self._contained(full))
        return out

    def open(self, path):
        full = os.path.join(self.base, path)
        if not os.path.isfile(full):
            return None
        return open(self._contained(full), "rb")


class _Closing(object):
    """`with reader:` closes it."""

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Member(_Closing):
    """A file-like view of one member of an uncompressed tar: its own handle, so reads run in parallel."""

    def __init__(self, path, offset, size):
        self.fh = open(path, "rb")
        self.fh.seek(offset)
        self.left = size

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.fh.read(size)
        self.left -= len(data)
        return data

    def close(self):
        self.fh.close()


class TarSource(Source):
    """A tarball of a bundle (optionally with one top-level directory). Uncompressed tarballs are read
    in place, one handle per file; compressed ones are spooled member by member."""

    def __init__(self, path):
        self.label = path
        self.path = path
        with open(path, "rb") as fh:
            magic = fh.read(6)
        # gzip, bzip2, xz: read through tarfile; plain tar: members are read in place
        self.seekable = not (magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic[:6] == b"\xfd7zXZ\x00")
        self.tf = tarfile.open(path, "r:*")
        self.members = {}
        self.lock = threading.Lock()
        names = [m for m in self.tf.getmembers() if m.isfile()]
        prefix = os.path.commonprefix([m.name for m in names]) if len(names) > 1 else ""
        prefix = prefix[:prefix.rfind("/") + 1] if "/" in prefix else ""
        for m in names:
            rel = m.name[len(prefix):] if prefix else m.name
            rel = rel[2:] if rel.startswith("./") else rel
            self.members[rel] = m
        self._manifest = None
        if BUNDLE_MANIFEST in self.members:
            self._manifest = json.loads(self.tf.extractfile(self.members[BUNDLE_MANIFEST]).read().decode("utf-8"))

    def manifest(self):
        return self._manifest

    def files(self):
        return dict((k, m.size) for k, m in self.members.items() if k != BUNDLE_MANIFEST)

    def open(self, path):
        m = self.members.get(path)
        if m is None:
            return None
        if self.seekable:
            return _Member(self.path, m.offset_data, m.size)
        # tarfile is not thread-safe: read the member fully under the lock into a temp spool
        with self.lock:
            data = self.tf.extractfile(m)
            spool = _Spool()
            shutil.copyfileobj(data, spool, CHUNK)
        spool.seek(0)
        return spool

    def close(self):
        self.tf.close()


class _Spool(_Closing):
    """A temporary file that deletes itself on close."""

    def __init__(self):
        self.fh = tempfile.TemporaryFile()

    def write(self, data):
        return self.fh.write(data)

    def read(self, size=-1):
        return self.fh.read(size)

    def seek(self, pos):
        return self.fh.seek(pos)

    def close(self):
        self.fh.close()


class UrlSource(Source):
    """An HTTP(S) mirror in the Hub's layout: <url>/<repo_id>/resolve/<revision>/<path>."""

    def __init__(self, url, repo_id, revision, fetch_url, headers=None):
        self.label = url
        self.base = "%s/%s/resolve/%s/" % (url.rstrip("/"), repo_id, revision)
        self.fetch_url = fetch_url
        self.headers = headers or {}
        self._manifest = None
        self._manifest_read = False

    def manifest(self):
        """A mirror may publish the bundle manifest next to the files; the Hub does not."""
        if not self._manifest_read:
            self._manifest_read = True
            resp = self.open(BUNDLE_MANIFEST)
            if resp is not None:
                with resp:
                    try:
                        self._manifest = json.loads(resp.read().decode("utf-8"))
                    except ValueError:
                        self._manifest = None
        return self._manifest

    def open(self, path):
        from ansible.module_utils.six.moves.urllib.parse import quote  # pylint: disable=import-outside-toplevel
        resp, info = self.fetch_url(self.base + quote(path), headers=self.headers)
        if info.get("status") != 200 or resp is None:
            if info.get("status") == 404:
                return None
            raise StageError("mirror %s: GET %s failed: %s %s" % (self.label, path, info.get("status"), info.get("msg")))
        return resp


class HubSource(DirSource):
    """The Hugging Face Hub through huggingface_hub, into a temporary directory (controller only)."""

    def __init__(self, repo_id, revision, token, patterns, endpoint, workdir):
        try:
            from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise StageError("the Hub source needs huggingface_hub on the machine running the staging (the controller)")
        self.tmp = os.path.join(workdir, TMP_PREFIX + "hub-%d" % os.getpid())
        try:
            snapshot_download(repo_id=repo_id, revision=revision, local_dir=self.tmp, token=token or None,
                              allow_patterns=patterns or None, endpoint=endpoint or None)
        except Exception as exc:  # pylint: disable=broad-except
            shutil.rmtree(self.tmp, ignore_errors=True)
            why = type(exc).__name__
            raise StageError("model %s: download of revision %s from the Hub failed: %s" % (repo_id, revision, why))
        shutil.rmtree(os.path.join(self.tmp, ".cache"), ignore_errors=True)
        DirSource.__init__(self, self.tmp, repo_id, revision)
        self.label = "the Hugging Face Hub"

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
