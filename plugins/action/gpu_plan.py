# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""gpu_plan in the controller's process: a plan is pure computation over the map and the GPU facts. The result
is the module's (plugins/modules/gpu_plan.py documents it); both call module_utils._gpu_plan.plan_task."""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PLAN_ARGS, plan_task
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):
    NAME = "gpu_plan"
    ARGS = PLAN_ARGS

    def task(self, params, check_mode):
        out = plan_task(params)
        if out.get("warnings_list"):
            out["warnings"] = list(out["warnings_list"])  # shown as the module's warnings are
        return out
