# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_load: a tarball on the controller (src) travels to the host only where the host lacks the image. The module
is asked first (one call); where the image is missing the tarball goes into Ansible's remote temporary directory, the
module loads it from there (given as path), and the directory is removed, loaded or not. The result is the module's
(plugins/modules/image_load.py documents it)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "ragops.gpu_stack.image_load"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is None:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        if args.get("path") is not None:
            result.update(failed=True, msg="image_load: give src (a tarball on the controller) or path (one on the "
                                           "host), not both. Nothing was copied or loaded.")
            return result
        try:
            local = self._find_needle("files", src)
        except AnsibleError:  # not found: the message below says so
            local = None
        if local is None or not os.path.isfile(local):
            result.update(failed=True, msg="image_load: src %s is not a file on the controller; give the image's "
                                           "tarball (docker save format). Nothing was copied or loaded." % src)
            return result
        asked = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        if asked.get("failed") or asked.get("present"):
            result.update(asked)
            return result
        if self._play_context.check_mode:
            result.update(asked, changed=True)
            return result
        remote = self._connection._shell.tmpdir or self._make_tmp_path()
        try:
            path = self._connection._shell.join_path(remote, os.path.basename(local))
            self._transfer_file(local, path)
            self._fixup_perms2([remote, path], execute=False)
            loaded = self._execute_module(module_name=MODULE, module_args=dict(args, path=path), task_vars=task_vars)
            if loaded.get("msg"):  # the tarball by the name the task gave it, not its temporary copy's
                loaded["msg"] = loaded["msg"].replace(path, src)
            result.update(loaded)
        finally:
            self._remove_tmp_path(remote)
        return result
