# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A module whose work is pure computation or the controller's own files, run in the controller's process by
its action plugin: no fork of a Python, no AnsiballZ payload, no connection. The module's argument spec
validates the arguments, and the module's own task function (shared with the module's main) makes the
result, so a play gets what the module would return."""

from __future__ import annotations

import json

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase


def plain(data):
    """Plain JSON data, as a module receives and returns it (no tagged or unsafe values, tuples as lists), so
    that the task never sees, or changes, the play's own variables."""
    return json.loads(json.dumps(data, cls=AnsibleJSONEncoder))


class InProcessAction(ActionBase):
    """Subclasses set NAME, ARGS (the module's argument spec) and task(params, check_mode) -> result."""

    TRANSFERS_FILES = False
    _requires_connection = False
    NAME = ""
    ARGS = {}
    RULES = {}  # mutually_exclusive, required_one_of, ... as the module gives them to AnsibleModule

    def task(self, params, check_mode):
        raise NotImplementedError

    def in_process(self):
        """Whether to run the task here; False, the module runs as usual (where the task's connection goes)."""
        return True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self.in_process():
            result.update(self._execute_module(module_name="ragops.gpu_stack." + self.NAME,
                                               module_args=self._task.args, task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(self.ARGS, **self.RULES).validate(plain(dict(self._task.args)))
        if validated.error_messages:
            result.update(failed=True, msg="%s: %s" % (self.NAME, "; ".join(validated.error_messages)))
            return result
        out = self.task(validated.validated_parameters, bool(self._play_context.check_mode))
        result.update(plain(out))
        return result
