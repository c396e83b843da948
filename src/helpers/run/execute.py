"""One notebook job, executed anywhere: a local worker process or a Dask worker.

A job is pure data in, data out: the notebook's bytes, its parameters and the input files it
reads (e.g. the other notebooks' results for the summary) go in; the executed notebook, its HTML
page and every file it wrote come back as bytes. So the same scheduler drives local processes
and remote workers, and no worker needs the reports folder or a shared disk. Published notebooks
carry no absolute paths and no execution timestamps (papermill's metadata is dropped).

Where the local pool runs a kernel server (`helpers.run.kernels`), each notebook's kernel is
forked from it, already past its imports; otherwise (a Dask worker, Windows) kernels start the
usual way. Either way every notebook gets a fresh kernel of its own and the same outputs."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill
import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from traitlets import default

from helpers.core import paths
from helpers.run import kernels
from helpers.run.publish import render_html

KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
#: A job's private folder (mode 0700) holds its inputs, e.g. the council's SSDA903 files; the
#: worker's pid in the name lets a later job remove the folder of a worker that was killed.
JOB_PREFIX = "care-trends-job-"
#: Single-threaded linear algebra in kernels: notebooks run side by side, one per core, and
#: BLAS threads on top of that only contend for the same cores (numbers are unchanged).
THREAD_LIMITS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: The kernel server this process' kernels are forked from (set by the local pool), or None.
_kernel_server: str | None = None


@dataclass(frozen=True)
class NotebookJob:
    stem: str
    notebook: bytes
    parameters: dict
    header: dict
    timeout: float
    inputs: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes


def kernel_environment() -> None:
    """Deterministic, quiet kernels (inherit this process's environment)."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault(paths.RAW_DIR_ENV, str(paths.raw_dir()))
    for name in THREAD_LIMITS:
        os.environ.setdefault(name, "1")


def use_kernel_server(address: str | None) -> None:
    """Fork this process' notebook kernels from the server at `address` (None: start them the
    usual way)."""
    global _kernel_server
    _kernel_server = address


class WriteAtEndEngine(NBClientEngine):
    """papermill's engine, writing the executed notebook when it starts and when it stops
    (finished or not) but not twice per cell as well: each write serialises and validates the
    whole notebook, figures included, which cost more than many of the cells."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        nb_man.save = lambda **_: None  # per cell; the caller's notebook_complete() writes
        try:
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
        finally:
            del nb_man.save


ENGINE = "care-trends"
papermill_engines.register(ENGINE, WriteAtEndEngine)


#: Seconds of quiet on IOPub that end the wait for a new kernel (jupyter_client waits 0.2 s).
IOPUB_QUIET = 0.02


class QuickReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, whose wait for a new kernel listens for IOPub messages
    IOPUB_QUIET seconds at a time instead of 0.2: after the kernel has answered, jupyter_client
    drains IOPub until it has been quiet that long, which cost 0.2 s of every notebook. The
    messages drained are the status messages of the readiness check; nbclient reads only the
    IOPub messages answering its own requests, so nothing it shows depends on the drain."""

    async def wait_for_ready(self, timeout=None):
        channel = self.iopub_channel
        get_msg = channel.get_msg

        def quick(timeout=None):
            return get_msg(timeout=IOPUB_QUIET if timeout is None else min(timeout, IOPUB_QUIET))

        channel.get_msg = quick
        try:
            await super().wait_for_ready(timeout)
        finally:
            del channel.get_msg


class ForkedKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, whose kernel command goes through the kernel server
    when there is one (see `helpers.run.kernels`), with the quicker wait for a new kernel."""

    @default("client_factory")
    def _client_factory_default(self):
        return QuickReadyClient

    def format_kernel_cmd(self, extra_arguments=None):
        return kernels.stub_command(_kernel_server, super().format_kernel_cmd(extra_arguments))


def execute(job: NotebookJob) -> dict:
    """Run one notebook with papermill in a private folder; never raises. Returns a picklable
    dict: stem, ok, seconds, files {relative path: bytes} (the executed .ipynb, its .html and
    whatever the notebook wrote), title and headline; or the failing cell and error."""
    kernel_environment()
    remove_stale_job_folders()
    start = time.monotonic()
    outcome = {"stem": job.stem, "ok": True, "files": {}}
    with tempfile.TemporaryDirectory(prefix=f"{JOB_PREFIX}{os.getpid()}-") as tmp:
        work = Path(tmp)
        for rel, content in job.inputs.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(content)
        source = work / ".source" / f"{job.stem}.ipynb"
        source.parent.mkdir()
        source.write_bytes(job.notebook)
        output = work / f"{job.stem}.ipynb"
        try:
            papermill.execute_notebook(
                str(source), str(output), parameters=job.parameters, cwd=str(work),
                kernel_name="python3", progress_bar=False, log_output=False,
                execution_timeout=job.timeout, extra_arguments=list(KERNEL_ARGS),
                kernel_manager_class=ForkedKernelManager, engine_name=ENGINE)
        except PapermillExecutionError as exc:
            evalue = str(exc.evalue).strip().splitlines()
            outcome.update(ok=False, cell=exc.exec_count, ename=exc.ename,
                           evalue=evalue[0] if evalue else "",
                           code_cell=_code_cell_number(output, exc.cell_index))
        except Exception as exc:  # kernel died, timeout inside a cell, unreadable notebook...
            text = str(exc).strip().splitlines()
            outcome.update(ok=False, cell=None, ename=type(exc).__name__,
                           evalue=text[0] if text else "")
        if not outcome["ok"] and output.exists():  # kept under .failed/ for inspection
            outcome["files"][output.name] = output.read_bytes()
        if outcome["ok"]:
            strip_run_metadata(output)
            outcome.update(render_html(output, output.with_suffix(".html"), job.header))
            for path in sorted(work.rglob("*")):
                rel = path.relative_to(work).as_posix()
                if path.is_file() and not rel.startswith(".source/") and rel not in job.inputs:
                    outcome["files"][rel] = path.read_bytes()
    outcome["seconds"] = round(time.monotonic() - start, 1)
    return outcome


def remove_stale_job_folders(root=None, prefix: str = JOB_PREFIX) -> None:
    """Job folders left by killed workers (their pid no longer runs) go, with any copy of a
    council's extract in them; with `prefix`, other private folders named the same way
    (PREFIX + the pid that made them + '-'), e.g. the kernel server's."""
    root = Path(root or tempfile.gettempdir())
    try:
        entries = list(root.glob(f"{prefix}*"))
    except OSError:
        return
    folder = re.compile(re.escape(prefix) + r"(\d+)-")
    for entry in entries:
        match = folder.match(entry.name)
        if not match or not entry.is_dir():
            continue
        pid = int(match[1])
        if pid != os.getpid() and not psutil.pid_exists(pid):
            shutil.rmtree(entry, ignore_errors=True)


def strip_run_metadata(path: Path) -> None:
    """Drop what differs from run to run or names this machine: papermill's notebook and cell
    metadata (paths, timestamps, durations), execution timings, and the random id papermill
    gives the cell it injects (a fixed one instead), so two runs are byte-identical."""
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []) and "id" in cell:
            cell["id"] = "injected-parameters"
    nbformat.write(nb, str(path))


def _code_cell_number(executed: Path, cell_index: int) -> int | None:
    """1-based position of the failing cell among the notebook's own code cells (the cell
    papermill injects is not counted), so it can be found in the source notebook."""
    try:
        cells = nbformat.read(str(executed), as_version=4).cells[: cell_index + 1]
    except Exception:
        return None
    return sum(1 for c in cells if c.cell_type == "code"
               and "injected-parameters" not in c.metadata.get("tags", []))
