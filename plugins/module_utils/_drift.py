# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.drift_info (private): compare a host with what site.yml would make
it, read-only, and return typed findings.

What "should be" comes from the same places site.yml uses: the inventory's map planned onto the
live GPUs (gpu_plan), the pins of the host roles, and the record gpu_services writes at deploy
time (GPU UUIDs per index, image IDs). What "is" comes from NVML (gpu_info), the Docker engine,
dpkg, systemd, daemon.json and the model manifests. Nothing is changed.
"""

from __future__ import annotations

import json
import re

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _haproxy
from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import LABEL_PREFIX, read_json
from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import (
    MANAGED_BY, MANAGED_LABEL, OPTIONS, actual_state, compare, desired_state, shown_env, unhardened)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._failover import (
    CPU_WARNING, FailoverError, describe, normalise_record)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_container import host_index_findings
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import NvmlError, gather
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_load import LoadError, judge
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import PlanError, build_plan
from ansible_collections.ragops.gpu_stack.plugins.module_utils._model_snapshot import inspect_snapshot
from ansible_collections.ragops.gpu_stack.plugins.module_utils._service_map import (
    ServiceMapError, check_settings, instance_views, validate_services, with_defaults)

SEVERITY = {"fail": "critical", "warn": "warning"}
OPTION_BY_NAME = dict((option.name, option) for option in OPTIONS)
RERUN = "run site.yml: it recreates the container from the map"
NOT_INSTALLED = "dpkg-query: no packages found matching "


class Findings(object):
    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, kind, obj, expected, actual, severity, remediation):
        self.items.append({"type": kind, "host": self.host, "object": obj, "expected": expected, "actual": actual,
                           "severity": severity, "remediation": remediation, "detail": detail(expected, actual)})


def detail(expected, actual, width=160):
    """One short line: expected -> found; for mappings the keys added, removed and changed."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        parts = []
        changed = sorted(k for k in expected if k in actual and expected[k] != actual[k])
        removed = sorted(k for k in expected if k not in actual)
        added = sorted(k for k in actual if k not in expected)
        if changed:
            parts.append("changed " + ", ".join("%s %s -> %s" % (k, _short(expected[k]), _short(actual[k]))
                                                for k in changed))
        if removed:
            parts.append("missing " + ", ".join(removed))
        if added:
            parts.append("extra " + ", ".join(added))
        text = "; ".join(parts) or "equal"
    else:
        text = "%s -> %s" % (_short(expected), _short(actual))
    return text if len(text) <= width else text[:width - 3] + "..."


def _short(value, width=60):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def _inspect(api, ref, image=False):
    try:
        return api.inspect_image(ref) if image else api.inspect_container(ref)
    except Exception:  # pylint: disable=broad-except
        return None


class DriftCheck(object):
    def __init__(self, params, api, run_command, host):
        self.p = with_defaults(params)
        self.api = api
        self.run_command = run_command
        self.f = Findings(host)
        self.info = None
        self.plan = None
        self.deployed = read_json(params["deployed_state_path"]) or {}
        self.record = None
        self.stopped = set()
        self.info_notes = []
        self.load_by_index = {}

    # -- GPUs -----------------------------------------------------------------------------------

    def gpus(self):
        try:
            self.info = gather(self.p["thresholds"], self.p["nvml_timeout"], tolerate_missing_driver=True)
        except NvmlError as exc:
            self.f.add("gpu.nvml", "NVML", "answers", str(exc), "critical",
                       "check the driver (dmesg, nvidia-smi); a hung NVML usually means a GPU in a bad state")
            return
        state = self.info.get("driver_state")
        if state != "ok":
            kind = "driver.version_mismatch" if state == "version_mismatch" else "driver.unusable"
            self.f.add(kind, "NVIDIA driver", "loaded at the installed version", "%s: %s"
                       % (state, self.info.get("driver_error")), "critical",
                       "reload the nvidia modules or reboot; run site.yml to restore the pinned driver")
            return
        failed_over = set(g["index"] for m in (self.record or {}).get("moves", []) for g in m["from"])
        for g in self.info.get("gpus", []):
            label = "GPU %d (%s)" % (g["index"], g.get("uuid") or g.get("pci_bus_id") or "?")
            if g["index"] in failed_over:
                fix = ("its services were failed over; reset or replace the board, then run playbooks/failback.yml")
            else:
                fix = "run playbooks/failover.yml (moves its services to reserved GPUs) and have the board checked"
            for issue in g.get("issues", []):
                self.f.add(issue["kind"], label, "healthy", issue["message"], SEVERITY[issue["severity"]],
                           fix if issue["severity"] == "fail" else "watch it; check cooling, load and the board's counters")
        live = dict((g["index"], g.get("uuid")) for g in self.info.get("gpus", []))
        for rec in self.deployed.get("gpus", []):
            now = live.get(rec["index"])
            if now and rec.get("uuid") and now != rec["uuid"]:
                self.f.add("gpu.uuid_changed", "GPU %d" % rec["index"], rec["uuid"], now, "critical",
                           "a board was replaced or the GPUs were renumbered; containers stay pinned to the old UUID: "
                           "run site.yml to re-plan onto the new board")

    # -- plan -----------------------------------------------------------------------------------

    def _build(self, info):
        p = self.p
        return build_plan(p["services"], gpu_info=info, overrides=p["overrides"], common_env=p["common_env"],
                          bind_address=p["bind_address"], reserved_gpus=p["reserved_gpus"],
                          memory_limit_pct=p["memory_limit_pct"], expected_gpus=p["expected_gpus"],
                          models_root=p["models_root"], load_balancer=p["load_balancer"],
                          failover=self.record)["plan"]

    def failover(self):
        """The host's failover record: each move a finding while it is in force."""
        path = self.p["failover_record_path"]
        try:
            self.record = normalise_record(read_json(path))
        except FailoverError as exc:
            self.f.add("failover.record", path, "a readable failover record", "; ".join(exc.errors), "critical",
                       "restore the record, or remove it and run site.yml")
            self.record = None
            return
        for move in self.record["moves"]:
            obj = "container %s (service %s)" % (move["container_name"], move["service"])
            mapped = "GPU %s" % ",".join(str(g["index"]) for g in move["mapped"])
            why = "; ".join("%s %s" % (f["gpu"], f["reason"]) for f in move["failed"])
            back = "fix or replace the failed GPU, then run playbooks/failback.yml"
            if move["mode"] == "gpu":
                self.f.add("failover.active", obj, mapped, "GPU %s since %s (%s)" % (
                    ",".join(str(g["index"]) for g in move["to"]), move.get("at"), why), "warning", back)
            elif move["mode"] == "cpu":
                self.f.add("failover.cpu_fallback", obj, mapped, "CPU mode since %s (%s); %s" % (
                    move.get("at"), why, CPU_WARNING), "critical", back)
            else:
                self.stopped.add(move["container_name"])
                self.f.add("failover.stopped", obj, mapped, "stopped since %s: %s" % (move.get("at"), move.get("note")),
                           "critical", "free a healthy reserved GPU and run playbooks/failover.yml, or give the service "
                           "a cpu_fallback; then %s" % back)

    def plan_services(self):
        live = self.info if self.info and self.info.get("driver_state") == "ok" else None
        try:
            self.plan = self._build(live)
            return self.plan["services"] if self.plan["resolved"] else None
        except PlanError as exc:
            for err in exc.errors:
                self.f.add("plan.unplannable", err.split(":", 1)[0], "the map plans onto this host", err, "critical",
                           "fix the GPU (or fail over to a reserved one) or the map")
        if live is None:
            return None
        # Unhealthy GPUs make the map unplannable (reported above); the containers are still judged
        # against the configuration the map gives them, with health set aside.
        blind = json.loads(json.dumps(live))
        for g in blind.get("gpus", []):
            if "error" not in g:
                g["status"] = "ok"
        try:
            self.plan = self._build(blind)
        except PlanError:
            return None
        return self.plan["services"]

    # -- containers -----------------------------------------------------------------------------

    def containers(self, planned):
        p = self.p
        if check_settings(p):
            return  # reported by the plan
        try:
            normalised = validate_services(p["services"], p["overrides"], p["common_env"], p["bind_address"])
        except ServiceMapError:
            return  # reported by the plan
        recorded = dict((s.get("container_name") or s["name"], s) for s in self.deployed.get("services", []))
        planned_by_container = dict((s["container_name"], s) for s in planned or [])
        managed_ids = set()
        pinned = {}
        views = [v for s in normalised if s["enabled"] for v in instance_views(s)]
        self._extra(set(v["container_name"] for v in views))
        for view in views:
            name, cname = view["name"], view["container_name"]
            obj = "container %s (service %s)" % (cname, name)
            c = _inspect(self.api, cname)
            entry = planned_by_container.get(cname)
            uuids = entry["gpu_uuids"] if entry else (recorded.get(cname) or {}).get("gpu_uuids", [])
            for u in uuids:
                pinned[u] = name
            if cname in self.stopped:
                continue  # stopped by the failover: reported as failover.stopped
            if c is None:
                self.f.add("container.missing", obj, "running", "absent", "critical", RERUN)
                continue
            managed_ids.add(c["Id"])
            labels = (c.get("Config") or {}).get("Labels") or {}
            if labels.get(MANAGED_LABEL) != MANAGED_BY:
                self.f.add("container.unmanaged", obj, "made by the collection (%s label)" % MANAGED_LABEL,
                           "started by hand or by another tool", "critical",
                           "site.yml leaves it alone: remove it (docker rm -f %s) or let site.yml replace it with "
                           "gpu_stack_adopt_containers: [%s]" % (cname, cname))
            state = c.get("State") or {}
            if state.get("Restarting"):
                self.f.add("container.restarting", obj, "running", "restarting (exit code %s)" % state.get("ExitCode"),
                           "critical", "docker logs %s; then %s" % (cname, RERUN))
            elif not state.get("Running"):
                self.f.add("container.stopped", obj, "running", state.get("Status") or "stopped", "critical",
                           "docker start %s, or %s" % (cname, RERUN))
            elif (state.get("Health") or {}).get("Status") == "unhealthy":
                log = ((state.get("Health") or {}).get("Log") or [{}])[-1].get("Output", "").strip()
                self.f.add("container.unhealthy", obj, "healthy", "unhealthy: %s" % log[:300], "critical",
                           "docker logs %s; check its GPUs and model, then %s" % (cname, RERUN))
            for finding in host_index_findings(cname, c):
                self.f.add("container.cuda_visible_devices", obj, "container-local ordinals or none", finding,
                           "critical", RERUN + " (the plan sets container-local CUDA_VISIBLE_DEVICES)")
            if entry is None:
                continue
            image = _inspect(self.api, entry["image"], image=True)
            want_id = (p["image_sources"].get(entry["image"]) or {}).get("id") or (image or {}).get("Id")
            if want_id and c.get("Image") != want_id:
                self.f.add("container.image", obj, want_id, c.get("Image"), "critical", RERUN)
            if image is None:
                self.f.add("image.missing", "image %s" % entry["image"], "present", "absent", "critical",
                           "stage the image (gpu_stack_image_sources), then run site.yml")
                continue
            desired = desired_state(entry["container"], image)
            actual = actual_state(c, _inspect(self.api, c.get("Image"), image=True) or {}, desired)
            for field in compare(desired, actual):
                if field == "image_id":
                    continue  # reported above against the pin
                option = OPTION_BY_NAME[field]
                want, got = desired[field], actual.get(field)
                if field == "env":  # values that may be secret as hashes
                    want, got = shown_env(want), shown_env(got)
                self.f.add(option.finding, obj, _show(want), _show(got), option.severity, RERUN)
            missing = unhardened(desired, actual)
            if missing:
                self.f.add("container.unhardened", obj, "hardened (%s)" % ", ".join(missing),
                           "created before the hardened defaults", "warning",
                           "run site.yml -e gpu_stack_harden_existing=true: it recreates the container hardened, "
                           "one at a time, the old one back if the new one is not healthy")
        self._unexpected(managed_ids, pinned)
        self.load(managed_ids)

    def _extra(self, wanted):
        """Containers with the collection's label that the map no longer has (a removed instance)."""
        try:
            labelled = self.api.containers(all=True, filters={"label": LABEL_PREFIX + "service"})
        except Exception:  # pylint: disable=broad-except
            return
        for c in labelled:
            name = (c.get("Names") or ["?"])[0].lstrip("/")
            if name not in wanted:
                service = (c.get("Labels") or {}).get(LABEL_PREFIX + "service", "?")
                self.f.add("container.extra", "container %s (service %s)" % (name, service), "absent (not in the map)",
                           c.get("State") or "present", "warning",
                           "run site.yml: it removes the containers the map no longer has")

    # -- load balancer --------------------------------------------------------------------------

    def load_balancer(self):
        """HAProxy in front of the services the plan puts behind it: running, every backend with
        exactly the planned servers, each UP."""
        lb = (self.plan or {}).get("load_balancer") or {}
        if not lb.get("enabled"):
            return
        sock = self.p["haproxy_socket"]
        try:
            live = _haproxy.servers(sock)
        except _haproxy.HAProxyError as exc:
            self.f.add("lb.down", "HAProxy", "running, runtime API answering", str(exc), "critical",
                       "systemctl status haproxy; journalctl -u haproxy; then run site.yml")
            return
        for svc in lb["services"]:
            backend = svc["name"]
            have = live.get(backend)
            if have is None:
                self.f.add("lb.backend_missing", "HAProxy backend %s" % backend, "port %d -> %d instance(s)"
                           % (svc["port"], len(svc["servers"])), "absent", "critical",
                           "run site.yml: it rewrites HAProxy's configuration from the map")
                continue
            want = [s["name"] for s in svc["servers"]]
            for name in want:
                row = have.get(name)
                obj = "HAProxy server %s/%s" % (backend, name)
                if row is None:
                    self.f.add("lb.server_missing", obj, "in rotation", "not configured", "critical",
                               "run site.yml: it rewrites HAProxy's configuration from the map")
                elif not row.get("status", "").startswith("UP"):
                    self.f.add("lb.server_down", obj, "UP", "%s (check: %s %s)" % (
                        row.get("status"), row.get("check_status") or "-", row.get("check_desc") or ""), "critical",
                        "docker logs %s; curl its health path; site.yml recreates a missing or changed instance"
                        % name)
            for name in sorted(set(have) - set(want)):
                self.f.add("lb.server_extra", "HAProxy server %s/%s" % (backend, name), "not configured (not in the "
                           "map)", have[name].get("status"), "warning",
                           "run site.yml: it rewrites HAProxy's configuration from the map")

    def _unexpected(self, managed_ids, pinned):
        index_to_uuid = dict((str(g["index"]), g.get("uuid")) for g in (self.info or {}).get("gpus", []))
        try:
            running = self.api.containers()
        except Exception:  # pylint: disable=broad-except
            return
        for c in running:
            if c["Id"] in managed_ids:
                continue
            info = _inspect(self.api, c["Id"]) or {}
            for req in (info.get("HostConfig") or {}).get("DeviceRequests") or []:
                ids = [index_to_uuid.get(str(i), str(i)) for i in req.get("DeviceIDs") or []]
                if not ids and (req.get("Count") or 0) < 0:
                    ids = list(pinned)  # --gpus all
                hit = sorted(set(ids) & set(pinned))
                if hit:
                    name = (c.get("Names") or ["?"])[0].lstrip("/")
                    self.f.add("container.unexpected", "container %s" % name, "no container on pinned GPUs",
                               "uses %s (pinned to %s)" % (", ".join(hit), ", ".join(sorted(set(pinned[u] for u in hit)))),
                               "critical", "stop it (docker rm -f %s); GPUs are the map's" % name)

    def load(self, managed_ids):
        """GPU memory against the plan (what each GPU should hold) and processes that are not the
        pinned service's: warnings; utilisation outside the target: capacity notes, not drift."""
        if not self.plan or not self.plan.get("resolved") or not self.info:
            return
        names = {}
        for cid in managed_ids:
            info = _inspect(self.api, cid) or {}
            names[cid] = (info.get("Name") or "").lstrip("/")
        try:
            verdict = judge(self.plan["services"], self.info, self.p["thresholds"], self.p["gpu_thresholds"], names)
        except LoadError as exc:
            self.f.add("gpu.thresholds", "gpu_stack_thresholds", "usable thresholds", "; ".join(exc.errors), "critical",
                       "fix the thresholds in the inventory")
            return
        by_index = dict((g["index"], g) for g in verdict["gpus"])
        self.load_by_index = by_index
        for w in verdict["warnings"]:
            g = by_index[w["gpu"]]
            if w["kind"] == "gpu.memory":
                expected = "%d MiB + %d MiB margin" % (g["expected_mib"], g["margin_mib"])
                actual = "%d MiB" % g["used_mib"]
                fix = ("find what holds it (nvidia-smi; the service's own settings such as GPU_MEMORY_UTILIZATION); "
                       "raise the service's vram_estimate_gb or thresholds if the use is intended")
            else:
                expected = "only " + ", ".join(r["service"] for r in g["services"])
                actual = w["message"].split(": ", 1)[1]
                fix = "find and stop it (nvidia-smi; ps -p PID); the GPU is the map's"
            self.f.add(w["kind"], "GPU %d (%s)" % (g["index"], g["uuid"]), expected, actual, "warning", fix)
        self.info_notes += verdict["notes"]

    # -- driver stack ---------------------------------------------------------------------------

    def driver_stack(self):
        p = self.p
        pkgs = p["packages"] or {}
        if pkgs:
            have, unchecked = self._dpkg_versions(sorted(pkgs))
            for name in sorted(pkgs):
                want = pkgs[name]
                got = have.get(name)
                if name in unchecked:
                    self.f.add("driver.package_unchecked", "package %s" % name, want, "could not check: %s"
                               % unchecked[name], "warning", "run dpkg-query -W %s on the host and fix what it says "
                               "(a locked or broken dpkg database?)" % name)
                elif not got:
                    self.f.add("driver.package_missing", "package %s" % name, want, "not installed", "critical",
                               "run site.yml")
                elif not _version_matches(got, want):
                    self.f.add("driver.package_version", "package %s" % name, want, got, "critical",
                               "run site.yml to restore the pin (an upgrade outside Ansible?)")
        if p["holds"]:
            rc, out, err = self.run_command(["dpkg", "--get-selections"] + sorted(p["holds"]))
            sel = dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)
            for name in sorted(p["holds"]):
                if rc != 0 and name not in sel:
                    self.f.add("driver.package_unchecked", "package %s" % name, "hold", "could not check: dpkg "
                               "--get-selections exited %d: %s" % (rc, err.strip()[:200]), "warning",
                               "run dpkg --get-selections %s on the host and fix what it says" % name)
                elif name in sel and sel[name] != "hold":
                    self.f.add("driver.package_hold", "package %s" % name, "hold", sel[name], "warning",
                               "apt-mark hold %s (site.yml does)" % name)
        if p["fabricmanager"]:
            rc, out, _err = self.run_command(["systemctl", "is-active", "nvidia-fabricmanager"])
            if out.strip() != "active":
                self.f.add("driver.fabricmanager", "nvidia-fabricmanager", "active", out.strip() or "unknown",
                           "critical", "systemctl start nvidia-fabricmanager; journalctl -u nvidia-fabricmanager "
                           "(a version other than the driver's refuses to start)")
        if p["docker_runtime"]:
            daemon = read_json(p["daemon_json_path"]) or {}
            if p["docker_runtime"] not in (daemon.get("runtimes") or {}):
                self.f.add("driver.docker_runtime", p["daemon_json_path"], "runtimes.%s" % p["docker_runtime"],
                           "missing", "critical", "run site.yml (nvidia_container_toolkit merges it back)")

    def _dpkg_versions(self, names):
        """({package: version} installed, {package: why it could not be checked}). dpkg-query exits 1
        naming each package it does not know: those are not installed; any other failure leaves the
        packages it did not report unchecked, never "not installed"."""
        rc, out, err = self.run_command(["dpkg-query", "-W", "-f=${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
                                        + names)
        have, unchecked = {}, {}
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[1] and fields[2][1:2] == "i":  # Status-Abbrev: ii, hi: installed
                have[fields[0]] = fields[1]
        missing = set(line[len(NOT_INSTALLED):].strip() for line in err.splitlines() if line.startswith(NOT_INSTALLED))
        other = [line for line in err.splitlines() if line.strip() and not line.startswith(NOT_INSTALLED)]
        if rc not in (0, 1) or other or (rc == 1 and not missing):
            why = "dpkg-query exited %d: %s" % (rc, " ".join(other).strip()[:200] or "no output")
            for name in names:
                if name not in have and name not in missing:
                    unchecked[name] = why
        return have, unchecked

    # -- models ---------------------------------------------------------------------------------

    def models(self):
        p = self.p
        if check_settings(p):
            return  # reported by the plan
        try:
            normalised = validate_services(p["services"], p["overrides"], p["common_env"], p["bind_address"])
        except ServiceMapError:
            return
        seen = set()
        for svc in (s for s in normalised if s["enabled"]):
            repo, rev = svc["model"]["repo_id"], svc["model"]["revision"]
            if (repo, rev) in seen:
                continue
            seen.add((repo, rev))
            obj = "model %s@%s" % (repo, rev[:12])
            state = inspect_snapshot(p["models_root"], repo, rev, full=p["full_verify"])
            if not state["manifest"] or not state["snapshot"]:
                self.f.add("model.missing", obj, "staged", "not staged (no snapshot or manifest)", "critical",
                           "run site.yml (hf_models stages it)")
                continue
            if state["ref"] != rev:
                self.f.add("model.revision", obj, rev, state["ref"] or "no refs/main", "warning",
                           "run site.yml (it writes refs/main)")
            for path in state["missing"]:
                self.f.add("model.missing_file", "%s %s" % (obj, path), "present", "missing", "critical",
                           "run site.yml (hf_models restages it)")
            for path in state["modified"]:
                self.f.add("model.modified_file", "%s %s" % (obj, path), "as staged (size, mtime%s)"
                           % (", sha256" if p["full_verify"] else ""), "modified", "critical",
                           "run site.yml: hf_models re-hashes changed files and restages them")
            for path in state["extra"]:
                self.f.add("model.extra_file", "%s %s" % (obj, path), "absent", "present", "warning", "run site.yml")

    def run(self):
        self.failover()
        self.gpus()
        planned = self.plan_services()
        if self.api is not None:
            self.containers(planned)
        self.load_balancer()
        self.driver_stack()
        self.models()
        items = self.f.items
        for item in items:
            item["group"] = _group(item)
        by_kind, by_sev = {}, {}
        for i in items:
            by_kind[i["type"]] = by_kind.get(i["type"], 0) + 1
            by_sev[i["severity"]] = by_sev.get(i["severity"], 0) + 1
        gpus = []
        for g in (self.info or {}).get("gpus", []):
            load = self.load_by_index.get(g["index"]) or {}
            gpus.append({"index": g["index"], "uuid": g.get("uuid"), "status": g.get("status"),
                         "memory_used_mib": (g.get("memory") or {}).get("used_mib"),
                         "memory_expected_mib": load.get("expected_mib"),
                         "utilization_pct": (g.get("utilization") or {}).get("gpu_pct")})
        return {"findings": items, "status": "drift" if items else "clean", "summary": {
            "total": len(items), "by_type": by_kind, "by_severity": by_sev}, "gpus": gpus,
            "driver_state": (self.info or {}).get("driver_state"),
            "plan_hash": (self.plan or {}).get("hash"), "deployed_plan_hash": self.deployed.get("plan_hash"),
            "failover": [describe(m) for m in (self.record or {}).get("moves", [])], "info": self.info_notes}


def _show(value):
    if isinstance(value, dict) and "ids" in value:
        return ",".join(value["ids"]) or ("count=%s" % value.get("count"))
    return value


def _version_matches(got, want):
    if want.endswith("*"):
        return got.startswith(want[:-1])
    return got == want


GPU_REF = re.compile(r"\bGPU (\d+)\b")


def _group(finding):
    """Findings that come from one GPU's fault share a group ("GPU 1"): the fault itself (gpu.*) and
    what it makes impossible (plan.unplannable naming the GPU). The summary prints the group under
    one headline; every other finding is a group of its own."""
    if finding["type"].startswith("gpu."):
        found = GPU_REF.search(finding["object"])
    elif finding["type"] == "plan.unplannable":
        found = GPU_REF.search(str(finding["actual"]))
    else:
        found = None
    return "GPU %s" % found.group(1) if found else None


def run(params, api, run_command, host):
    return DriftCheck(params, api, run_command, host).run()


__all__ = ["run", "detail"]
