# -*- coding: utf-8 -*-
# Copyright (c) ragops.gpu_stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's one NVML session helper (private).

* ``import_pynvml()`` imports nvidia-ml-py (import name ``pynvml``) or raises MissingBinding.
* ``NvmlSession`` is the init/shutdown context manager; NVML errors become NvmlError with the
  NVML error name (``GPU_IS_LOST``, ``DRIVER_NOT_LOADED``, ...).
* ``run_isolated(fn, timeout)`` runs ``fn`` in a forked child and returns its JSON-able result, so
  that an nvmlInit hanging on a sick driver is killed after ``timeout`` seconds instead of hanging
  the play (a hung C call cannot be interrupted from Python inside the same process).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

PYNVML_PACKAGE = "nvidia-ml-py"

# NVML return codes (nvml.h) whose meaning the callers act on.
ERROR_NAMES = {
    1: "UNINITIALIZED", 2: "INVALID_ARGUMENT", 3: "NOT_SUPPORTED", 4: "NO_PERMISSION", 5: "ALREADY_INITIALIZED",
    6: "NOT_FOUND", 7: "INSUFFICIENT_SIZE", 8: "INSUFFICIENT_POWER", 9: "DRIVER_NOT_LOADED", 10: "TIMEOUT",
    11: "IRQ_ISSUE", 12: "LIBRARY_NOT_FOUND", 13: "FUNCTION_NOT_FOUND", 14: "CORRUPTED_INFOROM",
    15: "GPU_IS_LOST", 16: "RESET_REQUIRED", 17: "OPERATING_SYSTEM", 18: "LIB_RM_VERSION_MISMATCH", 19: "IN_USE",
    20: "MEMORY", 21: "NO_DATA", 25: "ARGUMENT_VERSION_MISMATCH", 26: "DEPRECATED", 27: "NOT_READY",
    28: "GPU_NOT_FOUND", 29: "INVALID_STATE", 999: "UNKNOWN",
}


class NvmlError(Exception):
    """An NVML call failed. ``name`` is the NVML error name without the NVML_ERROR_ prefix."""

    def __init__(self, name, message, call=None):
        self.name = name
        self.call = call
        super(NvmlError, self).__init__(message)

    def to_dict(self):
        return {"error": self.name, "message": str(self), "call": self.call}


class MissingBinding(NvmlError):
    """nvidia-ml-py is not installed for the interpreter running the module."""


class NvmlTimeout(NvmlError):
    """NVML did not answer in time (a hung driver)."""


def import_pynvml():
    try:
        import pynvml  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingBinding("PYNVML_MISSING", "the Python package %s (import name pynvml) is not installed for %s: %s"
                             % (PYNVML_PACKAGE, sys.executable, exc))
    return pynvml


def error_name(exc):
    value = getattr(exc, "value", None)
    return ERROR_NAMES.get(value, "ERROR_%s" % value)


def translate(pynvml, call, fn, *args):
    """Call ``fn(*args)``; an NVMLError becomes NvmlError naming the call."""
    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        raise NvmlError(error_name(exc), "%s: %s" % (call, exc), call=call)


class NvmlSession(object):
    """``with NvmlSession(pynvml) as nv:`` -- nvmlInit on enter, nvmlShutdown on exit."""

    def __init__(self, pynvml):
        self.pynvml = pynvml

    def __enter__(self):
        translate(self.pynvml, "nvmlInit", self.pynvml.nvmlInit)
        return self.pynvml

    def __exit__(self, *exc):
        try:
            self.pynvml.nvmlShutdown()
        except self.pynvml.NVMLError:
            pass
        return False


# How long the parent waits for a finished or killed collector to be reaped. A child stuck in the
# kernel (an NVML call in uninterruptible sleep) does not die on SIGKILL until the call returns:
# never wait on it longer than this (it is left to init when the module exits).
REAP_GRACE_S = 1.0


def _reap(pid, grace):
    """Reap the child if it exits within `grace` seconds; never block longer."""
    deadline = time.monotonic() + grace
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except OSError:
            return True  # already reaped
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def run_isolated(fn, timeout):
    """Run ``fn()`` in a forked child with a hard timeout; returns its (JSON-serialisable) result.

    Exceptions in the child come back as NvmlError (their name and message kept).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            try:
                payload = {"ok": fn()}
            except NvmlError as exc:
                payload = {"error": exc.to_dict(), "kind": type(exc).__name__}
            except Exception as exc:  # pylint: disable=broad-except
                payload = {"error": {"error": "UNEXPECTED", "message": "%s: %s" % (type(exc).__name__, exc),
                                     "call": traceback.format_exc(limit=3)}, "kind": "NvmlError"}
            data = json.dumps(payload).encode("utf-8")
            view = memoryview(data)
            while view:
                written = os.write(write_fd, view)
                view = view[written:]
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                raise NvmlTimeout("TIMEOUT", "NVML did not answer within %ss (nvmlInit or a query hung: a sick driver "
                                  "or a GPU in a bad state; check dmesg for Xid errors)" % timeout)
            ready, _w, _x = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        _reap(pid, REAP_GRACE_S)
    raw = b"".join(chunks)
    if not raw:
        raise NvmlError("UNEXPECTED", "the NVML collector exited without a result")
    payload = json.loads(raw.decode("utf-8"))
    if "error" in payload:
        err = payload["error"]
        cls = MissingBinding if payload.get("kind") == "MissingBinding" else NvmlError
        raise cls(err["error"], err["message"], call=err.get("call"))
    return payload["ok"]
