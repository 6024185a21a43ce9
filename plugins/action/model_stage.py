# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_stage: on the controller (a task delegated to localhost, without become: the models' cache) in the
controller's process, without a module run per model; on a host, the module runs there as usual. The result
is the module's (plugins/modules/model_stage.py documents it); both call module_utils._model_stage.run."""

from __future__ import annotations

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

    def task(self, params, check_mode):
        try:
            result = (run_each if params.get("models") is not None else run)(params, check_mode, fetch)
        except StageError as exc:
            return {"failed": True, "msg": str(exc)}
        if not self._play_context.diff:
            result.pop("diff", None)
        return result
