"""The monthly notebook runs on SSDA903 files and leaks no child-level data into its outputs."""

from __future__ import annotations

import json

import pytest

from helpers.core import paths
from helpers.ssda903 import synth

from test_synth903 import STOKE

pytestmark = pytest.mark.slow


def test_monthly_notebook_prints_no_child_ids_or_dobs(tmp_path):
    pm = pytest.importorskip("papermill")
    nbformat = pytest.importorskip("nbformat")
    from nbconvert import HTMLExporter

    result = synth.synthesize("Stoke-on-Trent", seed=5, targets=STOKE)
    header, episodes = synth.write_synthetic(result, tmp_path / "input")
    executed = tmp_path / "05_monthly.ipynb"
    records = tmp_path / "records.json"
    pm.execute_notebook(str(paths.notebooks_dir() / "05_monthly.ipynb"), str(executed),
                        # the notebook reads its files from the analysis spec (overrides)
                        parameters={"overrides": {"ssda903_header": str(header),
                                                  "ssda903_episodes": str(episodes)},
                                    "results_path": str(records)},
                        cwd=str(paths.notebooks_dir()), progress_bar=False, log_output=False)
    nb = nbformat.read(executed, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb)
    texts = {"notebook": executed.read_text(), "html": html, "records": records.read_text()}
    assert "SYNTHETIC" in texts["html"]
    # it read these files, not its own stand-in (which would make the leak check below vacuous)
    assert f"{len(result.episodes):,} usable episodes" in texts["html"]
    assert json.loads(texts["records"]) and {r["notebook"] for r in json.loads(texts["records"])} == {"05_monthly"}

    ids = set(result.header["CHILD"])
    dobs = set(result.header["DOB"])
    dobs |= {f"{d[6:]}-{d[3:5]}-{d[:2]}" for d in dobs}  # the ISO form too
    # Dates written in the notebook's own source (event dates) are not from the data.
    source = (paths.notebooks_dir() / "05_monthly.py").read_text()
    needles = ids | {d for d in dobs if d not in source}
    assert len(needles) > len(ids) > 1000
    assert all(n in header.read_text() for n in sorted(needles)[:20])  # the scan can find them
    for name, text in texts.items():
        leaked = [n for n in needles if n in text]
        assert not leaked, f"{len(leaked)} child ids/dates of birth found in the {name}"
