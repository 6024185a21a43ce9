# -*- coding: utf-8 -*-
"""Docs that come from code or data are in sync with it (scripts/gen-docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_doc_blocks_are_current():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-docs"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_simulator_fixtures_are_current():
    from gpusim import fixtures

    assert fixtures.stale() == [], "run: scripts/gpu-sim fixtures"
