#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_state
short_description: Read, in one call, the files, packages and services a role would change on a host
version_added: 0.3.0
description:
  - The roles' first host task. It reads what the role's later tasks would change - files (type, owner, mode,
    SHA-1 of the content, the content itself where asked), Debian packages (installed version, held or not),
    systemd units (active, enabled) and, where asked, whether it reaches a URL - so that the role decides on the controller which of its tasks have
    something to do and runs only those (the way M(ansible.builtin.package_facts) and
    M(ansible.builtin.service_facts) read a host once). A converged host then costs one round trip per role
    instead of one per setting.
  - Read-only; the same answer in check mode. A file that cannot be read is reported with C(error), never fatal; the
    task that would write it reports the problem in its own words.
  - Compare what it returns with what a role wants through the C(ragops.gpu_stack.file_differs) filter.
author:
  - ragops developers (@ragops)
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.attributes.info_module
options:
  files:
    description: Absolute paths to look at (files or directories).
    type: list
    elements: path
    default: []
  contents:
    description: Absolute paths whose content is returned too (base64, at most 1 MiB each), such as a JSON file a
      role merges into. They need not be listed in O(files).
    type: list
    elements: path
    default: []
  packages:
    description: Debian package names.
    type: list
    elements: str
    default: []
  services:
    description: systemd unit names (C(.service) may be left out).
    type: list
    elements: str
    default: []
  urls:
    description:
      - HTTP(S) URLs the host asks with a HEAD request (redirects followed, O(timeout) seconds each), such as the
        release file of an apt repository a role is about to add and install from (whether the host reaches it,
        read with the rest). An answer other than a success is reported, never fatal.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each of O(urls).
    type: int
    default: 15
  facts:
    description:
      - Also return the host's OS facts that the collection's host roles read (the distribution, its version,
        release and OS family, the running kernel), as C(ansible_facts), computed the way
        M(ansible.builtin.setup) computes them; a play whose first read asks them gathers no facts after it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read what this role manages on the host (one call)
  ragops.gpu_stack.host_state:
    files: [/etc/modprobe.d/blacklist-nouveau.conf]
    packages: [nvidia-driver-550, nvidia-fabricmanager-550]
    services: [nvidia-persistenced]
  register: state

- name: Blacklist nouveau (only when the file is not what it should be)
  ansible.builtin.copy:
    dest: /etc/modprobe.d/blacklist-nouveau.conf
    content: "blacklist nouveau\n"
    mode: "0644"
  when: state.files['/etc/modprobe.d/blacklist-nouveau.conf'] | ragops.gpu_stack.file_differs("blacklist nouveau\n")
"""

RETURN = r"""
files:
  description: Per path (of O(files) and O(contents)) C(exists), C(type) (file, directory, link, other), C(owner),
    C(group), C(mode) (four octal digits), C(size), C(sha1) (regular files), C(content) (base64, paths of
    O(contents) only) and C(error) when it could not be read.
  returned: always
  type: dict
  sample: {/etc/docker/daemon.json: {exists: true, type: file, owner: root, group: root, mode: "0644", size: 120,
           sha1: 0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33}}
urls:
  description: Per URL of O(urls) C(status) (the HTTP status; -1 when nothing answered) and C(msg) (the reason).
  returned: always
  type: dict
  sample: {http://127.0.0.1:8080/dists/stable/InRelease: {status: 200, msg: "OK (0 bytes)"}}
packages:
  description: Per package C(version) (the installed version, null when not installed) and C(hold) (apt-mark hold).
  returned: always
  type: dict
  sample: {docker.io: {version: 20.10.24+dfsg1-1+b3, hold: true}}
ansible_facts:
  description: With O(facts), the distribution facts (C(distribution), C(distribution_version),
    C(distribution_major_version), C(distribution_release), C(os_family) and the others of setup's C(distribution)
    collector) and C(kernel) (the running kernel's release).
  returned: when O(facts)
  type: dict
  sample: {distribution: Debian, distribution_major_version: "12", os_family: Debian, kernel: 6.1.0-28-amd64}
services:
  description:
    - Per unit C(active) (systemd's ActiveState), C(enabled) (UnitFileState) and C(loaded) (LoadState); C(unknown)
      each where systemd cannot be asked.
  returned: always
  type: dict
  sample: {docker: {active: active, enabled: enabled, loaded: loaded}}
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils._host_files import read_file


def read_packages(module, names):
    out = {name: {"version": None, "hold": False} for name in names}
    if not names:
        return out
    # dpkg-query exits 1 when a name is unknown to dpkg; the others are still listed
    rc, stdout, stderr = module.run_command(["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Status}\n"] + list(names),
                                            environ_update={"LC_ALL": "C"})
    if rc not in (0, 1):
        module.fail_json(msg="host_state: dpkg-query failed (rc %d): %s" % (rc, stderr.strip()))
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] not in out:
            continue
        want, _error, status = (parts[2].split() + ["", "", ""])[:3]
        installed = status in ("installed", "half-configured", "unpacked", "triggers-awaited", "triggers-pending")
        out[parts[0]] = {"version": parts[1] if installed and parts[1] else None, "hold": want == "hold"}
    return out


def read_services(module, names):
    out = {}
    if not names:
        return out
    systemctl = module.get_bin_path("systemctl")
    units = [n if "." in n else n + ".service" for n in names]
    unknown = {n: {"active": "unknown", "enabled": "unknown", "loaded": "unknown"} for n in names}
    if systemctl is None:
        return unknown
    rc, stdout, dummy = module.run_command([systemctl, "show", "--property=Id,ActiveState,UnitFileState,LoadState",
                                            "--"] + units, environ_update={"LC_ALL": "C"})
    if rc != 0:
        # no systemd to ask (not booted with it): unknown, so the roles' unit tasks run and say why
        return unknown
    # one block of KEY=value lines per unit, in the order asked, separated by blank lines
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in stdout.strip().split("\n\n")]
    for name, block in zip(names, blocks):
        out[name] = {"active": block.get("ActiveState", "unknown"), "enabled": block.get("UnitFileState", "") or "unknown",
                     "loaded": block.get("LoadState", "unknown")}
    return out


def read_urls(module, urls, timeout):
    """{url: {status, msg}}: each asked with HEAD, as ansible.builtin.uri would (the module's fetch_url)."""
    from ansible.module_utils.urls import fetch_url

    out = {}
    for url in urls:
        resp, info = fetch_url(module, url, method="HEAD", timeout=timeout)
        out[url] = {"status": info.get("status", -1), "msg": info.get("msg", "")}
        if resp is not None:
            resp.close()
    return out


def read_facts(module):
    """The OS facts setup's distribution collector gives, and the kernel as its platform collector reads it (not the
    rest of that collector: its host name lookup can wait on DNS)."""
    from ansible.module_utils.facts.system.distribution import DistributionFactCollector

    facts = DistributionFactCollector().collect(module=module)
    facts["kernel"] = platform.release()
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=[]),
            contents=dict(type="list", elements="path", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            urls=dict(type="list", elements="str", default=[]),
            timeout=dict(type="int", default=15),
            facts=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    relative = [p for p in params["files"] + params["contents"] if not os.path.isabs(p)]
    if relative:
        module.fail_json(msg="host_state: %s: not absolute paths; give each file as /path/to/it" % ", ".join(relative))
    not_http = [u for u in params["urls"] if not u.lower().startswith(("http://", "https://"))]
    if not_http:
        module.fail_json(msg="host_state: %s: not http(s) URLs; urls are asked with an HTTP HEAD, give each as "
                             "http(s)://host/path" % ", ".join(not_http))
    files = {path: read_file(path) for path in params["files"]}
    files.update((path, read_file(path, with_content=True)) for path in params["contents"])
    extra = {"ansible_facts": read_facts(module)} if params["facts"] else {}
    module.exit_json(changed=False, files=files, packages=read_packages(module, params["packages"]),
                     services=read_services(module, params["services"]),
                     urls=read_urls(module, params["urls"], params["timeout"]), **extra)


if __name__ == "__main__":
    main()
