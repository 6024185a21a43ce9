# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""gpu_plan in the controller's process: a plan is pure computation over the map and the GPU facts, so it
needs no module run (no fork of a Python, no AnsiballZ payload, no connection). The result is the module's
(plugins/modules/gpu_plan.py documents it): both call module_utils._gpu_plan.plan_task."""

from __future__ import annotations

import json

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PLAN_ARGS, plan_task


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # plain data, as a module receives it: the plan never sees (or changes) the play's own variables
        args = json.loads(json.dumps(dict(self._task.args), cls=AnsibleJSONEncoder))
        validated = ArgumentSpecValidator(PLAN_ARGS).validate(args)
        if validated.error_messages:
            result.update(failed=True, msg="gpu_plan: " + "; ".join(validated.error_messages))
            return result
        out = plan_task(validated.validated_parameters)
        # what the module would return, through the same JSON (tuples become lists)
        result.update(json.loads(json.dumps(out, cls=AnsibleJSONEncoder)))
        if out.get("warnings_list"):
            result["warnings"] = list(out["warnings_list"])
        return result
