"""The notebook collection: which notebooks there are and which parameters each declares. The
runner executes them; the summary notebook asks which ones publish results."""

from __future__ import annotations

import logging
from pathlib import Path

import papermill

from helpers.core import paths, vocab
from helpers.core.errors import CareTrendsError

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: Parameters the runner sets (paths relative to the notebook's working folder).
RESULTS_PATH, RESULTS_DIR = "results_path", "results_dir"


def discover_notebooks(notebook_dir: Path | None = None, only=None) -> list[Path]:
    """The collection: notebooks/NN_*.ipynb in name order, optionally restricted to `only`
    (stems such as '03_its' or number prefixes such as '03')."""
    notebook_dir = Path(notebook_dir) if notebook_dir else paths.notebooks_dir()
    found = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise CareTrendsError(f"no notebooks NN_*.ipynb in {notebook_dir.name}; run from the "
                              "project folder")
    if not only:
        return found
    chosen = []
    for want in only:
        want = str(want).removesuffix(".ipynb")
        match = [p for p in found if p.stem == want or p.stem.split("_", 1)[0] == want]
        if not match:
            raise CareTrendsError(vocab.suggest(want, [p.stem for p in found], "notebook"))
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen)


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in the notebook's `parameters` cell."""
    # papermill logs lines it cannot type-infer (e.g. `x = None  # comment`); the name is still
    # found, so keep that chatter off the console.
    translator_log = logging.getLogger("papermill.translators")
    level = translator_log.level
    translator_log.setLevel(logging.ERROR)
    try:
        return set(papermill.inspect_notebook(str(path)))
    except ValueError as exc:  # no kernelspec in the metadata
        raise CareTrendsError(f"notebook {Path(path).name}: {exc}; pair it with "
                              "`jupytext --set-kernel python3`") from exc
    finally:
        translator_log.setLevel(level)


def publishing_notebooks(notebook_dir: Path | None = None) -> list[str]:
    """Stems of the notebooks that publish results (declare `results_path`)."""
    return [nb.stem for nb in discover_notebooks(notebook_dir)
            if RESULTS_PATH in notebook_parameters(nb)]
