# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.gpu_failover (private): the guide's emergency procedures as pure
functions over the map, the live GPU facts and the host's failover record.

The record (``/etc/ragops/gpu-stack/failover.json``) is the one place an active failover lives:
one move per instance (container), each ``gpu`` (running on reserved GPUs, by UUID), ``cpu`` (its
CPU mode) or ``stopped`` (no healthy GPU and no CPU mode). ``apply_record`` turns the map's views
into what runs while the record is active; gpu_plan, the health check and the drift check all go
through it, so site.yml keeps the moves (changed=0) and never puts a service back on a failed GPU.
"""

from __future__ import annotations

import datetime
import itertools

from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import blocking_issues

RECORD_VERSION = 1
MODES = ("gpu", "cpu", "stopped")
# The guide's warning, repeated wherever a service runs in its CPU mode.
CPU_WARNING = "running on CPU: performance is much reduced (the guide's CPU fallback)"


class FailoverError(ValueError):
    """A record that does not fit the map or the host; ``errors`` has one message per problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(FailoverError, self).__init__("; ".join(self.errors))


def empty_record():
    return {"version": RECORD_VERSION, "moves": [], "last_auto_at": None}


def normalise_record(record):
    """The host's record (or nothing) in its current form; refuses a record this release cannot read."""
    if not record:
        return empty_record()
    if not isinstance(record, dict) or not isinstance(record.get("moves"), list):
        raise FailoverError(["failover record: not a mapping with a list of moves; restore it from a backup or remove "
                             "it (the services then go back to the map's GPUs on the next site.yml run)"])
    if record.get("version") != RECORD_VERSION:
        raise FailoverError(["failover record: version %r, this release reads version %d; upgrade the collection on "
                             "the controller" % (record.get("version"), RECORD_VERSION)])
    out = empty_record()
    out.update(record)
    return out


def moves_by_container(record):
    return dict((m["container_name"], m) for m in (record or {}).get("moves") or [])


def apply_record(views, record):
    """(views as they run while the record is active, stopped views, stale moves): a moved view gets
    its record's GPUs (UUIDs, allowed on the reserve) or its CPU mode; a stopped one is left out."""
    moves = moves_by_container(record)
    out, stopped = [], []
    for view in views:
        move = moves.pop(view["container_name"], None)
        if move is None or view["device"] != "gpu":
            out.append(view)
            continue
        moved = dict(view)
        moved["failover"] = move
        if move["mode"] == "gpu":
            moved["gpus"] = [g["uuid"] for g in move["to"]]
            moved["allow_reserved"] = True
            moved["tier"] = "secondary"  # on the reserve, where only secondaries may run
        elif move["mode"] == "cpu" and view.get("cpu_fallback") is not None:
            fallback = view["cpu_fallback"]
            moved["device"] = "cpu"
            moved["gpus"] = []
            moved["image"] = fallback.get("image") or view["image"]
            env = dict(view["env"])
            env.pop("CUDA_VISIBLE_DEVICES", None)
            env["DEVICE"] = "cpu"
            env.update(fallback.get("env") or {})
            moved["env"] = env
            moved["cpu_limits"] = dict((k, fallback[k]) for k in ("cpus", "memory") if fallback.get(k) is not None)
        else:
            stopped.append(dict(view, failover=move))
            continue
        out.append(moved)
    return out, stopped, list(moves.values())


def _gpu_ref(gpu):
    return {"index": gpu["index"], "uuid": gpu.get("uuid")}


def _resolve(refs, by_index, by_uuid):
    """A view's GPU entries -> live GPU dicts (None where the GPU is not there at all)."""
    out = []
    for ref in refs:
        out.append(by_index.get(ref) if isinstance(ref, int) else by_uuid.get(ref))
    return out


def _group_problems(view, gpus):
    """Why the view cannot run on these GPUs (one message per GPU or link), empty when it can."""
    problems = []
    tp = view["tensor_parallel"] if len(gpus) > 1 else 1
    for ref, gpu in zip(view["gpus"], gpus):
        if gpu is None:
            problems.append(("GPU %s" % ref, "not on this host"))
            continue
        for reason in blocking_issues(gpu, tp):
            problems.append(("GPU %d" % gpu["index"], reason))
    if tp > 1 and all(g is not None and "error" not in g for g in gpus):
        for start in range(0, len(gpus), tp):
            group = gpus[start:start + tp]
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    if b["index"] not in (a.get("nvlink_peers") or []):
                        problems.append(("GPUs %d-%d" % (a["index"], b["index"]),
                                         "no NVLink path inside the tensor-parallel group"))
    return problems


def _fits(view, gpu, limit_pct):
    per_gpu = float(view["vram_estimate_gb"]) / max(len(view["gpus"]), 1)
    return per_gpu <= gpu["memory"]["total_mib"] / 1024.0 * limit_pct / 100.0 + 1e-9


def _joined(view, combo):
    tp = view["tensor_parallel"] if len(combo) > 1 else 1
    for start in range(0, len(combo), tp):
        group = combo[start:start + tp]
        for i, a in enumerate(group):
            if any(b["index"] not in (a.get("nvlink_peers") or []) for b in group[i + 1:]):
                return False
    return True


def choose(view, candidates, numa, limit_pct):
    """The reserved GPUs a view moves to, or (None, why not). Candidates are healthy, free reserved
    GPUs; the VRAM estimate must fit under the limit, tensor-parallel groups need NVLink between every
    pair, GPUs on the failed GPUs' NUMA node are preferred, then the lowest indices (deterministic)."""
    need = len(view["gpus"])
    tp = view["tensor_parallel"] if need > 1 else 1
    healthy = [g for g in candidates if not blocking_issues(g, tp)]
    fitting = [g for g in healthy if _fits(view, g, limit_pct)]
    if len(healthy) < need:
        return None, "needs %d GPU(s), %d healthy free reserved GPU(s) left" % (need, len(healthy))
    if len(fitting) < need:
        return None, "needs %d GPU(s) with %.0f GB each under the %d%% limit, %d fit" % (
            need, float(view["vram_estimate_gb"]) / need, limit_pct, len(fitting))
    best = None
    for combo in itertools.combinations(sorted(fitting, key=lambda g: g["index"]), need):
        if not _joined(view, combo):
            continue
        key = (sum(1 for g in combo if numa is not None and g.get("numa_node") != numa), [g["index"] for g in combo])
        if best is None or key < best[0]:
            best = (key, list(combo))
    if best is None:
        return None, "no %d free reserved GPUs with an NVLink path between the tensor-parallel GPUs" % need
    return best[1], None


def failover(views, gpu_info, reserved, record, memory_limit_pct=90, now=None, origin="failover.yml"):
    """The new record and what changed: every view whose GPUs (mapped, or those of an earlier move)
    cannot run it moves to healthy free reserved GPUs, else to its CPU mode, else it is stopped. A
    view in its CPU mode or stopped moves onto GPUs when some are free again. Views are taken in map
    order, so the result depends only on the inputs."""
    record = normalise_record(record)
    gpus = list((gpu_info or {}).get("gpus", []))
    by_index = dict((g["index"], g) for g in gpus)
    by_uuid = dict((g["uuid"], g) for g in gpus if g.get("uuid"))
    moves = moves_by_container(record)
    running, _stopped, stale = apply_record(views, record)
    # GPUs in use: every view's current GPUs (after the record), whatever their health
    used = set()
    for view in running:
        if view["device"] == "gpu":
            used.update(g["index"] for g in _resolve(view["gpus"], by_index, by_uuid) if g is not None)
    free = [g for i, g in sorted(by_index.items()) if i in set(reserved) and i not in used and "error" not in g]
    changes, kept = [], []
    by_name = dict((v["container_name"], v) for v in running)
    for view in views:
        if view["device"] != "gpu":
            continue
        name = view["container_name"]
        move = moves.get(name)
        current = by_name.get(name)
        if move is not None and move["mode"] != "gpu":
            problems = [("GPUs", "none healthy and free when it moved")]
            origin_gpus = move["from"]
        else:
            live = _resolve(current["gpus"], by_index, by_uuid)
            problems = _group_problems(current, live)
            origin_gpus = [_gpu_ref(g) if g is not None else {"index": None, "uuid": ref}
                           for ref, g in zip(current["gpus"], live)]
        if not problems:
            if move is not None:
                kept.append(move)
            continue
        numa = next((g.get("numa_node") for g in (by_index.get(r["index"]) for r in origin_gpus) if g), None)
        chosen, why = choose(view, free, numa, memory_limit_pct)
        if chosen is None and move is not None and move["mode"] != "gpu":
            kept.append(move)  # still no GPU for it: stays as it is
            continue
        mapped = move["mapped"] if move else origin_gpus
        failed = [{"gpu": where, "reason": reason} for where, reason in problems]
        new = {"container_name": name, "service": view["name"], "instance": view["instance"], "mapped": mapped,
               "from": origin_gpus if move is None or move["mode"] == "gpu" else move["from"], "failed": failed,
               "at": now, "by": origin}
        if chosen is not None:
            free = [g for g in free if g not in chosen]
            new.update(mode="gpu", to=[_gpu_ref(g) for g in chosen],
                       note="on reserved GPU %s" % ",".join(str(g["index"]) for g in chosen))
        elif view.get("cpu_fallback") is not None:
            new.update(mode="cpu", to=[], note="no healthy GPU (%s): CPU mode; %s" % (why, CPU_WARNING))
        else:
            new.update(mode="stopped", to=[], note="no healthy GPU (%s) and no CPU mode (cpu_fallback): stopped"
                       % why)
        changes.append(new)
    out = empty_record()
    out["last_auto_at"] = record.get("last_auto_at")
    changed_names = set(c["container_name"] for c in changes)
    out["moves"] = [m for m in kept if m["container_name"] not in changed_names] + changes
    out["moves"].sort(key=lambda m: [v["container_name"] for v in views].index(m["container_name"])
                      if m["container_name"] in [v["container_name"] for v in views] else 999)
    return {"record": out, "changes": changes, "stale": stale}


def _parse(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")


def automatic(views, gpu_info, reserved, record, memory_limit_pct, now, min_interval_s):
    """The drift check's automatic failover: as failover(), at most once per ``min_interval_s``
    (counted from the last automatic run that moved something). ``skipped`` says why nothing was
    decided."""
    record = normalise_record(record)
    last = record.get("last_auto_at")
    if last and now and (_parse(now) - _parse(last)).total_seconds() < min_interval_s:
        preview = failover(views, gpu_info, reserved, record, memory_limit_pct, now, "drift check (automatic)")
        if preview["changes"]:
            return {"record": record, "changes": [], "stale": preview["stale"],
                    "skipped": "%d move(s) wait: the last automatic failover was at %s, less than %d s ago "
                               "(gpu_stack_failover_auto_interval_s); run playbooks/failover.yml to move now"
                               % (len(preview["changes"]), last, min_interval_s)}
    out = failover(views, gpu_info, reserved, record, memory_limit_pct, now, "drift check (automatic)")
    if out["changes"]:
        out["record"]["last_auto_at"] = now
    out["skipped"] = None
    return out


def failback(views, gpu_info, record, memory_limit_pct=90):
    """Which moves can go back to the map's GPUs now (healthy -- or a new board at that index -- and
    not taken by another service), in record order, and which must wait and why. The caller takes
    them one at a time."""
    record = normalise_record(record)
    gpus = list((gpu_info or {}).get("gpus", []))
    by_index = dict((g["index"], g) for g in gpus)
    by_uuid = dict((g["uuid"], g) for g in gpus if g.get("uuid"))
    by_name = dict((v["container_name"], v) for v in views)
    ready, waiting = [], []
    for move in record["moves"]:
        view = by_name.get(move["container_name"])
        if view is None:
            ready.append({"container_name": move["container_name"], "service": move["service"],
                          "note": "no longer in the map: the record entry is dropped"})
            continue
        live = _resolve(view["gpus"], by_index, by_uuid)
        problems = _group_problems(view, live)
        others = [m for m in record["moves"] if m is not move and m["mode"] == "gpu"]
        taken = set(t["index"] for m in others for t in m["to"]) & set(g["index"] for g in live if g is not None)
        if taken:
            problems.append(("GPU %s" % ",".join(str(i) for i in sorted(taken)), "runs another moved service"))
        if problems:
            waiting.append({"container_name": move["container_name"], "service": move["service"],
                            "why": "; ".join("%s: %s" % p for p in problems)})
        else:
            ready.append({"container_name": move["container_name"], "service": move["service"],
                          "note": "back to GPU %s" % ",".join(str(g["index"]) for g in live)})
    return {"ready": ready, "waiting": waiting}


def without(record, container_name):
    out = dict(normalise_record(record))
    out["moves"] = [m for m in out["moves"] if m["container_name"] != container_name]
    return out


def describe(move):
    """One line per move, for tables, reports and the closing message."""
    where = ("GPU %s" % ",".join(str(g["index"]) for g in move["to"])) if move["mode"] == "gpu" else (
        "CPU" if move["mode"] == "cpu" else "nothing (stopped)")
    origin = ",".join(str(g["index"]) for g in move["from"] if g.get("index") is not None) or "?"
    why = "; ".join("%s %s" % (f["gpu"], f["reason"]) for f in move["failed"])
    return "%s (%s): GPU %s -> %s since %s (%s)" % (move["container_name"], move["service"], origin, where,
                                                    move.get("at") or "?", why)


__all__ = ["CPU_WARNING", "FailoverError", "apply_record", "automatic", "choose", "describe", "empty_record", "failback",
           "failover", "moves_by_container", "normalise_record", "without"]
