"""Shared fixtures: paths to the shared benchmark data, small study files, one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEANBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test writes its store under its own tmp folder unless it passes --store."""
    monkeypatch.setenv("LEANBENCH_STORE", str(tmp_path / "store" / "leanbench.db"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
