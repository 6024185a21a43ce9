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


def test_every_relative_link_in_the_docs_resolves_inside_the_repository():
    """A link to a file the repository does not have (or outside it) is a broken promise."""
    import re

    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    broken = []
    for doc in tracked:
        path = ROOT / doc
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL (checked by the URL test) or an anchor in the same file
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.exists() or ROOT.resolve() not in resolved.parents:
                broken.append("%s -> %s" % (doc, target))
    assert broken == [], broken
