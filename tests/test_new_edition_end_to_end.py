"""A new edition reaches the published answer with no code change: importing a
reporting-year-2026 looked-after file (2025 layout) extends every dependent series to 2026, and
Staffordshire's target verdict (848 or fewer by 31 March 2026) is then decided by the 2026
figure, not a projection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import data
from helpers.core import paths

sys.path.insert(0, str(Path(__file__).parent))
from test_data_import import cla_2026  # noqa: E402  (the 2026 file builder, shared)

pytestmark = pytest.mark.slow


def test_2026_edition_reaches_the_target_verdict(tmp_path):
    raw = paths.raw_dir()
    if not (raw / "SHA256SUMS").exists():
        pytest.skip("no raw mirror")
    processed = tmp_path / "processed"
    processed.mkdir()
    for name in (data.PANEL_FILE, data.PROVENANCE_FILE):
        shutil.copyfile(data.panel_path().parent / name, processed / name)
    result = data.import_file(cla_2026(raw, tmp_path), raw, output_dir=processed,
                              imports=tmp_path / "imports")
    added = {m: y for m, y in result.years_added.items() if y}
    assert added and all(2026 in years for years in added.values()), result.years_added
    panel = data.load_panel(processed / data.PANEL_FILE)
    staffs = panel[panel["la_code"].eq("860") & panel["measure"].eq("cla_31_march")]
    assert staffs.loc[staffs["year"].eq(2026), "count"].tolist() == [1101]

    env = dict(os.environ, **{paths.PROCESSED_DIR_ENV: str(processed)})
    run = subprocess.run([sys.executable, "-m", "helpers", "run", "staffordshire", "--only", "09",
                          "--no-progress", "--reports-dir", str(tmp_path / "reports")],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads((tmp_path / "reports" / "staffordshire" / "answer.json").read_text())
    text = json.dumps(answer)
    assert "2025-26" in text and "1,101" in text
    assert "missed" in text.lower()
