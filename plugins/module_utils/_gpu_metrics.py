# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GPU metrics in dcgm-exporter's names and labels, from gpu_info's reading (private).

Role gpu_metrics runs this on each GPU host every few seconds (``ragops-gpu-metrics``, a systemd
timer) and writes the result atomically into node_exporter's textfile directory, so that dashboards
made for NVIDIA's dcgm-exporter read it unchanged. ``METRICS`` is the one list of what is written:
the renderer, the documentation (docs/gpu-metrics.md) and the tests all read it. Each series carries
dcgm-exporter's labels (``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname``) and ``service``,
the services pinned to that GPU by the deployment record (which dcgm-exporter cannot know).

Standard library only: it runs in the collection's virtualenv next to gpu_info's engine.
"""

from __future__ import annotations

import json
import os
import tempfile

# (name, type, help, value of one GPU from gpu_info's entry, or None when it has none)
METRICS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: (g.get("clocks") or {}).get("sm_mhz")),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).",
     lambda g: (g.get("clocks") or {}).get("memory_mhz")),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: (g.get("temperature") or {}).get("gpu_c")),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: (g.get("power") or {}).get("draw_w")),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
     lambda g: (g.get("utilization") or {}).get("gpu_pct")),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).",
     lambda g: (g.get("utilization") or {}).get("memory_pct")),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
     lambda g: (g.get("memory") or {}).get("free_mib")),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
     lambda g: (g.get("memory") or {}).get("used_mib")),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered (0: none seen by this reading).",
     lambda g: (g.get("xid_events") or [0])[-1] if "xid_events" in g else None),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
     lambda g: (g.get("ecc") or {}).get("corrected_volatile")),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
     lambda g: (g.get("ecc") or {}).get("uncorrected_volatile")),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter", "Total number of single-bit persistent ECC errors.",
     lambda g: (g.get("ecc") or {}).get("corrected_aggregate")),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "Total number of double-bit persistent ECC errors.",
     lambda g: (g.get("ecc") or {}).get("uncorrected_aggregate")),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors.",
     lambda g: (g.get("remapped_rows") or {}).get("correctable")),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors.",
     lambda g: (g.get("remapped_rows") or {}).get("uncorrectable")),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed.",
     lambda g: _flag((g.get("remapped_rows") or {}).get("failure"))),
    ("DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether a row remap waits for a GPU reset.",
     lambda g: _flag((g.get("remapped_rows") or {}).get("pending"))),
)
# Per NVLink of a GPU (label `link`): DCGM's link state, 3 up and 2 down (1 disabled, 0 not supported).
NVLINK_METRIC = ("DCGM_FI_DEV_NVLINK_LINK_STATUS", "gauge", "NVLink link state (3: up, 2: down).")
NVLINK_UP, NVLINK_DOWN = 3, 2
# The collection's own series: whether the reading worked, when, and each GPU's health by the guide's
# thresholds (0 ok, 1 warn, 2 fail), with a GPU that NVML lost still listed.
OWN_METRICS = (
    ("ragops_gpu_stack_gpu_metrics_success", "gauge", "Whether the last NVML reading worked (1) or failed (0)."),
    ("ragops_gpu_stack_gpu_metrics_timestamp_seconds", "gauge", "When the GPU metrics were last written."),
    ("ragops_gpu_stack_gpu_status", "gauge", "GPU health by the collection's thresholds: 0 ok, 1 warn, 2 fail."),
)
LABELS = ("gpu", "UUID", "device", "modelName", "Hostname", "service")
STATUS_VALUES = {"ok": 0, "warn": 1}
# The services of the deployment record on each GPU UUID (scaled instances of one service once).
NO_SERVICE = ""


def _flag(value):
    return None if value is None else int(bool(value))


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def services_by_uuid(record):
    """{GPU UUID: "svc" or "svc-a,svc-b"} from the deployment record (gpu_services' deployed.json)."""
    out = {}
    for svc in (record or {}).get("services") or []:
        for uuid in svc.get("gpu_uuids") or []:
            out.setdefault(uuid, set()).add(svc.get("name") or svc.get("container_name") or "")
    return dict((uuid, ",".join(sorted(n for n in names if n))) for uuid, names in out.items())


def read_record(path):
    """The deployment record, or {} when there is none yet (metrics come before the first deploy)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return {}


def _labels(gpu, hostname, services):
    uuid = gpu.get("uuid") or ""
    values = {"gpu": gpu["index"], "UUID": uuid, "device": "nvidia%d" % gpu["index"], "modelName": gpu.get("name") or "",
              "Hostname": hostname, "service": services.get(uuid, NO_SERVICE)}
    return ",".join('%s="%s"' % (k, _escape(values[k])) for k in LABELS)


def render(facts, hostname, services, timestamp):
    """The textfile: dcgm-exporter's series for every GPU NVML read, then the collection's own."""
    lines = []
    gpus = [g for g in facts.get("gpus") or [] if "error" not in g]
    for name, kind, text, value_of in METRICS:
        samples = [(g, value_of(g)) for g in gpus]
        samples = [(g, v) for g, v in samples if v is not None]
        if not samples:
            continue
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
        lines += ["%s{%s} %s" % (name, _labels(g, hostname, services), _number(v)) for g, v in samples]
    links = [(g, link) for g in gpus for link in g.get("nvlink") or []]
    if links:
        name, kind, text = NVLINK_METRIC
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
        lines += ['%s{%s,link="%d"} %d' % (name, _labels(g, hostname, services), link["link"],
                                           NVLINK_UP if link.get("active") else NVLINK_DOWN) for g, link in links]
    (ok_name, kind, text), (ts_name, ts_kind, ts_text), (st_name, st_kind, st_text) = OWN_METRICS
    lines += ["# HELP %s %s" % (ok_name, text), "# TYPE %s %s" % (ok_name, kind),
              '%s{Hostname="%s"} %d' % (ok_name, _escape(hostname), 0 if facts.get("driver_error") else 1),
              "# HELP %s %s" % (ts_name, ts_text), "# TYPE %s %s" % (ts_name, ts_kind),
              '%s{Hostname="%s"} %d' % (ts_name, _escape(hostname), int(timestamp))]
    every = facts.get("gpus") or []
    if every:
        lines += ["# HELP %s %s" % (st_name, st_text), "# TYPE %s %s" % (st_name, st_kind)]
        for g in every:
            value = STATUS_VALUES.get(g.get("status"), 2)
            lines.append("%s{%s} %d" % (st_name, _labels(g, hostname, services), value))
    return "\n".join(lines) + "\n"


def write_atomic(path, text, mode=0o644):
    """Write text to path so that a reader sees the old file or the new one, never a part: a temporary
    file in the same directory (node_exporter reads only *.prom), flushed, then renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def metric_names():
    """Every metric name the textfile may hold (documentation and tests)."""
    return [m[0] for m in METRICS] + [NVLINK_METRIC[0]] + [m[0] for m in OWN_METRICS]
