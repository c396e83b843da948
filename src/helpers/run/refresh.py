"""Re-execute the committed notebooks in place with their default parameters, so their stored
outputs are what nbval checks. No timing or papermill metadata is recorded, so a re-run without
changes leaves the file byte-identical."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
from helpers.run.execute import KERNEL_ARGS, kernel_environment
from helpers.run.runner import DEFAULT_TIMEOUT


def refresh_notebook(path, timeout: float = DEFAULT_TIMEOUT) -> Path:
    kernel_environment()
    path = Path(path).resolve()
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            extra_arguments=list(KERNEL_ARGS),
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise CareTrendsError(f"notebook {path.name} failed while refreshing: "
                              f"{text[-1] if text else type(exc).__name__}") from exc
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    atomic_write_text(path, nbformat.writes(nb) + "\n")
    return path
