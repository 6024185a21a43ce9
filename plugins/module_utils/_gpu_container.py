# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine of ragops.gpu_stack.gpu_container (private).

Desired and actual container configuration are brought to one canonical form (GPU requests by UUID
and sorted, env as a map without what the image itself sets, ports / volumes / ulimits as sorted
sets, sizes in bytes, durations in seconds) and compared field by field. The plan that comes out of
that comparison drives check mode, --diff and the actions alike.

A recreate never loses the running service: the new container is created under a temporary name,
the old one stopped, the new one started; if the start fails (GPU refused, port taken) the new one
is removed and the old one started again, and the error says why.
"""

from __future__ import annotations

import re
import time

from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import (
    EngineError, api_error_text, docker, is_not_found)

LABEL_PREFIX = "io.ragops.gpu-stack."
MANAGED_BY = "ragops.gpu_stack.gpu_container"
# Recorded on the container but not compared: a change elsewhere in the plan must not restart it.
INFORMATIONAL_LABELS = (LABEL_PREFIX + "plan-hash",)
DEFAULT_HEALTHCHECK = {"interval": 30, "timeout": 10, "retries": 3, "start_period": 60}
DEFAULT_LOG = {"driver": "json-file", "options": {"max-size": "50m", "max-file": "5"}}
DEFAULT_SHM = 64 * 1024 * 1024
NEXT_SUFFIX = "-ragops-next"
NS = 1000000000

COMPARED = ("image_id", "gpus", "env", "ports", "volumes", "shm_size", "ipc", "ulimits", "restart_policy",
            "healthcheck", "log", "labels", "user", "command", "security_opts", "privileged")
UPDATABLE = ("restart_policy",)

UUID_RE = re.compile(r"^GPU-[0-9a-fA-F-]{36}$")
PORT_RE = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:]+\]|[0-9.]+):)?(?P<host>\d+):(?P<cont>\d+)(?:/(?P<proto>tcp|udp|sctp))?$")


class ContainerError(Exception):
    """A failure with a message naming the container, the cause and the fix."""


def parse_size(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    m = re.match(r"^(\d+)([bkmg]?)$", text)
    if not m:
        raise ContainerError("shm_size %r is not a size such as 32g or 512m" % (value,))
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m.group(2)]


def parse_port(spec, default_ip):
    m = PORT_RE.match(str(spec).strip())
    if not m:
        raise ContainerError("published port %r is not [host_ip:]host_port:container_port[/proto]" % (spec,))
    ip = (m.group("ip") or default_ip).strip("[]")
    return "%s:%s:%s/%s" % (ip, m.group("host"), m.group("cont"), m.group("proto") or "tcp")


def parse_volume(spec):
    parts = str(spec).split(":")
    if len(parts) == 2:
        parts.append("rw")
    if len(parts) != 3 or not parts[0] or not parts[1].startswith("/"):
        raise ContainerError("volume %r is not host_path:container_path[:ro|rw]" % (spec,))
    modes = sorted(m for m in parts[2].split(",") if m)
    if "ro" not in modes and "rw" not in modes:
        modes.append("rw")
    return "%s:%s:%s" % (parts[0], parts[1], ",".join(sorted(modes)))


def _norm_security(opts):
    out = []
    for o in opts or []:
        o = o.replace("=", ":")
        if o in ("no-new-privileges:true", "no-new-privileges"):
            o = "no-new-privileges"
        out.append(o)
    return sorted(set(out))


class GpuRefs(object):
    """GPU references: index strings and UUIDs, and the map between them when known."""

    def __init__(self, gpus):
        self.ids = []
        self.index_to_uuid = {}
        for g in gpus or []:
            if isinstance(g, dict):
                uuid = g.get("uuid")
                index = g.get("index")
                if uuid and index is not None:
                    self.index_to_uuid[str(index)] = uuid
                self.ids.append(uuid if uuid else str(index))
            else:
                self.ids.append(str(g))

    def canonical(self, ids):
        return sorted(self.index_to_uuid.get(str(i), str(i)) for i in ids)


def desired_state(p, image_info):
    """Canonical desired configuration from module params and the local image."""
    refs = GpuRefs(p.get("gpus"))
    if p.get("gpu_count") is not None and refs.ids:
        raise ContainerError("container %s: give gpus (ids) or gpu_count, never both" % p["name"])
    gpus = None
    if refs.ids:
        gpus = {"driver": "nvidia", "ids": refs.canonical(refs.ids), "count": None}
    elif p.get("gpu_count"):
        gpus = {"driver": "nvidia", "ids": [], "count": int(p["gpu_count"])}
    hc = dict(DEFAULT_HEALTHCHECK)
    hc.update(dict((k, v) for k, v in (p.get("healthcheck") or {}).items() if v is not None and k != "test"))
    test = (p.get("healthcheck") or {}).get("test") or _image_health_test(image_info)
    log_options = p.get("log_options") if p.get("log_options") is not None else DEFAULT_LOG["options"]
    log = {"driver": p.get("log_driver") or DEFAULT_LOG["driver"],
           "options": dict((k, str(v)) for k, v in log_options.items())}
    labels = dict((k, str(v)) for k, v in (p.get("labels") or {}).items())
    labels[LABEL_PREFIX + "managed-by"] = MANAGED_BY
    labels[LABEL_PREFIX + "image-id"] = image_info["Id"]
    return {
        "image": p["image"],
        "image_id": image_info["Id"],
        "gpus": gpus,
        "env": dict((k, _env_value(v)) for k, v in (p.get("env") or {}).items()),
        "ports": sorted(set(parse_port(s, p.get("default_host_ip") or "127.0.0.1") for s in p.get("ports") or [])),
        "volumes": sorted(set(parse_volume(v) for v in p.get("volumes") or [])),
        "shm_size": parse_size(p.get("shm_size")) or DEFAULT_SHM,
        "ipc": p.get("ipc_mode"),
        "ulimits": sorted(_ulimit_str(k, v) for k, v in (p.get("ulimits") or {}).items()),
        "restart_policy": p.get("restart_policy") or "unless-stopped",
        "healthcheck": {"test": test, "interval": int(hc["interval"]), "timeout": int(hc["timeout"]),
                        "retries": int(hc["retries"]), "start_period": int(hc["start_period"])},
        "log": log,
        "labels": labels,
        "user": p.get("user"),
        "command": list(p["command"]) if p.get("command") is not None else None,
        "security_opts": _norm_security(p.get("security_opts") if p.get("security_opts") is not None
                                        else ["no-new-privileges"]),
        "privileged": False,
        "refs": refs,
    }


def _env_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ulimit_str(name, value):
    if isinstance(value, dict):
        soft, hard = value.get("soft"), value.get("hard")
    elif isinstance(value, str) and ":" in value:
        soft, hard = value.split(":", 1)
    else:
        soft = hard = value
    return "%s=%d:%d" % (name, int(soft), int(hard))


def _image_health_test(image_info):
    hc = (image_info.get("Config") or {}).get("Healthcheck") or {}
    return list(hc.get("Test") or []) or None


def _image_env(image_info):
    out = {}
    for item in (image_info.get("Config") or {}).get("Env") or []:
        key, _sep, value = item.partition("=")
        out[key] = value
    return out


def actual_state(inspect, image_info, desired):
    """Canonical form of an existing container, comparable with desired_state()."""
    cfg = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    image_env = _image_env(image_info) if image_info else {}
    env = {}
    for item in cfg.get("Env") or []:
        key, _sep, value = item.partition("=")
        if key in desired["env"] or image_env.get(key) != value:
            env[key] = value
    image_labels = ((image_info or {}).get("Config") or {}).get("Labels") or {}
    labels = dict((k, v) for k, v in (cfg.get("Labels") or {}).items()
                  if (k in desired["labels"] or image_labels.get(k) != v) and k not in INFORMATIONAL_LABELS)
    gpus = None
    for req in host.get("DeviceRequests") or []:
        caps = [c for group in (req.get("Capabilities") or []) for c in group]
        if req.get("Driver") in ("nvidia", "") and ("gpu" in caps or req.get("Driver") == "nvidia"):
            ids = desired["refs"].canonical(req.get("DeviceIDs") or [])
            gpus = {"driver": "nvidia", "ids": ids, "count": None if ids else req.get("Count")}
    ports = []
    for cport, binds in (host.get("PortBindings") or {}).items():
        num, _sep, proto = cport.partition("/")
        for b in binds or []:
            ports.append("%s:%s:%s/%s" % (b.get("HostIp") or "0.0.0.0", b.get("HostPort"), num, proto or "tcp"))
    hc = cfg.get("Healthcheck") or {}
    restart = (host.get("RestartPolicy") or {}).get("Name") or "no"
    log = host.get("LogConfig") or {}
    return {
        "image": cfg.get("Image"),
        "image_id": inspect.get("Image"),
        "gpus": gpus,
        "env": env,
        "ports": sorted(set(ports)),
        "volumes": sorted(set(parse_volume(b) for b in host.get("Binds") or [])),
        "shm_size": host.get("ShmSize") or DEFAULT_SHM,
        "ipc": host.get("IpcMode") if desired["ipc"] is not None else None,
        "ulimits": sorted("%s=%d:%d" % (u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []),
        "restart_policy": restart,
        "healthcheck": {"test": list(hc.get("Test") or []) or None,
                        "interval": int((hc.get("Interval") or 0) // NS), "timeout": int((hc.get("Timeout") or 0) // NS),
                        "retries": int(hc.get("Retries") or 0), "start_period": int((hc.get("StartPeriod") or 0) // NS)},
        "log": {"driver": log.get("Type"), "options": dict(log.get("Config") or {})},
        "labels": labels,
        "user": (cfg.get("User") or None) if desired["user"] is not None else None,
        "command": list(cfg.get("Cmd") or []) if desired["command"] is not None else None,
        "security_opts": _norm_security(host.get("SecurityOpt")),
        "privileged": bool(host.get("Privileged")),
        "running": bool((inspect.get("State") or {}).get("Running")),
    }


def compare(desired, actual):
    """Names of the fields that differ."""
    desired_labels = dict((k, v) for k, v in desired["labels"].items() if k not in INFORMATIONAL_LABELS)
    out = []
    for key in COMPARED:
        want = desired_labels if key == "labels" else desired[key]
        if key in ("ipc", "user", "command") and want is None:
            continue
        if want != actual.get(key):
            out.append(key)
    return out


def host_index_findings(name, inspect):
    """A CUDA_VISIBLE_DEVICES that names host indices (the seed's mistake) on an existing container."""
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


def _public(state):
    """A state without internal helpers, lists sorted: the --diff before/after."""
    if state is None:
        return {}
    out = dict((k, v) for k, v in state.items() if k not in ("refs",))
    return out


class Engine(object):
    """Plan and apply one container."""

    def __init__(self, api, params, check_mode=False):
        self.api = api
        self.p = params
        self.check_mode = check_mode
        self.name = params["name"]
        self.warnings = []

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
        result["changes"] = changes
        if changes and all(c in UPDATABLE for c in changes):
            result["actions"].append("update")
        elif changes:
            result["actions"].append("recreate")
        if state == "started" and not actual["running"] and "recreate" not in result["actions"]:
            result["actions"].append("start")
        if state == "stopped" and actual["running"]:
            result["actions"].append("stop")
        return result

    # -- actions --------------------------------------------------------------------------------

    def _create(self, name, desired):
        d = desired
        types = docker.types
        device_requests = []
        if d["gpus"]:
            if d["gpus"]["ids"]:
                device_requests.append(types.DeviceRequest(driver="nvidia", device_ids=d["gpus"]["ids"],
                                                           capabilities=[["gpu"]]))
            else:
                device_requests.append(types.DeviceRequest(driver="nvidia", count=d["gpus"]["count"],
                                                           capabilities=[["gpu"]]))
        port_bindings, exposed = {}, []
        for spec in d["ports"]:
            ip, host_port, rest = spec.split(":")
            cport, proto = rest.split("/")
            port_bindings.setdefault("%s/%s" % (cport, proto), []).append((ip, int(host_port)))
            exposed.append((int(cport), proto))
        ulimits = []
        for u in d["ulimits"]:
            uname, vals = u.split("=")
            soft, hard = vals.split(":")
            ulimits.append(types.Ulimit(name=uname, soft=int(soft), hard=int(hard)))
        host_config = self.api.create_host_config(
            binds=list(d["volumes"]),
            port_bindings=port_bindings,
            device_requests=device_requests or None,
            shm_size=d["shm_size"],
            ipc_mode=d["ipc"],
            ulimits=ulimits or None,
            restart_policy={"Name": d["restart_policy"], "MaximumRetryCount": 0},
            log_config=types.LogConfig(type=d["log"]["driver"], config=d["log"]["options"]),
            security_opt=list(d["security_opts"]) or None,
            privileged=False,
        )
        hc = d["healthcheck"]
        healthcheck = types.Healthcheck(test=hc["test"], interval=hc["interval"] * NS, timeout=hc["timeout"] * NS,
                                        retries=hc["retries"], start_period=hc["start_period"] * NS)
        labels = dict(d["labels"])
        for key in INFORMATIONAL_LABELS:
            if key in (self.p.get("labels") or {}):
                labels[key] = str(self.p["labels"][key])
        try:
            created = self.api.create_container(
                image=d["image"], name=name, environment=d["env"], labels=labels, ports=exposed or None,
                host_config=host_config, healthcheck=healthcheck, user=d["user"], command=d["command"],
                detach=True)
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
                self.api.update_container(cid, restart_policy={"Name": desired["restart_policy"],
                                                               "MaximumRetryCount": 0})
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
    engine = Engine(api, params, check_mode)
    plan = engine.plan()
    changed = bool(plan["actions"])
    before = _public(plan["actual"]) if plan["actual"] else ({} if plan["current"] is None else {"exists": True})
    if plan["actual"] is not None:
        before["state"] = "started" if plan["actual"]["running"] else "stopped"
        before.pop("running", None)
    after = _public(plan["desired"]) if plan["desired"] else {}
    if after:
        after["state"] = params["state"]
    result = {"changed": changed, "actions": plan["actions"], "changes": plan["changes"],
              "diff": {"before": before, "after": after}, "findings": list(engine.warnings)}
    cid = plan["current"]["Id"] if plan["current"] else None
    if not check_mode and changed:
        cid = engine.apply(plan)
    if not check_mode and params["state"] == "started" and params.get("wait_healthy") and cid:
        result["health"] = engine.wait_healthy(cid, params.get("wait_timeout") or 300)
    result["container"] = engine.summary(cid)
    return result


__all__ = ["ContainerError", "EngineError", "run", "desired_state", "actual_state", "compare", "host_index_findings"]
