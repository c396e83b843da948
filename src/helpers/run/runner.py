"""The papermill runner: executes every notebook of one or many analyses (validated specs) on
one pool of workers and publishes each analysis' folder atomically.

One scheduler serves everything: a single analysis, both default analyses, or every LA
(`helpers.run.national`), on local processes or a Dask cluster (`helpers.run.executors`).
Within an analysis, notebooks that read the others' results (they declare `results_dir`, or are
named *_summary) run after the rest; across analyses the longest notebooks start first. Each
analysis is written to its own temporary folder, which replaces reports/<analysis>/ only when
every notebook succeeded; a failed analysis leaves its previous reports untouched (the partly
run folder is kept under .failed/) while the others still publish.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from helpers import __version__
from helpers.core.collection import (RESULTS_DIR, RESULTS_PATH, discover_notebooks,
                                     notebook_parameters)
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_json
from helpers.core.records import RECORD_COLUMNS
from helpers.run.execute import NotebookJob
from helpers.run.executors import DEFAULT_WORKERS, LocalPool
from helpers.run.publish import MANIFEST, add_answer_to_pages, page_header
from helpers.spec import Analysis, parameters_for_notebook

DEFAULT_TIMEOUT = 1200  # seconds per notebook
#: Typical seconds per notebook on 2 cores, to start the slowest first before any run is recorded.
TYPICAL_SECONDS = {"06_sensitivity": 20.0, "04_comparisons": 8.0}
RESULTS_FOLDER = "results"


def plan_stages(declared: dict[Path, set[str]]) -> list[list[Path]]:
    """Execution order: notebooks reading the others' results (they declare `results_dir`,
    or are named *_summary) run after all the rest; within a stage, in parallel."""
    def consumer(p: Path) -> bool:
        return RESULTS_DIR in declared[p] or p.stem.endswith("_summary")

    first = [p for p in declared if not consumer(p)]
    last = [p for p in declared if consumer(p)]
    return [stage for stage in (first, last) if stage]


def notebook_inputs(spec: Analysis, declared: set[str], stem: str) -> dict:
    """The parameters the notebook declares: the analysis name and its whole validated spec,
    and where to write or read results (relative to the notebook's working folder)."""
    inputs = {k: v for k, v in parameters_for_notebook(spec).items() if k in declared}
    if RESULTS_PATH in declared:
        inputs[RESULTS_PATH] = f"{RESULTS_FOLDER}/{stem}.json"
    if RESULTS_DIR in declared:
        inputs[RESULTS_DIR] = RESULTS_FOLDER
    return inputs


class AnalysisRun:
    """One analysis' state while its notebooks run: its temporary folder, stages and outcomes."""

    def __init__(self, spec: Analysis, out_dir: Path, notebook_dir, timeout: float, only=None):
        self.spec = spec
        self.analysis = spec.analysis
        self.out_dir = out_dir
        self.notebooks = discover_notebooks(notebook_dir, only or spec.notebooks or None)
        self.declared = {nb: notebook_parameters(nb) for nb in self.notebooks}
        self.stages = plan_stages(self.declared)
        self.timeout = timeout
        self.header = page_header(spec, self.notebooks)
        self.outcomes: dict[str, dict] = {}
        self.running = 0
        self.error: dict | None = None
        self.manifest: dict | None = None
        self.previous = previous_seconds(out_dir)
        self.start = time.monotonic()
        self.work = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / RESULTS_FOLDER).mkdir(parents=True)

    def next_stage(self) -> list[NotebookJob]:
        """Jobs of the next stage (empty when every stage has run)."""
        if not self.stages:
            return []
        stage = self.stages.pop(0)
        results = {f"{RESULTS_FOLDER}/{p.name}": p.read_bytes()
                   for p in sorted((self.work / RESULTS_FOLDER).glob("*.json"))}
        return [NotebookJob(stem=nb.stem, notebook=nb.read_bytes(),
                            parameters=notebook_inputs(self.spec, self.declared[nb], nb.stem),
                            header=self.header, timeout=self.timeout,
                            inputs=results if RESULTS_DIR in self.declared[nb] else {})
                for nb in stage]

    def store(self, outcome: dict) -> None:
        """Write what a finished job brought back into the temporary folder."""
        for rel, content in outcome.pop("files", {}).items():
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self.outcomes[outcome["stem"]] = outcome

    def publish(self) -> None:
        self.manifest = finish(self.work, self.spec, self.notebooks, self.outcomes, self.header)
        self.manifest["seconds"] = round(time.monotonic() - self.start, 1)
        swap_in(self.work, self.out_dir)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def previous_seconds(out_dir: Path) -> dict[str, float]:
    """Per-notebook seconds of the last published run (to start the longest notebooks first)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
        return {n["stem"]: float(n.get("seconds") or 0) for n in manifest["notebooks"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def run_analyses(specs: list[Analysis], reports_root, *, notebook_dir=None, only=None,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT,
                 progress: bool = True, pool=None) -> dict[str, dict | str]:
    """Execute several validated analyses into reports_root/<analysis>/ with one shared pool.
    Returns {analysis: manifest} for successes and {analysis: one-line error} for failures."""
    reports_root = Path(reports_root).resolve()
    names = [s.analysis for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise CareTrendsError(f"analysis {name} is given twice; name each analysis once")
    runs: list[AnalysisRun] = []
    own_pool = pool is None
    pool = pool if pool is not None else LocalPool(workers)
    try:
        for spec in specs:
            runs.append(AnalysisRun(spec, reports_root / spec.analysis, notebook_dir, timeout,
                                    only))
        results = schedule(runs, pool, timeout=timeout, progress=progress)
    finally:
        for run in runs:
            run.cleanup()
        if own_pool:
            pool.close()
    return dict(zip(names, results))


def run_analysis(spec: Analysis, out_dir, *, notebook_dir=None, only=None,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT,
                 progress: bool = True) -> dict:
    """Execute one analysis into `out_dir` and return its manifest; CareTrendsError names the
    failing notebook and cell (the previous contents of out_dir stay in place)."""
    out_dir = Path(out_dir).resolve()
    spec = spec.model_copy(update={"analysis": out_dir.name}) if out_dir.name != spec.analysis \
        else spec
    [result] = run_analyses([spec], out_dir.parent, notebook_dir=notebook_dir, only=only,
                            workers=workers, timeout=timeout, progress=progress).values()
    if isinstance(result, str):
        raise CareTrendsError(result)
    return result


def schedule(runs: list[AnalysisRun], pool, *, timeout: float, progress: bool,
             unit: str = "notebook") -> list[dict | str]:
    """Run every analysis' notebooks on `pool`; a manifest or a one-line error for each."""
    # Before any run has been recorded (a fresh clone), start from typical timings on 2 cores.
    fallback: dict[str, float] = dict(TYPICAL_SECONDS)
    for run in runs:
        for stem, seconds in run.previous.items():
            fallback[stem] = max(fallback.get(stem, 0.0), seconds)
    order = {id(run): i for i, run in enumerate(runs)}
    ready: list[tuple[AnalysisRun, NotebookJob]] = []

    def expected(item) -> float:
        return item[0].previous.get(item[1].stem, fallback.get(item[1].stem, 0.0))

    def enqueue(run: AnalysisRun, jobs: list[NotebookJob]) -> None:
        ready.extend((run, job) for job in jobs)
        # Longest first; ties in analysis then notebook order.
        ready.sort(key=lambda item: (-expected(item), order[id(item[0])], item[1].stem))

    def completed(run: AnalysisRun, outcome: dict) -> None:
        run.running -= 1
        bar.update(1)
        if run.error is not None:
            return
        if not outcome["ok"]:
            run.store(outcome)  # the partly-run notebook, for .failed/
            run.error = outcome
            ready[:] = [item for item in ready if item[0] is not run]
            return
        run.store(outcome)
        if run.running == 0 and not any(item[0] is run for item in ready):
            jobs = run.next_stage()
            if jobs:
                enqueue(run, jobs)
                return
            try:
                run.publish()
            except OSError as exc:
                run.error = {"stem": "(publishing)", "ename": type(exc).__name__,
                             "evalue": str(exc)}

    bar = tqdm(total=sum(len(run.notebooks) for run in runs), desc=f"{unit}s", unit=unit,
               file=sys.stderr, disable=not progress, leave=True, dynamic_ncols=True)
    clean = False
    try:
        for run in runs:
            enqueue(run, run.next_stage())
        _drive(pool, ready, completed, timeout, bar)
        clean = True
    finally:
        bar.close()
        if not clean:
            pool.close(kill=True)
    results: list[dict | str] = []
    for run in runs:
        if run.manifest is not None:
            results.append(run.manifest)
        else:
            results.append(failure_message(run.analysis, run.error or {"stem": "?"},
                                           keep_failed(run.work, run.out_dir)))
    return results


def _drive(pool, ready: list, completed, timeout: float, bar) -> None:
    """At most `pool.workers` notebooks at a time, each with its own deadline.

    A notebook over its timeout fails its analysis; the workers are restarted and the other
    notebooks that were running then are started again. A worker that dies fails the notebooks
    it was running; the others carry on with fresh workers."""
    running: dict[cf.Future, tuple] = {}
    while ready or running:
        while ready and len(running) < pool.workers:
            run, job = ready.pop(0)
            run.running += 1
            running[pool.submit(job)] = (run, job, time.monotonic())
        bar.set_postfix_str(", ".join(sorted(f"{r.analysis}/{j.stem}"
                                             for r, j, _ in running.values())))
        finished, _ = cf.wait(running, timeout=5, return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in finished:
            run, job, _ = running.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # the worker process died
                broken = broken or isinstance(exc, cf.BrokenExecutor)
                outcome = {"stem": job.stem, "ok": False, "cell": None,
                           "ename": type(exc).__name__, "evalue": str(exc)}
            completed(run, outcome)
        if broken:  # the notebooks still queued get fresh workers
            for run, job, _ in running.values():
                completed(run, {"stem": job.stem, "ok": False, "cell": None,
                                "ename": "BrokenProcessPool", "evalue": "a worker process died"})
            running.clear()
            pool.restart()
            continue
        now = time.monotonic()
        late = [f for f, (_, _, started) in running.items()
                if now - started > timeout + 30]  # the grace covers kernel start and HTML
        if late:
            for future in late:
                run, job, _ = running.pop(future)
                completed(run, {"stem": job.stem, "ok": False, "cell": None, "ename": "Timeout",
                                "evalue": f"did not finish within {timeout:.0f} s; raise "
                                          "--timeout or make the notebook faster"})
            pool.restart()
            for run, job, _ in running.values():  # stopped with the late one: run them again
                run.running -= 1
                if run.error is None:
                    ready.insert(0, (run, job))
            running.clear()


def failure_message(analysis: str, outcome: dict, kept: Path | None) -> str:
    where = ""
    if outcome.get("code_cell"):
        where = f" in code cell {outcome['code_cell']}"
    if outcome.get("cell"):
        where += f" (In [{outcome['cell']}])" if where else f" in cell In [{outcome['cell']}]"
    detail = f"{outcome.get('ename', 'Error')}: {outcome.get('evalue', '')}".rstrip(": ")
    keep = f"; the partly-run notebook is in {kept}" if kept else ""
    return f"analysis {analysis}: notebook {outcome['stem']} failed{where}: {detail}{keep}"


def keep_failed(work: Path, out_dir: Path) -> Path | None:
    """Move a failed run aside for inspection (never over the previous good reports)."""
    target = out_dir.parent / ".failed" / out_dir.name
    try:
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work), str(target))
    except OSError:
        return None
    return target


def swap_in(work: Path, out_dir: Path) -> None:
    """Replace out_dir by work with two renames, so a reader never sees a half-written folder."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    work.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def merge_records(results_dir: Path, order: list[str]) -> list[dict]:
    """Every notebook's records, in notebook order, with exactly RECORD_COLUMNS."""
    merged = []
    for stem in order:
        path = Path(results_dir) / f"{stem}.json"
        if not path.exists():
            continue
        for record in json.loads(path.read_text()):
            row = {key: record.get(key) for key in RECORD_COLUMNS}
            row["notebook"] = row["notebook"] or stem
            merged.append(row)
    return merged


def finish(work: Path, spec: Analysis, notebooks: list[Path], outcomes: dict,
           header: dict) -> dict:
    """results.json and manifest.json for the analysis; drop the per-notebook record files."""
    order = [nb.stem for nb in notebooks]
    records = merge_records(work / RESULTS_FOLDER, order)
    for record in records:
        record["analysis"] = record["analysis"] or spec.analysis
    atomic_write_json(work / "results.json", records, sort_keys=False)
    shutil.rmtree(work / RESULTS_FOLDER, ignore_errors=True)
    manifest = {
        "analysis": spec.analysis,
        "title": header["analysis_title"],
        "la": spec.la_name,
        "data_edition": header["data_edition"],
        "version": __version__,
        "records": len(records),
        "notebooks": [{"stem": stem, "title": outcomes[stem].get("title", stem),
                       "html": f"{stem}.html", "headline": outcomes[stem].get("headline", ""),
                       "seconds": outcomes[stem].get("seconds")} for stem in order],
    }
    atomic_write_json(work / MANIFEST, manifest)
    add_answer_to_pages(work)  # every page opens with the analysis' short answer
    return manifest
