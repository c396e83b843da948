"""The notebook collection: which notebooks there are and which parameters each declares. The
runner executes them; the summary notebook asks which ones publish results."""

from __future__ import annotations

import ast
import json
from pathlib import Path

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
    """Names assigned in the notebook's `parameters` cell (the first code cell tagged so, as
    papermill finds it). Read as JSON and parsed with `ast`: no notebook machinery to import,
    which the kernels reading the collection (the summary) would otherwise pay for."""
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError) as exc:
        raise CareTrendsError(f"notebook {path.name} cannot be read as a notebook "
                              f"({type(exc).__name__}); restore it from git or re-pair it with "
                              "`jupytext --to ipynb`") from None
    for cell in cells:
        if cell.get("cell_type") != "code" or \
                "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            body = ast.parse(source).body
        except SyntaxError as exc:
            raise CareTrendsError(f"notebook {path.name}: its parameters cell is not valid "
                                  f"Python (line {exc.lineno}); fix that line") from None
        names = set()
        for node in body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            names.update(n.id for target in targets for n in ast.walk(target)
                         if isinstance(n, ast.Name))
        return names
    return set()


def publishing_notebooks(notebook_dir: Path | None = None) -> list[str]:
    """Stems of the notebooks that publish results (declare `results_path`)."""
    return [nb.stem for nb in discover_notebooks(notebook_dir)
            if RESULTS_PATH in notebook_parameters(nb)]
