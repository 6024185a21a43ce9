# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several small files written on a host, each only where it differs, and the directories they go in (private; the
host_files module's engine).

What a file is, its content as text, its mode, its owner and group when the role names none, is shared with the
file_differs and files_differing filters, which tell on the controller from host_state's reading whether a write
has something to do: the two always agree. How a path is read (read_file) is host_state's, and model_stage's for its
cache root."""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
import stat
import tempfile

# the owner and group of a file that host_files writes when the role names none
DEFAULT_OWNER = "root"
DEFAULT_GROUP = "root"


def octal_mode(value):
    """An octal mode (such as '0644') as an int, or None when the value is not one."""
    if isinstance(value, bool):
        return None
    try:
        mode = int(str(value).strip(), 8)
    except ValueError:
        return None
    return mode if 0 <= mode <= 0o7777 else None


def content_text(value):
    """The text written for a content value: a mapping or list as JSON, as ansible.builtin.copy writes one
    (ansible-core before 2.19 turns a templated string that reads as a Python literal into one)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


CONTENT_LIMIT = 1 << 20
_TYPES = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "link"))


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def read_file(path, with_content=False):
    """What a role compares a file with: type, owner, mode, SHA-1 (and the content when asked)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    except OSError as exc:
        return {"exists": None, "error": str(exc)}
    kind = next((name for test, name in _TYPES if test(st.st_mode)), "other")
    out = {"exists": True, "type": kind, "owner": _name(pwd.getpwuid, st.st_uid), "group": _name(grp.getgrgid, st.st_gid),
           "mode": "%04o" % stat.S_IMODE(st.st_mode), "size": st.st_size}
    if kind != "file":
        return out
    try:
        digest = hashlib.sha1()
        head = b""
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                if with_content and len(head) <= CONTENT_LIMIT:
                    head += block
    except OSError as exc:
        out["error"] = str(exc)
        return out
    out["sha1"] = digest.hexdigest()
    if with_content:
        if len(head) > CONTENT_LIMIT:
            out["error"] = "larger than %d bytes: content not returned" % CONTENT_LIMIT
        else:
            out["content"] = base64.b64encode(head).decode("ascii")
    return out


TMP_PREFIX = ".ragops-host-files-"
DIFF_LIMIT = 1 << 20


def _entry_problems(entry, seen, kind):
    """The problems of one entry that do not depend on what is on the host: its path, mode, owner and group."""
    path, problems = entry["path"], []
    if not os.path.isabs(path):
        return ["%s: not an absolute path; give it as /path/to/the/%s" % (path, kind)]
    if path in seen:
        problems.append("%s: given twice; give each file and directory once" % path)
    seen.add(path)
    if octal_mode(entry["mode"]) is None:
        problems.append("%s: mode %r is not an octal mode such as '0644'; quote it in YAML" % (path, entry["mode"]))
    try:
        pwd.getpwnam(entry["owner"])
    except KeyError:
        problems.append("%s: owner %s is not a user on this host; create the user first or name another"
                        % (path, entry["owner"]))
    try:
        grp.getgrnam(entry["group"])
    except KeyError:
        problems.append("%s: group %s is not a group on this host; create the group first or name another"
                        % (path, entry["group"]))
    return problems


def _made_by(path, directories):
    """Whether the directory path is made with the directories to make: one of them or above one (their missing
    parents are made too)."""
    return any(d == path or d.startswith(path.rstrip("/") + "/") for d in directories)


def check(files, check_mode=False, directories=()):
    """Every problem with the directories and files given, all at once (nothing is written when there is one). A
    file's missing directory is not one when the directories given make it; in check mode it is never one (a
    task before this one would have created it)."""
    problems, seen, making = [], set(), []
    for entry in directories:
        found = _entry_problems(entry, seen, "directory")
        problems += found
        path = entry["path"]
        if not os.path.isabs(path):
            continue
        if os.path.lexists(path) and not os.path.isdir(path):
            problems.append("%s: is in the way of a directory (it is not one); remove it or choose another path" % path)
            continue
        # the nearest existing ancestor must be a directory for the missing ones to be made
        above = os.path.dirname(path)
        while not os.path.lexists(above):
            above = os.path.dirname(above)
        if not os.path.isdir(above):
            problems.append("%s: %s is in the way (it is not a directory); remove it or choose another path"
                            % (path, above))
        making.append(path)
    for entry in files:
        found = _entry_problems(entry, seen, "file")
        problems += found
        path = entry["path"]
        if not os.path.isabs(path):
            continue
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if _made_by(parent, making) or (check_mode and not os.path.lexists(parent)):
                continue
            problems.append("%s: its directory %s does not exist; create it first (or give it in directories)"
                            % (path, parent))
        elif os.path.isdir(path) and not os.path.islink(path):
            problems.append("%s: is a directory; remove it or write the file elsewhere" % path)
    return problems


def current(path):
    """(sha1 of the content, uid, gid, mode) of a regular file at path; None when there is none (or a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _old_text(path):
    try:
        if os.path.islink(path) or os.path.getsize(path) > DIFF_LIMIT:
            return ""
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def write(path, data, uid, gid, mode):
    """The file in one step for a reader: a temporary file beside it, flushed, owned, then renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ids(entry):
    return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid, octal_mode(entry["mode"])


def make_directory(path, uid, gid, mode, check_mode=False):
    """Whether the directory at path was (or would be) made or given its owner and mode. Missing parents are made
    as mkdir -p makes them; a link to a directory counts as one (its target is given the owner and mode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not check_mode:
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode):
        return False
    if not check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def run(files, check_mode=False, diff=False, directories=()):
    problems = check(files, check_mode, directories)
    if problems:
        return {"changed": False, "failed": True, "changed_paths": [], "files": {}, "directories": {},
                "msg": "host_files: nothing was written: %s" % " / ".join(problems)}
    result = {"changed_paths": [], "files": {}, "directories": {}}
    diffs, failed = [], []
    for entry in directories:
        path = entry["path"]
        try:
            changed = make_directory(path, *_ids(entry), check_mode=check_mode)
        except OSError as exc:
            failed.append("%s: %s" % (path, exc.strerror or exc))
            result["directories"][path] = {"changed": False, "failed": True}
            continue
        result["directories"][path] = {"changed": changed}
        if changed:
            result["changed_paths"].append(path)
    for entry in files:
        path = entry["path"]
        text = content_text(entry["content"])
        data = text.encode("utf-8")
        sha1 = hashlib.sha1(data).hexdigest()
        uid, gid, mode = _ids(entry)
        try:
            now = current(path)
            content_changed = now is None or now[0] != sha1
            changed = content_changed or now[1:] != (uid, gid, mode)
            if content_changed and diff:
                diffs.append({"before_header": path, "after_header": path,
                              "before": _old_text(path) if os.path.lexists(path) else "", "after": text})
            if changed and not check_mode:
                if content_changed:
                    write(path, data, uid, gid, mode)
                else:
                    os.chown(path, uid, gid)
                    os.chmod(path, mode)
        except OSError as exc:
            failed.append("%s: %s" % (path, exc.strerror or exc))
            result["files"][path] = {"changed": False, "content_changed": False, "sha1": sha1, "failed": True}
            continue
        result["files"][path] = {"changed": changed, "content_changed": content_changed, "sha1": sha1}
        if changed:
            result["changed_paths"].append(path)
    result["changed"] = bool(result["changed_paths"])
    if diff:
        result["diff"] = diffs
    if failed:
        result.update(failed=True, msg="host_files: %d of %d path(s) could not be written: %s; the others were written"
                      % (len(failed), len(files) + len(directories), " / ".join(failed)))
    return result
