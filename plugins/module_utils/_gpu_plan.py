# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.gpu_plan (private): the inventory's service map + live gpu_info ->
the resolved, validated allocation plan, or every reason it cannot be deployed.

Pure functions over plain data; unit-tested directly. Nothing here touches the host.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import LABEL_PREFIX, parse_size
from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import ESTIMATE_LABEL
from ansible_collections.ragops.gpu_stack.plugins.module_utils._failover import (
    CPU_WARNING, FailoverError, apply_record, describe, normalise_record)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import blocking_issues
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_load import check as check_thresholds
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import (
    MAP_ARGS, ServiceMapError, check_settings, instance_views, preallocation, validate_services, who, with_defaults)

PLAN_VERSION = 1
CONTAINER_MODELS_PATH = "/models"
# Plan entry keys outside the deployed configuration's hash: the model manifest (its files are
# checked by hf_models). The hashes label running containers, so what they cover must not change
# between releases: a new entry key that does not change what is deployed belongs here, or is added
# after hashing (as `container`, derived from the hashed keys), or every upgrade would recreate
# every container (tests/unit/.../test_gpu_plan.py compares with the previous release).
UNHASHED = ("model_spec",)
# Where instances behind the load balancer listen, whatever gpu_stack_bind_address is: only the
# load balancer on the same host reaches them.
BACKEND_ADDRESS = "127.0.0.1"
# Set in the containers of instances behind the load balancer: the container's name, so that a
# service can say which instance served a request (the stand-ins' X-Served-By header).
INSTANCE_ENV = "RAG_INSTANCE"
# Every container of the collection carries it; its value is the service's name.
SERVICE_LABEL = LABEL_PREFIX + "service"


class PlanError(ServiceMapError):
    """The map cannot be deployed on this host. ``errors`` has one message per problem."""


def _fmt_gpus(gpus):
    return "[%s]" % ", ".join(str(g) for g in gpus)


def _gpu_label(gpu):
    return "GPU %d (%s)" % (gpu["index"], gpu["uuid"])


def _ranges(indices):
    """[5, 6, 7] -> '5-7'; [2, 3] -> '2-3'; [0] -> '0'; [0, 4] -> '0, 4'."""
    indices = sorted(indices)
    if not indices:
        return "-"
    if indices == list(range(indices[0], indices[-1] + 1)) and len(indices) > 1:
        return "%d-%d" % (indices[0], indices[-1])
    return ", ".join(str(i) for i in indices)


def _host_gpus(gpu_info):
    """index -> gpu dict, uuid -> gpu dict, from gpu_info's result."""
    by_index, by_uuid = {}, {}
    for g in (gpu_info or {}).get("gpus", []):
        by_index[g["index"]] = g
        if g.get("uuid"):
            by_uuid[g["uuid"]] = g
    return by_index, by_uuid


def _resolve_gpus(svc, by_index, by_uuid, errors, gpu_count, faults):
    """The service's GPU entries resolved to {index, uuid, name, memory_total_mib, ...}; ``faults``
    gets {index, uuid, reason} for each GPU it cannot run on."""
    resolved = []
    label = who(svc)
    tp = svc["tensor_parallel"] if len(svc["gpus"]) > 1 else 1
    for ref in svc["gpus"]:
        if isinstance(ref, int):
            gpu = by_index.get(ref)
            if gpu is None:
                errors.append("%s: GPU %d does not exist on this host (it has GPUs 0-%d); use one of "
                              "those indices" % (label, ref, gpu_count - 1))
                continue
        else:
            gpu = by_uuid.get(ref)
            if gpu is None:
                known = ", ".join("%d=%s" % (g["index"], g["uuid"]) for g in sorted(by_uuid.values(),
                                                                                    key=lambda g: g["index"]))
                errors.append("%s: GPU %s is not on this host (a replaced board has a new UUID); "
                              "pin one of: %s" % (label, ref, known or "none visible"))
                continue
        if "error" in gpu or not gpu.get("uuid"):
            errors.append("%s: GPU %d is unusable (NVML: %s); run playbooks/failover.yml to move the service to a "
                          "reserved GPU, or replace the board" % (label, gpu["index"], gpu.get("error", "no UUID")))
            faults.append({"index": gpu["index"], "uuid": gpu.get("uuid"), "reason": "lost", "message": errors[-1]})
            continue
        blocking = blocking_issues(gpu, tp)
        if blocking:
            errors.append("%s: GPU %d (%s) is unhealthy: %s; run playbooks/failover.yml to move the service to a "
                          "reserved GPU, or fix the GPU first" % (label, gpu["index"], gpu["uuid"], "; ".join(blocking)))
            faults.append({"index": gpu["index"], "uuid": gpu["uuid"], "reason": "failed: " + "; ".join(blocking),
                           "message": errors[-1]})
            continue
        resolved.append(gpu)
    return resolved


def _cuda_visible(svc, resolved, warnings, errors):
    """The container's CUDA_VISIBLE_DEVICES: container-local ordinals, or omitted."""
    n = len(resolved)
    env = svc["env"]
    given = env.get("CUDA_VISIBLE_DEVICES")
    host_indices = [g["index"] for g in resolved]
    ordinals = ",".join(str(i) for i in range(n))
    if given is not None:
        tokens = [t.strip() for t in given.split(",") if t.strip()]
        uuids = [g["uuid"] for g in resolved]
        if all(t.isdigit() for t in tokens) and tokens:
            values = [int(t) for t in tokens]
            if values != list(range(n)):
                action = "dropped it" if svc["cuda_visible_devices"] == "omit" else "rewrote it to %s" % ordinals
                if sorted(values) == sorted(host_indices):
                    why = "names host GPU indices"
                else:
                    why = "names ordinals the container does not have"
                warnings.append("%s: CUDA_VISIBLE_DEVICES=%s %s; inside the container its GPUs %s are "
                                "numbered %s, so %s" % (who(svc), given, why, _fmt_gpus(host_indices), ordinals,
                                                        action))
        elif tokens and all(t in uuids for t in tokens):
            pass  # UUIDs of its own GPUs: valid inside the container
        else:
            errors.append("%s: CUDA_VISIBLE_DEVICES=%s is neither ordinals nor the UUIDs of its GPUs %s; "
                          "remove it from env (the plan sets it)" % (who(svc), given, _fmt_gpus(host_indices)))
    if svc["cuda_visible_devices"] == "omit":
        return None
    return ordinals


def _reserved_errors(svc, indices, reserved, errors):
    """Primaries stay off the reserve unless the map says allow_reserved; secondaries stay on it."""
    if svc["tier"] == "primary" and not svc["allow_reserved"]:
        on_reserved = [g for g in indices if g in reserved]
        if on_reserved:
            errors.append("%s: GPU %s is reserved (gpu_stack_reserved_gpus: %s); use an unreserved GPU, or mark the "
                          "service tier: secondary (scaling / failover), or set allow_reserved: true to grow it onto "
                          "the reserve" % (who(svc), _ranges(on_reserved), _fmt_gpus(sorted(reserved))))
    elif svc["tier"] == "secondary" and reserved:
        off_reserve = [g for g in indices if g not in reserved]
        if off_reserve:
            errors.append("%s: tier secondary, but GPU %s is not reserved (gpu_stack_reserved_gpus: %s); put it on a "
                          "reserved GPU, or set tier: primary to run it outside the reserve"
                          % (who(svc), _ranges(off_reserve), _fmt_gpus(sorted(reserved))))


def _check_static(svc, reserved, errors):
    if svc["device"] == "cpu":
        return
    gpus = svc["gpus"]
    tp = svc["tensor_parallel"]
    if tp > len(gpus):
        errors.append("%s: tensor_parallel %d needs %d GPUs, got %s; add a GPU or set tensor_parallel: %d"
                      % (who(svc), tp, tp, _fmt_gpus(gpus), len(gpus)))
    elif len(gpus) % tp:
        errors.append("%s: %d GPUs %s do not split into tensor-parallel groups of %d; give a multiple of %d GPUs (more "
                      "GPUs than tensor_parallel run data-parallel workers) or set tensor_parallel: %d"
                      % (who(svc), len(gpus), _fmt_gpus(gpus), tp, tp, len(gpus)))
    given = svc["env"].get("TENSOR_PARALLEL_SIZE")
    if given is not None and given.strip() != str(tp):
        errors.append("%s: env TENSOR_PARALLEL_SIZE=%s but tensor_parallel is %d; set TENSOR_PARALLEL_SIZE: \"%d\" "
                      "in its env" % (who(svc), given, tp, tp))
    if svc.get("max_gpus") and len(gpus) > svc["max_gpus"]:
        errors.append("%s: %d GPUs %s, but the service allows at most %d (max_gpus); remove GPUs or raise max_gpus"
                      % (who(svc), len(gpus), _fmt_gpus(gpus), svc["max_gpus"]))
    _reserved_errors(svc, [g for g in gpus if isinstance(g, int)], reserved, errors)


def _check_topology(svc, resolved, errors, nvswitch, all_gpus):
    """Each tensor-parallel group (the GPUs in listed order, tensor_parallel at a time) needs NVLink
    between every pair; data-parallel groups need nothing between them."""
    tp = svc["tensor_parallel"]
    for start in range(0, len(resolved), tp):
        group = resolved[start:start + tp]
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b["index"] not in (a.get("nvlink_peers") or []):
                    pairs = sorted(set(tuple(sorted((g["index"], p))) for g in all_gpus
                                       for p in g.get("nvlink_peers", [])))
                    hint = "GPUs joined by NVLink here: %s" % (", ".join("%d-%d" % p for p in pairs) or "none") \
                        if not nvswitch else "an NVLink link is down"
                    errors.append("%s: tensor-parallel GPUs %d and %d have no NVLink path between them (%s); "
                                  "choose GPUs with an NVLink path between every pair, or set tensor_parallel: 1"
                                  % (who(svc), a["index"], b["index"], hint))


def _container_env(svc, resolved, cvd):
    env = dict(svc["env"])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("NVIDIA_VISIBLE_DEVICES", None)
    if svc["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
        env["DEVICE"] = env.get("DEVICE", "cpu")
    else:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(g["uuid"] for g in resolved)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        if cvd is not None:
            env["CUDA_VISIBLE_DEVICES"] = cvd
        workers = len(resolved) // svc["tensor_parallel"]
        if workers > 1:  # only then: one-worker services keep the environment (and hash) they had
            env["DATA_PARALLEL_SIZE"] = str(workers)
    model = svc["model"]
    env.setdefault("HF_HOME", CONTAINER_MODELS_PATH)
    env["MODEL_ID"] = model["repo_id"]
    env["MODEL_REVISION"] = model["revision"]
    return env


def _hashed(entry):
    return dict((k, v) for k, v in entry.items() if k not in UNHASHED)


def container_args(entry):
    """The ragops.gpu_stack.gpu_container options for one plan entry: roles, the drift check and the
    benchmarks pass this mapping through unchanged. Unset options are left out (the module's
    defaults apply)."""
    args = {
        "name": entry["container_name"], "image": entry["image"], "gpus": entry["gpus"], "env": entry["env"],
        "ports": ["%s:%s:%s" % (p["host_ip"], p["host_port"], p["container_port"]) for p in entry["ports"]],
        "volumes": entry["volumes"], "shm_size": entry["shm_size"], "ipc_mode": entry["ipc"],
        "ulimits": entry["ulimits"], "healthcheck": entry["healthcheck"], "labels": entry["labels"],
        "command": entry["command"], "user": entry["user"],
    }
    args.update(entry.get("cpu_limits") or {})
    return dict((k, v) for k, v in args.items() if v is not None)


def hardening_args(view, container):
    """The service's hardening options for gpu_container (cap_drop ALL, what it adds back, read-only root,
    tmpfs, pids limit, memory limit). Outside the configuration hash: gpu_container compares them on the
    containers it created with them, so adding them restarted nothing on upgrade. A CPU mode's own
    memory limit wins over the service's."""
    args = {"cap_drop": ["ALL"], "cap_add": list(view["cap_add"]), "read_only": view["read_only"],
            "tmpfs": dict(view["tmpfs"]), "pids_limit": view["pids_limit"]}
    if view["memory"] is not None and "memory" not in container:
        args["memory"] = view["memory"]
    return args


def _expected_memory(view, entry, by_index):
    """What the service is expected to hold on each of its GPUs (MiB by UUID) and why: the fraction
    its preallocation variable asks for (vLLM's GPU_MEMORY_UTILIZATION) of each GPU, else its VRAM
    estimate split over its GPUs."""
    gpus = entry["gpus"]
    env = entry["env"] or {}
    var = view["preallocation_env"]
    fraction = preallocation(env[var]) if var in env else None
    out = {"per_gpu_mib": {}, "preallocated": bool(fraction and gpus), "basis": None}
    if not gpus:
        return out
    estimate = float(entry["vram_estimate_gb"])
    for g in gpus:
        total = ((by_index.get(g["index"]) or {}).get("memory") or {}).get("total_mib")
        out["per_gpu_mib"][g["uuid"]] = int(total * fraction) if fraction and total else \
            int(round(estimate * 1024 / len(gpus)))
    out["basis"] = ("%s=%s of each GPU" % (var, env[var]) if fraction
                    else "vram_estimate_gb %g over %d GPU%s" % (estimate, len(gpus), "s" if len(gpus) > 1 else ""))
    return out


def _digest(data):
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def build_plan(services, gpu_info=None, overrides=None, common_env=None, bind_address="127.0.0.1",
               reserved_gpus=None, memory_limit_pct=90, expected_gpus=None, models_root="/opt/models/hf",
               load_balancer="auto", failover=None, strict=True, image_sources=None, allow_unpinned_images=False):
    """Validate and resolve. Returns {'plan': ..., 'warnings': [...], 'table': ..., 'errors': [...]}.

    ``failover`` is the host's failover record: its moves replace the map's GPUs of the services they
    name (plan entries carry ``failover``). With ``strict`` (the default) any problem raises PlanError;
    without, the plan is built from what resolves and ``errors`` lists the rest (the health check:
    it shows every service even when the map cannot be deployed as it is)."""
    errors, warnings = [], []
    given = with_defaults(dict(services=services, overrides=overrides, common_env=common_env,
                               bind_address=bind_address, reserved_gpus=reserved_gpus,
                               memory_limit_pct=memory_limit_pct, expected_gpus=expected_gpus,
                               models_root=models_root, load_balancer=load_balancer))
    settings = check_settings(given)
    overrides, common_env, bind_address = given["overrides"], given["common_env"], given["bind_address"]
    memory_limit_pct, models_root, load_balancer = given["memory_limit_pct"], given["models_root"], given["load_balancer"]
    try:
        normalised = validate_services(services, overrides, common_env if not settings else {},
                                       bind_address if not settings else "127.0.0.1", models_root)
    except ServiceMapError as exc:
        raise PlanError(settings + exc.errors)
    if settings:
        raise PlanError(settings)
    reserved = set(reserved_gpus or [])
    active = [s for s in normalised if s["enabled"]]
    balanced = _balanced(active, load_balancer, errors)
    record = normalise_record(failover)
    views, stopped, stale = apply_record([v for svc in active for v in instance_views(svc)], record)
    for move in stale:
        warnings.append("failover record: %s is not in the map any more; playbooks/failback.yml drops the entry"
                        % move["container_name"])
    for view in views:
        _check_static(view, reserved, errors)
    _check_backend_ports(views, balanced, errors)

    live = gpu_info is not None and gpu_info.get("driver_state", "ok") == "ok" and gpu_info.get("gpus") is not None
    by_index, by_uuid = _host_gpus(gpu_info) if live else ({}, {})
    gpu_count = (gpu_info or {}).get("gpu_count", 0)
    if live and expected_gpus:
        want_count = expected_gpus.get("count")
        want_name = expected_gpus.get("name")
        names = sorted(set(g.get("name") for g in by_index.values() if g.get("name")))
        if want_count is not None and gpu_count != want_count:
            found = ", ".join(names) or "-"
            errors.append("host: NVML sees %d GPU(s) (%s), the map expects %d (gpu_stack_expected_gpus); a GPU may be "
                          "lost or this inventory is for another machine" % (gpu_count, found, want_count))
        if want_name and names and names != [want_name]:
            errors.append("host: GPUs are %s, the map expects %s (gpu_stack_expected_gpus.name); use the inventory "
                          "made for this machine" % (", ".join(names), want_name))
        if expected_gpus.get("nvswitch") and not gpu_info.get("nvswitch"):
            errors.append("host: no NVSwitch found, the map expects an NVSwitch system (gpu_stack_expected_gpus."
                          "nvswitch); the fabric manager and the tensor-parallel layout assume one")

    resolved_services = []
    usage = {}  # index -> [(service, vram_gb, shares)]
    for svc in views:
        entry = {"name": svc["name"], "container_name": svc["container_name"], "image": svc["image"],
                 "device": svc["device"], "tier": svc["tier"]}
        resolved = []
        faults = []
        cvd = None
        if svc["device"] == "gpu":
            if live:
                resolved = _resolve_gpus(svc, by_index, by_uuid, errors, gpu_count, faults)
                if len(resolved) == len(svc["gpus"]):
                    # GPUs named by UUID: the static check could not see their indices
                    _reserved_errors(svc, [g["index"] for g in resolved if g["uuid"] in svc["gpus"]], reserved, errors)
                    _check_topology(svc, resolved, errors, gpu_info.get("nvswitch", False), list(by_index.values()))
                for g in resolved:
                    usage.setdefault(g["index"], []).append(
                        (svc, float(svc["vram_estimate_gb"]) / max(len(svc["gpus"]), 1)))
                for g in (g for g in resolved if g.get("status") == "warn"):
                    warnings.append("%s: GPU %d is in warning state: %s"
                                    % (who(svc), g["index"], "; ".join(g.get("reasons", []))))
            cvd = _cuda_visible(svc, resolved if live else [{"index": i, "uuid": None} for i in svc["gpus"]],
                                warnings, errors)
        entry["gpus"] = [{"index": g["index"], "uuid": g["uuid"], "name": g.get("name"),
                          "pci_bus_id": g.get("pci_bus_id")} for g in resolved]
        entry["gpu_uuids"] = [g["uuid"] for g in resolved]
        behind = svc["name"] in balanced
        entry["env"] = _container_env(svc, resolved, cvd) if (live or svc["device"] == "cpu") else None
        if behind and entry["env"] is not None:
            entry["env"][INSTANCE_ENV] = svc["container_name"]
        if behind:  # the load balancer listens on the client port; the instance on a loopback port of its own
            entry["ports"] = [{"host_ip": BACKEND_ADDRESS, "host_port": svc["backend_port"],
                               "container_port": svc["container_port"]}]
            entry["health_url"] = "http://%s:%d%s" % (BACKEND_ADDRESS, svc["backend_port"], svc["health_path"])
        else:
            entry["ports"] = [{"host_ip": svc["bind_address"], "host_port": svc["port"],
                               "container_port": svc["container_port"]}]
            entry["health_url"] = "http://%s:%d%s" % ("127.0.0.1" if svc["bind_address"] in ("0.0.0.0", "127.0.0.1")
                                                      else svc["bind_address"], svc["port"], svc["health_path"])
        entry["port"] = svc["port"]
        entry["health_path"] = svc["health_path"]
        entry["volumes"] = ["%s:%s:ro" % (models_root, CONTAINER_MODELS_PATH)] + svc["volumes"]
        entry["shm_size"] = svc["shm_size"]
        entry["shm_size_bytes"] = parse_size(svc["shm_size"]) if svc["shm_size"] else None
        entry["ipc"] = svc["ipc"]
        entry["ulimits"] = svc["ulimits"]
        entry["healthcheck"] = svc["healthcheck"]
        entry["command"] = svc["command"]
        entry["user"] = svc["user"]
        entry["model"] = {"repo_id": svc["model"]["repo_id"], "revision": svc["model"]["revision"]}
        entry["model_spec"] = svc["model"]
        entry["vram_estimate_gb"] = svc["vram_estimate_gb"]
        entry["precision"] = svc["precision"]
        entry["tensor_parallel"] = svc["tensor_parallel"]
        entry["purpose"] = svc["purpose"]
        if svc.get("cpu_limits"):  # only in a failover's CPU mode: every other entry hashes as before
            entry["cpu_limits"] = dict(svc["cpu_limits"])
            host_cpus = (gpu_info or {}).get("host_cpus")
            if host_cpus and entry["cpu_limits"].get("cpus", 0) > host_cpus:
                warnings.append("%s: cpu_fallback.cpus %s is more than the host's %d CPUs; limited to %d"
                                % (who(svc), entry["cpu_limits"]["cpus"], host_cpus, host_cpus))
                entry["cpu_limits"]["cpus"] = host_cpus
        if faults:
            entry["gpu_faults"] = faults
        resolved_services.append((entry, svc))

    # One GPU, one service -- unless every service on it opts in and the VRAM fits.
    for index in sorted(usage):
        users = usage[index]
        gpu = by_index[index]
        total_gb = gpu["memory"]["total_mib"] / 1024.0
        limit_gb = total_gb * memory_limit_pct / 100.0
        if len(users) > 1 and not all(s["share_gpus"] for s, _v in users):
            names = " and ".join("'%s'" % s["name"] + (" (instance '%s')" % s["container_name"] if s["instance"] else "")
                                 for s, _v in users)
            errors.append("services %s both use %s; give each its own GPU, or set share_gpus: true on all of them "
                          "when their VRAM estimates fit" % (names, _gpu_label(gpu)))
        used = sum(v for _s, v in users)
        if used > limit_gb + 1e-9:
            parts = ", ".join("%s %.1f GB" % (s["container_name"] if s["instance"] else s["name"], v) for s, v in users)
            errors.append("%s: VRAM estimates %.1f GB (%s) exceed the limit %.1f GB (%d%% of %.0f GB); lower the "
                          "estimates, move a service, or raise gpu_stack_gpu_memory_limit_pct"
                          % (_gpu_label(gpu), used, parts, limit_gb, memory_limit_pct, total_gb))
    if image_sources is not None:
        _check_image_pins(active, image_sources, allow_unpinned_images, errors, warnings)
    if errors and strict:
        raise PlanError(errors)

    views_by_entry = resolved_services
    resolved_services = [e for e, _v in views_by_entry]
    for entry in resolved_services:
        entry["config_hash"] = _digest(_hashed(entry))
        entry["labels"] = {
            SERVICE_LABEL: entry["name"],
            LABEL_PREFIX + "gpu-uuids": ",".join(entry["gpu_uuids"]),
            LABEL_PREFIX + "config-hash": entry["config_hash"],
            LABEL_PREFIX + "model": entry["model"]["repo_id"],
            LABEL_PREFIX + "model-revision": entry["model"]["revision"],
        }
    plan = {
        "version": PLAN_VERSION,
        "resolved": live,
        "services": resolved_services,
        "reserved_gpus": sorted(reserved),
        "memory_limit_pct": memory_limit_pct,
        "gpus": _gpu_table(resolved_services, by_index, reserved, normalised) if live else [],
    }
    plan["hash"] = _digest({"services": [_hashed(s) for s in resolved_services], "reserved": plan["reserved_gpus"]})
    for entry, view in views_by_entry:
        entry["labels"][LABEL_PREFIX + "plan-hash"] = plan["hash"]
        entry["labels"][ESTIMATE_LABEL] = "%g" % float(entry["vram_estimate_gb"])
        entry["container"] = container_args(entry)
        entry["container"].update(hardening_args(view, entry["container"]))
        # After hashing: derived from what is hashed, so adding them recreates nothing on upgrade.
        entry["instance"] = view["instance"]
        entry["behind_load_balancer"] = view["name"] in balanced
        entry["backend_port"] = view["backend_port"] if entry["behind_load_balancer"] else None
        entry["failover"] = _move_summary(view.get("failover"))
        entry["thresholds"] = dict(view["thresholds"])
        entry["gpu_memory"] = _expected_memory(view, entry, by_index)
    plan["service_label"] = SERVICE_LABEL
    plan["load_balancer"] = _load_balancer(normalised, views_by_entry, balanced, load_balancer)
    plan["disabled_services"] = [{"name": v["name"], "container_name": v["container_name"]}
                                 for s in normalised if not s["enabled"] for v in instance_views(s)]
    plan["fallback_images"] = sorted(set((s["cpu_fallback"].get("image") or s["image"]) for s in active
                                         if s.get("cpu_fallback") is not None))
    plan["stopped_services"] = [{"name": v["name"], "container_name": v["container_name"],
                                 "failover": _move_summary(v["failover"])} for v in stopped]
    plan["failover"] = {"active": bool(record["moves"]), "moves": record["moves"],
                        "lines": [describe(m) for m in record["moves"]]}
    used = set(g["index"] for e in resolved_services for g in e["gpus"])
    plan["reserve_left"] = sorted(reserved - used) if live else sorted(reserved - set(
        g for v in views for g in v["gpus"] if isinstance(g, int)))
    table = allocation_table(normalised, reserved, by_index)
    if record["moves"]:
        table += "\nFailover active (playbooks/failback.yml when the GPUs are healthy again):\n" + "\n".join(
            "  " + line for line in plan["failover"]["lines"])
    # each failed GPU of a service is on its plan entry (gpu_faults); errors holds the other problems
    reported = set(f["message"] for e in resolved_services for f in e.get("gpu_faults", []))
    return {"plan": plan, "warnings": warnings, "table": table, "errors": [e for e in errors if e not in reported],
            "map": normalised}


def _check_image_pins(active, image_sources, allow, errors, warnings):
    """Every image a service runs (its instances' and its CPU mode's too) has a pinned image ID in
    gpu_stack_image_sources: a tag alone can be moved to another build."""
    users = {}
    for svc in active:
        images = [svc["image"]] + [i["image"] for i in svc["instances"] if i.get("image")]
        if svc.get("cpu_fallback") is not None and svc["cpu_fallback"].get("image"):
            images.append(svc["cpu_fallback"]["image"])
        for image in images:
            users.setdefault(image, [])
            if svc["name"] not in users[image]:
                users[image].append(svc["name"])
    for image in sorted(users):
        source = image_sources.get(image)
        if isinstance(source, dict) and isinstance(source.get("id"), str) and source["id"].startswith("sha256:"):
            continue
        who_uses = ", ".join("service '%s'" % n for n in users[image])
        if allow:
            warnings.append("%s: image %s runs without a pinned image ID (gpu_stack_allow_unpinned_images: true); "
                            "a tag can be moved to another build" % (who_uses, image))
        else:
            errors.append("%s: image %s has no pinned image ID; a tag can be moved to another build. Read it with "
                          "`docker image inspect --format '{{.Id}}' %s` where the image was built (docker load prints "
                          "it too) and add it: gpu_stack_image_sources: {%s: {tarball: ..., sha256: ..., id: "
                          "\"sha256:...\"}} (or {registry: true, id: ...}); or set gpu_stack_allow_unpinned_images: "
                          "true, warned on every run" % (who_uses, image, image, image))


def _move_summary(move):
    """What a plan entry says about its failover move (None: it runs where the map says)."""
    if not move:
        return None
    return {"mode": move["mode"], "from": move["from"], "to": move["to"], "failed": move["failed"],
            "at": move.get("at"), "note": move.get("note"), "line": describe(move),
            "warning": CPU_WARNING if move["mode"] == "cpu" else None}


def _balanced(active, mode, errors):
    """Names of the services behind the load balancer: those with more than one instance (auto), every
    service (all), or none (none, which refuses a service with instances)."""
    multi = [s["name"] for s in active if s["instances"]]
    if mode == "none":
        for name in multi:
            errors.append("service '%s': has %d instances, which need the load balancer in front of them; set "
                          "gpu_stack_load_balancer: auto (or all), or remove its instances"
                          % (name, 1 + len(next(s for s in active if s["name"] == name)["instances"])))
        return set()
    if mode == "all":
        return set(s["name"] for s in active)
    return set(multi)


def _check_backend_ports(views, balanced, errors):
    """Loopback ports of instances behind the load balancer: in range, unique, not a client port."""
    taken = dict((v["port"], "service '%s' (client port)" % v["name"]) for v in views if v["instance"] == 0)
    for view in (v for v in views if v["name"] in balanced):
        port = view["backend_port"]
        if not 1 <= port <= 65535:
            errors.append("%s: backend port %d is out of range (port + %d); set backend_port"
                          % (who(view), port, port - view["port"]))
        elif port in taken:
            errors.append("%s: backend port %d is already used by %s; set backend_port to a free loopback port"
                          % (who(view), port, taken[port]))
        taken[port] = who(view)


def _load_balancer(normalised, views_by_entry, balanced, mode):
    """What the load_balancer role configures: per balanced service its client port and its instances."""
    services = []
    for svc in (s for s in normalised if s["name"] in balanced):
        servers = [{"name": e["container_name"], "address": BACKEND_ADDRESS, "port": v["backend_port"]}
                   for e, v in views_by_entry if v["name"] == svc["name"]]
        services.append({"name": svc["name"], "port": svc["port"], "bind_address": svc["bind_address"],
                         "health_path": svc["health_path"], "servers": servers})
    return {"mode": mode, "enabled": bool(services), "services": services}


def _gpu_table(services, by_index, reserved, normalised):
    rows = []
    owners = {}
    for s in services:
        for g in s["gpus"]:
            owners.setdefault(g["index"], []).append(s["name"])
    for index in sorted(by_index):
        g = by_index[index]
        rows.append({"index": index, "uuid": g.get("uuid"), "services": owners.get(index, []),
                     "reserved": index in reserved, "status": g.get("status")})
    return rows


def allocation_table(normalised, reserved, by_index=None):
    """The guide's GPU Distribution Map, from the data: GPU | Service | VRAM Usage | Model | Purpose. One
    row per instance; the reserved row shows the reserve that is left."""
    lines = ["| GPU ID | Service | VRAM Usage | Model | Purpose |", "|--------|---------|------------|-------|---------|"]
    rows = []
    used = set()
    for svc in normalised:
        if not svc["enabled"] or svc["device"] != "gpu":
            continue
        for view in instance_views(svc):
            idx = [g for g in view["gpus"] if isinstance(g, int)]
            used.update(idx)
            key = min(idx) if idx else 999
            label = _ranges(idx) if idx else ", ".join(str(g) for g in view["gpus"])
            vram = view["vram_estimate_gb"]
            name = svc["name"].upper() if len(svc["name"]) <= 3 else svc["name"].capitalize()
            if view["instance"]:
                name += " (%s)" % view["container_name"]
            rows.append((key, "| %s | %s | ~%sGB | %s | %s |" % (
                label, name, int(vram) if float(vram).is_integer() else round(vram, 1), svc["model"]["repo_id"],
                svc["purpose"] or "-")))
    left = sorted(set(reserved) - used)
    if left:
        per_gpu = None
        if by_index:
            totals = [by_index[i]["memory"]["total_mib"] for i in left if i in by_index and "memory" in by_index[i]]
            per_gpu = totals[0] / 1024.0 if totals else None
        vram = "~%dGB" % int(per_gpu * len(left)) if per_gpu else "-"
        rows.append((min(left), "| %s | Reserved | %s | - | Scaling and additional services |"
                     % (_ranges(left), vram)))
    lines += [r for _k, r in sorted(rows)]
    if reserved and len(left) < len(reserved):
        lines.append("Reserve left: %s (%d of %d reserved GPUs: %s)"
                     % ("GPU " + _ranges(left) if left else "none", len(left), len(reserved), _ranges(reserved)))
    return "\n".join(lines)


def render_allocation_table(services, overrides=None, common_env=None, reserved_gpus=None, gpu_memory_gb=80):
    """The table without a live host (README, docs): reserved VRAM from a nominal GPU size."""
    normalised = validate_services(services, overrides, common_env)
    fake = dict((i, {"memory": {"total_mib": int(gpu_memory_gb * 1024)}}) for i in (reserved_gpus or []))
    return allocation_table(normalised, set(reserved_gpus or []), fake)


# The gpu_plan task: its argument spec and its result, shared by the module and the action plugin (which
# runs it in the controller's process: a plan is pure computation over the map and the GPU facts).
PLAN_ARGS = dict(MAP_ARGS, gpu_info=dict(type="dict"), failover=dict(type="dict", default={}),
                 strict=dict(type="bool", default=True), thresholds=dict(type="dict", default={}),
                 gpu_thresholds=dict(type="dict", default={}), image_sources=dict(type="dict"),
                 allow_unpinned_images=dict(type="bool", default=False))


def plan_task(p):
    """The task's result from its validated parameters (``failed`` set when the map cannot be deployed)."""
    bad = check_thresholds(p["thresholds"], p["gpu_thresholds"])
    if bad:
        return {"failed": True, "msg": "the GPU thresholds cannot be used: " + " | ".join(bad), "errors": bad,
                "service_label": SERVICE_LABEL}
    try:
        result = build_plan(p["services"], gpu_info=p["gpu_info"], overrides=p["overrides"],
                            common_env=p["common_env"], bind_address=p["bind_address"],
                            reserved_gpus=p["reserved_gpus"], memory_limit_pct=p["memory_limit_pct"],
                            expected_gpus=p["expected_gpus"], models_root=p["models_root"],
                            load_balancer=p["load_balancer"], failover=p["failover"], strict=p["strict"],
                            image_sources=p["image_sources"], allow_unpinned_images=p["allow_unpinned_images"])
    except (PlanError, FailoverError) as exc:
        return {"failed": True, "msg": "the GPU map cannot be deployed: " + " | ".join(exc.errors), "errors": exc.errors,
                "service_label": SERVICE_LABEL}
    return {"changed": False, "plan": result["plan"], "table": result["table"], "warnings_list": result["warnings"],
            "errors": result["errors"], "service_label": SERVICE_LABEL, "map": result["map"]}
