# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.gpu_container (private).

Desired and actual container configuration are brought to one canonical form (GPU requests by UUID
and sorted, env as a map without what the image itself sets, ports / volumes / ulimits as sorted
sets, sizes in bytes, durations in seconds) and compared field by field. The plan that comes out of
that comparison drives check mode, --diff and the actions alike. What each option is, how it is
compared, read and sent to the engine is declared once, in _container_options.OPTIONS.

A recreate never loses the running service: the new container is created under a temporary name,
the old one stopped, the new one started; if the start fails (GPU refused, port taken) the new one
is removed and the old one started again, and the error says why.
"""

from __future__ import annotations

import time

from ansible.module_utils.urls import open_url

from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import (
    MANAGED_BY, MANAGED_LABEL, NEXT_SUFFIX, ContainerError, GpuRefs, actual_state, compare, create_kwargs,
    desired_state, parse_port, public, unhardened, update_kwargs)
from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import (
    EngineError, api_error_text, docker, is_not_found)


def host_index_findings(name, inspect):
    """A CUDA_VISIBLE_DEVICES that names host indices (the guide's mistake) on an existing container."""
    env = dict(item.partition("=")[::2] for item in (inspect.get("Config") or {}).get("Env") or [])
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if not cvd:
        return []
    visible = 0
    for req in (inspect.get("HostConfig") or {}).get("DeviceRequests") or []:
        ids = req.get("DeviceIDs") or []
        visible += len(ids) if ids else max(req.get("Count") or 0, 0)
    bad = [t for t in cvd.split(",") if t.strip().isdigit() and int(t) >= visible]
    if bad:
        return ["container %s: CUDA_VISIBLE_DEVICES=%s names GPU ordinal(s) %s, but the container sees %d GPU(s) "
                "numbered from 0 (host indices do not apply inside a container); CUDA sees no usable GPU"
                % (name, cvd, ",".join(bad), visible)]
    return []


class Engine(object):
    """Plan and apply one container."""

    def __init__(self, api, params):
        self.api = api
        self.p = params
        self.name = params["name"]
        self.warnings = []
        self.update = None

    # -- inspection -----------------------------------------------------------------------------

    def _inspect(self, name):
        try:
            return self.api.inspect_container(name)
        except Exception as exc:  # pylint: disable=broad-except
            if is_not_found(exc):
                return None
            raise ContainerError("container %s: cannot inspect: %s" % (name, api_error_text(exc)))

    def _image(self, ref):
        try:
            return self.api.inspect_image(ref)
        except Exception as exc:  # pylint: disable=broad-except
            if is_not_found(exc):
                return None
            raise ContainerError("image %s: cannot inspect: %s" % (ref, api_error_text(exc)))

    # -- planning -------------------------------------------------------------------------------

    def plan(self):
        state = self.p["state"]
        current = self._inspect(self.name)
        result = {"current": current, "actions": [], "changes": [], "desired": None, "actual": None}
        if current is not None:
            self.warnings.extend(host_index_findings(self.name, current))
        if state == "absent":
            if current is not None:
                result["actions"] = ["remove"]
                self._guard_unmanaged(current, "remove")
            return result
        if state == "stopped" and not self.p.get("image"):  # stop it as it is, compare nothing
            if current is not None and (current.get("State") or {}).get("Running"):
                result["actions"] = ["stop"]
            return result
        image = self._image(self.p["image"])
        if image is None:
            raise ContainerError("container %s: image %s is not on this host's Docker engine; nothing is pulled. Stage "
                                 "it first: the ragops.gpu_stack.gpu_services role loads image tarballs "
                                 "(gpu_stack_image_sources) or pulls from your registry; by hand: docker load -i "
                                 "<tarball>" % (self.name, self.p["image"]))
        desired = desired_state(self.p, image)
        result["desired"] = desired
        if current is None:
            result["actions"] = ["create"] + (["start"] if state == "started" else [])
            return result
        cur_image = self._image(current.get("Image")) or {}
        actual = actual_state(current, cur_image, desired)
        result["actual"] = actual
        changes = compare(desired, actual)
        if self.p.get("recreate"):
            changes = changes or ["recreate requested"]
        result["unhardened"] = unhardened(desired, actual)
        if result["unhardened"] and self.p.get("harden"):
            changes = changes + ["hardening"]
        self.update = update_kwargs(self.p, desired, changes, docker)
        if self.update:
            result["actions"].append("update")
        elif changes:
            result["actions"].append("recreate")
            if result["unhardened"] and "hardening" not in changes:
                changes = changes + ["hardening"]  # a recreate applies them anyway
        elif result["unhardened"]:
            self.warnings.append(
                "container %s predates the collection's hardened defaults (%s differ): it runs as it is and these are "
                "not compared; recreate it hardened with harden=true (site.yml -e gpu_stack_harden_existing=true, "
                "one container at a time, the old one back if the new one is not healthy)"
                % (self.name, ", ".join(result["unhardened"])))
        result["changes"] = changes
        if "recreate" in result["actions"]:
            self._guard_unmanaged(current, "replace")
        if state == "started" and not actual["running"] and "recreate" not in result["actions"]:
            result["actions"].append("start")
        if state == "stopped" and actual["running"]:
            result["actions"].append("stop")
        return result

    def _guard_unmanaged(self, current, what):
        """Only containers this collection made (its managed-by label) are removed or replaced, unless
        the caller adopts this one explicitly."""
        labels = (current.get("Config") or {}).get("Labels") or {}
        if labels.get(MANAGED_LABEL) == MANAGED_BY or self.p.get("adopt"):
            return
        raise ContainerError("container %s exists and was not made by this collection (no %s=%s label); it is left "
                             "alone rather than %s. Remove or rename it (docker rm -f %s), or let the collection take "
                             "it over: adopt: true (in the roles, gpu_stack_adopt_containers: [%s])"
                             % (self.name, MANAGED_LABEL, MANAGED_BY, "removed" if what == "remove" else "replaced",
                                self.name, self.name))

    # -- actions --------------------------------------------------------------------------------

    def _create(self, name, desired):
        create, host = create_kwargs(self.p, desired, docker)
        try:
            created = self.api.create_container(name=name, host_config=self.api.create_host_config(**host), **create)
        except Exception as exc:  # pylint: disable=broad-except
            raise ContainerError(self._explain(exc, "create"))
        return created["Id"]

    def _explain(self, exc, what):
        text = api_error_text(exc)
        if "could not select device driver" in text:
            return ("container %s: the Docker engine has no 'nvidia' device driver (%s). The NVIDIA container toolkit "
                    "is not installed, or dockerd was not restarted after installing it: run the "
                    "ragops.gpu_stack.nvidia_container_toolkit role" % (self.name, text.strip()))
        if "unknown device" in text:
            return ("container %s: the container runtime does not know GPU(s) %s (%s); the GPU does not exist on this "
                    "host or was replaced: re-run gpu_info and gpu_plan" % (
                        self.name, ",".join((self._desired_ids() or ["?"])), text.strip()))
        if "gpu is lost" in text.lower():
            return ("container %s: a requested GPU is lost (fell off the bus): %s; move the service to a healthy GPU "
                    "(failover) and check dmesg for Xid 79" % (self.name, text.strip()))
        if "driver not loaded" in text or "version mismatch" in text:
            return ("container %s: the NVIDIA driver is not usable (%s); run the ragops.gpu_stack.nvidia_driver role "
                    "(a reboot may be needed after an upgrade)" % (self.name, text.strip()))
        if "port is already allocated" in text or "address already in use" in text:
            holder = self._port_holder()
            return ("container %s: a published host port is already in use%s (%s); free it or give the service "
                    "another port in the inventory" % (self.name, " by container %s" % holder if holder else "",
                                                       text.strip()))
        return "container %s: %s failed: %s" % (self.name, what, text.strip())

    def _desired_ids(self):
        return GpuRefs(self.p.get("gpus")).ids

    def _port_holder(self):
        wanted = set()
        for spec in self.p.get("ports") or []:
            try:
                wanted.add(int(parse_port(spec, "127.0.0.1").split(":")[1]))
            except ContainerError:
                pass
        try:
            for c in self.api.containers(all=False):
                for port in c.get("Ports") or []:
                    if port.get("PublicPort") in wanted:
                        return (c.get("Names") or ["?"])[0].lstrip("/")
        except Exception:  # pylint: disable=broad-except
            return None
        return None

    def _start(self, cid):
        try:
            self.api.start(cid)
        except Exception as exc:  # pylint: disable=broad-except
            raise ContainerError(self._explain(exc, "start"))

    def _remove(self, cid):
        try:
            self.api.remove_container(cid, force=True, v=False)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_not_found(exc):
                raise ContainerError("container %s: remove failed: %s" % (self.name, api_error_text(exc)))

    def _stop(self, cid):
        try:
            self.api.stop(cid, timeout=self.p.get("stop_timeout") or 30)
        except Exception as exc:  # pylint: disable=broad-except
            raise ContainerError("container %s: stop failed: %s" % (self.name, api_error_text(exc)))

    def _recreate(self, current, desired, start):
        temp = self.name + NEXT_SUFFIX
        if self._inspect(temp) is not None:
            self._remove(temp)  # left behind by an interrupted run
        new_id = self._create(temp, desired)
        was_running = bool((current.get("State") or {}).get("Running"))
        if start:
            if was_running:
                self._stop(current["Id"])
            try:
                self._start(new_id)
                if self.p.get("health_url"):
                    self._gate(new_id, desired)
            except ContainerError as exc:
                self._remove(new_id)
                if was_running:
                    try:
                        self.api.start(current["Id"])
                    except Exception:  # pylint: disable=broad-except
                        raise ContainerError("%s; and restarting the previous container failed too" % exc)
                raise ContainerError("%s. The previous container %s was kept%s." % (
                    exc, self.name, " and is running again" if was_running else ""))
        self._remove(current["Id"])
        self.api.rename(new_id, self.name)
        return new_id

    def _gate(self, cid, desired):
        """The replacement answers its health URL with 200 before the old container is removed: bounded by
        its own healthcheck (start period, then retries x interval, plus a timeout), at most wait_timeout."""
        hc = desired.get("healthcheck") or {}
        bound = min(self.p.get("wait_timeout") or 300,
                    (hc.get("start_period") or 0) + (hc.get("interval") or 30) * (hc.get("retries") or 3)
                    + (hc.get("timeout") or 10))
        deadline = time.monotonic() + bound
        last = "no answer yet"
        while True:
            state = ((self._inspect(cid) or {}).get("State") or {})
            if not state.get("Running"):
                raise ContainerError("container %s: the replacement exited (code %s) before it was healthy; last log "
                                     "lines: %s" % (self.name, state.get("ExitCode"), self._logs(cid)))
            try:
                resp = open_url(self.p["health_url"], timeout=5, validate_certs=False)
                code = resp.getcode()
                resp.close()
                if code == 200:
                    return
                last = "HTTP %s" % code
            except Exception as exc:  # pylint: disable=broad-except
                last = "HTTP %s" % exc.code if hasattr(exc, "code") else str(getattr(exc, "reason", exc))
            if time.monotonic() > deadline:
                raise ContainerError("container %s: the replacement did not answer %s with 200 within %ss (its "
                                     "healthcheck's start period, retries x interval and timeout; last: %s)"
                                     % (self.name, self.p["health_url"], bound, last))
            time.sleep(1)

    def apply(self, plan):
        actions = plan["actions"]
        current = plan["current"]
        desired = plan["desired"]
        cid = current["Id"] if current else None
        if "remove" in actions:
            self._remove(cid)
            return None
        if "create" in actions:
            cid = self._create(self.name, desired)
            if "start" in actions:
                try:
                    self._start(cid)
                except ContainerError:
                    self._remove(cid)
                    raise
        if "recreate" in actions:
            cid = self._recreate(current, desired, start=self.p["state"] == "started")
        if "update" in actions:
            try:
                self.api.update_container(cid, **self.update)
            except Exception as exc:  # pylint: disable=broad-except
                raise ContainerError("container %s: update failed: %s" % (self.name, api_error_text(exc)))
        if "start" in actions and "create" not in actions:
            self._start(cid)
        if "stop" in actions:
            self._stop(cid)
        return cid

    def wait_healthy(self, cid, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            info = self._inspect(cid) or {}
            state = info.get("State") or {}
            health = (state.get("Health") or {})
            status = health.get("Status")
            if not state.get("Running"):
                logs = self._logs(cid)
                raise ContainerError("container %s exited (code %s) while waiting for it to become healthy; last "
                                     "log lines: %s" % (self.name, state.get("ExitCode"), logs))
            if status is None:
                return "running"  # no healthcheck: running is all we can know
            if status == "healthy":
                return status
            log = health.get("Log") or []
            if log:
                last = (log[-1].get("Output") or "").strip()
            if status == "unhealthy":
                raise ContainerError("container %s is unhealthy: %s" % (self.name, last or "no probe output"))
            if time.monotonic() > deadline:
                raise ContainerError("container %s did not become healthy within %ss (status %s): %s"
                                     % (self.name, timeout, status, last or "no probe output yet"))
            time.sleep(1)

    def _logs(self, cid):
        try:
            out = self.api.logs(cid, tail=10)
            return out.decode("utf-8", "replace").strip().replace("\n", " | ")
        except Exception:  # pylint: disable=broad-except
            return "(no logs)"

    def summary(self, cid):
        if cid is None:
            return {}
        info = self._inspect(cid) or {}
        state = info.get("State") or {}
        host = info.get("HostConfig") or {}
        ids = []
        for req in host.get("DeviceRequests") or []:
            ids.extend(req.get("DeviceIDs") or [])
        return {"id": info.get("Id"), "name": (info.get("Name") or "").lstrip("/"), "image": (info.get("Config") or {})
                .get("Image"), "image_id": info.get("Image"), "status": state.get("Status"),
                "health": (state.get("Health") or {}).get("Status"), "gpus": ids,
                "labels": (info.get("Config") or {}).get("Labels") or {}}


def run(api, params, check_mode=False):
    """Plan, then act unless in check mode. Returns the module result (without 'msg')."""
    engine = Engine(api, params)
    plan = engine.plan()
    changed = bool(plan["actions"])
    before = public(plan["actual"]) if plan["actual"] else ({} if plan["current"] is None else {"exists": True})
    if plan["actual"] is not None:
        before["state"] = "started" if plan["actual"]["running"] else "stopped"
        before.pop("running", None)
    after = public(plan["desired"]) if plan["desired"] else {}
    if after:
        after["state"] = params["state"]
    name = params["name"]
    what = ", ".join(plan["actions"]) + (" (%s)" % ", ".join(plan["changes"]) if plan["changes"] else "")
    # --diff names the container and what changes, instead of a bare before/after
    result = {"changed": changed, "actions": plan["actions"], "changes": plan["changes"],
              "diff": {"before": before, "after": after, "before_header": "container %s, as it is" % name,
                       "after_header": "container %s, %s" % (name, what or "unchanged")},
              "summary": "%s: %s" % (name, what or "unchanged"), "findings": list(engine.warnings),
              "unhardened": plan.get("unhardened") or []}
    cid = plan["current"]["Id"] if plan["current"] else None
    if not check_mode and changed:
        cid = engine.apply(plan)
    if not check_mode and params["state"] == "started" and params.get("wait_healthy") and cid:
        result["health"] = engine.wait_healthy(cid, params.get("wait_timeout") or 300)
    result["container"] = engine.summary(cid)
    return result


__all__ = ["ContainerError", "EngineError", "run", "host_index_findings"]
