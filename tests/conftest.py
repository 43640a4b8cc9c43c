"""Shared test fixtures: paths to the reference material and a cache for big generated files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's reference material sits beside the repository (CI copies it there too).
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
# Big generated files (e.g. 257 MB of matterport-layout weights) are cached outside the repo.
CACHE = Path(os.environ.get("FSEG_TEST_CACHE", Path.home() / ".cache" / "fseg-tests"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference material not found at {REFERENCE} (shared/ must sit beside the repository)")
    return REFERENCE


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE
