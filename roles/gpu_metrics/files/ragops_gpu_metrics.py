# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The gpu_metrics role installs this and its systemd unit runs it with the collection's virtualenv python.
"""ragops-gpu-metrics: read the GPUs once (gpu_info's engine, with its hard timeout) and write
node_exporter textfile metrics in dcgm-exporter's names, atomically. Installed and run by role
gpu_metrics (a systemd timer); the collection's module_utils are on PYTHONPATH.

Exit 0 when the file was written (also when NVML failed: the file then says so, with
ragops_gpu_stack_gpu_metrics_success 0); 1 when the file could not be written."""

from __future__ import annotations

import argparse
import socket
import sys
import time

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _gpu_info, _gpu_metrics


def main(argv=None):
    p = argparse.ArgumentParser(prog="ragops-gpu-metrics", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--textfile", required=True, help="the .prom file to write (node_exporter's textfile directory)")
    p.add_argument("--record", required=True, help="gpu_services' deployment record (the service labels)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before the NVML reading is killed")
    p.add_argument("--hostname", default=None, help="the Hostname label (default: this host's name)")
    args = p.parse_args(argv)
    try:
        facts = _gpu_info.gather(timeout=args.timeout, tolerate_missing_driver=True)
    except Exception as exc:  # NvmlError of any kind: written as a failed reading, the timer tries again
        facts = {"driver_error": "%s" % exc, "gpus": []}
    services = _gpu_metrics.services_by_uuid(_gpu_metrics.read_record(args.record))
    text = _gpu_metrics.render(facts, args.hostname or socket.gethostname(), services, time.time())
    try:
        _gpu_metrics.write_atomic(args.textfile, text)
    except OSError as exc:
        sys.stderr.write("ragops-gpu-metrics: cannot write %s: %s\n" % (args.textfile, exc))
        return 1
    if facts.get("driver_error"):
        sys.stderr.write("ragops-gpu-metrics: NVML: %s (written as ragops_gpu_stack_gpu_metrics_success 0)\n"
                         % facts["driver_error"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
