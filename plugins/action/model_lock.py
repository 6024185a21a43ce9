# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_lock in the controller's process: the lock is a file next to the inventory, on the controller. The
result is the module's (plugins/modules/model_lock.py documents it); both call module_utils._model_lock.lock_task."""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_lock import LOCK_ARGS, lock_task
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):
    NAME = "model_lock"
    ARGS = LOCK_ARGS

    def task(self, params, check_mode):
        return lock_task(params, check_mode)
