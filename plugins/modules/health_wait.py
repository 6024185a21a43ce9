#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: health_wait
short_description: Wait for several health endpoints at once, each within its own bound
version_added: 0.3.0
description:
  - Asks every URL of O(checks) on the host at the same time, each again every O(delay) seconds until it answers
    HTTP 200 or its O(checks[].attempts) are used up, and returns one result per check in the order given. One
    call instead of one task per service, so the services become healthy side by side and the wait is the
    longest of them, not their sum.
  - Never fails for an endpoint that does not answer (the caller judges the results and names what is unhealthy);
    fails only on unusable arguments.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
options:
  checks:
    description: The endpoints.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description: An http URL (the services' health paths are plain HTTP on the host).
        type: str
        required: true
      attempts:
        description: How many times to ask at most (1 asks once, without waiting).
        type: int
        default: 1
      container:
        description:
          - The name of the container that serves the URL. With O(containers), a check whose container is not
            running is asked once, not O(checks[].attempts) times (it cannot become healthy while it waits).
        type: str
  delay:
    description: Seconds between two attempts at one URL.
    type: float
    default: 2
  timeout:
    description: Seconds one request may take.
    type: float
    default: 10
  containers:
    description:
      - Also list the host's containers (all of them, running or not, as the Docker API lists them, with C(Names),
        C(State), C(Status), C(Labels) and the rest) before asking, in the same call (needs the Docker SDK for Python in the
        interpreter the module runs with), and return them as RV(containers). A Docker engine that cannot be asked
        fails the call, naming it.
    type: bool
    default: false
  gpus:
    description:
      - Also read the GPUs after the wait, in the same call, as M(ragops.gpu_stack.gpu_info) reads them (its engine, with
        O(gpus.thresholds) and its hard O(gpus.timeout); a missing, broken or hung driver is reported in the reading, not
        fatal), and return the reading as RV(gpus) (what the services hold once they answer). Needs nvidia-ml-py in the
        interpreter the module runs with. Not read when not given.
    type: dict
    suboptions:
      thresholds:
        description: As M(ragops.gpu_stack.gpu_info)'s O(ragops.gpu_stack.gpu_info#module:thresholds) (unset keys keep
          the defaults; an unknown key or a bad value fails the call, naming it).
        type: dict
        default: {}
      timeout:
        description: Seconds NVML may take.
        type: int
        default: 15
"""

EXAMPLES = r"""
- name: Wait for every service's health endpoint (at most 60 s each)
  ragops.gpu_stack.health_wait:
    checks:
      - {url: "http://127.0.0.1:8001/health", attempts: 30}
      - {url: "http://127.0.0.1:8003/health", attempts: 30}
    delay: 2
  register: health
"""

RETURN = r"""
results:
  description:
    - Per check, in the order given, C(url), C(status) (the last HTTP status, 0 without an answer), C(msg) (why
      not 200), C(json) (the body, when it is JSON), C(content) (the body's first 4 KiB), C(attempts) (used) and
      C(elapsed) (seconds).
  returned: always
  type: list
  elements: dict
  sample: [{url: "http://127.0.0.1:8001/health", status: 200, msg: OK, json: {status: ok}, attempts: 1, elapsed: 0.01}]
containers:
  description: With O(containers), the host's containers as Docker's API lists them (what
    M(community.docker.docker_host_info) returns with C(containers_all) and C(verbose_output)), read before the first
    request.
  returned: when O(containers)
  type: list
  elements: dict
  sample: [{Names: [/rag-embedding], State: running, Status: Up 3 hours (healthy), Labels: {}}]
gpus:
  description: With O(gpus), the GPUs as M(ragops.gpu_stack.gpu_info) returns them, read after the wait.
  returned: when O(gpus)
  type: dict
  sample: {driver_state: ok, driver_version: 550.127.05, gpus: [], health: {status: ok}}
"""

import json
import sys
import threading
import time
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import NvmlError, check_thresholds, gather

BODY_LIMIT = 4096


def ask(url, timeout):
    """(status, msg, body) of one GET; status 0 when nothing answered."""
    try:
        with open_url(url, method="GET", timeout=timeout, use_proxy=False) as resp:
            return resp.status, "OK (%d)" % resp.status, resp.read(BODY_LIMIT + 1)
    except urllib.error.HTTPError as exc:
        return exc.code, "HTTP Error %d: %s" % (exc.code, exc.reason), exc.read(BODY_LIMIT + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, "Request failed: %s" % reason, b""


def wait_one(check, delay, timeout, out):
    start = time.monotonic()
    used = 0
    status, msg, body = 0, "not asked", b""
    while used < check["attempts"]:
        if used:
            time.sleep(delay)
        used += 1
        status, msg, body = ask(check["url"], timeout)
        if status == 200:
            break
    res = {"url": check["url"], "status": status, "msg": msg, "attempts": used,
           "elapsed": round(time.monotonic() - start, 3),
           "content": body[:BODY_LIMIT].decode("utf-8", "replace")}
    try:
        res["json"] = json.loads(body.decode("utf-8"))
    except ValueError:
        pass
    out.update(res)


def list_containers(module):
    """Every container of the host's Docker engine, as its API lists them (DOCKER_HOST and the rest from the
    environment, as docker's own client reads them)."""
    try:
        import docker  # the Docker SDK for Python, only for this option
    except ImportError as exc:
        module.fail_json(msg="health_wait: containers needs the Docker SDK for Python in %s (%s); run the module with "
                             "the collection's Python (role host_python) or install it" % (sys.executable, exc))
    try:
        client = docker.APIClient(**docker.utils.kwargs_from_env())
        try:
            return client.containers(all=True)
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        module.fail_json(msg="health_wait: the Docker engine could not be asked for its containers (%s); is dockerd "
                             "running (systemctl status docker)?" % exc)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", required=True, options=dict(
                url=dict(type="str", required=True),
                attempts=dict(type="int", default=1),
                container=dict(type="str"),
            )),
            delay=dict(type="float", default=2),
            timeout=dict(type="float", default=10),
            containers=dict(type="bool", default=False),
            gpus=dict(type="dict", options=dict(
                thresholds=dict(type="dict", default={}),
                timeout=dict(type="int", default=15),
            )),
        ),
        supports_check_mode=True,
    )
    p = module.params
    bad = ["checks[%d]: url %r is not an http(s) URL; write e.g. http://127.0.0.1:8001/health" % (i, c["url"])
           for i, c in enumerate(p["checks"]) if not c["url"].startswith(("http://", "https://"))]
    bad += ["checks[%d]: attempts %d must be 1 or more" % (i, c["attempts"])
            for i, c in enumerate(p["checks"]) if c["attempts"] < 1]
    if p["delay"] < 0 or p["timeout"] <= 0:
        bad.append("delay must be >= 0 and timeout > 0 (got delay=%s, timeout=%s)" % (p["delay"], p["timeout"]))
    if p["gpus"] is not None:
        bad += check_thresholds(p["gpus"]["thresholds"], "gpus.thresholds")
        if p["gpus"]["timeout"] < 1:
            bad.append("gpus.timeout %d must be 1 or more (seconds NVML may take)" % p["gpus"]["timeout"])
    if bad:
        module.fail_json(msg="health_wait: " + "; ".join(bad))
    extra, checks = {}, p["checks"]
    if p["containers"]:
        extra["containers"] = list_containers(module)
        running = {name.lstrip("/") for c in extra["containers"] if c.get("State") == "running"
                   for name in c.get("Names") or []}
        checks = [dict(c, attempts=1) if c["container"] is not None and c["container"] not in running else c
                  for c in checks]
    results = [{} for dummy in checks]
    threads = [threading.Thread(target=wait_one, args=(c, p["delay"], p["timeout"], r), daemon=True)
               for c, r in zip(checks, results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if p["gpus"] is not None:
        try:
            extra["gpus"] = gather(p["gpus"]["thresholds"], p["gpus"]["timeout"], tolerate_missing_driver=True)
        except NvmlError as exc:
            module.fail_json(msg="health_wait: NVML failed reading the GPUs after the wait: %s" % exc,
                             nvml_error=exc.name, results=results, **extra)
    module.exit_json(changed=False, results=results, **extra)


if __name__ == "__main__":
    main()
