"""Shared test setup: the repository root on sys.path, the shared reference folder, stack config helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.emulators.fixtures", "tests.emulators.cipp_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def require_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"needs the shared policy corpus at {CORPUS} (../shared/corpus), which is absent here")
    return CORPUS
