"""Where the project's files live. One place, so notebooks, CLI and tests agree."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that points the project at a folder of official raw files.
RAW_DIR_ENV = "CARE_TRENDS_RAW_DIR"
#: Environment variable that points the project at another built panel (e.g. one with a newly
#: imported edition, tried out before it replaces the committed one).
PROCESSED_DIR_ENV = "CARE_TRENDS_PROCESSED_DIR"


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "src" / "helpers").exists():
            return parent
    return Path.cwd()


def raw_dir(override: str | os.PathLike | None = None) -> Path:
    """Folder of official raw files: the argument, else $CARE_TRENDS_RAW_DIR, else data/raw/."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get(RAW_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "data" / "raw"


def processed_dir() -> Path:
    """The built panel: $CARE_TRENDS_PROCESSED_DIR, else data/processed/."""
    env = os.environ.get(PROCESSED_DIR_ENV)
    return Path(env).expanduser().resolve() if env else project_root() / "data" / "processed"


def reference_dir() -> Path:
    return project_root() / "data" / "reference"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def reports_dir() -> Path:
    return project_root() / "reports"
