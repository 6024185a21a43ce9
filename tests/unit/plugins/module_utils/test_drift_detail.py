# -*- coding: utf-8 -*-
"""The drift summary's one line per finding: expected -> found, and for mappings only what differs."""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils._drift import detail


def test_a_drift_detail_is_one_short_line():
    env = dict(("K%02d" % i, "v") for i in range(40))
    assert detail(dict(env, A="1", B="2"), dict(env, A="9", C="3")) == "changed A 1 -> 9; missing B; extra C"
    assert detail("running", "exited") == "running -> exited"
    assert detail(["a:b:ro"], ["a:b:rw", "c:d:rw"]) == '["a:b:ro"] -> ["a:b:rw", "c:d:rw"]'
    long = detail("x" * 300, "y")
    assert len(long) <= 160 and "..." in long
