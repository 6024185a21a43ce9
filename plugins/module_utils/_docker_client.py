# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's one Docker client helper (private): common connection options, a clear error
when the docker SDK is missing or the engine does not answer."""

from __future__ import annotations

import os
import traceback

try:
    import docker  # pylint: disable=unused-import
    from docker import errors as docker_errors
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    docker = None
    docker_errors = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

DOCKER_CLIENT_ARGS = dict(
    docker_host=dict(type="str", default=None, aliases=["docker_url"],
                     fallback=(lambda: os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST, [])),
    api_timeout=dict(type="int", default=120),
)


class EngineError(Exception):
    """A Docker engine problem, with the message the user needs."""


def client(docker_host=None, api_timeout=120):
    """A low-level docker APIClient with API version negotiation, pinged once."""
    host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    try:
        api = docker.APIClient(base_url=host, version="auto", timeout=api_timeout)
        api.ping()
    except Exception as exc:  # pylint: disable=broad-except
        raise EngineError("cannot reach the Docker engine at %s: %s; is dockerd running (systemctl status docker) "
                          "and may this user use its socket?" % (host, exc))
    return api


def is_not_found(exc):
    return docker_errors is not None and isinstance(exc, docker_errors.NotFound)


def api_error_text(exc):
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode("utf-8", "replace") if isinstance(explanation, bytes) else str(explanation)
    return str(exc)
