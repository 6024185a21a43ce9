# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's service map: its schema, defaults and validation.

Private to the collection. This is the single definition of what a service entry in
``gpu_stack_services`` may hold; gpu_plan validates with it, the roles read the normalised result,
and docs/inventory-schema.md is generated from FIELDS (a unit test keeps the two in sync).

Every error names the service, the field, the value and the fix, e.g.::

    service 'llm': field 'gpus': element 'two' is neither a GPU index (int) nor a GPU UUID
    (GPU-...); write e.g. gpus: [5]
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import math
import os
import re

from ansible_collections.ragops.gpu_stack.plugins.module_utils._common import REVISION_RE, UUID_RE, parse_size
from ansible_collections.ragops.gpu_stack.plugins.module_utils._container_options import HEALTHCHECK_TIMING, NEXT_SUFFIX
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_info import LOAD_THRESHOLDS, check_thresholds

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
NUMBER_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

PRECISIONS = ("fp16", "bf16", "fp32", "int8", "int4")
DEVICES = ("gpu", "cpu")
TIERS = ("primary", "secondary")

# Settings that open the host: refused unless the service's `acknowledge` names them.
RISKS = dict((
    ("public_bind", "publishing on an address other than loopback"),
    ("docker_socket", "mounting the Docker socket"),
    ("host_path", "mounting a sensitive host path: " + ", ".join(("/",) + tuple(
        "/boot /dev /etc /lib /proc /root /run /sys /usr /var/lib/docker /var/run".split()))),
    ("models_rw", "mounting the models root read-write"),
    ("host_ipc", "the host's IPC namespace"),
    ("online", "environment that turns the offline mode off"),
    ("capabilities", "adding Linux capabilities back (cap_add)"),
))
SENSITIVE_PATHS = tuple(RISKS["host_path"].split(": ", 1)[1].split(", "))
# The offline switches (the guide's) and the values that turn them off.
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LOCAL_FILES_ONLY")
OFF_VALUES = ("0", "false", "no", "off", "")
# Docker's ulimit names (docker run --ulimit).
ULIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")
IPC_MODES = ("private", "shareable", "host", "none")
# Linux capabilities (capabilities(7)), as cap_add names them (without the CAP_ prefix).
CAPABILITIES = tuple("""AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE
    DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN
    NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT
    SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split())
PIDS_LIMIT_RANGE = (64, 4194304)

# gpu_container's healthcheck timing defaults (its option table is their one home)
DEFAULT_HEALTHCHECK = dict((param.name, param.default) for param in HEALTHCHECK_TIMING)


class Setting(object):
    """One top-level variable of the map, as a module option: ``gpu_stack_<var>`` -> option ``name``."""

    def __init__(self, name, var, kind, default, check, required=False):
        self.name = name
        self.required = required
        self.var = var
        self.kind = kind
        self.default = default
        self.check = check  # value -> list of problems (no prefix), empty when valid


def _check_reserved(value):
    if not isinstance(value, list):
        return ["%r is not a list of GPU indices; write e.g. [5, 6, 7]" % (value,)]
    out = []
    for gpu in value:
        if not _is_int(gpu) or gpu < 0:
            out.append("%r is not a GPU index (a whole number >= 0, written unquoted)" % (gpu,))
    out += ["GPU %s is listed twice" % g for g in sorted(set(g for g in value if _is_int(g) and value.count(g) > 1))]
    return out


def _check_memory_limit(value):
    if not _is_number(value) or not 0 < value <= 100:
        fix = quoted("gpu_stack_gpu_memory_limit_pct", value) or "; write e.g. gpu_stack_gpu_memory_limit_pct: 90"
        return ["%r is not a percentage in (0, 100]%s" % (value, fix)]
    return []


EXPECTED_GPU_KEYS = ("count", "name", "nvswitch")


def _check_expected(value):
    if value is None:
        return []
    if not isinstance(value, dict):
        return ["%r is not a mapping; write e.g. {count: 8, name: NVIDIA A100-SXM4-80GB, nvswitch: true}" % (value,)]
    out = ["%r: %s" % (k, unknown(k, EXPECTED_GPU_KEYS, "key")) for k in value if k not in EXPECTED_GPU_KEYS]
    if "count" in value and (not _is_int(value["count"]) or value["count"] < 1):
        out.append("count %r is not a whole number >= 1%s" % (value["count"], quoted("count", value["count"])))
    if "name" in value and (not isinstance(value["name"], str) or not value["name"].strip()):
        out.append("name %r is not a GPU name as NVML reports it, e.g. NVIDIA A100-SXM4-80GB" % (value["name"],))
    if "nvswitch" in value and not isinstance(value["nvswitch"], bool):
        out.append("nvswitch %r is not true or false" % (value["nvswitch"],))
    return out


def _check_bind(value):
    if not isinstance(value, str) or not _is_address(value):
        return ["%r is not an IP address; write e.g. 127.0.0.1 (this host only) or the address of one interface"
                % (value,)]
    return []


def _check_common_env(value):
    out = []
    _check_env(lambda field, message: out.append(message), value)
    return out


def _check_choice(choices):
    def check(value):
        return [] if value in choices else ["%r is not one of %s" % (value, ", ".join(choices))]
    return check


def _check_models_root(value):
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/") \
            or value.rstrip("/") in ("", "/etc", "/proc", "/sys", "/var/run", "/run", "/usr", "/boot", "/dev"):
        return ["%r is not a directory of its own for the models; write an absolute path such as /opt/models/hf"
                % (value,)]
    return []


LOAD_BALANCER_MODES = ("auto", "all", "none")

# The top-level variables the planner, the drift check and failover take (as module options of the
# same name without gpu_stack_): their defaults and their checks, here only.
SETTINGS = (
    # the services and their overrides: validate_services
    Setting("services", "gpu_stack_services", "list", None, lambda value: [], required=True),
    Setting("overrides", "gpu_stack_service_overrides", "dict", {}, lambda value: []),
    Setting("common_env", "gpu_stack_common_env", "dict", {}, _check_common_env),
    Setting("bind_address", "gpu_stack_bind_address", "str", "127.0.0.1", _check_bind),
    Setting("reserved_gpus", "gpu_stack_reserved_gpus", "list of int", [], _check_reserved),
    Setting("load_balancer", "gpu_stack_load_balancer", "str", "auto", _check_choice(LOAD_BALANCER_MODES)),
    Setting("memory_limit_pct", "gpu_stack_gpu_memory_limit_pct", "number", 90, _check_memory_limit),
    Setting("expected_gpus", "gpu_stack_expected_gpus", "dict", None, _check_expected),
    Setting("models_root", "hf_models_root", "path", "/opt/models/hf", _check_models_root),
)

# The map as module arguments (gpu_plan, drift_info, gpu_failover); documented by the service_map doc
# fragment. Raw: the types are checked by check_settings, whose messages name the variable.
MAP_ARGS = dict((s.name, dict(type="raw", required=True) if s.required else dict(type="raw", default=s.default))
                for s in SETTINGS)


def with_defaults(params):
    """`params` with every top-level setting that is None (unset, or empty in YAML) at its default.

    A number setting given as a string that holds a finite number is read as that number: ansible-core
    before 2.19 hands a templated scalar to a module as a string (the role default
    `{{ gpu_stack_gpu_memory_limit_pct | default(90) }}` arrives as '90'), so a module cannot tell a
    quoted number from an unquoted one there. (The map's entries keep their types: a list is passed
    whole.)"""
    out = dict(params)
    for setting in SETTINGS:
        if out.get(setting.name) is None:
            out[setting.name] = copy.deepcopy(setting.default)
        elif setting.kind == "number" and isinstance(out[setting.name], str):
            try:
                number = float(out[setting.name])
            except ValueError:
                continue
            if math.isfinite(number):
                out[setting.name] = int(number) if number.is_integer() else number
    return out


def check_settings(params):
    """Every problem with the top-level variables in module params, each naming the variable, the
    bad value and the fix (empty: valid). None stands for the default."""
    errors = []
    for setting in SETTINGS:
        value = params.get(setting.name)
        # unset, or empty in YAML (`gpu_stack_reserved_gpus:`): the default
        for problem in setting.check(setting.default if value is None else value):
            errors.append("%s: %s" % (setting.var, problem))
    return errors


class ServiceMapError(ValueError):
    """A service map that cannot be deployed. ``errors`` holds one message per problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(ServiceMapError, self).__init__("; ".join(self.errors))


class Field(object):
    """One key of a service entry."""

    def __init__(self, name, kind, doc, required=False, default=None, example=None):
        self.name = name
        self.kind = kind
        self.doc = doc
        self.required = required
        self.default = default
        self.example = example


# Order is the order of the generated documentation.
FIELDS = (
    Field("name", "str", "Service name, unique on the host; `[a-z][a-z0-9_-]*`. Other settings refer to it "
          "(`gpu_stack_service_overrides`, health tables, drift findings).", required=True, example="llm"),
    Field("image", "str", "Image reference with a version tag or an `@sha256:` digest. `:latest` and untagged "
          "references are refused: a deployment must be repeatable.", required=True, example="rag-llm-server:1.4.2"),
    Field("container_name", "str", "Container name on the host. Defaults to `rag-<name>`.", example="rag-llm-server"),
    Field("gpus", "list", "Host GPUs as indices (int) or UUIDs (`GPU-...`). The plan resolves indices to UUIDs "
          "and the container is pinned by UUID. Empty only when `device: cpu`.", required=True, example=[2, 3]),
    Field("port", "int", "Host port of the service's HTTP API (1-65535), unique on the host.", required=True,
          example=8003),
    Field("container_port", "int", "Port the service listens on inside the container.", default=8000),
    Field("bind_address", "str", "Host address the port is published on. Defaults to `gpu_stack_bind_address` "
          "(127.0.0.1: services are reached through a proxy on the host, not directly)."),
    Field("health_path", "str", "HTTP path answering 200 when the service is ready.", default="/health"),
    Field("model", "dict", "The model the service loads, staged offline before the container starts: "
          "`repo_id` (Hugging Face `org/name`), `revision` (40-hex commit), optional `files` "
          "(list of `{path, size, sha256}`), `allow_patterns`, `require_safetensors` and `source`. "
          "See the model manifest section.", required=True,
          example={"repo_id": "microsoft/DialoGPT-medium", "revision": "<40-hex commit>"}),
    Field("vram_estimate_gb", "float", "Expected VRAM use in GB across all of the service's GPUs; the plan checks "
          "that estimates on each GPU stay under the per-GPU limit.", required=True, example=120),
    Field("precision", "str", "Model precision: one of " + ", ".join(PRECISIONS) + ".", default="fp16"),
    Field("tensor_parallel", "int", "Tensor-parallel size. The GPUs are split into groups of this size, in the order "
          "listed; each group needs an NVLink path between every pair. More GPUs than this (a multiple of it) run "
          "data-parallel workers, which need no NVLink: the plan sets `DATA_PARALLEL_SIZE` (vertical scaling).",
          default=1),
    Field("max_gpus", "int", "The most GPUs one instance of the service may use (the guide: 2 for Whisper and OCR). "
          "Unset: no limit but the host's.", example=2),
    Field("allow_reserved", "bool", "Let this `tier: primary` service grow onto GPUs in `gpu_stack_reserved_gpus` "
          "(vertical scaling). Without it only `tier: secondary` uses the reserve; the plan prints what is left.",
          default=False),
    Field("shm_size", "str", "Shared memory for the container (`32g`, `512m`); needed by NCCL for tensor "
          "parallelism.", example="32g"),
    Field("ipc", "str", "IPC mode (`private`, `shareable`, `host`). Defaults to the engine's default."),
    Field("ulimits", "dict", "Resource limits, e.g. `{memlock: -1, stack: 67108864}`.", default={}),
    Field("env", "dict", "Service environment. Values are strings. `CUDA_VISIBLE_DEVICES` is managed by the plan "
          "(see `cuda_visible_devices`); `gpu_stack_common_env` is added under it.", default={}),
    Field("cuda_visible_devices", "str", "How the plan sets `CUDA_VISIBLE_DEVICES` in the container: `ordinals` "
          "(container-local `0,1,...`, the default) or `omit`. Host indices are never passed: inside a container the "
          "GPUs are renumbered from 0.", default="ordinals"),
    Field("share_gpus", "bool", "Allow this service to share its GPUs with other services that also set it, when "
          "the VRAM estimates fit.", default=False),
    Field("tier", "str", "`primary`, or `secondary` for scaling and failover instances, the only kind allowed on "
          "reserved GPUs.", default="primary"),
    Field("device", "str", "`gpu`, or `cpu` for the CPU fallback mode (no GPUs, `DEVICE=cpu`).", default="gpu"),
    Field("cpu_fallback", "dict", "The service's CPU mode, used by failover when no healthy GPU can take it (the "
          "guide: Whisper with `DEVICE=cpu`, the LLM on `rag-llm-gptoss`): `env` merged over the service's "
          "(the plan sets `DEVICE=cpu`, `CUDA_VISIBLE_DEVICES=\"\"`, no GPU request), `image` (defaults to the "
          "service's), and the container's `cpus` and `memory` limits. Without it such a service is stopped. "
          "Much slower than on a GPU.", example={"env": {"DEVICE": "cpu"}, "cpus": 8, "memory": "32g"}),
    Field("preallocation_env", "str", "The environment variable whose value, a fraction in (0, 1], is the share of "
          "each of its GPUs' memory the service takes at start (vLLM's `GPU_MEMORY_UTILIZATION`, the default). "
          "When the service's environment sets it, health and drift expect that use on each of its GPUs; otherwise "
          "its VRAM estimate split over its GPUs (docs/gpu-load.md).", default="GPU_MEMORY_UTILIZATION"),
    Field("thresholds", "dict", "The service's own memory and utilisation thresholds on its GPUs, over "
          "`gpu_stack_thresholds` (keys " + ", ".join("`%s`" % k for k in LOAD_THRESHOLDS) + "); "
          "`gpu_stack_gpu_thresholds` per GPU index wins over both.", default={},
          example={"memory_margin_pct": 8}),
    Field("instances", "list", "More instances of the service (horizontal scaling), each a mapping with the keys of "
          "the instance table below. They share the service's model, health path and client port; the load balancer "
          "(`gpu_stack_load_balancer`) spreads requests over all of them.", default=[],
          example=[{"container_name": "rag-llm-server-2", "gpus": [5], "tensor_parallel": 1}]),
    Field("backend_port", "int", "Loopback port of the service's first instance when it is behind the load balancer "
          "(clients keep `port`, which the load balancer then listens on). Defaults to `port` + 10000; further "
          "instances default to this + 100, + 200, ...", example=18003),
    Field("enabled", "bool", "Deploy this service. `false` keeps the entry in the map, validated but not planned: "
          "no GPUs allocated, no container (an existing one is removed).", default=True),
    Field("healthcheck", "dict", "Docker healthcheck timing in seconds: `interval`, `timeout`, `retries`, "
          "`start_period`.", default=dict(DEFAULT_HEALTHCHECK)),
    Field("command", "list", "Arguments passed to the image's entrypoint."),
    Field("user", "str", "User (uid[:gid]) the service runs as."),
    Field("volumes", "list", "Extra bind mounts `host:container[:ro|rw]`, in addition to the model cache that is "
          "always mounted read-only.", default=[]),
    Field("cap_add", "list", "Linux capabilities the service needs back (the container drops all of them), e.g. "
          "`[SYS_NICE]`; needs `acknowledge: [capabilities]`.", default=[]),
    Field("read_only", "bool", "A read-only root filesystem (the default); the service writes only to its `tmpfs` "
          "mounts. `false` for an image that writes elsewhere.", default=True),
    Field("tmpfs", "dict", "Memory-backed scratch mounts, absolute path to mount options (Docker mounts them "
          "`noexec,nosuid,nodev`); a real vLLM image also wants e.g. "
          "`/root/.cache: size=8g`.", default={"/tmp": "size=1g", "/run": "size=64m"}),
    Field("pids_limit", "int", "The most processes and threads the container may run (%d to %d)."
          % PIDS_LIMIT_RANGE, default=8192),
    Field("memory", "str", "Host memory limit of the container (`docker run --memory`), e.g. `64g`. Unset: no "
          "limit (docs/hardening.md).", example="64g"),
    Field("purpose", "str", "One line for the allocation table.", default=""),
    Field("acknowledge", "list", "Settings that open the host which this service may use, each named: "
          + ", ".join("`%s` (%s)" % kv for kv in RISKS.items()) + ". Without it such a setting is refused.",
          default=[]),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)

# The keys of one entry of a service's `instances`: what an instance may set differently from its
# service. Everything else (model, health path, client port, ...) is the service's.
INSTANCE_FIELDS = (
    Field("container_name", "str", "Container name, unique on the host.", required=True, example="rag-llm-server-2"),
    Field("gpus", "list", "Its GPUs, as the service's `gpus`; empty only when the service is `device: cpu`.",
          required=True, example=[5]),
    Field("image", "str", "Its image, pinned like the service's. Defaults to the service's (the guide's second LLM "
          "instance runs another image).", example="rag-llm-gptoss:1.0.0"),
    Field("tier", "str", "`secondary` (a scaling instance: its GPUs must be reserved ones) or `primary` (say so to "
          "run it on GPUs outside the reserve).", default="secondary"),
    Field("tensor_parallel", "int", "Its tensor-parallel size. Defaults to the service's.", example=1),
    Field("vram_estimate_gb", "float", "Its VRAM estimate across its GPUs. Defaults to the service's estimate per GPU "
          "times its number of GPUs.", example=60),
    Field("env", "dict", "Environment merged over the service's, e.g. `{TENSOR_PARALLEL_SIZE: \"1\"}`.", default={}),
    Field("backend_port", "int", "Its loopback port behind the load balancer (default: see the service's "
          "`backend_port`).", example=18103),
    Field("allow_reserved", "bool", "As the service's `allow_reserved`, for an instance of `tier: primary`.",
          default=False),
)
INSTANCE_FIELD_NAMES = tuple(f.name for f in INSTANCE_FIELDS)
BACKEND_PORT_OFFSET = 10000
INSTANCE_PORT_STEP = 100

CPU_FALLBACK_KEYS = ("env", "image", "cpus", "memory")
MODEL_KEYS = ("repo_id", "revision", "files", "allow_patterns", "require_safetensors", "source")
HEALTHCHECK_KEYS = tuple(DEFAULT_HEALTHCHECK)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    """A finite int or float (not a bool, not NaN or infinity)."""
    return (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_address(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def deep_merge(base, override):
    """Recursive dict merge: override wins, nested dicts merge, lists are replaced."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Checker(object):
    def __init__(self):
        self.errors = []

    def err(self, service, field, message):
        self.errors.append("service '%s': field '%s': %s" % (service, field, message))

    def scoped(self, service, instance=None):
        """err(field, message) for one service, or one of its instances."""
        who = "service '%s'" % service + (": instance '%s'" % instance if instance else "")
        return lambda field, message: self.errors.append("%s: field '%s': %s" % (who, field, message))


def unknown(key, allowed, what="field", note=""):
    """The message for a key the schema does not have: the closest allowed one when it looks like a
    typo ('prot' -> 'port'), else the whole list."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    if close:
        return "unknown %s; did you mean '%s'?%s" % (what, close[0], note)
    return "unknown %s; allowed: %s%s" % (what, ", ".join(allowed), note)


def quoted(key, value):
    """The rule for numbers, told where a quoted one is refused: numbers in the map are written
    unquoted (`port: 8003`); only env values are strings (numbers there become strings)."""
    if isinstance(value, str) and NUMBER_RE.match(value.strip()):
        return " (a quoted number: write %s: %s without quotes; in the map only env values are strings)" \
            % (key, value.strip())
    return ""


def preallocation(value):
    """The fraction of GPU memory an environment value such as GPU_MEMORY_UTILIZATION=0.9 asks for, or None."""
    try:
        fraction = float(str(value).strip())
    except ValueError:
        return None
    return fraction if 0 < fraction <= 1 else None


def _check_image(err, image):
    if not isinstance(image, str) or not image.strip():
        err("image", "must be an image reference such as rag-whisper:1.0.0")
        return
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and ":" not in last:
        err("image", "%r has no tag; pin a version tag or an @sha256 digest, e.g. %s:1.0.0" % (image, image))
    elif "@sha256:" not in image and last.endswith(":latest"):
        err("image", "%r is not pinned: ':latest' moves; use a version tag or an @sha256 digest" % image)


def _check_port(err, key, value):
    if not _is_int(value) or not 1 <= value <= 65535:
        err(key, "%r is not a port number (1-65535)%s" % (value, quoted(key, value)))


def _check_env(err, env):
    if not isinstance(env, dict):
        err("env", "must be a mapping of NAME: value")
        return
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            err("env", "%r is not a valid environment variable name" % (key,))
        elif isinstance(value, (dict, list)) or value is None:
            err("env.%s" % key, "must be a string, got %r; quote it" % (value,))


def _used(services, key):
    """The values of `key` ("gpus" or "port") the map's entries and their instances already use."""
    used = set()
    for entry in services or []:
        if not isinstance(entry, dict):
            continue
        instances = entry.get("instances") if isinstance(entry.get("instances"), list) else []
        for item in [entry] + [i for i in instances if isinstance(i, dict)]:
            values = item.get(key) if key == "gpus" else [item.get(key)]
            for value in values if isinstance(values, list) else []:
                if _is_int(value):
                    used.add(value)
    return used


def _free_gpus(services):
    """`gpus: [N]` with the lowest GPU index no entry of the map uses, for examples in messages."""
    used = _used(services, "gpus")
    return "gpus: [%d]" % next(i for i in range(len(used) + 1) if i not in used)


def _example(field, name, services):
    """An example for a missing required field that fits this service and this map, never another
    service's value: its own image name, a GPU and a port no entry uses, placeholders for the rest."""
    if field == "gpus":
        return "%s (a GPU no other service uses)" % _free_gpus(services)
    if field == "port":
        return "port: %d (a port no other service uses)" % (max(_used(services, "port") or {8000}) + 1)
    if field == "image":
        return "image: rag-%s:<version tag or @sha256 digest>" % name
    if field == "model":
        return "model: {repo_id: <org>/<model>, revision: <40-hex commit>}"
    if field == "vram_estimate_gb":
        return "vram_estimate_gb: <GB the model needs on its GPUs, all of them together>"
    return "%s: <%s>" % (field, field)


def _check_instances(chk, name, instances, device, services=None):
    if not isinstance(instances, list):
        chk.err(name, "instances", "must be a list of {container_name, gpus, ...}, got %r; write e.g. instances: "
                "[{container_name: rag-%s-2, %s}]" % (instances, name, _free_gpus(services)))
        return
    for idx, inst in enumerate(instances):
        if not isinstance(inst, dict) or not isinstance(inst.get("container_name"), str):
            chk.err(name, "instances[%d]" % idx, "must be a mapping with container_name and gpus, got %r; write e.g. "
                    "{container_name: rag-%s-%d, %s}" % (inst, name, idx + 2, _free_gpus(services)))
            continue
        cname = inst["container_name"]
        err = chk.scoped(name, cname)
        if not CONTAINER_NAME_RE.match(cname):
            err("container_name", "%r is not a valid container name" % (cname,))
        for key in inst:
            if key not in INSTANCE_FIELD_NAMES:
                err(key, unknown(key, INSTANCE_FIELD_NAMES, "field for an instance", " (the rest is the service's)"))
        if "gpus" not in inst:
            err("gpus", "is required but missing; e.g. " + _example("gpus", name, services))
        else:
            sub = _Checker()
            _check_gpus(sub, name, inst["gpus"], device, services)
            for message in sub.errors:
                err("gpus", message.split("field 'gpus': ", 1)[-1])
        if "image" in inst:
            _check_image(err, inst["image"])
        if inst.get("tier", "secondary") not in TIERS:
            err("tier", "%r is not one of %s" % (inst["tier"], ", ".join(TIERS)))
        if "tensor_parallel" in inst and (not _is_int(inst["tensor_parallel"]) or inst["tensor_parallel"] < 1):
            err("tensor_parallel", "%r must be a whole number >= 1%s"
                % (inst["tensor_parallel"], quoted("tensor_parallel", inst["tensor_parallel"])))
        if "vram_estimate_gb" in inst and (not _is_number(inst["vram_estimate_gb"]) or inst["vram_estimate_gb"] < 0):
            err("vram_estimate_gb", "%r is not a size in GB%s" % (
                inst["vram_estimate_gb"], quoted("vram_estimate_gb", inst["vram_estimate_gb"]) or
                "; write e.g. vram_estimate_gb: 60"))
        if "env" in inst:
            _check_env(err, inst["env"])
        if "backend_port" in inst:
            _check_port(err, "backend_port", inst["backend_port"])
        if "allow_reserved" in inst and not isinstance(inst["allow_reserved"], bool):
            err("allow_reserved", "must be true or false, got %r" % (inst["allow_reserved"],))


def _check_cpu_fallback(err, value):
    example = "write e.g. cpu_fallback: {env: {DEVICE: cpu}, cpus: 8, memory: 32g}"
    if not isinstance(value, dict):
        err("cpu_fallback", "must be a mapping of %s, got %r; %s" % (", ".join(CPU_FALLBACK_KEYS), value, example))
        return
    for key in value:
        if key not in CPU_FALLBACK_KEYS:
            err("cpu_fallback.%s" % key, unknown(key, CPU_FALLBACK_KEYS, "key"))
    if "env" in value:
        _check_env(lambda field, message: err("cpu_fallback." + field, message), value["env"])
    if "image" in value:
        _check_image(lambda field, message: err("cpu_fallback." + field, message), value["image"])
    if "cpus" in value and (not _is_number(value["cpus"]) or value["cpus"] <= 0):
        err("cpu_fallback.cpus", "%r is not a CPU count%s; %s" % (value["cpus"], quoted("cpus", value["cpus"]), example))
    if "memory" in value:
        try:
            parse_size(value["memory"])
        except ValueError:
            err("cpu_fallback.memory", "%r is not a size such as 32g or 512m" % (value["memory"],))


def _check_model(chk, name, model):
    if not isinstance(model, dict):
        chk.err(name, "model", "must be a mapping with repo_id and revision, got %r" % (model,))
        return
    for key in model:
        if key not in MODEL_KEYS:
            chk.err(name, "model.%s" % key, unknown(key, MODEL_KEYS, "key"))
    repo_id = model.get("repo_id")
    if not isinstance(repo_id, str) or not REPO_ID_RE.match(repo_id):
        chk.err(name, "model.repo_id", "%r is not a Hugging Face repo id; write it as org/name, "
                "e.g. sentence-transformers/all-MiniLM-L6-v2" % (repo_id,))
    revision = model.get("revision")
    if not isinstance(revision, str) or not REVISION_RE.match(revision):
        chk.err(name, "model.revision", "%r is not a pinned 40-hex commit; branch names such as 'main' move, "
                "pin the commit you staged (huggingface_hub: HfApi().model_info(repo).sha)" % (revision,))
    files = model.get("files")
    if files is not None:
        if not isinstance(files, list):
            chk.err(name, "model.files", "must be a list of {path, size, sha256}")
        else:
            seen = set()
            for idx, item in enumerate(files):
                where = "model.files[%d]" % idx
                if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item.get("path"):
                    chk.err(name, where, "needs a path, got %r" % (item,))
                    continue
                path = item["path"]
                if path.startswith("/") or ".." in path.split("/"):
                    chk.err(name, where, "path %r must be relative inside the repository" % path)
                if path in seen:
                    chk.err(name, where, "path %r is listed twice" % path)
                seen.add(path)
                if "size" in item and (not _is_int(item["size"]) or item["size"] < 0):
                    chk.err(name, where, "size %r of %s must be a byte count" % (item["size"], path))
                if "sha256" in item and (not isinstance(item["sha256"], str) or not SHA256_RE.match(item["sha256"])):
                    chk.err(name, where, "sha256 of %s must be 64 lowercase hex digits, got %r"
                            % (path, item["sha256"]))
    patterns = model.get("allow_patterns")
    if patterns is not None and (not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns)):
        chk.err(name, "model.allow_patterns", "must be a list of glob patterns, e.g. ['*.json', '*.safetensors']")
    if "require_safetensors" in model and not isinstance(model["require_safetensors"], bool):
        chk.err(name, "model.require_safetensors", "must be true or false")
    source = model.get("source")
    if source is not None and (not isinstance(source, dict) or len(source) != 1
                               or list(source)[0] not in ("bundle", "tarball", "mirror", "hub")):
        chk.err(name, "model.source", "must be one of {bundle: PATH}, {tarball: PATH}, {mirror: URL} or {hub: true}, "
                "got %r" % (source,))


def _check_gpus(chk, name, gpus, device, services=None):
    if not isinstance(gpus, list):
        chk.err(name, "gpus", "must be a list of GPU indices or UUIDs, got %r; write e.g. %s"
                % (gpus, _free_gpus(services)))
        return
    if device == "gpu" and not gpus:
        chk.err(name, "gpus", "is empty; give at least one GPU, or set device: cpu for the CPU fallback")
    if device == "cpu" and gpus:
        chk.err(name, "gpus", "must be empty when device is cpu, got %r" % (gpus,))
    seen = []
    for gpu in gpus:
        if _is_int(gpu):
            if gpu < 0:
                chk.err(name, "gpus", "GPU index %d is negative" % gpu)
        elif isinstance(gpu, str) and UUID_RE.match(gpu):
            pass
        else:
            chk.err(name, "gpus", "element %r is neither a GPU index (int) nor a GPU UUID (GPU-...); "
                    "write e.g. %s" % (gpu, _free_gpus(services)))
            continue
        if gpu in seen:
            chk.err(name, "gpus", "GPU %s is listed twice" % (gpu,))
        seen.append(gpu)


def _check_entry(chk, entry, index, services=None):
    if not isinstance(entry, dict):
        chk.errors.append("gpu_stack_services[%d]: must be a mapping with name, image, gpus, port, model and "
                          "vram_estimate_gb, got %r" % (index, entry))
        return
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        label = name if isinstance(name, str) and name else "#%d" % index
        chk.err(label, "name", "%r is not a valid service name; use lowercase letters, digits, '-' or '_', "
                "starting with a letter" % (name,))
        name = label
    typos = set()
    for key in entry:
        if key not in FIELD_NAMES:
            chk.err(name, key, unknown(key, FIELD_NAMES))
            typos.update(difflib.get_close_matches(str(key), FIELD_NAMES, n=1, cutoff=0.6))
    for field in FIELDS:
        # a misspelt required field is one error ("did you mean"), not two
        if field.required and field.name not in entry and field.name not in typos:
            chk.err(name, field.name, "is required but missing; e.g. " + _example(field.name, name, services))

    device = entry.get("device", "gpu")
    if device not in DEVICES:
        chk.err(name, "device", "%r is not one of %s" % (device, ", ".join(DEVICES)))
    if "image" in entry:
        _check_image(chk.scoped(name), entry.get("image"))
    if "container_name" in entry and (not isinstance(entry["container_name"], str)
                                      or not CONTAINER_NAME_RE.match(entry["container_name"])):
        chk.err(name, "container_name", "%r is not a valid container name" % (entry["container_name"],))
    if "gpus" in entry:
        _check_gpus(chk, name, entry["gpus"], device, services)
    for key in ("port", "container_port", "backend_port"):
        if key in entry:
            _check_port(chk.scoped(name), key, entry[key])
    if "max_gpus" in entry and (not _is_int(entry["max_gpus"]) or entry["max_gpus"] < 1):
        chk.err(name, "max_gpus", "%r must be a whole number >= 1%s"
                % (entry["max_gpus"], quoted("max_gpus", entry["max_gpus"])))
    if "instances" in entry:
        _check_instances(chk, name, entry["instances"], device, services)
    if entry.get("cpu_fallback") is not None:
        _check_cpu_fallback(chk.scoped(name), entry["cpu_fallback"])
    if "thresholds" in entry:
        for message in check_thresholds(entry["thresholds"], "service '%s': field 'thresholds'" % name, LOAD_THRESHOLDS):
            chk.errors.append(message)
    prealloc = entry.get("preallocation_env", "GPU_MEMORY_UTILIZATION")
    if not isinstance(prealloc, str) or not ENV_NAME_RE.match(prealloc):
        chk.err(name, "preallocation_env", "%r is not an environment variable name; write e.g. "
                "preallocation_env: GPU_MEMORY_UTILIZATION" % (prealloc,))
    else:
        instances = [("instances[%d].env" % i, inst.get("env"))
                     for i, inst in enumerate(entry.get("instances") if isinstance(entry.get("instances"), list) else [])
                     if isinstance(inst, dict)]
        envs = [("env", entry.get("env"))] + instances
        for field, env in envs:
            if isinstance(env, dict) and prealloc in env and preallocation(env[prealloc]) is None:
                chk.err(name, field, "%s=%r is not a fraction of GPU memory in (0, 1]; write e.g. %s: \"0.9\""
                        % (prealloc, env[prealloc], prealloc))
    if "vram_estimate_gb" in entry:
        value = entry["vram_estimate_gb"]
        if not _is_number(value) or value < 0:
            chk.err(name, "vram_estimate_gb", "%r is not a size in GB%s" % (
                value, quoted("vram_estimate_gb", value) or "; write it as a number, e.g. vram_estimate_gb: 16"))
    if "model" in entry:
        _check_model(chk, name, entry["model"])
    if "precision" in entry and entry["precision"] not in PRECISIONS:
        chk.err(name, "precision", "%r is not one of %s" % (entry["precision"], ", ".join(PRECISIONS)))
    if "tensor_parallel" in entry:
        value = entry["tensor_parallel"]
        if not _is_int(value) or value < 1:
            chk.err(name, "tensor_parallel", "%r must be a whole number >= 1%s" % (value, quoted("tensor_parallel", value)))
    if entry.get("shm_size") is not None:
        try:
            parse_size(entry["shm_size"])
        except ValueError:
            chk.err(name, "shm_size", "%r is not a size such as 32g or 512m" % (entry["shm_size"],))
    if "env" in entry:
        _check_env(chk.scoped(name), entry["env"])
    if entry.get("cuda_visible_devices", "ordinals") not in ("ordinals", "omit"):
        chk.err(name, "cuda_visible_devices", "%r is not one of ordinals, omit" % (entry["cuda_visible_devices"],))
    for key in ("share_gpus", "enabled", "allow_reserved"):
        if key in entry and not isinstance(entry[key], bool):
            chk.err(name, key, "must be true or false, got %r" % (entry[key],))
    if entry.get("tier", "primary") not in TIERS:
        chk.err(name, "tier", "%r is not one of %s" % (entry["tier"], ", ".join(TIERS)))
    if "healthcheck" in entry:
        hc = entry["healthcheck"]
        if not isinstance(hc, dict):
            chk.err(name, "healthcheck", "must be a mapping of %s" % ", ".join(HEALTHCHECK_KEYS))
        else:
            for key, value in hc.items():
                if key not in HEALTHCHECK_KEYS:
                    chk.err(name, "healthcheck.%s" % key, unknown(key, HEALTHCHECK_KEYS, "key"))
                elif not _is_int(value) or value < (1 if key != "start_period" else 0):
                    chk.err(name, "healthcheck.%s" % key, "%r must be a whole number of seconds%s"
                            % (value, quoted(key, value)))
    if "ulimits" in entry:
        ul = entry["ulimits"]
        if not isinstance(ul, dict) or not all(_is_int(v) for v in ul.values()):
            chk.err(name, "ulimits", "must map limit names to integers, e.g. {memlock: -1, stack: 67108864}")
        else:
            for key in ul:
                if key not in ULIMIT_NAMES:
                    chk.err(name, "ulimits.%s" % key, unknown(key, ULIMIT_NAMES, "limit"))
    _check_hardening(chk, name, entry)
    if isinstance(entry.get("ipc"), str) and entry["ipc"] not in IPC_MODES and not entry["ipc"].startswith("container:"):
        chk.err(name, "ipc", "%r is not one of %s or container:NAME" % (entry["ipc"], ", ".join(IPC_MODES)))
    for key in ("command", "volumes"):
        if entry.get(key) is not None and (not isinstance(entry[key], list)
                                           or not all(isinstance(v, str) for v in entry[key])):
            chk.err(name, key, "must be a list of strings")
    for key in ("ipc", "user", "purpose", "health_path", "bind_address"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            chk.err(name, key, "must be a string, got %r" % (entry[key],))
    if isinstance(entry.get("health_path"), str) and not entry["health_path"].startswith("/"):
        chk.err(name, "health_path", "%r must start with /" % entry["health_path"])


def _check_hardening(chk, name, entry):
    """cap_add, read_only, tmpfs, pids_limit, memory: the container's hardening (its acknowledgement is
    _check_exposure's)."""
    caps = entry.get("cap_add")
    if caps is not None and (not isinstance(caps, list) or not all(isinstance(c, str) for c in caps)):
        chk.err(name, "cap_add", "must be a list of capability names, e.g. [SYS_NICE]")
    else:
        for cap in caps or []:
            bare = cap.upper()[4:] if cap.upper().startswith("CAP_") else cap.upper()
            if bare not in CAPABILITIES:
                chk.err(name, "cap_add", "%r: %s" % (cap, unknown(bare, CAPABILITIES, "capability")))
    if "read_only" in entry and not isinstance(entry["read_only"], bool):
        chk.err(name, "read_only", "must be true or false, got %r" % (entry["read_only"],))
    mounts = entry.get("tmpfs")
    if mounts is not None and not isinstance(mounts, dict):
        chk.err(name, "tmpfs", "must map absolute paths to mount options, e.g. {/tmp: size=1g}")
    else:
        for path, opts in (mounts or {}).items():
            if not isinstance(path, str) or not path.startswith("/") or path == "/":
                chk.err(name, "tmpfs", "%r is not an absolute path below /; write e.g. /tmp: size=1g" % (path,))
            elif not isinstance(opts, str) or ":" in opts:
                chk.err(name, "tmpfs.%s" % path, "%r is not a mount option string such as size=1g or "
                        "size=1g,mode=1777" % (opts,))
    if "pids_limit" in entry:
        value, (low, high) = entry["pids_limit"], PIDS_LIMIT_RANGE
        if not _is_int(value) or not low <= value <= high:
            chk.err(name, "pids_limit", "%r must be a whole number from %d to %d%s" % (
                value, low, high, quoted("pids_limit", value) or "; write e.g. pids_limit: 8192"))
    if entry.get("memory") is not None:
        try:
            size = parse_size(entry["memory"])
        except (TypeError, ValueError):
            size = None
        if size is None or size < 64 * 1024 * 1024:
            chk.err(name, "memory", "%r is not a memory limit of at least 64m; write e.g. memory: 64g"
                    % (entry["memory"],))


def _check_container_names(chk, name, entry, seen):
    cname = entry.get("container_name") or "rag-%s" % name
    names = [(cname, chk.scoped(name), "service '%s'" % name, "")] if isinstance(cname, str) else []
    for inst in entry.get("instances") if isinstance(entry.get("instances"), list) else []:
        iname = inst.get("container_name") if isinstance(inst, dict) else None
        if isinstance(iname, str):
            names.append((iname, chk.scoped(name, iname), "service '%s' (instance '%s')" % (name, iname),
                          "; give each instance its own container_name"))
    for cname, err, owner, fix in names:
        if cname.endswith(NEXT_SUFFIX):
            err("container_name", "'%s' ends with %s, the collection's temporary name for a container being "
                "recreated; choose another name" % (cname, NEXT_SUFFIX))
        if cname in seen:
            err("container_name", "'%s' is already used by %s%s" % (cname, seen[cname], fix))
        seen[cname] = owner


def _check_exposure(chk, name, entry, bind_address, common_env, models_root):
    """Settings that open the host, refused unless the entry's `acknowledge` names them."""
    ack = entry.get("acknowledge", [])
    if not isinstance(ack, list) or not all(isinstance(a, str) for a in ack):
        chk.err(name, "acknowledge", "must be a list of names from: %s" % ", ".join(RISKS))
        return
    for item in ack:
        if item not in RISKS:
            chk.err(name, "acknowledge", "%r: %s" % (item, unknown(item, tuple(RISKS), "name")))

    def refuse(field, risk, what, fix):
        if risk not in ack:
            chk.err(name, field, "%s; %s, or acknowledge it with acknowledge: [%s]" % (what, fix, risk))

    bind = entry.get("bind_address") or bind_address
    if isinstance(bind, str) and _is_address(bind) and not ipaddress.ip_address(bind).is_loopback:
        refuse("bind_address", "public_bind", "%s publishes port %s beyond this host" % (bind, entry.get("port")),
               "publish on 127.0.0.1 and put a proxy with access control in front")
    for spec in entry.get("volumes") if isinstance(entry.get("volumes"), list) else []:
        parts = str(spec).split(":")
        host = os.path.normpath(parts[0]) if parts[0].startswith("/") else parts[0]
        writable = "ro" not in (parts[2].split(",") if len(parts) > 2 else [])
        if os.path.basename(host) == "docker.sock":
            refuse("volumes", "docker_socket", "%r mounts the Docker socket: root on the host for the container"
                   % (spec,), "remove it")
        elif host in SENSITIVE_PATHS:
            refuse("volumes", "host_path", "%r mounts %s of the host" % (spec, host), "mount a directory of its own")
        elif writable and isinstance(models_root, str) and _within(host, models_root):
            refuse("volumes", "models_rw", "%r mounts the models root %s writable: the service could change the "
                   "verified models of every service" % (spec, models_root), "mount it :ro (it is mounted read-only "
                   "at the models path already)")
    if isinstance(entry.get("cap_add"), list) and entry["cap_add"]:
        refuse("cap_add", "capabilities", "%s gives the container capabilities back that it drops by default"
               % ", ".join(str(c) for c in entry["cap_add"]), "remove it if the service runs without")
    if entry.get("ipc") == "host":
        refuse("ipc", "host_ipc", "ipc: host shares the host's IPC namespace", "use ipc: private (or shareable)")
    envs = [("gpu_stack_common_env", common_env), ("env", entry.get("env"))] + [
        ("instances[%d].env" % i, inst.get("env")) for i, inst in enumerate(
            entry.get("instances") if isinstance(entry.get("instances"), list) else []) if isinstance(inst, dict)]
    for field, env in envs:
        for key in OFFLINE_ENV:
            if isinstance(env, dict) and key in env and str(env[key]).strip().lower() in OFF_VALUES:
                refuse(field, "online", "%s=%r lets the service fetch models from the internet" % (key, env[key]),
                       "keep %s=\"1\" (stage the models with hf_models)" % key
                       if key != "LOCAL_FILES_ONLY" else "keep LOCAL_FILES_ONLY=\"true\"")


def _within(path, root):
    root = os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/") or root.startswith(path.rstrip("/") + "/")


def normalise_entry(entry, common_env=None, bind_address="127.0.0.1"):
    """A validated entry with every default filled in."""
    out = {}
    for field in FIELDS:
        if field.name in entry:
            out[field.name] = copy.deepcopy(entry[field.name])
        else:
            out[field.name] = copy.deepcopy(field.default)
    if not out["container_name"]:
        out["container_name"] = "rag-%s" % out["name"]
    if not out["bind_address"]:
        out["bind_address"] = bind_address
    out["healthcheck"] = deep_merge(DEFAULT_HEALTHCHECK, out["healthcheck"] or {})
    env = dict((k, str(v)) for k, v in (common_env or {}).items())
    env.update(dict((k, _env_str(v)) for k, v in (out["env"] or {}).items()))
    out["env"] = env
    model = dict(out["model"])
    model.setdefault("files", None)
    model.setdefault("allow_patterns", None)
    model.setdefault("require_safetensors", False)
    model.setdefault("source", None)
    out["model"] = model
    out["ulimits"] = dict(out["ulimits"] or {})
    out["cap_add"] = list(out["cap_add"] or [])
    out["tmpfs"] = dict(out["tmpfs"] or {})
    if out["cpu_fallback"] is not None:
        fallback = dict(out["cpu_fallback"])
        fallback["env"] = dict((k, _env_str(v)) for k, v in (fallback.get("env") or {}).items())
        out["cpu_fallback"] = fallback
    out["volumes"] = list(out["volumes"] or [])
    if out["device"] == "cpu":
        out["env"].setdefault("DEVICE", "cpu")
    if out["backend_port"] is None:
        out["backend_port"] = out["port"] + BACKEND_PORT_OFFSET
    extras = []
    per_gpu = float(out["vram_estimate_gb"]) / len(out["gpus"]) if out["gpus"] else None
    for k, inst in enumerate(out["instances"] or [], 1):
        extra = {"container_name": inst["container_name"], "gpus": list(inst["gpus"]),
                 "image": inst.get("image") or out["image"], "tier": inst.get("tier", "secondary"),
                 "tensor_parallel": inst.get("tensor_parallel", out["tensor_parallel"]),
                 "allow_reserved": inst.get("allow_reserved", False),
                 "backend_port": inst.get("backend_port", out["backend_port"] + INSTANCE_PORT_STEP * k)}
        if "vram_estimate_gb" in inst:
            extra["vram_estimate_gb"] = inst["vram_estimate_gb"]
        else:
            extra["vram_estimate_gb"] = per_gpu * len(inst["gpus"]) if per_gpu is not None else out["vram_estimate_gb"]
        env = dict(out["env"])
        env.update(dict((k2, _env_str(v)) for k2, v in (inst.get("env") or {}).items()))
        extra["env"] = env
        extras.append(extra)
    out["instances"] = extras
    return out


def instance_views(svc):
    """One mapping per instance of a normalised service: the service itself first, then its
    `instances`, each the service with the instance's own keys over it. ``instance`` is the instance's
    position (0 for the service's own container)."""
    first = dict(svc)
    first["instance"] = 0
    views = [first]
    for k, extra in enumerate(svc["instances"], 1):
        view = dict(svc)
        view.update(extra)
        view["instance"] = k
        views.append(view)
    return views


def who(view):
    """How messages name an instance: "service 'llm'", or "service 'llm' (instance 'rag-llm-server-2')"."""
    if view.get("instance"):
        return "service '%s' (instance '%s')" % (view["name"], view["container_name"])
    return "service '%s'" % view["name"]


def _env_str(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def validate_services(services, overrides=None, common_env=None, bind_address="127.0.0.1", models_root=None):
    """Validate ``gpu_stack_services`` (+ ``gpu_stack_service_overrides``) and return normalised entries.

    Raises ServiceMapError listing every problem found, each naming service and field. Checks that
    need the live GPUs (existence, health, VRAM, NVLink) belong to the planner.
    """
    chk = _Checker()
    if not isinstance(services, list):
        raise ServiceMapError(["gpu_stack_services: must be a list of service entries, got %s"
                               % type(services).__name__])
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ServiceMapError(["gpu_stack_service_overrides: must map service names to partial entries"])
    names = [e.get("name") for e in services if isinstance(e, dict)]
    for name, value in overrides.items():
        if name not in names:
            chk.errors.append("gpu_stack_service_overrides: '%s' is not a service in gpu_stack_services (known: %s)"
                              % (name, ", ".join(str(n) for n in names)))
        elif not isinstance(value, dict):
            chk.errors.append("gpu_stack_service_overrides: '%s': %r is not a partial entry; write e.g. "
                              "{%s: {env: {NAME: value}}}" % (name, value, name))
    merged = []
    for idx, entry in enumerate(services):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) \
                and isinstance(overrides.get(entry["name"]), dict):
            entry = deep_merge(entry, overrides[entry["name"]])
        _check_entry(chk, entry, idx, services)
        if isinstance(entry, dict):
            _check_exposure(chk, entry.get("name") if isinstance(entry.get("name"), str) else "#%d" % idx, entry,
                            bind_address, common_env, models_root)
        merged.append(entry)
    # Cross-entry checks run even when entries have errors, so one run reports everything.
    seen_names, seen_ports, seen_containers = {}, {}, {}
    for entry in merged:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"]
        if name in seen_names:
            chk.err(name, "name", "is used by two entries; service names must be unique")
        seen_names[name] = True
        # container names: unique across every entry, enabled or not (a disabled entry's container is
        # removed under its name), and never the collection's temporary name for a recreate
        _check_container_names(chk, name, entry, seen_containers)
        if entry.get("enabled", True) is False:
            continue
        port = entry.get("port")
        addr = entry.get("bind_address") or bind_address
        if _is_int(port) and isinstance(addr, str):
            for (other_addr, other_port), other in seen_ports.items():
                if other_port == port and (other_addr == addr or "0.0.0.0" in (addr, other_addr)):
                    chk.err(name, "port", "%d is already used by service '%s'; give each service its own host port"
                            % (port, other))
            seen_ports[(addr, port)] = name
    if chk.errors:
        raise ServiceMapError(chk.errors)
    return [normalise_entry(e, common_env, bind_address) for e in merged]


def schema_markdown(fields=FIELDS):
    """A field table of docs/inventory-schema.md (the service entry's, or an instance's)."""
    lines = ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
    for f in fields:
        default = "" if f.required or f.default is None else "`%s`" % (f.default,)
        required = "yes" if f.required else "no"
        lines.append("| `%s` | %s | %s | %s | %s |" % (f.name, f.kind, required, default, f.doc.replace("|", "\\|")))
    return "\n".join(lines) + "\n"
