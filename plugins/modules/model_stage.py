#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_stage
short_description: Stage one pinned Hugging Face model revision into the offline cache, verified
version_added: 0.1.0
description:
  - Stages one model revision into the standard Hugging Face cache layout under O(root) (C(hub/models--org--name)
    with C(blobs/), C(snapshots/<revision>/) and C(refs/main)), so that transformers, sentence-transformers, vLLM and
    faster-whisper find it with C(HF_HOME=root) and C(HF_HUB_OFFLINE=1). A manifest of what was staged and verified is
    written next to the snapshot.
  - Every new file is read once, hashed while written to a temporary name, fsynced and renamed into place only when
    its size and sha256 match the manifest. Hashing runs in parallel across files. Files already verified are skipped
    (size, mtime and inode against the recorded manifest) unless O(verify=full).
  - The snapshot is assembled under a temporary name and renamed into place at the end, so a failed or interrupted run
    never leaves a partial snapshot; verified blobs stay and a rerun resumes from them.
  - Free disk space is checked before anything is written. Pickle weights are refused when O(require_safetensors) is
    set. A flipped byte, a truncated file, a missing file or a bundle of another revision fail with the file named.
  - Sources, where the module runs, a bundle directory, a Hugging Face cache, a tarball, an HTTP(S) mirror in the
    Hub's C(<repo>/resolve/<revision>/<path>) layout, or the Hub itself through C(huggingface_hub) (meant for the
    controller; GPU hosts receive what the controller staged).
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.actiongroup_gpu
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  repo_id:
    description: Hugging Face repository, C(org/name). Required unless O(models) is given.
    type: str
  revision:
    description: The pinned 40-hex commit. Required with O(repo_id).
    type: str
  models:
    description:
      - Several models in one call (one round trip to the host instead of one per model), each element one model's
        O(repo_id), O(revision), O(files), O(files_from), O(allow_patterns), O(require_safetensors), O(source) and
        O(bundle_path); the other options (O(root), O(verify), O(workers), O(min_free_bytes), O(ref)) are given once,
        at the top level, for all of them. Mutually exclusive with O(repo_id).
      - Every element is validated before anything is staged; the models are then staged in order, each as a call of
        its own would; one that fails does not stop the others, and the task fails naming each that failed.
      - The results come back in RV(results), one per element, in order.
    type: list
    elements: dict
  root:
    description: The cache root (C(HF_HOME)).
    type: path
    default: /opt/models/hf
  files:
    description:
      - The manifest, C(path), C(size) and C(sha256) per file; exactly these files are staged. Without it, the
        source's own C(ragops-bundle.json) manifest, or the source's file list (hashed and recorded as staged).
    type: list
    elements: dict
  files_from:
    description:
      - Where O(files) came from when it is not the inventory's manifest, such as the models lock file that recorded
        the source's manifest at the first fetch. A source whose file differs is then refused as changed since it
        was locked, the message naming that file and the entry to remove if the change is intended.
    type: str
  allow_patterns:
    description: Glob patterns of files to stage when the manifest comes from the source.
    type: list
    elements: str
  require_safetensors:
    description: Refuse pickle weights (C(.bin), C(.pt), C(.pth), C(.pkl), C(.ckpt)) and require a C(.safetensors) file.
    type: bool
    default: false
  source:
    description:
      - Where missing files come from, one of O(source.path), O(source.url) or O(source.hub). Needed only when
        something must be staged.
    type: dict
    suboptions:
      path:
        description: A bundle directory, a Hugging Face cache root, a snapshot directory, or a tarball of a bundle.
        type: path
      url:
        description: Base URL of an HTTP(S) mirror in the Hub's layout.
        type: str
      hub:
        description: Download from the Hugging Face Hub with C(huggingface_hub).
        type: bool
        default: false
      endpoint:
        description: Hub endpoint, for a private Hub.
        type: str
      token:
        description: Token for the mirror or the Hub; never logged and never written to the cache.
        type: str
      copy_from:
        description:
          - A bundle tarball (as O(bundle_path) writes it) on the controller, for a host that lacks the model's
            files. The action copies it to the host, into Ansible's remote temporary directory (where the C(copy)
            module puts a file on its way too), stages from it as O(source.path) would, and removes it, in the
            task's one call; in check mode nothing is copied and the plan comes from O(files). Not with
            O(source.path), O(source.url) or O(source.hub).
        type: path
  verify:
    description: C(quick) rehashes only files whose size, mtime or inode changed; C(full) rehashes every file.
    type: str
    choices: [quick, full]
    default: quick
  workers:
    description: Files hashed in parallel; defaults to the number of CPUs.
    type: int
  min_free_bytes:
    description: Free space to leave on the volume after staging.
    type: int
    default: 0
  ref:
    description: Name of the ref written under C(refs/).
    type: str
    default: main
  bundle_path:
    description:
      - Also write the staged revision as one uncompressed tarball here (the files and a C(ragops-bundle.json)
        manifest), rewritten only when its manifest differs. The controller uses it to send each host one file,
        which O(source.path) then reads in place, in parallel.
    type: path
requirements:
  - huggingface_hub, only for O(source.hub)
seealso:
  - module: ragops.gpu_stack.gpu_plan
"""

EXAMPLES = r"""
- name: Stage the embedding model from a bundle on the host
  ragops.gpu_stack.model_stage:
    repo_id: sentence-transformers/all-MiniLM-L6-v2
    revision: c9745ed1d9f207416be6d2e6f8de32d1f16199bf
    files: "{{ (gpu_stack_services | selectattr('name', 'eq', 'embedding') | first).model.files }}"
    require_safetensors: true
    source:
      path: /var/tmp/ragops/all-MiniLM-L6-v2.tar

- name: Fetch from the Hub once, on the controller
  ragops.gpu_stack.model_stage:
    repo_id: microsoft/DialoGPT-medium
    revision: "{{ dialogpt_revision }}"
    root: "{{ playbook_dir }}/.cache/models"
    source:
      hub: true
      token: "{{ vault_hf_token }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
repo_id:
  description: The repository, as given.
  returned: unless O(models) is given
  type: str
revision:
  description: The revision, as given.
  returned: unless O(models) is given
  type: str
snapshot_path:
  description: The staged snapshot directory.
  returned: unless O(models) is given
  type: str
  sample: /opt/models/hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/c9745ed1d9f207416be6d2e6f8de32d1f16199bf
added:
  description: Files that were (or in check mode would be) added.
  returned: unless O(models) is given
  type: list
  elements: str
replaced:
  description: Files whose content was (or would be) replaced.
  returned: unless O(models) is given
  type: list
  elements: str
removed:
  description: Files in the snapshot that are not in the manifest, removed.
  returned: unless O(models) is given
  type: list
  elements: str
file_count:
  description: Files in the revision.
  returned: unless O(models) is given
  type: int
total_bytes:
  description: Size of the revision.
  returned: unless O(models) is given
  type: int
bytes_staged:
  description: Bytes copied and hashed in this run.
  returned: unless O(models) is given
  type: int
verified_bytes:
  description: Bytes of already staged files rehashed to verify them.
  returned: unless O(models) is given
  type: int
seconds:
  description: Time spent staging.
  returned: when something was staged
  type: float
throughput_mb_s:
  description: Staging throughput (MB/s).
  returned: when something was staged
  type: float
files:
  description: The revision's files, C(path), C(size), C(sha256).
  returned: unless O(models) is given
  type: list
  elements: dict
bundle_path:
  description: The tarball written (or kept) for distribution.
  returned: when O(bundle_path) is set
  type: str
bundle_bytes:
  description: Its size in bytes (what a host needs to receive it).
  returned: when O(bundle_path) is set
  type: int
results:
  description:
    - With O(models), one result per element, in order, each with the keys a single call returns; a model that
      failed has C(failed) and C(msg) instead. With C(--diff) the diffs are in the task's diff, one per element.
  returned: when O(models) is given
  type: list
  elements: dict
root:
  description:
    - With O(models), the cache root as M(ragops.gpu_stack.host_state) reads a path (C(exists), C(type), C(owner),
      C(group), C(mode)), so that a role tells on the controller whether the root needs making or mending.
  returned: when O(models) is given
  type: dict
  sample: {exists: true, type: directory, owner: root, group: root, mode: "0755", size: 4096}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_stage import (
    STAGE_ARGS, STAGE_RULES, StageError, run, run_each)


def main():
    # on the controller (the models' cache) plugins/action/model_stage.py runs the same run() in Ansible's own
    # process; on a host (its cache) this module runs there
    module = AnsibleModule(argument_spec=STAGE_ARGS, supports_check_mode=True, **STAGE_RULES)

    def fetch(url, headers=None):
        # imported when a model is fetched, not on every comparison (it costs the host a tenth of a second)
        from ansible.module_utils.urls import fetch_url

        return fetch_url(module, url, headers=headers, timeout=60)

    try:
        result = (run_each if module.params["models"] is not None else run)(module.params, module.check_mode, fetch)
    except StageError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
