"""Atomic file writes: the one way this project writes a file that someone may be reading.

Each write goes to a temporary file with a unique name in the same folder (so two processes
never share one) and is renamed over the target, so a reader sees the old file or the new one,
never half of either; a failed write leaves the target as it was and removes its temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, value, *, indent: int = 1, sort_keys: bool = True) -> Path:
    """JSON, keys sorted unless the caller's order is the meaning (records keep
    RECORD_COLUMNS order), so reruns give byte-identical files."""
    text = json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")
