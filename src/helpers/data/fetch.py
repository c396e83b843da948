"""`care-trends data fetch`: download the official raw files from their publishers into the raw
folder and check each against data/raw_manifest.sha256 before it replaces anything.

The URL list is `helpers.data.sources.SOURCE_FILES`. A file is downloaded to a temporary file
beside its target and moved into place only when its SHA-256 matches the manifest, so a failed or
changed download never replaces a good file. Files with no stable direct URL (the SFR zips, EES
files whose download name carries no release year) are listed with the page to get them from.
Standard library only (urllib).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from helpers.core import paths
from helpers.data import sources as _sources

USER_AGENT = "care-trends-data-fetch (Python urllib)"


def _urlopen(url: str, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)   # noqa: S310 (https/http URLs from our table)


@dataclass
class FetchResult:
    raw_dir: Path
    downloaded: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    manual: list[tuple[str, str]] = field(default_factory=list)      # (relpath, page)
    failed: list[tuple[str, str]] = field(default_factory=list)      # (relpath, reason)
    unchecked: list[str] = field(default_factory=list)               # not in the manifest

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"raw folder {self.raw_dir}: {len(self.downloaded)} downloaded and checked, "
                 f"{len(self.already_present)} already present and correct, {len(self.manual)} to get by "
                 f"hand, {len(self.failed)} failed"]
        lines += [f"  FAILED {rel}: {reason}" for rel, reason in self.failed]
        lines += [f"  by hand: {rel} from {page}" for rel, page in self.manual]
        lines += [f"  not in the manifest (downloaded, unchecked): {rel}" for rel in self.unchecked]
        return "\n".join(lines)


def fetch_raw_files(raw_dir=None, *, source_files=None, manifest: dict[str, str] | None = None,
                    opener: Callable | None = None, only=None, force: bool = False,
                    include_unlisted: bool = False, timeout: float = 120.0) -> FetchResult:
    """Download every file of `source_files` (default SOURCE_FILES) that the manifest (default
    data/raw_manifest.sha256) lists and that has a URL into raw_dir, keeping it only if it matches
    its checksum. `include_unlisted` also fetches the snapshot's other files (metadata, workbooks
    the build does not read), which cannot be checked. `opener(url, timeout)` returns a readable
    response (default urllib); `only` keeps files whose path contains one of the given strings;
    files already present and correct are skipped unless `force`."""
    raw = paths.raw_dir(raw_dir)
    source_files = _sources.SOURCE_FILES if source_files is None else source_files
    manifest = _sources.read_manifest() if manifest is None else manifest
    opener = opener or _urlopen
    if only:
        only = [only] if isinstance(only, str) else list(only)
        source_files = [f for f in source_files if any(o in f.relpath for o in only)]
    if not include_unlisted:
        source_files = [f for f in source_files if f.relpath in manifest]
    result = FetchResult(raw_dir=raw)
    for source in source_files:
        target = raw / source.relpath
        expected = manifest.get(source.relpath)
        if target.is_file() and expected and not force and _sources.sha256_file(target) == expected:
            result.already_present.append(source.relpath)
            continue
        if not source.url:
            result.manual.append((source.relpath, source.page))
            continue
        reason = _download(source.url, target, expected, opener, timeout)
        if reason:
            result.failed.append((source.relpath, reason))
        else:
            result.downloaded.append(source.relpath)
            if not expected:
                result.unchecked.append(source.relpath)
    return result


def _download(url: str, target: Path, expected: str | None, opener, timeout: float) -> str | None:
    """Fetch url to target via a temporary file; None on success, else the reason (target untouched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as handle, opener(url, timeout) as response:
                status = getattr(response, "status", 200)
                if status and status >= 400:
                    return f"HTTP {status} from {url}"
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    handle.write(block)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} from {url}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return f"could not download {url} ({getattr(exc, 'reason', exc)})"
        if expected and digest.hexdigest() != expected:
            return (f"download from {url} does not match its SHA-256 in data/{_sources.MANIFEST_NAME} "
                    "(the publisher changed the file, or a different edition); existing file kept")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)
