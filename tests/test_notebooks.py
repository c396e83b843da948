"""The committed notebook collection: jupytext pairs in sync, a parameters cell, stored outputs.

nbval itself (configured in pyproject.toml) re-executes the notebooks and compares outputs;
these checks are the fast structural ones."""

from __future__ import annotations

import jupytext
import nbformat
import pytest

from helpers.core import paths

NOTEBOOKS = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
#: Notebooks owned by the reports engineer; the others' stored outputs are checked by nbval.
REPORT_NOTEBOOKS = ("01_data_overview", "02_trends", "03_its", "09_summary")


def _inputs(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", [])))
            for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_jupytext_pair_in_sync(path):
    paired = path.with_suffix(".py")
    assert paired.exists(), f"{path.name} has no py:percent pair; run jupytext --set-formats ipynb,py:percent"
    ipynb = nbformat.read(str(path), as_version=4)
    text = jupytext.read(paired)
    assert _inputs(ipynb) == _inputs(text), f"{path.name} and {paired.name} differ; run jupytext --sync"
    formats = ipynb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_conventions(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert path.stem not in REPORT_NOTEBOOKS or any(c.get("outputs") for c in code), \
        f"{path.name} has no stored outputs; execute it (care-trends refresh-notebooks)"
    for cell in code:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name} stores an error"
            if output.get("output_type") == "stream":
                assert output.get("name") != "stderr", f"{path.name} stores a warning: {output['text'][:200]}"
