#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_server
short_description: Drain, disable or enable one HAProxy backend server through the runtime API
version_added: 0.2.0
description:
  - Sets the administrative state of one server of a backend through HAProxy's runtime API on its local socket,
    and optionally waits for the result, so a rolling change takes one service instance out of rotation at a time.
  - C(drain) stops new requests to the server and, with O(wait=true), waits until its requests in flight have been
    answered. C(ready) puts it back and, with O(wait=true), waits until HAProxy's health check sees it C(UP).
    C(maint) takes it out at once.
  - Every exchange with the socket has a hard timeout; a missing backend or server is an error naming what exists.
  - The C(load_balancer) role writes the configuration; this module never changes it.
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
  backend:
    description: Backend name (the service's name in the map).
    type: str
    required: true
  server:
    description: Server name (the instance's container name).
    type: str
    required: true
  state:
    description: The administrative state to set.
    type: str
    choices: [ready, drain, maint]
    required: true
  wait:
    description:
      - C(drain) waits until the server has no sessions; C(ready) waits until its health check is C(UP).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait before failing.
    type: int
    default: 60
  socket:
    description: HAProxy's runtime API socket (C(stats socket ... level admin)).
    type: path
    default: /run/haproxy/admin.sock
"""

EXAMPLES = r"""
- name: Take rag-llm-server-2 out of rotation, its requests in flight answered
  ragops.gpu_stack.haproxy_server:
    backend: llm
    server: rag-llm-server-2
    state: drain

- name: Put it back once HAProxy sees it healthy
  ragops.gpu_stack.haproxy_server:
    backend: llm
    server: rag-llm-server-2
    state: ready
"""

RETURN = r"""
server:
  description: The server's C(show stat) row after the change (C(status), C(scur), C(check_status), ...).
  returned: success
  type: dict
previous_state:
  description: Its administrative state before, C(ready), C(drain) or C(maint).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _haproxy as hp


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type="str", required=True),
            server=dict(type="str", required=True),
            state=dict(type="str", required=True, choices=list(hp.STATES)),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=60),
            socket=dict(type="path", default=hp.DEFAULT_SOCKET),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        row = hp.server(p["socket"], p["backend"], p["server"])
        before = hp.admin_state(p["socket"], p["backend"], p["server"])
        changed = before != p["state"]
        if changed and not module.check_mode:
            hp.set_state(p["socket"], p["backend"], p["server"], p["state"])
        if p["wait"] and not module.check_mode:
            until = {"drain": hp.is_idle, "ready": hp.is_up, "maint": hp.is_idle}[p["state"]]
            row = hp.wait(p["socket"], p["backend"], p["server"], until, p["wait_timeout"])
    except hp.HAProxyError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, server=row, previous_state=before)


if __name__ == "__main__":
    main()
