"""The official raw files the panel is built from, where to obtain them, and their checksums.

The committed manifest `data/raw_manifest.sha256` (sha256sum format, paths relative to the raw
folder) is checked before every build, so a missing or changed file stops the build with one line
naming the file and where to get it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpers.core import paths
from helpers.core.errors import CareTrendsError

MANIFEST_NAME = "raw_manifest.sha256"

def where_to_obtain(relpath: str, manifest_file: Path | None = None) -> str:
    """Where to get a raw file, from the manifest's '# where: <prefix> | <text>' lines."""
    file = Path(manifest_file) if manifest_file else manifest_path()
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.startswith("# where:"):
                prefix, _, where = line.removeprefix("# where:").partition("|")
                if relpath.startswith(prefix.strip()):
                    return where.strip()
    return "the publisher named in data/raw/SOURCES.md"


def manifest_path() -> Path:
    return paths.project_root() / "data" / MANIFEST_NAME


def read_manifest(path: Path | None = None) -> dict[str, str]:
    """{relative path: sha256} from the committed manifest."""
    path = Path(path) if path else manifest_path()
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        entries[name.lstrip("*").removeprefix("./")] = digest.lower()
    return entries


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_raw_files(raw_dir: Path, manifest: dict[str, str] | None = None) -> dict[str, str]:
    """Verify every manifest file exists in raw_dir with the expected SHA-256.

    Returns {relative path: sha256}. Raises CareTrendsError naming the first bad file."""
    manifest = manifest or read_manifest()
    raw_dir = Path(raw_dir)
    problems = []
    for rel, expected in sorted(manifest.items()):
        file = raw_dir / rel
        if not file.is_file():
            problems.append(f"raw file {rel} is missing from {raw_dir}")
        elif sha256_file(file) != expected:
            problems.append(f"raw file {rel} in {raw_dir} does not match its SHA-256 in "
                            f"data/{MANIFEST_NAME} (changed or a different edition)")
        else:
            continue
        if len(problems) == 1:
            first_rel = rel
    if problems:
        more = f" ({len(problems) - 1} more file(s) also fail)" if len(problems) > 1 else ""
        raise CareTrendsError(
            f"{problems[0]}{more}; obtain the original from {where_to_obtain(first_rel)}, "
            f"or point --raw-dir / ${paths.RAW_DIR_ENV} at a folder holding the snapshot"
        )
    return dict(manifest)
