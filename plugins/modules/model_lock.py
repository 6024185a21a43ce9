#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_lock
short_description: Read and extend the models lock file, the manifests recorded at each model's first fetch
version_added: 0.2.0
description:
  - A model whose map entry lists no per-file sha256 is verified against its source's own manifest when it is first
    fetched. This module records that manifest (each file's path, size and sha256, and the sha256 of the whole list)
    in a lock file kept next to the inventory, like a package lock, keyed by repository and revision.
  - Without O(models) it reads the lock and returns its entries, so that later runs, other controllers and other
    hosts stage against the recorded files (ragops.gpu_stack.model_stage with O(ragops.gpu_stack.model_stage#module:files_from))
    and refuse a source whose content changed. An entry whose file list no longer matches its recorded digest
    (edited by hand) is refused.
  - With O(models) it adds the entries the lock lacks (an existing entry is never replaced), writing the file
    atomically. Runs on the controller.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  path:
    description: The lock file. A missing file is an empty lock.
    type: path
    required: true
  models:
    description:
      - Models to record, each with C(repo_id), C(revision) and C(files) (C(path), C(size), C(sha256) per file), such as
        the results of ragops.gpu_stack.model_stage. Models already in the lock are checked against it, not replaced.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Read the models lock
  ragops.gpu_stack.model_lock:
    path: "{{ inventory_dir }}/.models.lock.json"
  delegate_to: localhost
  run_once: true
  register: models_lock

- name: Record the models fetched for the first time
  ragops.gpu_stack.model_lock:
    path: "{{ inventory_dir }}/.models.lock.json"
    models: "{{ staged.results | rejectattr('item.files') | list }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
entries:
  description: The lock's entries by C(<repo_id>@<revision>), each C(repo_id), C(revision), C(manifest_sha256), C(files).
  returned: always
  type: dict
added:
  description: The keys recorded by this run.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_lock import LOCK_ARGS, lock_task


def main():
    # plugins/action/model_lock.py runs the same lock_task in the controller's process
    module = AnsibleModule(argument_spec=LOCK_ARGS, supports_check_mode=True)
    result = lock_task(module.params, module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
