# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GPU memory and utilisation judged against what runs on each GPU (private; docs/gpu-load.md).

A vLLM service preallocates GPU_MEMORY_UTILIZATION (the guide: 90 %) of each of its GPUs and a busy
inference GPU runs near 100 %: neither is a fault. The plan says what each GPU should hold (its
entries' ``gpu_memory``); this compares that with what NVML reads. Pure: the health check (the
``gpu_load`` filter, on the controller) and the drift check (drift_info, on the host) share it.

Per GPU, at most one ``gpu.memory`` warning (its reasons joined) and one ``gpu.foreign_process``
warning:

* use above the expectation by more than ``memory_margin_pct`` of the GPU's memory;
* a GPU no service is planned on that holds memory (any process, or use above the margin);
* on a GPU with no preallocating service, use at or above ``memory_alert_pct`` (the guide's 85 %);
* a process that is not in a container planned on that GPU.

Utilisation outside ``utilization_target_pct`` on a GPU that runs a service is a capacity note
(``utilization_verdict`` above / below), never a warning.
"""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import (
    DEFAULT_THRESHOLDS, LOAD_THRESHOLDS, check_thresholds)


class LoadError(ValueError):
    """Thresholds that cannot be used. ``errors`` has one message per problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(LoadError, self).__init__("; ".join(self.errors))


def _gpu_key(index):
    try:
        return int(index)
    except (TypeError, ValueError):
        return None


def check(thresholds, gpu_thresholds):
    """Every problem with gpu_stack_thresholds and gpu_stack_gpu_thresholds (empty: usable)."""
    errors = check_thresholds(thresholds or {}, "gpu_stack_thresholds")
    if not isinstance(gpu_thresholds or {}, dict):
        return errors + ["gpu_stack_gpu_thresholds: %r is not a mapping of GPU index to thresholds; write e.g. "
                         "{5: {memory_alert_pct: 95}}" % (gpu_thresholds,)]
    for index, value in sorted((gpu_thresholds or {}).items(), key=lambda kv: str(kv[0])):
        if _gpu_key(index) is None or _gpu_key(index) < 0:
            errors.append("gpu_stack_gpu_thresholds: %r is not a GPU index; write e.g. {5: {memory_alert_pct: 95}}"
                          % (index,))
            continue
        errors += check_thresholds(value, "gpu_stack_gpu_thresholds[%s]" % index, LOAD_THRESHOLDS)
    return errors


def _who(entry):
    return "%s (%s)" % (entry["name"], entry["container_name"])


def _expected(entry, uuid):
    mem = entry.get("gpu_memory") or {}
    if uuid in (mem.get("per_gpu_mib") or {}):
        return mem["per_gpu_mib"][uuid], mem.get("basis"), bool(mem.get("preallocated"))
    gpus = entry.get("gpu_uuids") or []
    return int(round(float(entry.get("vram_estimate_gb") or 0) * 1024 / max(len(gpus), 1))), None, False


def _process_line(proc, containers):
    cid = proc.get("container_id")
    where = ("container %s" % containers.get(cid, cid[:12])) if cid else "not in a container"
    return "pid %s (%s, %s) %s MiB" % (proc.get("pid"), proc.get("name") or "?", where, proc.get("used_mib"))


def judge(services, gpu_info, thresholds=None, gpu_thresholds=None, containers=None):
    """Per GPU: used and expected memory, the services and processes on it, warnings and notes.

    ``services`` are plan entries (gpu_plan's ``plan.services``); ``containers`` maps container IDs
    to names (for the processes' ``container_id``); without it processes are not attributed.
    Returns {'gpus': [...], 'warnings': [...], 'notes': [...]} with each warning as
    {kind, gpu, uuid, message}."""
    errors = check(thresholds, gpu_thresholds)
    if errors:
        raise LoadError(errors)
    base = dict(DEFAULT_THRESHOLDS)
    base.update(dict((k, v) for k, v in (thresholds or {}).items() if v is not None))
    per_gpu = dict((_gpu_key(k), v or {}) for k, v in (gpu_thresholds or {}).items())
    names = dict(containers or {})
    out = {"gpus": [], "warnings": [], "notes": []}
    for g in (gpu_info or {}).get("gpus") or []:
        if "error" in g or not g.get("uuid"):
            continue
        users = [e for e in services or [] if g["uuid"] in (e.get("gpu_uuids") or [])]
        th = dict(base)
        for entry in users:
            th.update(entry.get("thresholds") or {})
        th.update(per_gpu.get(g["index"]) or {})
        label = "GPU %d (%s)" % (g["index"], g["uuid"])
        mem = g.get("memory") or {}
        total, used = mem.get("total_mib") or 0, mem.get("used_mib") or 0
        margin = int(total * th["memory_margin_pct"] / 100.0)
        rows, expected, preallocated = [], 0, False
        for entry in users:
            mib, basis, pre = _expected(entry, g["uuid"])
            rows.append({"service": entry["name"], "container_name": entry["container_name"], "expected_mib": mib,
                         "basis": basis, "preallocated": pre})
            expected += mib
            preallocated = preallocated or pre
        procs = g.get("processes") or []
        mine = set(e["container_name"] for e in users)
        foreign = [p for p in procs if not (p.get("container_id") and names.get(p["container_id"]) in mine)]
        if containers is None:
            foreign = []
        reasons = []
        if not users and (procs or used > margin):
            reasons.append("should be idle (no service is planned on it) but %d MiB are used%s"
                           % (used, ": " + "; ".join(_process_line(p, names) for p in procs) if procs else ""))
        elif users and used > expected + margin:
            reasons.append("%d MiB used, expected %d MiB (%s) + %d%% margin (%d MiB)" % (
                used, expected, "; ".join("%s %d MiB: %s" % (_who(e), r["expected_mib"], r["basis"] or "estimate")
                                          for e, r in zip(users, rows)), th["memory_margin_pct"], margin))
        if users and not preallocated and total and 100.0 * used / total >= th["memory_alert_pct"]:
            reasons.append("%.1f%% used, alert at %d%% (no service on it preallocates)"
                           % (100.0 * used / total, th["memory_alert_pct"]))
        warnings = []
        if reasons:
            warnings.append({"kind": "gpu.memory", "gpu": g["index"], "uuid": g["uuid"],
                             "message": "%s: memory %s" % (label, "; ".join(reasons))})
        if users and foreign:
            warnings.append({"kind": "gpu.foreign_process", "gpu": g["index"], "uuid": g["uuid"], "message": (
                "%s: %s; only %s should use this GPU" % (label, "; ".join(_process_line(p, names) for p in foreign),
                                                         " and ".join(_who(e) for e in users)))})
        notes = []
        util = (g.get("utilization") or {}).get("gpu_pct")
        low, high = th["utilization_target_pct"]
        verdict = None
        if users and util is not None:
            verdict = "above" if util > high else ("below" if util < low else "in target")
        if verdict in ("above", "below"):
            notes.append("%s: utilization %d%% %s the %d-%d%% target (capacity: %s)" % (
                label, util, "above" if util > high else "below", low, high,
                "add an instance or a GPU if it stays there" if util > high else "room for more load"))
        out["gpus"].append({
            "index": g["index"], "uuid": g["uuid"], "used_mib": used, "total_mib": total, "expected_mib": expected,
            "margin_mib": margin, "preallocated": preallocated, "services": rows, "utilization_pct": util,
            "utilization_verdict": verdict,
            "processes": [dict(p, container=names.get(p.get("container_id"))) for p in procs],
            "status": "warn" if warnings else "ok", "warnings": [w["message"] for w in warnings], "notes": notes})
        out["warnings"] += warnings
        out["notes"] += notes
    return out
