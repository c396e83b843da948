"""The browser suite's fixtures: one site built by the runner into a temporary folder per
session, and headless Chromium (Debian's `chromium`, driven by Playwright's Python package
pointed at that executable: Playwright never downloads a browser here).

Without Playwright or a Chromium executable the suite skips with a message; under CI (CI=true)
it fails instead, so a missing browser cannot pass unnoticed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: Where Debian's chromium package puts the browser; CHROMIUM overrides it.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Flags for a headless Chromium on a machine with no network but the package registries.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
def chromium_path() -> str | None:
    named = os.environ.get("CHROMIUM")
    for candidate in ([named] if named else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser suite cannot run under CI: {reason}")
    pytest.skip(f"browser suite skipped: {reason} (install Debian's chromium and the test "
                "extras, e.g. `make test`)")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium executable (/usr/bin/chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory, browser) -> Path:
    """The default site (every analysis in notebooks/params/, every notebook), built once by
    the runner as `care-trends run` does, with its index. CARE_TRENDS_TEST_SITE names a site
    built before instead (to iterate on the tests)."""
    from helpers import spec as specs
    from helpers.run.publish import build_index
    from helpers.run.runner import run_analyses

    prebuilt = os.environ.get("CARE_TRENDS_TEST_SITE")
    if prebuilt:  # a site already built with `care-trends run --reports-dir DIR` (development)
        return Path(prebuilt)
    root = tmp_path_factory.mktemp("site")
    names = specs.list_analyses()
    results = run_analyses([specs.load_analysis(n) for n in names], root, progress=False)
    failed = {name: r for name, r in results.items() if isinstance(r, str)}
    assert not failed, failed
    build_index(root, order=names)
    return root
