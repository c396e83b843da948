"""Shared fixtures. Tests read official raw files from $CARE_TRENDS_RAW_DIR, which `make test`
sets to data/raw/ when present, else ../shared/data/raw (the local mirror CI has)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from helpers.core import paths  # noqa: E402

SHARED_RAW = paths.project_root().parent / "shared" / "data" / "raw"

if not os.environ.get(paths.RAW_DIR_ENV):
    local = paths.project_root() / "data" / "raw"
    os.environ[paths.RAW_DIR_ENV] = str(local if (local / "SHA256SUMS").exists() else SHARED_RAW)


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    path = paths.raw_dir()
    if not path.exists():
        message = (f"raw official files not found at {path}; set {paths.RAW_DIR_ENV} or put "
                   "the snapshot in data/raw/")
        if os.environ.get("CI"):  # CI has ../shared beside the clone: a missing mirror is a failure
            pytest.fail(message)
        pytest.skip(message)
    return path
