# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.model_stage (private): stage one Hugging Face model revision into the
standard cache layout, verified file by file.

Layout under ``root`` (HF_HOME)::

    hub/models--<org>--<name>/blobs/<sha256>                 content, read-only
    hub/models--<org>--<name>/snapshots/<revision>/<path>    -> ../../blobs/<sha256>
    hub/models--<org>--<name>/refs/main                      <revision>
    hub/models--<org>--<name>/ragops-manifest-<revision>.json  what was staged and verified

Every new file is read once: hashed while it is written to a temporary name, fsynced and renamed
into blobs/ only when size and sha256 match. Blobs are content-addressed, so an interrupted run
leaves only verified blobs and the next run resumes. The snapshot is assembled under a temporary
name and renamed into place at the end: a failed run never leaves a partial snapshot.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CHUNK = 8 * 1024 * 1024
REVISION_RE = re.compile(r"^[0-9a-f]{40}$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
BUNDLE_MANIFEST = "ragops-bundle.json"
TMP_PREFIX = ".ragops-tmp-"


class StageError(Exception):
    """A staging failure; the message names the model, the file and the fix."""


def repo_dir(root, repo_id):
    return os.path.join(root, "hub", "models--" + repo_id.replace("/", "--"))


def manifest_path(root, repo_id, revision):
    return os.path.join(repo_dir(root, repo_id), "ragops-manifest-%s.json" % revision)


def read_json(path):
    """A JSON file's content, or None when it is missing or not JSON."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return None


def _write_json_atomic(path, data):
    tmp = "%s.%s%d" % (path, TMP_PREFIX, os.getpid())
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o444)
    os.rename(tmp, path)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# sources


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
        if os.path.isdir(snap):
            self.base = snap
        elif os.path.isdir(other):
            self.base = other
        else:
            cache = os.path.join(repo_dir(path, repo_id), "snapshots")
            if os.path.isdir(cache):
                present = sorted(os.listdir(cache))
                held = ", ".join(present)
                raise StageError("model %s: source %s holds revision(s) %s, not the pinned %s; stage the pinned "
                                 "revision into the source or pin one it holds" % (repo_id, path, held, revision))
            self.base = path
        self._manifest = read_json(os.path.join(self.base, BUNDLE_MANIFEST))

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
                out[rel] = os.path.getsize(full)
        return out

    def open(self, path):
        full = os.path.join(self.base, path)
        if not os.path.isfile(full):
            return None
        return open(full, "rb")


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
        import tempfile  # pylint: disable=import-outside-toplevel
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


# ----------------------------------------------------------------------------------------------
# the stager


class Stager(object):
    def __init__(self, params, check_mode=False, fetch_url=None):
        self.p = params
        self.check_mode = check_mode
        self.fetch_url = fetch_url
        self.repo_id = params["repo_id"]
        self.revision = params["revision"]
        self.root = params["root"]
        self.repo = repo_dir(self.root, self.repo_id)
        self.blobs = os.path.join(self.repo, "blobs")
        self.snapshot = os.path.join(self.repo, "snapshots", self.revision)
        self.workers = params.get("workers") or max(os.cpu_count() or 1, 1)
        self.source = None

    # -- inputs ---------------------------------------------------------------------------------

    def _validate(self):
        if not REVISION_RE.match(self.revision or ""):
            raise StageError("model %s: revision %r is not a 40-hex commit; pin the exact commit"
                             % (self.repo_id, self.revision))

    def _open_source(self):
        src = self.p.get("source") or {}
        given = [k for k in ("path", "url", "hub") if src.get(k)]
        if len(given) > 1:
            raise StageError("model %s: give one source, path, url or hub; got %s" % (self.repo_id, ", ".join(given)))
        if src.get("path"):
            path = src["path"]
            if os.path.isdir(path):
                return DirSource(path, self.repo_id, self.revision)
            if os.path.isfile(path):
                return TarSource(path)
            raise StageError("model %s: source %s does not exist on %s; stage the bundle there first"
                             % (self.repo_id, path, os.uname()[1]))
        if src.get("url"):
            headers = {}
            if src.get("token"):
                headers["Authorization"] = "Bearer %s" % src["token"]
            return UrlSource(src["url"], self.repo_id, self.revision, self.fetch_url, headers)
        if src.get("hub"):
            os.makedirs(self.root, exist_ok=True)
            return HubSource(self.repo_id, self.revision, src.get("token"), self.p.get("allow_patterns"),
                             src.get("endpoint"), self.root)
        return None

    def _expected(self, source):
        """[{path, size, sha256}] this revision must hold."""
        files = self.p.get("files")
        if files:
            return sorted(({"path": f["path"], "size": f.get("size"), "sha256": f.get("sha256")} for f in files),
                          key=lambda f: f["path"])
        recorded = read_json(manifest_path(self.root, self.repo_id, self.revision))
        bundle = source.manifest() if source else None
        if bundle:
            if bundle.get("revision") and bundle["revision"] != self.revision:
                raise StageError("model %s: the bundle at %s is revision %s, the inventory pins %s; use the bundle "
                                 "of the pinned revision or pin %s" % (self.repo_id, source.label, bundle["revision"],
                                                                       self.revision, bundle["revision"]))
            if bundle.get("repo_id") and bundle["repo_id"] != self.repo_id:
                raise StageError("model %s: the bundle at %s holds %s" % (self.repo_id, source.label,
                                                                          bundle["repo_id"]))
            files = bundle.get("files")
        elif source is not None and source.files() is not None:
            listed = source.files()
            files = [{"path": p, "size": s, "sha256": None} for p, s in sorted(listed.items())]
        elif recorded:
            files = recorded["files"]
        else:
            raise StageError("model %s: no file list to stage; give files (from the inventory's model manifest) or a "
                             "source that carries one" % self.repo_id)
        patterns = self.p.get("allow_patterns")
        if patterns:
            files = [f for f in files if any(fnmatch.fnmatch(f["path"], pat) for pat in patterns)]
        return sorted(({"path": f["path"], "size": f.get("size"), "sha256": f.get("sha256")} for f in files),
                      key=lambda f: f["path"])

    def _check_policy(self, expected):
        if self.p.get("require_safetensors"):
            pickles = [f["path"] for f in expected if f["path"].lower().endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise StageError("model %s: the manifest requires safetensors but lists pickle weights %s (pickle can "
                                 "run code on load); drop them with allow_patterns or use the safetensors files"
                                 % (self.repo_id, ", ".join(pickles)))
            if not any(f["path"].endswith(".safetensors") for f in expected):
                raise StageError("model %s: the manifest requires safetensors but lists no .safetensors file"
                                 % self.repo_id)
        for f in expected:
            if f["path"].startswith("/") or ".." in f["path"].split("/"):
                raise StageError("model %s: file path %r leaves the snapshot" % (self.repo_id, f["path"]))

    # -- current state --------------------------------------------------------------------------

    def _current(self, full_verify):
        """path -> {sha256, size} of files in the snapshot that are verified as they stand."""
        recorded = read_json(manifest_path(self.root, self.repo_id, self.revision)) or {}
        known = dict((f["path"], f) for f in recorded.get("files", []))
        out, extra, rehash = {}, [], []
        if not os.path.isdir(self.snapshot):
            return out, extra, 0
        for dirpath, _dirs, names in os.walk(self.snapshot):
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.snapshot)
                try:
                    st = os.stat(full)
                except OSError:
                    extra.append(rel)  # dangling link: its blob is gone
                    continue
                rec = known.get(rel)
                if rec and not full_verify and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns \
                        and rec.get("ino") == st.st_ino:
                    out[rel] = {"sha256": rec["sha256"], "size": st.st_size}
                else:
                    rehash.append((rel, full, st.st_size))
        hashed = 0

        def one(item):
            return item, sha256_file(item[1])

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for (rel, _full, size), digest in pool.map(one, rehash):
                out[rel] = {"sha256": digest, "size": size}
                hashed += size
        return out, extra, hashed

    def _free_bytes(self):
        path = self.root
        while not os.path.exists(path):
            path = os.path.dirname(path) or "/"
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize, path

    # -- plan -----------------------------------------------------------------------------------

    def plan(self):
        self._validate()
        source = self._open_source()
        self.source = source
        expected = self._expected(source)
        self._check_policy(expected)
        current, extra, rehashed = self._current(self.p.get("verify") == "full")
        add, replace, keep = [], [], []
        for f in expected:
            cur = current.get(f["path"])
            if cur is None:
                add.append(f)
            elif (f["sha256"] and cur["sha256"] != f["sha256"]) or (f["size"] is not None and cur["size"] != f["size"]):
                replace.append(f)
            else:
                keep.append(dict(f, sha256=f["sha256"] or cur["sha256"]))
        wanted = set(f["path"] for f in expected)
        remove = sorted(set(p for p in current if p not in wanted) | set(extra))
        ref = os.path.join(self.repo, "refs", self.p.get("ref") or "main")
        ref_ok = _read_first(ref) == self.revision
        return {"expected": expected, "add": add, "replace": replace, "keep": keep, "remove": remove,
                "ref_ok": ref_ok, "rehashed_bytes": rehashed, "current": current}

    # -- apply ----------------------------------------------------------------------------------

    def _stage_file(self, f):
        """Copy one file from the source into blobs/, hashing on the way. Returns (sha256, size, seconds)."""
        t0 = time.monotonic()
        if f["sha256"]:
            blob = os.path.join(self.blobs, f["sha256"])
            if os.path.isfile(blob):
                # A blob of an earlier (interrupted) run: reuse it when it still hashes to its name,
                # which costs one read instead of a copy; a blob damaged in place is replaced.
                if (f["size"] is None or os.path.getsize(blob) == f["size"]) and sha256_file(blob) == f["sha256"]:
                    return f["sha256"], os.path.getsize(blob), 0.0, 0
                os.unlink(blob)
        src = self.source.open(f["path"]) if self.source else None
        if src is None:
            raise StageError("model %s: file %s is in the manifest but missing from the source %s; the source is "
                             "incomplete: re-fetch or rebuild the bundle" % (
                                 self.repo_id, f["path"], self.source.label if self.source else "(none given)"))
        tag = hashlib.sha1(f["path"].encode()).hexdigest()[:12]
        tmp = os.path.join(self.blobs, "%s%s-%d-%d" % (TMP_PREFIX, tag, os.getpid(), threading.get_ident()))
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            if f["size"] is not None and size != f["size"]:
                raise StageError("model %s: file %s is %d bytes, the manifest says %d (truncated or wrong file); "
                                 "nothing of it was staged: re-fetch the source" % (self.repo_id, f["path"], size,
                                                                                    f["size"]))
            if f["sha256"] and digest != f["sha256"]:
                raise StageError("model %s: file %s has sha256 %s, the manifest says %s (corrupted in transit or "
                                 "at rest); nothing of it was staged: re-fetch the source" % (
                                     self.repo_id, f["path"], digest, f["sha256"]))
            os.chmod(tmp, 0o444)
            os.rename(tmp, os.path.join(self.blobs, digest))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        finally:
            src.close()
        return digest, size, time.monotonic() - t0, size

    def _clean_tmp(self):
        for d in (self.blobs, os.path.join(self.repo, "snapshots")):
            if os.path.isdir(d):
                for name in os.listdir(d):
                    if name.startswith(TMP_PREFIX) or name.startswith("." + self.revision):
                        path = os.path.join(d, name)
                        if os.path.isdir(path) and not os.path.islink(path):
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            os.unlink(path)

    def apply(self, plan):
        todo = plan["add"] + plan["replace"]
        need = sum(f["size"] or 0 for f in todo if not (f["sha256"] and os.path.isfile(
            os.path.join(self.blobs, f["sha256"]))))
        free, where = self._free_bytes()
        margin = self.p.get("min_free_bytes") or 0
        if need + margin > free:
            raise StageError("model %s: staging needs %.2f GB (+%.2f GB reserve) on %s, only %.2f GB free; free disk "
                             "space or point root at a larger volume" % (self.repo_id, need / 1e9, margin / 1e9,
                                                                         where, free / 1e9))
        for d in (self.blobs, os.path.join(self.repo, "snapshots"), os.path.join(self.repo, "refs")):
            os.makedirs(d, mode=0o755, exist_ok=True)
        self._clean_tmp()
        staged, copied_bytes = {}, 0
        t0 = time.monotonic()
        if todo:
            if self.source is None:
                raise StageError("model %s: %d file(s) to stage (%s) but no source given; set the model's source "
                                 "(bundle, mirror or hub)" % (self.repo_id, len(todo),
                                                              ", ".join(f["path"] for f in todo[:5])))
            ordered = sorted(todo, key=lambda f: -(f["size"] or 0))
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                for f, (digest, size, _secs, copied) in zip(ordered, pool.map(self._stage_file, ordered)):
                    staged[f["path"]] = {"sha256": digest, "size": size}
                    copied_bytes += copied
        elapsed = time.monotonic() - t0
        files = []
        for f in plan["expected"]:
            rec = staged.get(f["path"]) or plan["current"].get(f["path"])
            files.append({"path": f["path"], "sha256": rec["sha256"], "size": rec["size"]})
        self._assemble(files)
        return {"bytes": copied_bytes, "seconds": elapsed, "files": files}

    def _assemble(self, files):
        """Build the snapshot under a temporary name, then swap it into place."""
        snaps = os.path.join(self.repo, "snapshots")
        partial = os.path.join(snaps, ".%s.partial-%d" % (self.revision, os.getpid()))
        os.makedirs(partial)
        for f in files:
            link = os.path.join(partial, f["path"])
            os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
            depth = f["path"].count("/")
            os.symlink(os.path.join(*([".."] * (depth + 2) + ["blobs", f["sha256"]])), link)
        if os.path.isdir(self.snapshot):
            old = os.path.join(snaps, ".%s.old-%d" % (self.revision, os.getpid()))
            os.rename(self.snapshot, old)
            os.rename(partial, self.snapshot)
            shutil.rmtree(old)
        else:
            os.rename(partial, self.snapshot)
        records = []
        for f in files:
            st = os.stat(os.path.join(self.snapshot, f["path"]))
            records.append({"path": f["path"], "sha256": f["sha256"], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            "ino": st.st_ino})
        _write_json_atomic(manifest_path(self.root, self.repo_id, self.revision), {
            "repo_id": self.repo_id, "revision": self.revision, "files": records,
            "staged_by": "ragops.gpu_stack.model_stage",
            "staged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        ref = os.path.join(self.repo, "refs", self.p.get("ref") or "main")
        if _read_first(ref) != self.revision:
            tmp = ref + "." + TMP_PREFIX
            with open(tmp, "w") as fh:
                fh.write(self.revision)
            os.rename(tmp, ref)

    def close(self):
        if self.source is not None:
            self.source.close()


def inspect_snapshot(root, repo_id, revision, full=False):
    """What a staged revision looks like now, against the manifest recorded when it was staged.

    Read-only (drift checks): {'manifest': bool, 'ref': str|None, 'missing': [...], 'modified': [...],
    'extra': [...]}; ``full`` re-hashes every file instead of comparing size, mtime and inode."""
    recorded = read_json(manifest_path(root, repo_id, revision))
    snapshot = os.path.join(repo_dir(root, repo_id), "snapshots", revision)
    out = {"manifest": recorded is not None, "snapshot": os.path.isdir(snapshot),
           "ref": _read_first(os.path.join(repo_dir(root, repo_id), "refs", "main")),
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
        tf.addfile(info, _BytesReader(data))
        for f in files:
            tf.add(os.path.realpath(os.path.join(snapshot, f["path"])), arcname=f["path"], recursive=False)
    os.rename(tmp, bundle_path)
    return True


class _BytesReader(object):
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, size=-1):
        end = len(self.data) if size is None or size < 0 else self.pos + size
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


def _read_first(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError):
        return None


def run(params, check_mode=False, fetch_url=None):
    stager = Stager(params, check_mode, fetch_url)
    try:
        plan = stager.plan()
        changed = bool(plan["add"] or plan["replace"] or plan["remove"] or not plan["ref_ok"])
        expected = plan["expected"]
        result = {
            "changed": changed,
            "snapshot_path": stager.snapshot,
            "revision": stager.revision,
            "added": [f["path"] for f in plan["add"]],
            "replaced": [f["path"] for f in plan["replace"]],
            "removed": plan["remove"],
            "file_count": len(expected),
            "total_bytes": sum(f["size"] or 0 for f in expected),
            "verified_bytes": plan["rehashed_bytes"],
            "diff": {
                "before": {"files": sorted("%s %s" % (p, c["sha256"]) for p, c in plan["current"].items())},
                "after": {"files": sorted("%s %s" % (f["path"], f["sha256"] or "(sha256 computed when staged)")
                                          for f in expected)},
            },
        }
        if changed and not check_mode:
            done = stager.apply(plan)
            result["bytes_staged"] = done["bytes"]
            result["seconds"] = round(done["seconds"], 3)
            result["throughput_mb_s"] = round(done["bytes"] / 1e6 / done["seconds"], 1) if done["seconds"] else None
            result["files"] = done["files"]
        else:
            result["bytes_staged"] = 0
            result["files"] = [{"path": f["path"], "sha256": f["sha256"], "size": f["size"]} for f in plan["keep"]] \
                if not changed else [dict(f) for f in expected]
        if params.get("bundle_path") and not check_mode:
            written = write_bundle(stager.root, stager.repo_id, stager.revision, result["files"], params["bundle_path"])
            result["bundle_path"] = params["bundle_path"]
            result["changed"] = result["changed"] or written
        return result
    finally:
        stager.close()
