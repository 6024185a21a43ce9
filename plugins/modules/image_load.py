#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_load
short_description: Load a Docker image from a tarball only where the host lacks it
version_added: 0.4.0
description:
  - Asks the host's Docker engine whether it has the image O(name). Where it has not and a tarball is given, the
    tarball is loaded, and the image must be there afterwards (a tarball that holds other images fails the task,
    naming what it held).
  - The task's action copies O(src), a tarball on the controller, to the host only where the image is missing (into
    Ansible's remote temporary directory, removed after the load, loaded or not); a host that has the image costs one
    call, one without it the tarball's copy and one call more. No checksum of the copy is taken; the engine checks
    every layer's digest while it loads.
  - In check mode nothing is copied or loaded; the task reports the load it would make.
  - Without O(src) or O(path) the task only says whether the image is there (RV(present)), for a caller that pulls it
    otherwise.
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
  name:
    description: The image the tarball holds, as C(repository:tag).
    type: str
    required: true
  src:
    description: The tarball (C(docker save) format) on the controller; copied to the host only where it lacks O(name).
    type: path
  path:
    description: A tarball already on the host, loaded where it lacks O(name) (and kept). Mutually exclusive with O(src).
    type: path
  docker_host:
    description: Docker engine address.
    type: str
    aliases: [docker_url]
  api_timeout:
    description: Seconds a Docker API call (the load included) may take.
    type: int
    default: 600
requirements:
  - docker (the Docker SDK for Python) on the managed host
"""

EXAMPLES = r"""
- name: Load the smoke-test image from its tarball where the host lacks it
  ragops.gpu_stack.image_load:
    name: rag-embedding-server:1.0.0
    src: /srv/images/rag-images_1.0.0.tar
"""

RETURN = r"""
present:
  description: Whether the host had the image before the task.
  returned: success
  type: bool
loaded:
  description: The images the load reported (C(repository:tag), or the image ID of an untagged one); empty when
    nothing was loaded.
  returned: success
  type: list
  elements: str
  sample: [rag-embedding-server:1.0.0, rag-whisper-server:1.0.0]
"""

import copy

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import (
    DOCKER_CLIENT_ARGS, HAS_DOCKER, EngineError, api_error_text, client, is_not_found)


def has_image(api, name):
    try:
        api.inspect_image(name)
        return True
    except Exception as exc:  # pylint: disable=broad-except
        if is_not_found(exc):
            return False
        raise EngineError("could not ask the Docker engine for image %s: %s" % (name, api_error_text(exc)))


def load(api, path):
    """Load the tarball; the images the engine reports loaded. The engine's own error (a layer whose digest does not
    match, a file that is not an image archive) raises with its words."""
    loaded = []
    try:
        with open(path, "rb") as fh:
            for chunk in api.load_image(fh):
                if chunk.get("error") or chunk.get("errorDetail"):
                    raise EngineError(str(chunk.get("error") or chunk["errorDetail"].get("message")))
                for line in (chunk.get("stream") or "").splitlines():
                    for prefix in ("Loaded image: ", "Loaded image ID: "):
                        if line.startswith(prefix):
                            loaded.append(line[len(prefix):].strip())
    except EngineError:
        raise
    except OSError as exc:
        raise EngineError("could not read the tarball %s: %s" % (path, exc))
    except Exception as exc:  # pylint: disable=broad-except
        raise EngineError(api_error_text(exc))
    return loaded


def run(params, check_mode):
    name, path = params["name"], params["path"]
    api = client(params["docker_host"], params["api_timeout"])
    present = has_image(api, name)
    if present or path is None or check_mode:
        return {"changed": not present and path is not None, "present": present, "loaded": []}
    try:
        loaded = load(api, path)
    except EngineError as exc:
        raise EngineError("the Docker engine could not load %s (for %s): %s" % (path, name, exc))
    if not has_image(api, name):
        raise EngineError("the tarball %s holds %s, not %s: give the tarball that holds it, or the image it holds"
                          % (path, ", ".join(loaded) or "no image", name))
    return {"changed": True, "present": False, "loaded": loaded}


def main():
    argument_spec = dict(name=dict(type="str", required=True), src=dict(type="path"), path=dict(type="path"))
    argument_spec.update(copy.deepcopy(DOCKER_CLIENT_ARGS))
    argument_spec["api_timeout"]["default"] = 600  # a load of several GB
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[("src", "path")], supports_check_mode=True)
    if module.params["src"] is not None:
        module.fail_json(msg="image_load: src is the controller's file, copied by the task's action; run the module "
                             "as a task (ragops.gpu_stack.image_load), or give path, a tarball on the host")
    if not HAS_DOCKER:
        module.fail_json(msg="image_load: the docker SDK is missing for %s; run the host_python role" % module._name)
    try:
        result = run(module.params, module.check_mode)
    except EngineError as exc:
        module.fail_json(msg="image_load: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
