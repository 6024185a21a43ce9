# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_stage: on the controller (a task delegated to localhost, without become: the models' cache) in the
controller's process, without a module run per model; on a host, the module runs there as usual. The result
is the module's (plugins/modules/model_stage.py documents it); both call module_utils._model_stage.run.

A model's source.copy_from (a bundle on the controller) is copied here, in the task's own call: into Ansible's
remote temporary directory (as the copy action does), given to the module as source.path, and removed with that
directory after the module ran. On the controller itself it is read where it is."""

from __future__ import annotations

import copy
import os
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_stage import (
    STAGE_ARGS, STAGE_RULES, StageError, run, run_each)
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils._in_process import InProcessAction


def fetch(url, headers=None):
    """What the module's fetch_url returns: (response or None, {status, msg})."""
    try:
        resp = open_url(url, headers=headers, timeout=60)
        return resp, {"status": resp.status, "msg": "OK (%d)" % resp.status}
    except HTTPError as exc:
        return None, {"status": exc.code, "msg": str(exc)}
    except (URLError, OSError, ValueError) as exc:
        return None, {"status": -1, "msg": "Request failed: %s" % getattr(exc, "reason", exc)}


class ActionModule(InProcessAction):
    NAME = "model_stage"
    ARGS = STAGE_ARGS
    RULES = STAGE_RULES

    def in_process(self):
        return self._connection.transport == "local" and not self._play_context.become

    def _copies(self, args):
        """The models whose source is a bundle on the controller: [(model args, local path)]."""
        models = args.get("models") if args.get("models") is not None else [args]
        return [(m, m["source"]["copy_from"]) for m in models
                if isinstance(m, dict) and isinstance(m.get("source"), dict) and m["source"].get("copy_from")]

    def run(self, tmp=None, task_vars=None):
        args = copy.deepcopy(dict(self._task.args))
        copies = self._copies(args)
        if not copies:
            return super().run(tmp, task_vars)
        bad = ["%s: %s" % (m.get("repo_id") or "?", local) for m, local in copies if not os.path.isfile(local)]
        both = [m.get("repo_id") or "?" for m, _local in copies if any(m["source"].get(k) for k in ("path", "url", "hub"))]
        if bad or both:
            return {"failed": True, "changed": False, "msg": "model_stage: %s. Nothing was copied or staged." % "; ".join(
                (["source.copy_from names no file on the controller (%s); stage the models into the controller's "
                  "cache first (the hf_models role does)" % ", ".join(bad)] if bad else [])
                + (["source.copy_from with source.path, url or hub (%s); give one" % ", ".join(both)] if both else []))}
        # on the controller a bundle is read where it is; in check mode nothing travels (the module plans from the
        # model's files); otherwise each goes to the remote temporary directory, made here for them
        travel = not self.in_process() and not self._play_context.check_mode
        remote = (self._connection._shell.tmpdir or self._make_tmp_path()) if travel else None
        moved = []
        try:
            for i, (model, local) in enumerate(copies):
                source = dict(model["source"])
                del source["copy_from"]
                if not travel:
                    source["path"] = local if self.in_process() else None
                else:
                    source["path"] = self._connection._shell.join_path(remote, "%d-%s" % (i, os.path.basename(local)))
                    self._transfer_file(local, source["path"])
                    moved.append(source["path"])
                model["source"] = source if source["path"] else None
            if moved:
                self._fixup_perms2([remote] + moved, execute=False)
            self._task.args = args
            return super().run(tmp, task_vars)
        finally:
            if remote:
                self._remove_tmp_path(remote)

    def task(self, params, check_mode):
        try:
            result = (run_each if params.get("models") is not None else run)(params, check_mode, fetch)
        except StageError as exc:
            return {"failed": True, "msg": str(exc)}
        if not self._play_context.diff:
            result.pop("diff", None)
        return result
