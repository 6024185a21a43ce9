# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.model_stage (private): stage one Hugging Face model revision into the
standard cache layout, verified file by file.

The cache layout is _model_snapshot's; the sources are _model_sources'.

Every new file is read once: hashed while it is written to a temporary name, fsynced and renamed
into blobs/ only when size and sha256 match. Blobs are content-addressed, so an interrupted run
leaves only verified blobs and the next run resumes. The snapshot is assembled under a temporary
name and renamed into place at the end: a failed run never leaves a partial snapshot.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import REVISION_RE, read_json
from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import read_file
from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_snapshot import (
    TMP_PREFIX, StageError, hash_stream, manifest_path, read_first, repo_dir, sha256_file,
    write_bundle, write_json_atomic)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_sources import DirSource, HubSource, TarSource, UrlSource

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class Stager(object):
    def __init__(self, params, fetch_url=None):
        self.p = params
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
        if src.get("copy_from"):
            # the action plugin replaces it with the path it copied the bundle to; a module run alone cannot copy
            raise StageError("model %s: source.copy_from (%s) is a path on the controller, which only the "
                             "model_stage action copies to the host; run the module through its action (the "
                             "ragops.gpu_stack.model_stage task), or give source.path on the host"
                             % (self.repo_id, src["copy_from"]))
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
        for key in ("url", "endpoint"):
            if src.get("token") and src.get(key) and not str(src[key]).lower().startswith("https://"):
                raise StageError("model %s: the token would be sent in clear text to %s (%s is not https://); use "
                                 "an https:// %s, or no token" % (self.repo_id, src[key], key,
                                                                  "mirror" if key == "url" else "endpoint"))
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

    def _origin(self):
        """Where the file list came from, for messages: the manifest, or the lock file that recorded it."""
        return "the lock file %s" % self.p["files_from"] if self.p.get("files_from") else "the manifest"

    def _changed_fix(self):
        if not self.p.get("files_from"):
            return None
        return ("the source's content changed since the model was first fetched and locked. If the new content is "
                "intended, remove the entry %s@%s from %s and run again; otherwise restore the source"
                % (self.repo_id, self.revision, self.p["files_from"]))

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
        ref_ok = read_first(ref) == self.revision
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
            raise StageError("model %s: file %s is in %s but missing from the source %s; %s" % (
                self.repo_id, f["path"], self._origin(), self.source.label if self.source else "(none given)",
                self._changed_fix() or "the source is incomplete: re-fetch or rebuild the bundle"))
        tag = hashlib.sha1(f["path"].encode()).hexdigest()[:12]
        tmp = os.path.join(self.blobs, "%s%s-%d-%d" % (TMP_PREFIX, tag, os.getpid(), threading.get_ident()))
        try:
            with open(tmp, "wb") as out:
                digest, size = hash_stream(src, out)
                out.flush()
                os.fsync(out.fileno())
            if f["size"] is not None and size != f["size"]:
                raise StageError("model %s: file %s is %d bytes, %s says %d; nothing of it was staged: %s" % (
                    self.repo_id, f["path"], size, self._origin(), f["size"],
                    self._changed_fix() or "truncated or wrong file, re-fetch the source"))
            if f["sha256"] and digest != f["sha256"]:
                raise StageError("model %s: file %s has sha256 %s, %s says %s; nothing of it was staged: %s" % (
                    self.repo_id, f["path"], digest, self._origin(), f["sha256"],
                    self._changed_fix() or "corrupted in transit or at rest, re-fetch the source"))
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
        write_json_atomic(manifest_path(self.root, self.repo_id, self.revision), {
            "repo_id": self.repo_id, "revision": self.revision, "files": records,
            "staged_by": "ragops.gpu_stack.model_stage",
            "staged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        ref = os.path.join(self.repo, "refs", self.p.get("ref") or "main")
        if read_first(ref) != self.revision:
            tmp = ref + "." + TMP_PREFIX
            with open(tmp, "w") as fh:
                fh.write(self.revision)
            os.rename(tmp, ref)

    def close(self):
        if self.source is not None:
            self.source.close()


def run(params, check_mode=False, fetch_url=None):
    stager = Stager(params, fetch_url)
    try:
        plan = stager.plan()
        changed = bool(plan["add"] or plan["replace"] or plan["remove"] or not plan["ref_ok"])
        expected = plan["expected"]
        result = {
            "changed": changed,
            "snapshot_path": stager.snapshot,
            "repo_id": stager.repo_id,
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
            result["bundle_bytes"] = os.path.getsize(params["bundle_path"])
            result["changed"] = result["changed"] or written
        return result
    finally:
        stager.close()


# model_stage's argument spec, shared by the module and its action plugin
STAGE_ARGS = dict(
    repo_id=dict(type="str"),
    revision=dict(type="str"),
    root=dict(type="path", default="/opt/models/hf"),
    files=dict(type="list", elements="dict"),
    files_from=dict(type="str"),
    allow_patterns=dict(type="list", elements="str"),
    require_safetensors=dict(type="bool", default=False),
    source=dict(type="dict", options=dict(
        path=dict(type="path"),
        url=dict(type="str"),
        hub=dict(type="bool", default=False),
        endpoint=dict(type="str"),
        token=dict(type="str", no_log=True),
        copy_from=dict(type="path"),
    )),
    verify=dict(type="str", default="quick", choices=["quick", "full"]),
    workers=dict(type="int"),
    min_free_bytes=dict(type="int", default=0),
    ref=dict(type="str", default="main"),
    bundle_path=dict(type="path"),
    models=dict(type="list", elements="dict"),
)
# one model (repo_id and revision) or several (models), as the module and the action plugin validate them
STAGE_RULES = dict(required_one_of=[("repo_id", "models")], required_together=[("repo_id", "revision")],
                   mutually_exclusive=[("repo_id", "models"), ("revision", "models")])
# what a model is, in an element of models; the other options come from the top level
MODEL_KEYS = ("repo_id", "revision", "files", "files_from", "allow_patterns", "require_safetensors", "source",
              "bundle_path")


def each_model(params):
    """The list form (models): each element one model's options (MODEL_KEYS), the shared ones (root, verify,
    workers, min_free_bytes, ref) from the top level. Every element is checked before anything is staged; all
    the bad ones are named at once."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = dict((key, STAGE_ARGS[key]) for key in STAGE_ARGS if key != "models")
    shared = dict((key, params.get(key)) for key in spec if key not in MODEL_KEYS)
    out, errors = [], []
    for i, element in enumerate(params["models"]):
        label = element.get("repo_id") or "?"
        other = sorted(set(element) - set(MODEL_KEYS))
        if other:
            errors.append("models[%d] (%s): %s not an option of a model (%s; the others are given once, at the top "
                          "level)" % (i, label, ", ".join(other), ", ".join(MODEL_KEYS)))
            continue
        checked = ArgumentSpecValidator(spec, required_together=[("repo_id", "revision")],
                                        required_one_of=[("repo_id",)]).validate(dict(shared, **element))
        if checked.error_messages:
            errors.append("models[%d] (%s): %s" % (i, label, "; ".join(checked.error_messages)))
            continue
        out.append(checked.validated_parameters)
    if errors:
        raise StageError("%s. Fix those elements; nothing was staged." % "; ".join(errors))
    return out


def run_each(params, check_mode=False, fetch_url=None):
    """Each model of the list form in order, as a call of its own would; one that fails does not stop the
    others. Returns the result (failed, with msg, when any failed)."""
    results, failed = [], []
    for one in each_model(params):
        try:
            result = run(one, check_mode, fetch_url)
        except StageError as exc:
            result = {"changed": False, "failed": True, "msg": str(exc), "repo_id": one["repo_id"],
                      "revision": one["revision"], "diff": {}}
            failed.append(str(exc))
        results.append(result)
    diffs = [result.pop("diff") for result in results]
    # the root as it is after this call (made by a staging; only read in check mode), for the role's decision
    out = {"changed": any(result["changed"] for result in results), "results": results,
           "diff": [diff for diff in diffs if diff], "root": read_file(params["root"])}
    if failed:
        out.update(failed=True, msg="%d of %d model(s) failed: %s" % (len(failed), len(results), " / ".join(failed)))
    return out
