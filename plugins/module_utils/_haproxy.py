# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HAProxy's runtime API over its local socket (private): the load_balancer role's rolling changes
(ragops.gpu_stack.haproxy_server) and the drift check read and set backend servers through it.

One domain exception (HAProxyError) and a hard timeout on every exchange: a wedged HAProxy makes a
task fail with the socket and the command named, never hang.
"""

from __future__ import annotations

import csv
import socket
import time

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
STATES = ("ready", "drain", "maint")


class HAProxyError(Exception):
    """The runtime API could not be reached or refused a command."""


def command(sock_path, line, timeout=5.0):
    """Send one runtime API command, return its answer (text)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sock_path)
        sock.sendall((line.strip() + "\n").encode("utf-8"))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (OSError, socket.timeout) as exc:
        raise HAProxyError("HAProxy runtime API %s: %r failed: %s (is haproxy running? systemctl status haproxy)"
                           % (sock_path, line, exc))
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")


def show_stat(sock_path, timeout=5.0):
    """`show stat` as a list of dicts (pxname, svname, status, scur, check_status, ...)."""
    text = command(sock_path, "show stat", timeout)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise HAProxyError("HAProxy runtime API %s: unexpected answer to 'show stat': %s" % (sock_path, text[:200]))
    lines[0] = lines[0][2:]
    return [dict((k, v) for k, v in row.items() if k) for row in csv.DictReader(lines)]


def servers(sock_path, timeout=5.0):
    """{backend: {server: row}} for every server line of `show stat`."""
    out = {}
    for row in show_stat(sock_path, timeout):
        if row.get("svname") not in ("FRONTEND", "BACKEND"):
            out.setdefault(row["pxname"], {})[row["svname"]] = row
    return out


def server(sock_path, backend, name, timeout=5.0):
    rows = servers(sock_path, timeout)
    if backend not in rows:
        raise HAProxyError("HAProxy has no backend %r (backends: %s); run site.yml to configure it"
                           % (backend, ", ".join(sorted(rows)) or "none"))
    if name not in rows[backend]:
        raise HAProxyError("HAProxy backend %r has no server %r (servers: %s); run site.yml to configure it"
                           % (backend, name, ", ".join(sorted(rows[backend])) or "none"))
    return rows[backend][name]


# srv_admin_state bits of `show servers state` (HAProxy's SRV_ADMF_*): forced, inherited or
# configured maintenance, resolution or health-check maintenance; forced or inherited drain.
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
ADMIN_DRAIN = 0x08 | 0x10


def admin_state(sock_path, backend, name, timeout=5.0):
    """ready, drain or maint: the server's administrative state (`show servers state`). Not from
    `show stat`'s status, which says DOWN for a drained server whose check fails."""
    server(sock_path, backend, name, timeout)  # names the backend / server when missing
    text = command(sock_path, "show servers state %s" % backend, timeout)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = next((ln[2:].split() for ln in lines if ln.startswith("# ")), None)
    for line in lines:
        fields = line.split()
        if header and not line.startswith("#") and len(fields) >= len(header) - 2:
            row = dict(zip(header, fields))
            if row.get("srv_name") == name:
                bits = int(row["srv_admin_state"])
                return "maint" if bits & ADMIN_MAINT else "drain" if bits & ADMIN_DRAIN else "ready"
    raise HAProxyError("HAProxy runtime API %s: no state for server %s/%s in: %s"
                       % (sock_path, backend, name, text[:200]))


def set_state(sock_path, backend, name, state, timeout=5.0):
    if state not in STATES:
        raise HAProxyError("state %r is not one of %s" % (state, ", ".join(STATES)))
    server(sock_path, backend, name, timeout)  # names the backend / server when missing
    answer = command(sock_path, "set server %s/%s state %s" % (backend, name, state), timeout).strip()
    if answer:
        raise HAProxyError("HAProxy refused 'set server %s/%s state %s': %s" % (backend, name, state, answer))


def wait(sock_path, backend, name, until, deadline_s, poll=0.25, timeout=5.0):
    """Poll the server's row until ``until(row)`` holds; HAProxyError naming the last row at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        row = server(sock_path, backend, name, timeout)
        if until(row):
            return row
        if time.monotonic() >= end:
            raise HAProxyError("HAProxy server %s/%s: still %s (check: %s, sessions: %s) after %ss"
                               % (backend, name, row.get("status"), row.get("check_status") or "-",
                                  row.get("scur"), deadline_s))
        time.sleep(poll)


def is_up(row):
    return row.get("status", "").startswith("UP")


def is_idle(row):
    return str(row.get("scur", "0")) in ("", "0")
