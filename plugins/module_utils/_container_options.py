# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options of ragops.gpu_stack.gpu_container, declared once (private).

Each compared property of a container is one ``Option`` row: the module parameters it owns (type,
default, choices, suboptions), how its canonical desired form is made from the parameters, how its
canonical actual form is read from ``docker inspect``, how it is compared (``strict``, or
``if_set``: ignored while the parameter is unset), how it is passed to the engine API, whether it
can be changed in place, and the drift finding a difference produces (type and severity).

From this table come the module's argument spec, the canonical desired and actual states, the
comparison (so check mode, --diff and the actions), the create call and the drift findings.
tests/unit/plugins/module_utils/test_container_options.py holds it against the module's
DOCUMENTATION. Adding an option is one row here plus its check / apply / apply / check test.
"""

from __future__ import annotations

import copy
import hashlib
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import LABEL_PREFIX, parse_size
from ansible_collections.ragops.gpu_stack.plugins.module_utils._docker_client import DOCKER_CLIENT_ARGS

MANAGED_BY = "ragops.gpu_stack.gpu_container"
MANAGED_LABEL = LABEL_PREFIX + "managed-by"
# The name a container's replacement is created under during a recreate (renamed once it is in
# place); the service map refuses container names that end with it.
NEXT_SUFFIX = "-ragops-next"
# The plan entry's VRAM estimate in GB, for `docker inspect` and for a service that sizes itself
# from it (the simulator's stand-ins).
ESTIMATE_LABEL = LABEL_PREFIX + "vram-estimate-gb"
# Recorded on the container but not compared: a change elsewhere in the plan must not restart it,
# and adding one recreates nothing.
INFORMATIONAL_LABELS = (LABEL_PREFIX + "plan-hash", ESTIMATE_LABEL)
# Set on every container this module creates: its hardening options (the rows with
# compare="hardening") were set at creation and are compared from then on. A container created
# before them (by an earlier release) lacks the label; those rows are reported for it, not compared,
# so that upgrading the collection restarts nothing (O(harden) recreates it).
HARDENING_LABEL = LABEL_PREFIX + "hardening"
HARDENING_VERSION = "1"
DEFAULT_SHM = 64 * 1024 * 1024  # Docker's own default for /dev/shm
NS = 1000000000
PORT_RE = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:]+\]|[0-9.]+):)?(?P<host>\d+):(?P<cont>\d+)(?:/(?P<proto>tcp|udp|sctp))?$")


class ContainerError(Exception):
    """A failure with a message naming the container, the cause and the fix."""


class Param(object):
    """One module parameter's argument spec (its description is the module's DOCUMENTATION)."""

    def __init__(self, name, kind, default=None, elements=None, choices=None, aliases=None, suboptions=None):
        self.name = name
        self.kind = kind
        self.default = default
        self.elements = elements
        self.choices = choices
        self.aliases = aliases
        self.suboptions = suboptions

    def spec(self):
        out = {"type": self.kind}
        for key in ("default", "elements", "choices", "aliases"):
            if getattr(self, key) is not None:
                out[key] = copy.deepcopy(getattr(self, key))
        if self.suboptions:
            out["options"] = dict((s.name, s.spec()) for s in self.suboptions)
        return out


class Option(object):
    """One compared property of the container."""

    def __init__(self, name, params, desired, actual, engine, compare="strict", severity="warning", update=None,
                 finding=None):
        self.name = name
        self.params = params
        self.desired = desired    # (params, ctx) -> canonical value
        self.actual = actual      # (inspect, ctx) -> canonical value
        self.engine = engine      # (value, ctx, create_kwargs, host_config_kwargs) -> None
        self.compare = compare
        self.severity = severity
        self.update = update      # update_container keyword when it can change in place (its create kwarg too)
        self.finding = finding or "container." + name


def value(params, name):
    """A parameter's value, or its declared default when it is unset (callers without AnsibleModule,
    such as the drift check, get the same defaults as the module)."""
    got = params.get(name)
    if got is not None:
        return got
    param = PARAMS_BY_NAME[name]
    return copy.deepcopy(param.default)


# ---------------------------------------------------------------------------------------------
# canonical forms


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


def _env_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ulimit_str(name, limit):
    if isinstance(limit, dict):
        soft, hard = limit.get("soft"), limit.get("hard")
    elif isinstance(limit, str) and ":" in limit:
        soft, hard = limit.split(":", 1)
    else:
        soft = hard = limit
    return "%s=%d:%d" % (name, int(soft), int(hard))


def _norm_security(opts):
    out = []
    for o in opts or []:
        o = o.replace("=", ":")
        if o in ("no-new-privileges:true", "no-new-privileges"):
            o = "no-new-privileges"
        out.append(o)
    return sorted(set(out))


def _caps(caps):
    """Capability names as Docker records them: upper case with the CAP_ prefix (ALL stays ALL)."""
    out = set()
    for cap in caps or []:
        cap = str(cap).strip().upper()
        out.add(cap if cap == "ALL" or cap.startswith("CAP_") else "CAP_" + cap)
    return sorted(out)


def _key_values(items):
    return dict(item.partition("=")[::2] for item in items or [])


def _shm(params):
    given = params.get("shm_size")
    if given is None:
        return DEFAULT_SHM
    try:
        return parse_size(given)
    except ValueError:
        raise ContainerError("container %s: shm_size %r is not a size such as 32g or 512m" % (params["name"], given))


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


def _desired_gpus(p, ctx):
    refs = ctx["refs"]
    if p.get("gpu_count") is not None and refs.ids:
        raise ContainerError("container %s: give gpus (ids) or gpu_count, never both" % p["name"])
    if refs.ids:
        return {"driver": "nvidia", "ids": refs.canonical(refs.ids), "count": None}
    if p.get("gpu_count"):
        return {"driver": "nvidia", "ids": [], "count": int(p["gpu_count"])}
    return None


def _actual_gpus(inspect, ctx):
    gpus = None
    for req in (inspect.get("HostConfig") or {}).get("DeviceRequests") or []:
        caps = [c for group in (req.get("Capabilities") or []) for c in group]
        if req.get("Driver") in ("nvidia", "") and ("gpu" in caps or req.get("Driver") == "nvidia"):
            ids = ctx["refs"].canonical(req.get("DeviceIDs") or [])
            gpus = {"driver": "nvidia", "ids": ids, "count": None if ids else req.get("Count")}
    return gpus


def _engine_gpus(gpus, ctx, create, host):
    if not gpus:
        return
    types = ctx["docker"].types
    if gpus["ids"]:
        req = types.DeviceRequest(driver="nvidia", device_ids=gpus["ids"], capabilities=[["gpu"]])
    else:
        req = types.DeviceRequest(driver="nvidia", count=gpus["count"], capabilities=[["gpu"]])
    host["device_requests"] = [req]


def _actual_env(inspect, ctx):
    image_env = _key_values((ctx["image"].get("Config") or {}).get("Env"))
    wanted = ctx["desired"]["env"]
    out = {}
    for key, val in _key_values((inspect.get("Config") or {}).get("Env")).items():
        if key in wanted or image_env.get(key) != val:
            out[key] = val
    return out


def _actual_ports(inspect, ctx):
    ports = []
    for cport, binds in ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).items():
        num, _sep, proto = cport.partition("/")
        for b in binds or []:
            ports.append("%s:%s:%s/%s" % (b.get("HostIp") or "0.0.0.0", b.get("HostPort"), num, proto or "tcp"))
    return sorted(set(ports))


def _engine_ports(ports, ctx, create, host):
    bindings, exposed = {}, []
    for spec in ports:
        ip, host_port, rest = spec.split(":")
        cport, proto = rest.split("/")
        bindings.setdefault("%s/%s" % (cport, proto), []).append((ip, int(host_port)))
        exposed.append((int(cport), proto))
    host["port_bindings"] = bindings
    create["ports"] = exposed or None


def _engine_ulimits(ulimits, ctx, create, host):
    out = []
    for u in ulimits:
        uname, vals = u.split("=")
        soft, hard = vals.split(":")
        out.append(ctx["docker"].types.Ulimit(name=uname, soft=int(soft), hard=int(hard)))
    host["ulimits"] = out or None


def _desired_healthcheck(p, ctx):
    given = p.get("healthcheck") or {}
    out = {"test": given.get("test") or list(((ctx["image"].get("Config") or {}).get("Healthcheck") or {})
                                             .get("Test") or []) or None}
    for sub in HEALTHCHECK_TIMING:
        out[sub.name] = int(given[sub.name] if given.get(sub.name) is not None else sub.default)
    return out


def _actual_healthcheck(inspect, ctx):
    hc = (inspect.get("Config") or {}).get("Healthcheck") or {}
    return {"test": list(hc.get("Test") or []) or None, "interval": int((hc.get("Interval") or 0) // NS),
            "timeout": int((hc.get("Timeout") or 0) // NS), "retries": int(hc.get("Retries") or 0),
            "start_period": int((hc.get("StartPeriod") or 0) // NS)}


def _engine_healthcheck(hc, ctx, create, host):
    create["healthcheck"] = ctx["docker"].types.Healthcheck(
        test=hc["test"], interval=hc["interval"] * NS, timeout=hc["timeout"] * NS, retries=hc["retries"],
        start_period=hc["start_period"] * NS)


def _desired_log(p, ctx):
    return {"driver": value(p, "log_driver"),
            "options": dict((k, str(v)) for k, v in value(p, "log_options").items())}


def _actual_log(inspect, ctx):
    log = (inspect.get("HostConfig") or {}).get("LogConfig") or {}
    return {"driver": log.get("Type"), "options": dict(log.get("Config") or {})}


def _desired_labels(p, ctx):
    labels = dict((k, str(v)) for k, v in value(p, "labels").items()
                  if k not in INFORMATIONAL_LABELS and k != HARDENING_LABEL)
    labels[MANAGED_LABEL] = MANAGED_BY
    labels[LABEL_PREFIX + "image-id"] = ctx["image"]["Id"]
    return labels


def _actual_labels(inspect, ctx):
    image_labels = (ctx["image"].get("Config") or {}).get("Labels") or {}
    wanted = ctx["desired"]["labels"]
    return dict((k, v) for k, v in ((inspect.get("Config") or {}).get("Labels") or {}).items()
                if (k in wanted or image_labels.get(k) != v) and k not in INFORMATIONAL_LABELS
                and k != HARDENING_LABEL)


def _engine_labels(labels, ctx, create, host):
    out = dict(labels)
    given = ctx["params"].get("labels") or {}
    for key in INFORMATIONAL_LABELS:
        if key in given:
            out[key] = str(given[key])
    out[HARDENING_LABEL] = HARDENING_VERSION
    create["labels"] = out


def _config(key):
    return lambda inspect, ctx: (inspect.get("Config") or {}).get(key)


def _host(key, default=None):
    return lambda inspect, ctx: (inspect.get("HostConfig") or {}).get(key) or default


def _to(where, kwarg, convert=None):
    def engine(val, ctx, create, host):
        (create if where == "create" else host)[kwarg] = convert(val) if convert else val
    return engine


# ---------------------------------------------------------------------------------------------
# the table

HEALTHCHECK_TIMING = (
    Param("interval", "int", default=30),
    Param("timeout", "int", default=10),
    Param("retries", "int", default=3),
    Param("start_period", "int", default=60),
)

OPTIONS = (
    Option("image_id", [Param("image", "str")],
           desired=lambda p, ctx: ctx["image"]["Id"], actual=lambda inspect, ctx: inspect.get("Image"),
           engine=lambda val, ctx, create, host: None, severity="critical", finding="container.image"),
    Option("gpus", [Param("gpus", "list", default=[], elements="raw"),
                    Param("gpu_count", "int")],
           desired=_desired_gpus, actual=_actual_gpus, engine=_engine_gpus, severity="critical"),
    Option("env", [Param("env", "dict", default={})],
           desired=lambda p, ctx: dict((k, _env_value(v)) for k, v in value(p, "env").items()),
           actual=_actual_env, engine=_to("create", "environment")),
    Option("ports", [Param("ports", "list", default=[], elements="str"),
                     Param("default_host_ip", "str", default="127.0.0.1")],
           desired=lambda p, ctx: sorted(set(parse_port(s, value(p, "default_host_ip")) for s in value(p, "ports"))),
           actual=_actual_ports, engine=_engine_ports),
    Option("volumes", [Param("volumes", "list", default=[], elements="str")],
           desired=lambda p, ctx: sorted(set(parse_volume(v) for v in value(p, "volumes"))),
           actual=lambda inspect, ctx: sorted(set(parse_volume(b) for b in (inspect.get("HostConfig") or {})
                                                  .get("Binds") or [])),
           engine=_to("host", "binds", list)),
    Option("shm_size", [Param("shm_size", "str")],
           desired=lambda p, ctx: _shm(p), actual=_host("ShmSize", DEFAULT_SHM), engine=_to("host", "shm_size")),
    Option("ipc", [Param("ipc_mode", "str")], compare="if_set",
           desired=lambda p, ctx: p.get("ipc_mode"), actual=_host("IpcMode"), engine=_to("host", "ipc_mode")),
    Option("ulimits", [Param("ulimits", "dict", default={})],
           desired=lambda p, ctx: sorted(_ulimit_str(k, v) for k, v in value(p, "ulimits").items()),
           actual=lambda inspect, ctx: sorted("%s=%d:%d" % (u["Name"], u["Soft"], u["Hard"])
                                              for u in (inspect.get("HostConfig") or {}).get("Ulimits") or []),
           engine=_engine_ulimits),
    Option("restart_policy", [Param("restart_policy", "str", default="unless-stopped",
                                    choices=["no", "on-failure", "always", "unless-stopped"])],
           desired=lambda p, ctx: value(p, "restart_policy"),
           actual=lambda inspect, ctx: ((inspect.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name")
           or "no",
           engine=_to("host", "restart_policy", lambda name: {"Name": name, "MaximumRetryCount": 0}),
           update="restart_policy"),
    Option("healthcheck", [Param("healthcheck", "dict", default={}, suboptions=(
        (Param("test", "list", elements="str"),) + HEALTHCHECK_TIMING))],
        desired=_desired_healthcheck, actual=_actual_healthcheck, engine=_engine_healthcheck),
    Option("log", [Param("log_driver", "str", default="json-file"),
                   Param("log_options", "dict", default={"max-size": "50m", "max-file": "5"})],
           desired=_desired_log, actual=_actual_log,
           engine=lambda log, ctx, create, host: host.update(log_config=ctx["docker"].types.LogConfig(
               type=log["driver"], config=log["options"]))),
    Option("labels", [Param("labels", "dict", default={})],
           desired=_desired_labels, actual=_actual_labels, engine=_engine_labels),
    Option("cpus", [Param("cpus", "float")], compare="if_set",
           desired=lambda p, ctx: int(round(p["cpus"] * NS)) if p.get("cpus") is not None else None,
           actual=lambda inspect, ctx: (inspect.get("HostConfig") or {}).get("NanoCpus") or None,
           engine=lambda val, ctx, create, host: host.update(nano_cpus=val) if val else None),
    Option("memory", [Param("memory", "str")], compare="hardening",
           desired=lambda p, ctx: parse_size(p["memory"]) if p.get("memory") is not None else None,
           actual=lambda inspect, ctx: (inspect.get("HostConfig") or {}).get("Memory") or None,
           engine=lambda val, ctx, create, host: host.update(mem_limit=val) if val else None),
    Option("user", [Param("user", "str")], compare="if_set",
           desired=lambda p, ctx: p.get("user"), actual=lambda inspect, ctx: _config("User")(inspect, ctx) or None,
           engine=_to("create", "user")),
    Option("command", [Param("command", "list", elements="str")],
           compare="if_set", desired=lambda p, ctx: list(p["command"]) if p.get("command") is not None else None,
           actual=lambda inspect, ctx: list(_config("Cmd")(inspect, ctx) or []), engine=_to("create", "command")),
    Option("security_opts", [Param("security_opts", "list", default=["no-new-privileges"], elements="str")],
           desired=lambda p, ctx: _norm_security(value(p, "security_opts")),
           actual=lambda inspect, ctx: _norm_security((inspect.get("HostConfig") or {}).get("SecurityOpt")),
           engine=_to("host", "security_opt", lambda opts: list(opts) or None)),
    Option("cap_drop", [Param("cap_drop", "list", default=["ALL"], elements="str")], compare="hardening",
           desired=lambda p, ctx: _caps(value(p, "cap_drop")), actual=lambda inspect, ctx: _caps(_host("CapDrop")(
               inspect, ctx)), engine=_to("host", "cap_drop", lambda caps: list(caps) or None)),
    Option("cap_add", [Param("cap_add", "list", default=[], elements="str")], compare="hardening",
           desired=lambda p, ctx: _caps(value(p, "cap_add")), actual=lambda inspect, ctx: _caps(_host("CapAdd")(
               inspect, ctx)), engine=_to("host", "cap_add", lambda caps: list(caps) or None)),
    Option("read_only", [Param("read_only", "bool", default=False)], compare="hardening",
           desired=lambda p, ctx: bool(value(p, "read_only")), actual=lambda inspect, ctx: bool(_host("ReadonlyRootfs")(
               inspect, ctx)), engine=_to("host", "read_only")),
    Option("tmpfs", [Param("tmpfs", "dict", default={})], compare="hardening",
           desired=lambda p, ctx: dict((k, str(v)) for k, v in value(p, "tmpfs").items()),
           actual=lambda inspect, ctx: dict(_host("Tmpfs")(inspect, ctx) or {}),
           engine=_to("host", "tmpfs", lambda mounts: dict(mounts) or None)),
    Option("pids_limit", [Param("pids_limit", "int")], compare="hardening",
           desired=lambda p, ctx: p.get("pids_limit") if (p.get("pids_limit") or 0) > 0 else None,
           actual=lambda inspect, ctx: _host("PidsLimit")(inspect, ctx) if (_host("PidsLimit")(inspect, ctx) or 0) > 0
           else None,
           engine=lambda val, ctx, create, host: host.update(pids_limit=val) if val else None),
    Option("privileged", [], desired=lambda p, ctx: False,
           actual=lambda inspect, ctx: bool((inspect.get("HostConfig") or {}).get("Privileged")),
           engine=_to("host", "privileged"), severity="critical"),
)

# Parameters that steer the module rather than describe the container.
BEHAVIOUR = (
    Param("name", "str"),
    Param("container", "dict"),
    Param("state", "str", default="started", choices=["started", "stopped", "absent"]),
    Param("recreate", "bool", default=False),
    Param("stop_timeout", "int", default=30),
    Param("wait_healthy", "bool", default=False),
    Param("wait_timeout", "int", default=300),
    Param("adopt", "bool", default=False),
    Param("health_url", "str"),
    Param("harden", "bool", default=False),
    Param("containers", "list", elements="dict"),
)

PARAMS = BEHAVIOUR + tuple(param for option in OPTIONS for param in option.params)
# What a plan entry's `container` mapping may hold.
CONTAINER_KEYS = ("name",) + tuple(param.name for option in OPTIONS for param in option.params)
PARAMS_BY_NAME = dict((param.name, param) for param in PARAMS)
OPTIONS_BY_NAME = dict((option.name, option) for option in OPTIONS)


def argument_spec():
    """gpu_container's argument spec: every row's parameters and the Docker client's."""
    spec = dict((param.name, param.spec()) for param in PARAMS)
    spec.update(copy.deepcopy(DOCKER_CLIENT_ARGS))
    return spec


_UNSET = []


def unset_params():
    """Each option's value when it is not given, as AnsibleModule fills it in (the defaults of a mapping's
    suboptions included): what a top-level option that was not given holds."""
    if not _UNSET:
        spec = dict((param.name, param.spec()) for param in PARAMS)
        _UNSET.append(ArgumentSpecValidator(spec).validate({}).validated_parameters)
    return _UNSET[0]


def merge_container(params):
    """The module's parameters with those of O(container) merged in, validated by the same table.

    An option given both at the top level (other than at its default) and in ``container`` with
    another value is refused rather than silently choosing one."""
    out = dict(params)
    given = out.pop("container", None) or {}
    if given:
        spec = dict((key, PARAMS_BY_NAME[key].spec()) for key in CONTAINER_KEYS)
        checked = ArgumentSpecValidator(spec).validate(given)
        label = given.get("name") or params.get("name") or "?"
        if checked.error_messages:
            raise ContainerError("container %s: the container mapping is not valid: %s; its keys are gpu_container "
                                 "options (%s)" % (label, "; ".join(checked.error_messages), ", ".join(CONTAINER_KEYS)))
        unset = unset_params()
        for key in given:
            top = params.get(key)
            if top not in (None, PARAMS_BY_NAME[key].default, unset.get(key)) and top != checked.validated_parameters[key]:
                raise ContainerError("container %s: option %s is given twice, at the top level (%r) and in container "
                                     "(%r); give it once" % (label, key, top, given[key]))
            out[key] = checked.validated_parameters[key]
    if out.get("state") == "started" and not out.get("image"):
        raise ContainerError("container %s: image is required unless state is absent or stopped" % out.get("name"))
    return out


# What each element of O(containers) may hold: every option but the list itself and the engine's address.
ELEMENT_RULES = dict(mutually_exclusive=[("gpus", "gpu_count")], required_one_of=[("name", "container")])


def each_container(params):
    """The list form (O(containers)): each element validated by the same table as the module's own
    options, O(container) merged in, the engine's address (docker_host, api_timeout) from the top level.

    Every element is checked before any container is touched; all the bad ones are named at once."""
    spec = dict((param.name, param.spec()) for param in PARAMS if param.name != "containers")
    unset = unset_params()
    top = [name for name in spec if params.get(name) not in (None, PARAMS_BY_NAME[name].default, unset.get(name))]
    if top:
        raise ContainerError("containers: option(s) %s given at the top level as well; with containers, give each "
                             "container's options in its own element. Nothing was changed." % ", ".join(top))
    out, errors = [], []
    for i, element in enumerate(params["containers"]):
        label = element.get("name") or (element.get("container") or {}).get("name") or "?"
        checked = ArgumentSpecValidator(spec, **ELEMENT_RULES).validate(element)
        if checked.error_messages:
            errors.append("containers[%d] (%s): %s" % (i, label, "; ".join(checked.error_messages)))
            continue
        # what the element does not give holds what the top level holds when not given, as in a call of its own
        merged = dict(checked.validated_parameters, **dict((k, params.get(k)) for k in DOCKER_CLIENT_ARGS))
        try:
            out.append(merge_container(merged))
        except ContainerError as exc:
            errors.append("containers[%d]: %s" % (i, exc))
    if errors:
        raise ContainerError("%s. Fix those elements; nothing was changed." % "; ".join(errors))
    names = [one["name"] for one in out]
    twice = sorted(set(n for n in names if names.count(n) > 1))
    if twice:
        raise ContainerError("containers: %s named more than once; give each container once. Nothing was changed."
                             % ", ".join(twice))
    return out


# ---------------------------------------------------------------------------------------------
# states, comparison, creation


def desired_state(params, image_info):
    """Canonical desired configuration from module parameters (or a plan entry's ``container``)."""
    ctx = {"refs": GpuRefs(params.get("gpus")), "image": image_info}
    state = dict((option.name, option.desired(params, ctx)) for option in OPTIONS)
    state["image"] = params["image"]
    state["refs"] = ctx["refs"]
    return state


def actual_state(inspect, image_info, desired):
    """Canonical form of an existing container, comparable with desired_state()."""
    ctx = {"refs": desired["refs"], "image": image_info or {}, "desired": desired}
    state = {}
    for option in OPTIONS:
        skip = option.compare == "if_set" and desired[option.name] is None
        state[option.name] = None if skip else option.actual(inspect, ctx)
    state["image"] = (inspect.get("Config") or {}).get("Image")
    state["running"] = bool((inspect.get("State") or {}).get("Running"))
    state["hardened"] = ((inspect.get("Config") or {}).get("Labels") or {}).get(HARDENING_LABEL) == HARDENING_VERSION
    return state


def compare(desired, actual):
    """The options that differ, in table order; the hardening rows only for a hardened container."""
    return [option.name for option in OPTIONS
            if not (option.compare == "if_set" and desired[option.name] is None)
            and not (option.compare == "hardening" and not actual.get("hardened"))
            and desired[option.name] != actual.get(option.name)]


def unhardened(desired, actual):
    """The hardening rows that differ on a container created before them (no hardening label): what
    O(harden) would change. Empty for a hardened container, whose rows compare() checks."""
    if actual is None or actual.get("hardened"):
        return []
    return [option.name for option in OPTIONS
            if option.compare == "hardening" and desired[option.name] != actual.get(option.name)]


def create_kwargs(params, desired, docker_module):
    """(create_container kwargs, create_host_config kwargs) for the desired state."""
    ctx = {"docker": docker_module, "params": params}
    create = {"image": desired["image"], "detach": True}
    host = {}
    for option in OPTIONS:
        option.engine(desired[option.name], ctx, create, host)
    return create, host


def update_kwargs(params, desired, changes, docker_module):
    """update_container kwargs for the changed options, or None when one of them cannot change in place."""
    if not changes or any(c not in OPTIONS_BY_NAME or not OPTIONS_BY_NAME[c].update for c in changes):
        return None
    _create, host = create_kwargs(params, desired, docker_module)
    return dict((OPTIONS_BY_NAME[c].update, host[OPTIONS_BY_NAME[c].update]) for c in changes)


# Environment values that diffs and drift reports show: the guide's settings and the ones the
# collection sets itself. Any other value may be a secret (a token, a password) and is shown as a
# short hash, so a change is still visible without the value.
VISIBLE_ENV = frozenset((
    "BATCH_SIZE", "COMPUTE_TYPE", "CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "DATA_PARALLEL_SIZE", "DEVICE",
    "ENABLE_CHUNKED_PREFILL", "ENABLE_PREFIX_CACHING", "GPU_MEMORY_UTILIZATION", "HF_DATASETS_OFFLINE", "HF_HOME",
    "HF_HUB_OFFLINE", "LOCAL_FILES_ONLY", "MAX_MODEL_LEN", "MAX_NUM_BATCHED_TOKENS", "MAX_NUM_SEQS", "MODEL_ID",
    "MODEL_NAME", "MODEL_REVISION", "NCCL_P2P_LEVEL", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_VISIBLE_DEVICES", "PATH",
    "PORT", "PRECISION", "PRELOAD_MODELS", "RAG_INSTANCE", "TENSOR_PARALLEL_SIZE", "TRANSFORMERS_OFFLINE",
    "VLLM_USE_TRITON",
))


def shown_env(env):
    """`env` as diffs and reports may show it: allow-listed values, the others as `<hidden sha256:...>`."""
    if not isinstance(env, dict):
        return env
    return dict((k, v if k in VISIBLE_ENV else "<hidden sha256:%s>"
                 % hashlib.sha256(str(v).encode("utf-8")).hexdigest()[:12]) for k, v in env.items())


def public(state):
    """A state without internal helpers and with possibly secret env values hidden: the --diff before/after."""
    out = dict((k, v) for k, v in (state or {}).items() if k not in ("refs", "hardened"))
    if "env" in out:
        out["env"] = shown_env(out["env"])
    return out
