"""Run an analysis: execute its notebooks with papermill and publish the HTML reports.

An *analysis* is a YAML file of notebook parameters under `notebooks/params/` (e.g.
`stoke-on-trent.yaml`). `care-trends run [ANALYSIS ...]`:

1. validates every analysis' parameters against the data BEFORE anything runs (unknown LA,
   unknown outcome, event outside the data -> one clear line, exit 2, previous reports untouched);
2. executes every `notebooks/NN_*.ipynb` into a temporary folder next to `reports/<analysis>/`,
   passing each notebook only the parameters it declares (plus `results_path`/`results_dir`).
   One pool of worker processes (2 by default) serves every analysis: all analyses' independent
   notebooks are queued together, longest first by the last run's timings; an analysis'
   notebooks that read the others' results (they declare `results_dir`, e.g. 09_summary) start
   once its other notebooks are done. An analysis whose notebook fails keeps its previous
   reports; the others still publish;
3. renders each executed notebook to accessible HTML with the code hidden, merges every
   notebook's records into `results.json`, then swaps the new folder in for the old one;
4. rewrites `reports/index.html` linking every analysis and notebook with its headline finding.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import difflib
import hashlib
import html
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

from helpers import __version__
from helpers.core import paths, timeline
from helpers.core.errors import CareTrendsError
from helpers.core.records import RECORD_COLUMNS

#: Outcomes the panel holds (DESIGN.md).
KNOWN_OUTCOMES = ("starts", "cla_31_march", "ceased")
#: Model families helpers.its.fit_its accepts.
KNOWN_FAMILIES = ("poisson", "quasipoisson", "negbin", "ols", "ar1", "sarimax")
#: Named comparators (or give a list of LA codes).
KNOWN_COMPARATORS = ("statistical_neighbours_2021", "statistical_neighbours_2025", "region",
                     "england_minus_la")
KNOWN_EFFECTS = ("level", "slope")
#: Canonical notebook parameters (team brief); a YAML key outside these and the notebooks'
#: declared parameters is a typo, reported before running.
CANONICAL_PARAMETERS = ("analysis", "la", "start_year", "end_year", "outcomes", "family", "events",
                        "comparator", "exclude_donors", "ssda903_header", "ssda903_episodes",
                        "seed", "results_path", "results_dir")
#: YAML keys the runner itself reads; never passed to notebooks.
RUNNER_KEYS = ("title", "description", "notebooks")
#: Parameters the runner sets (paths relative to the notebook's working folder).
RESULTS_PATH, RESULTS_DIR = "results_path", "results_dir"
#: Minimum reporting years before an event's first full year for a pre-trend.
MIN_PRE_YEARS = 3
DEFAULT_TIMEOUT = 1200  # seconds per notebook
DEFAULT_WORKERS = 2
TEMPLATE_NAME = "care_trends"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
MANIFEST = "manifest.json"
#: Seconds the slowest notebooks typically take on 2 cores, used to order the first run only
#: (later runs use the timings in each analysis' manifest.json).
TYPICAL_SECONDS = {"06_sensitivity": 20.0, "04_comparisons": 8.0}
ALL_LAS_TEMPLATE = "all-las.yaml"  # in notebooks/params/templates/
# Kernel log chatter off the console; a kernel that fails still surfaces as an error.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


# --------------------------------------------------------------------------------------------
# Analyses (YAML parameter files)
# --------------------------------------------------------------------------------------------

def params_dir() -> Path:
    return paths.notebooks_dir() / "params"


def all_las_template() -> Path:
    """The template `care-trends run --all-las` uses when no analysis is named."""
    return params_dir() / "templates" / ALL_LAS_TEMPLATE


def list_analyses(directory: Path | None = None) -> list[str]:
    """Names of the analyses (YAML stems) in notebooks/params/, sorted."""
    directory = Path(directory) if directory else params_dir()
    return sorted(p.stem for p in directory.glob("*.yaml"))


def _suggest(word: str, choices, what: str) -> str:
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"choose from {', '.join(choices)}"
    return f"unknown {what} '{word}'; {hint}"


def _plain(value):
    """YAML dates become ISO strings so papermill injects plain literals."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_analysis(name_or_path, directory: Path | None = None) -> dict:
    """Read one analysis' parameters: a name in notebooks/params/ or a path to a YAML file."""
    candidate = Path(str(name_or_path))
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        path = candidate
        if not path.exists():
            raise CareTrendsError(f"analysis file {path} not found; give a YAML path that exists")
    else:
        directory = Path(directory) if directory else params_dir()
        path = directory / f"{name_or_path}.yaml"
        if not path.exists():
            raise CareTrendsError(_suggest(name_or_path, list_analyses(directory), "analysis")
                                  + f" (YAML files in {directory})")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CareTrendsError(f"{path}{where} is not valid YAML; fix the syntax") from exc
    if not isinstance(params, dict):
        raise CareTrendsError(f"{path} must be a mapping of parameter: value")
    params = _plain(params)
    params.setdefault("analysis", path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(params["analysis"])):
        raise CareTrendsError(f"analysis name {params['analysis']!r} must be letters, digits, "
                              "'-', '_' or '.' (it names a folder)")
    return params


# --------------------------------------------------------------------------------------------
# Notebooks
# --------------------------------------------------------------------------------------------

def discover_notebooks(notebook_dir: Path | None = None, only=None) -> list[Path]:
    """The collection: notebooks/NN_*.ipynb in name order, optionally restricted to `only`
    (stems such as '03_its' or number prefixes such as '03')."""
    notebook_dir = Path(notebook_dir) if notebook_dir else paths.notebooks_dir()
    found = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise CareTrendsError(f"no notebooks NN_*.ipynb in {notebook_dir}")
    if not only:
        return found
    chosen = []
    for want in only:
        want = str(want).removesuffix(".ipynb")
        match = [p for p in found if p.stem == want or p.stem.split("_", 1)[0] == want]
        if not match:
            raise CareTrendsError(_suggest(want, [p.stem for p in found], "notebook"))
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen)


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in the notebook's `parameters` cell."""
    import logging

    import papermill

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


def plan_stages(declared: dict[Path, set[str]]) -> list[list[Path]]:
    """Execution order: notebooks reading the others' results (they declare `results_dir`,
    or are named *_summary) run after all the rest; within a stage, in parallel."""
    def consumer(p: Path) -> bool:
        return RESULTS_DIR in declared[p] or p.stem.endswith("_summary")

    first = [p for p in declared if not consumer(p)]
    last = [p for p in declared if consumer(p)]
    return [stage for stage in (first, last) if stage]


def notebook_inputs(params: dict, declared: set[str], stem: str) -> dict:
    """Only the parameters the notebook declares (no papermill unknown-parameter warnings);
    results paths are relative to the notebook's working folder (the analysis' output)."""
    inputs = {k: v for k, v in params.items() if k in declared and k not in RUNNER_KEYS}
    if RESULTS_PATH in declared:
        inputs[RESULTS_PATH] = f"results/{stem}.json"
    if RESULTS_DIR in declared:
        inputs[RESULTS_DIR] = "results"
    return inputs


# --------------------------------------------------------------------------------------------
# Validation (before anything runs)
# --------------------------------------------------------------------------------------------

def _data_years(la: str) -> tuple[int, int]:
    """First and last reporting year with a published count for the LA."""
    from helpers import data

    years = []
    for measure in KNOWN_OUTCOMES:
        series = data.annual_series(la, measure)
        years.extend(int(y) for y in series.loc[series["count"].notna(), "year"])
    if not years:
        raise CareTrendsError(f"no published counts for {la}; choose another LA")
    return min(years), max(years)


def validate_params(params: dict, declared: set[str] | None = None) -> dict:
    """Check an analysis' parameters against the data; return them with `la_code` resolved.

    Raises CareTrendsError with one line naming the problem and the fix."""
    name = params.get("analysis", "?")

    def fail(message: str):
        raise CareTrendsError(f"analysis {name}: {message}")

    allowed = set(CANONICAL_PARAMETERS) | set(RUNNER_KEYS) | set(declared or ())
    for key in params:
        if key not in allowed:
            fail(_suggest(key, sorted(allowed - set(RUNNER_KEYS)), "parameter"))

    checked = dict(params)
    if "la" not in params:
        fail("no 'la' given; add e.g. la: Stoke-on-Trent")
    from helpers import data

    try:
        record = data.resolve_la(params["la"])
    except CareTrendsError as exc:
        fail(str(exc))
    checked["la_code"] = _field(record, "la_code")
    la_name = _field(record, "la_name") or params["la"]

    outcomes = params.get("outcomes", list(KNOWN_OUTCOMES))
    if isinstance(outcomes, str):
        outcomes = [outcomes]
    for outcome in outcomes:
        if outcome not in KNOWN_OUTCOMES:
            fail(_suggest(outcome, KNOWN_OUTCOMES, "outcome"))

    family = params.get("family", "quasipoisson")
    if family not in KNOWN_FAMILIES:
        fail(_suggest(family, KNOWN_FAMILIES, "family"))

    first_year, last_year = _data_years(params["la"])
    start_year = params.get("start_year", first_year)
    end_year = params.get("end_year") or last_year
    for label, year in (("start_year", start_year), ("end_year", end_year)):
        if not isinstance(year, int) or not first_year <= year <= last_year:
            fail(f"{label} {year!r} is outside the data for {la_name} "
                 f"(reporting years {first_year}-{last_year}); pick a year in that range")
    if end_year - start_year < 2 * MIN_PRE_YEARS:
        fail(f"start_year {start_year} to end_year {end_year} is too short a window; "
             f"allow at least {2 * MIN_PRE_YEARS} years")

    events = params.get("events") or []
    if not isinstance(events, list):
        fail("events must be a list of {name, date, effects}")
    seen = set()
    for event in events:
        if not isinstance(event, dict) or "name" not in event or "date" not in event:
            fail(f"event {event!r} needs at least 'name' and 'date' (YYYY-MM-DD)")
        ev = event["name"]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(ev)):
            fail(f"event name {ev!r} must be an identifier such as family_matters")
        if ev in seen:
            fail(f"event name '{ev}' appears twice; give each event its own name")
        seen.add(ev)
        date = timeline.to_date(event["date"])
        first_full = timeline.first_full_reporting_year(date)
        if first_full > end_year:
            fail(f"event '{ev}' on {date} is outside the data: its first full reporting year "
                 f"{first_full} is after the last year analysed ({end_year}); give a date "
                 f"before 1 April {end_year} or remove the event")
        if first_full - start_year < MIN_PRE_YEARS:
            fail(f"event '{ev}' on {date} leaves fewer than {MIN_PRE_YEARS} reporting years "
                 f"before it (start_year {start_year}); use an earlier start_year or a later date")
        for effect in event.get("effects", KNOWN_EFFECTS):
            if effect not in KNOWN_EFFECTS:
                fail(f"event '{ev}': " + _suggest(effect, KNOWN_EFFECTS, "effect"))
        for key in ("phase_in", "lag"):
            if key in event and (not isinstance(event[key], int) or event[key] < 0):
                fail(f"event '{ev}': {key} must be a whole number of periods >= 0")

    comparator = params.get("comparator", KNOWN_COMPARATORS[0])
    if isinstance(comparator, list):
        for code in comparator:
            try:
                data.resolve_la(code)
            except CareTrendsError as exc:
                fail(f"comparator: {exc}")
    elif comparator not in KNOWN_COMPARATORS:
        fail(_suggest(comparator, KNOWN_COMPARATORS, "comparator") + " (or a list of LA codes)")

    for donor in params.get("exclude_donors") or []:
        try:
            data.resolve_la(donor)
        except CareTrendsError as exc:
            fail(f"exclude_donors: {exc}")

    for key in ("ssda903_header", "ssda903_episodes"):
        value = params.get(key)
        if value:
            checked[key] = _ssda903_files(value, key, fail)
    if "seed" in params and not isinstance(params["seed"], int):
        fail(f"seed {params['seed']!r} must be a whole number")
    return checked


def _ssda903_files(value, key: str, fail):
    """What helpers.ssda903.load_903 accepts (a path, a glob pattern, a comma-separated list or
    a list of those), checked now and made absolute: notebooks run in the report folder."""
    from helpers.ssda903.extract import expand_paths

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        fail(f"{key} must be a path, a pattern or a list of paths to your SSDA903 extract")
    try:
        files = expand_paths(value)
    except CareTrendsError as exc:
        fail(f"{key}: {exc} (or leave it empty for the synthetic stand-in)")
    if not files:
        fail(f"{key} names no file; give the path to your SSDA903 extract "
             "or leave it empty for the synthetic stand-in")
    absolute = [str(Path(f).resolve()) for f in files]
    return absolute[0] if isinstance(value, str) and len(absolute) == 1 else absolute


def _field(record, key):
    """A field of an LA record, whether a dict, a pandas Series or an object with attributes."""
    if hasattr(record, "get"):
        return record.get(key)
    return getattr(record, key, None)


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

def _kernel_environment() -> None:
    """Deterministic, quiet kernels (inherit this process's environment)."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault(paths.RAW_DIR_ENV, str(paths.raw_dir()))


def _execute_one(input_path: str, work_dir: str, parameters: dict, timeout: float,
                 header: dict) -> dict:
    """Worker: run one notebook with papermill into work_dir, render its HTML.

    Returns a plain dict (picklable) describing success or the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _kernel_environment()
    start = time.monotonic()
    stem = Path(input_path).stem
    output_path = Path(work_dir) / f"{stem}.ipynb"
    outcome = {"stem": stem, "ok": True}
    try:
        papermill.execute_notebook(
            input_path, str(output_path), parameters=parameters, cwd=work_dir,
            kernel_name="python3", progress_bar=False, log_output=False,
            execution_timeout=timeout, extra_arguments=list(KERNEL_ARGS))
    except PapermillExecutionError as exc:
        evalue = str(exc.evalue).strip().splitlines()
        outcome.update(ok=False, cell=exc.exec_count, ename=exc.ename,
                       evalue=evalue[0] if evalue else "",
                       code_cell=_code_cell_number(output_path, exc.cell_index))
    except Exception as exc:  # kernel died, timeout inside a cell, unreadable notebook...
        text = str(exc).strip().splitlines()
        outcome.update(ok=False, cell=None, ename=type(exc).__name__,
                       evalue=text[0] if text else "")
    if outcome["ok"]:
        outcome.update(render_html(output_path, output_path.with_suffix(".html"), header))
    outcome["seconds"] = round(time.monotonic() - start, 1)
    return outcome


def _code_cell_number(executed: Path, cell_index: int) -> int | None:
    """1-based position of the failing cell among the notebook's own code cells (the cell
    papermill injects is not counted), so it can be found in the source notebook."""
    import nbformat

    try:
        cells = nbformat.read(str(executed), as_version=4).cells[: cell_index + 1]
    except Exception:
        return None
    return sum(1 for c in cells if c.cell_type == "code"
               and "injected-parameters" not in c.metadata.get("tags", []))


def _failure_message(analysis: str, outcome: dict, kept: Path | None) -> str:
    where = ""
    if outcome.get("code_cell"):
        where = f" in code cell {outcome['code_cell']}"
    if outcome.get("cell"):
        where += f" (In [{outcome['cell']}])" if where else f" in cell In [{outcome['cell']}]"
    detail = f"{outcome.get('ename', 'Error')}: {outcome.get('evalue', '')}".rstrip(": ")
    keep = f"; the partly-run notebook is in {kept}" if kept else ""
    return f"analysis {analysis}: notebook {outcome['stem']} failed{where}: {detail}{keep}"


def _can_fork_workers() -> bool:
    """Daemonic processes (e.g. dask workers) cannot start a process pool: run serially."""
    return not multiprocessing.current_process().daemon


def _warm_worker() -> None:
    """Import what every notebook job needs once per worker, while the parent validates."""
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401


class NotebookPool:
    """Worker processes shared by every notebook of every analysis in one `care-trends run`.

    Started before validation so the workers' imports (papermill, nbconvert) overlap it; a
    worker then runs one notebook after another without paying them again."""

    def __init__(self, workers: int = DEFAULT_WORKERS):
        self.workers = max(1, int(workers))
        self._pool = None
        if self.workers > 1 and _can_fork_workers():
            self._start()

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # safe with threads and on Windows
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        for _ in range(self.workers):
            self._pool.submit(_warm_worker)

    def submit(self, job: tuple) -> cf.Future:
        return self._pool.submit(_execute_one, *job)

    def restart(self) -> None:
        """Stop every worker (a notebook over its timeout) and start fresh ones."""
        self.close(kill=True)
        self._start()

    def close(self, kill: bool = False) -> None:
        if self._pool is None:
            return
        if kill:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)


class _AnalysisRun:
    """One analysis' state while its notebooks run: its temporary folder, stages and outcomes."""

    def __init__(self, params: dict, out_dir: Path, notebook_dir, timeout: float):
        self.params = params
        self.analysis = str(params["analysis"])
        self.out_dir = out_dir
        self.notebooks = discover_notebooks(notebook_dir, params.get("notebooks"))
        self.declared = {nb: notebook_parameters(nb) for nb in self.notebooks}
        self.stages = plan_stages(self.declared)
        self.timeout = timeout
        self.header = _header(params, self.notebooks)
        self.outcomes: dict[str, dict] = {}
        self.running = 0
        self.error: str | None = None
        self.manifest: dict | None = None
        self.previous = _previous_seconds(out_dir)
        self.start = time.monotonic()
        self.work = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / "results").mkdir(parents=True)

    def next_stage(self) -> list[tuple]:
        """Jobs of the next stage (empty when every stage has run)."""
        if not self.stages:
            return []
        stage = self.stages.pop(0)
        return [(str(nb), str(self.work), notebook_inputs(self.params, self.declared[nb], nb.stem),
                 self.timeout, self.header) for nb in stage]

    def publish(self) -> None:
        self.manifest = _finish(self.work, self.params, self.notebooks, self.outcomes, self.header)
        self.manifest["seconds"] = round(time.monotonic() - self.start, 1)
        swap_in(self.work, self.out_dir)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def _previous_seconds(out_dir: Path) -> dict[str, float]:
    """Per-notebook seconds of the last published run (to start the longest notebooks first)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
        return {n["stem"]: float(n.get("seconds") or 0) for n in manifest["notebooks"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def run_analyses(plans: list[dict], reports_root, *, notebook_dir=None,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT,
                 progress: bool = True, pool: NotebookPool | None = None) -> dict[str, dict | str]:
    """Execute several validated analyses into reports_root/<analysis>/ with one shared pool.

    Every analysis' independent notebooks are scheduled together, longest first (by the last
    run's timings, so e.g. 06_sensitivity starts first); an analysis' summary notebooks start as
    soon as its own other notebooks are done. Each analysis writes to its own temporary folder
    that replaces reports/<analysis>/ only when all its notebooks succeeded; a failed analysis
    leaves its previous reports untouched (partly-run folder under .failed/) while the others
    still publish. Returns {analysis: manifest} for successes and {analysis: one-line error}."""

    reports_root = Path(reports_root).resolve()
    targets = [(p, reports_root / str(p["analysis"])) for p in plans]
    results = _run_all(targets, notebook_dir=notebook_dir, workers=workers, timeout=timeout,
                       progress=progress, pool=pool)
    return {str(p["analysis"]): result for p, result in zip(plans, results)}


def _run_all(targets: list[tuple[dict, Path]], *, notebook_dir, workers: int, timeout: float,
             progress: bool, pool: NotebookPool | None) -> list[dict | str]:
    """run_analyses for (params, out_dir) pairs; a manifest or a one-line error for each."""
    runs: list[_AnalysisRun] = []
    try:
        for p, out in targets:
            runs.append(_AnalysisRun(_plain(dict(p)), Path(out).resolve(), notebook_dir, timeout))
        return _schedule(runs, workers=workers, timeout=timeout, progress=progress, pool=pool)
    finally:
        for run in runs:
            run.cleanup()


def _schedule(runs: list[_AnalysisRun], *, workers: int, timeout: float, progress: bool,
              pool: NotebookPool | None) -> list[dict | str]:
    from tqdm.auto import tqdm

    # Before any run has been recorded (a fresh clone), start from typical timings on 2 cores.
    fallback: dict[str, float] = dict(TYPICAL_SECONDS)
    for run in runs:
        for stem, seconds in run.previous.items():
            fallback[stem] = max(fallback.get(stem, 0.0), seconds)
    order = {id(run): i for i, run in enumerate(runs)}
    ready: list[tuple[_AnalysisRun, tuple]] = []

    def expected(item) -> float:
        stem = Path(item[1][0]).stem
        return item[0].previous.get(stem, fallback.get(stem, 0.0))

    def enqueue(run: _AnalysisRun, jobs: list[tuple]) -> None:
        ready.extend((run, job) for job in jobs)
        # Longest first; ties in analysis then notebook order.
        ready.sort(key=lambda item: (-expected(item), order[id(item[0])], item[1][0]))

    def completed(run: _AnalysisRun, outcome: dict) -> None:
        run.running -= 1
        bar.update(1)
        if run.error is not None:
            return
        run.outcomes[outcome["stem"]] = outcome
        if not outcome["ok"]:
            run.error = outcome
            ready[:] = [item for item in ready if item[0] is not run]
            return
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

    bar = tqdm(total=sum(len(run.notebooks) for run in runs), desc="notebooks", unit="notebook",
               file=sys.stderr, disable=not progress, leave=True, dynamic_ncols=True)
    own_pool = pool is None
    pool = pool if pool is not None else NotebookPool(workers)
    clean = False
    try:
        for run in runs:
            enqueue(run, run.next_stage())
        if pool.parallel:
            _run_pooled(pool, ready, completed, timeout, bar)
        else:
            while ready:
                run, job = ready.pop(0)
                bar.set_postfix_str(f"{run.analysis}/{Path(job[0]).stem}")
                run.running += 1
                completed(run, _execute_one(*job))
        clean = True
    finally:
        bar.close()
        if own_pool or not clean:
            pool.close(kill=not clean)
    results: list[dict | str] = []
    for run in runs:
        if run.manifest is not None:
            results.append(run.manifest)
        else:
            results.append(_failure_message(run.analysis, run.error,
                                            _keep_failed(run.work, run.out_dir)))
    return results


def _run_pooled(pool: NotebookPool, ready: list, completed, timeout: float, bar) -> None:
    """At most `pool.workers` notebooks at a time, each with its own deadline.

    A notebook over its timeout fails its analysis; the workers are restarted (their kernels
    notice their parent has gone and exit) and the other notebooks that were running then are
    started again."""
    running: dict[cf.Future, tuple] = {}
    while ready or running:
        while ready and len(running) < pool.workers:
            run, job = ready.pop(0)
            run.running += 1
            running[pool.submit(job)] = (run, job, time.monotonic())
        bar.set_postfix_str(", ".join(sorted(f"{r.analysis}/{Path(j[0]).stem}"
                                             for r, j, _ in running.values())))
        finished, _ = cf.wait(running, timeout=5, return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in finished:
            run, job, _ = running.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # worker process died
                broken = broken or isinstance(exc, cf.BrokenExecutor)
                outcome = {"stem": Path(job[0]).stem, "ok": False, "cell": None,
                           "ename": type(exc).__name__, "evalue": str(exc)}
            completed(run, outcome)
        if broken:  # the notebooks still queued (other analyses) get fresh workers
            for run, job, _ in running.values():
                completed(run, {"stem": Path(job[0]).stem, "ok": False, "cell": None,
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
                completed(run, {"stem": Path(job[0]).stem, "ok": False, "cell": None,
                                "ename": "Timeout",
                                "evalue": f"did not finish within {timeout:.0f} s; "
                                          "raise --timeout or make the notebook faster"})
            pool.restart()
            for run, job, _ in running.values():  # stopped with the late one: run them again
                run.running -= 1
                if run.error is None:
                    ready.insert(0, (run, job))
            running.clear()


def run_analysis(params: dict, out_dir, *, notebook_dir=None, workers: int = DEFAULT_WORKERS,
                 timeout: float = DEFAULT_TIMEOUT, progress: bool = True,
                 validate: bool = True) -> dict:
    """Execute one analysis into `out_dir` (e.g. reports/stoke-on-trent/) and return its manifest.

    Picklable top-level function (helpers.scaleout calls it on cluster workers). The previous
    contents of out_dir stay in place until every notebook has succeeded; on failure the
    partly-run folder is kept under <out_dir.parent>/.failed/<analysis>/ and CareTrendsError
    names the notebook and cell. `timeout` is per notebook (seconds); `workers` notebooks run at
    once (1 = in this process)."""
    params = _plain(dict(params))
    params.setdefault("analysis", Path(out_dir).name)
    if validate:
        # Keys for notebooks outside a restricted run are still legitimate parameters.
        every = set().union(*(notebook_parameters(nb) for nb in discover_notebooks(notebook_dir)))
        params = validate_params(params, every)
    [result] = _run_all([(params, Path(out_dir))], notebook_dir=notebook_dir, workers=workers,
                        timeout=timeout, progress=progress, pool=None)
    if isinstance(result, str):
        raise CareTrendsError(result)
    return result


def _keep_failed(work: Path, out_dir: Path) -> Path | None:
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


def _finish(work: Path, params: dict, notebooks: list[Path], outcomes: dict, header: dict) -> dict:
    """results.json and manifest.json for the analysis; drop the per-notebook record files."""
    order = [nb.stem for nb in notebooks]
    records = merge_records(work / "results", order)
    for record in records:
        record["analysis"] = record["analysis"] or params["analysis"]
    _write_json(work / "results.json", records)
    shutil.rmtree(work / "results", ignore_errors=True)
    manifest = {
        "analysis": params["analysis"],
        "title": header["analysis_title"],
        "la": params.get("la"),
        "data_edition": header["data_edition"],
        "version": __version__,
        "records": len(records),
        "notebooks": [{"stem": stem, "title": outcomes[stem].get("title", stem),
                       "html": f"{stem}.html", "headline": outcomes[stem].get("headline", ""),
                       "seconds": outcomes[stem].get("seconds")} for stem in order],
    }
    _write_json(work / MANIFEST, manifest)
    return manifest


def _write_json(path: Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def templates_dir() -> Path:
    return Path(__file__).with_name("templates")


def data_edition() -> str:
    """Which data the reports were built from: the DfE years covered and the raw snapshot."""
    label = "DfE children looked after in England (SSDA903), ONS populations"
    try:
        from helpers import data

        edition = getattr(data, "edition", None)
        if callable(edition):
            return str(edition())
        panel = data.load_panel()
        years = panel["year"].dropna().astype(int)
        label += f", reporting years {years.min()}-{years.max()}"
    except Exception:  # the header must never stop a report
        pass
    sums = paths.raw_dir() / "SHA256SUMS"
    if sums.exists():
        label += f"; raw snapshot {hashlib.sha256(sums.read_bytes()).hexdigest()[:10]}"
    return label


def _header(params: dict, notebooks: list[Path]) -> dict:
    la = params.get("la", "")
    title = params.get("title") or f"{la}: did the programme change the trend of children entering care?"
    return {"analysis": params["analysis"], "analysis_title": title, "la": la,
            "data_edition": data_edition(), "version": __version__,
            "nav": [[nb.stem, _pretty(nb.stem)] for nb in notebooks]}


_ACRONYMS = {"its": "ITS"}  # words a page title keeps in capitals


def _pretty(stem: str) -> str:
    number, _, rest = stem.partition("_")
    words = [_ACRONYMS.get(word, word) for word in rest.split("_")]
    return f"{number}. {' '.join(words)[:1].upper()}{' '.join(words)[1:]}"


def notebook_title(nb) -> str:
    """The first markdown heading, else the metadata title."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return nb.metadata.get("title", "")


def _markdown_text(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = re.sub(r"(?m)^\s*(#+|>|[-*] )\s*", "", text)  # headings, quotes, bullets
    text = re.sub(r"[*`|]", "", text)  # emphasis, code, table bars (underscores stay: cla_31_march)
    return " ".join(text.split())


def _first_sentences(text: str, limit: int = 260) -> str:
    text = _markdown_text(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    stop = max(cut.rfind(". "), cut.rfind("; "))
    if stop > 60:
        return cut[:stop].rstrip(".;") + ("." if cut[stop] == "." else " ...")
    return cut.rsplit(" ", 1)[0] + " ..."


def headline(nb) -> str:
    """The notebook's headline finding: the markdown output of a cell tagged `headline`, else
    the first markdown output (the plain-English reading), else its purpose paragraph."""
    def markdown_outputs(cell):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown")
            if text:
                yield text

    for cell in nb.cells:
        if "headline" in cell.get("metadata", {}).get("tags", []):
            for text in markdown_outputs(cell):
                return _first_sentences(text)
    for cell in nb.cells:
        for text in markdown_outputs(cell):
            if len(_markdown_text(text)) > 40:
                return _first_sentences(text)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            body = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
            if body:
                return _first_sentences(" ".join(body))
    return ""


def render_html(nb_path: Path, html_path: Path, header: dict) -> dict:
    """Executed notebook -> accessible HTML with the code hidden. Returns title and headline."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(str(nb_path), as_version=4)
    title, line = notebook_title(nb), headline(nb)
    exporter = HTMLExporter(template_name=TEMPLATE_NAME,
                            extra_template_basedirs=[str(templates_dir())],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    remover = TagRemovePreprocessor(
        remove_cell_tags=("parameters", "injected-parameters", "remove_cell"), enabled=True)
    exporter.register_preprocessor(remover, enabled=True)
    css = (templates_dir() / TEMPLATE_NAME / "style.css").read_text(encoding="utf-8")
    page = {**header, "page_title": title or Path(nb_path).stem, "current": Path(nb_path).stem,
            "css": css}
    body, _ = exporter.from_notebook_node(
        nb, resources={"care_trends": page, "metadata": {"name": page["page_title"]}})
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html_path)
    return {"title": title, "headline": line}


def build_index(reports_root=None) -> Path:
    """reports/index.html: every analysis (with a manifest) and its notebooks with headlines."""
    reports_root = Path(reports_root) if reports_root else paths.reports_dir()
    reports_root.mkdir(parents=True, exist_ok=True)
    manifests = []
    for path in sorted(reports_root.glob(f"*/{MANIFEST}")):
        if path.parent.name.startswith("."):
            continue
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    esc = html.escape
    sections = []
    for m in manifests:
        items = "\n".join(
            f'<li><a href="{esc(m["analysis"])}/{esc(n["html"])}">{esc(n["title"] or n["stem"])}</a>'
            + (f'<p>{esc(n["headline"])}</p>' if n.get("headline") else "") + "</li>"
            for n in m["notebooks"])
        sections.append(
            f'<section aria-labelledby="a-{esc(m["analysis"])}">\n'
            f'<h2 id="a-{esc(m["analysis"])}">{esc(m["title"])}</h2>\n'
            f'<p class="meta">Analysis <code>{esc(m["analysis"])}</code> &middot; '
            f'{esc(str(m.get("la") or ""))} &middot; {m.get("records", 0)} estimates in '
            f'<a href="{esc(m["analysis"])}/results.json">results.json</a></p>\n'
            f'<ol class="notebooks">\n{items}\n</ol>\n</section>')
    for extra in sorted(reports_root.glob("*/index.html")):
        # e.g. reports/all-las/ from `care-trends run --all-las` (helpers.scaleout)
        if not (extra.parent / MANIFEST).exists() and not extra.parent.name.startswith("."):
            name = esc(extra.parent.name)
            sections.append(f'<section aria-labelledby="x-{name}">\n<h2 id="x-{name}">'
                            f'{name.replace("-", " ").capitalize()}</h2>\n<p><a href="{name}/'
                            f'index.html">Every local authority: {name}/index.html</a></p>\n'
                            '</section>')
    edition = manifests[0]["data_edition"] if manifests else data_edition()
    body = "\n".join(sections) or "<p>No analyses have been run yet: run <code>care-trends run</code>.</p>"
    css = (templates_dir() / TEMPLATE_NAME / "style.css").read_text(encoding="utf-8")
    page = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>care-trends reports</title>
<style>
{css}
</style>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site">
<p class="brand">care-trends reports</p>
<p class="meta">Data: {esc(edition)} &middot; care-trends {esc(__version__)}</p>
</header>
<main id="main">
<h1>Did a local programme change the trend of children entering care?</h1>
<p>Each analysis below asks the question for one English local authority. Every notebook's
headline finding is shown under its link; the summary brings the designs together.</p>
{body}
</main>
</body>
</html>
"""
    target = reports_root / "index.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


# --------------------------------------------------------------------------------------------
# Committed notebooks
# --------------------------------------------------------------------------------------------

def refresh_notebook(path, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Execute a committed notebook in place with its default parameters (the default run), so
    its stored outputs are what nbval checks. No timing or papermill metadata is recorded, so a
    re-run without changes leaves the file byte-identical."""
    import nbformat
    from nbclient import NotebookClient

    _kernel_environment()
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
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(path)
    return path


def _cli_refresh(args) -> int:
    for name in args.notebooks or [p.stem for p in discover_notebooks()]:
        nb = discover_notebooks(None, [name])[0]
        start = time.monotonic()
        refresh_notebook(nb, timeout=args.timeout)
        print(f"{nb.name}: refreshed in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_cli(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="execute the notebooks of one or more analyses and publish the HTML reports",
        description="Execute every notebook of each analysis (notebooks/params/<ANALYSIS>.yaml) "
                    "with papermill into reports/<ANALYSIS>/, then rebuild reports/index.html.")
    run.add_argument("analyses", nargs="*", metavar="ANALYSIS",
                     help="analysis names or YAML paths (default: every file in notebooks/params/)")
    run.add_argument("--only", metavar="NN", action="append",
                     help="run only these notebooks (e.g. --only 01 --only 03_its)")
    run.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                     help=f"notebooks run at once (default {DEFAULT_WORKERS})")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                     help=f"seconds allowed per notebook (default {DEFAULT_TIMEOUT})")
    run.add_argument("--reports-dir", type=Path, default=None,
                     help="output folder (default reports/)")
    run.add_argument("--notebooks-dir", type=Path, default=None,
                     help="folder holding NN_*.ipynb (default notebooks/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--all-las", action="store_true",
                     help="run the analysis for every LA (helpers.scaleout; dask)")
    run.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="dask scheduler address for --all-las (default: a local cluster)")
    run.set_defaults(handler=_cli_run)

    refresh = subparsers.add_parser(
        "refresh-notebooks", help="re-execute committed notebooks in place (default parameters)",
        description="Execute notebooks/NN_*.ipynb in place with their default parameters so the "
                    "committed outputs match the code (nbval compares them in `make test`).")
    refresh.add_argument("notebooks", nargs="*", metavar="NN",
                         help="notebook stems or numbers (default: all)")
    refresh.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                         help="seconds allowed per cell")
    refresh.set_defaults(handler=_cli_refresh)


def _cli_run(args) -> int:
    reports_root = (args.reports_dir or paths.reports_dir()).resolve()
    names = args.analyses or list_analyses()
    if not names and not args.all_las:
        raise CareTrendsError(f"no analyses found in {params_dir()}; add a YAML file")
    if args.scheduler and not args.all_las:
        raise CareTrendsError("--scheduler only applies with --all-las")
    if args.all_las:
        try:
            from helpers import scaleout  # lazy: dask is only needed here
        except ModuleNotFoundError as exc:
            if exc.name not in ("helpers.scaleout", "dask", "distributed"):
                raise
            raise CareTrendsError(f"--all-las needs {exc.name}, which is not available; "
                                  "install the project with its dependencies") from exc

        if len(args.analyses) > 1:
            raise CareTrendsError("--all-las takes at most one analysis as the template")
        # No analysis named: the all-LA template, not the first analysis in notebooks/params/.
        params = load_analysis(args.analyses[0] if args.analyses else all_las_template())
        if args.only:
            params["notebooks"] = args.only
        result = _call_accepting(
            scaleout.run_all_las, template=params, params=params, out_dir=reports_root,
            reports_dir=reports_root, scheduler=args.scheduler, timeout=args.timeout,
            progress=not args.no_progress, notebook_dir=args.notebooks_dir)
        build_index(reports_root)
        if isinstance(result, list):
            failed = [r for r in result if isinstance(r, dict) and not r.get("ok", True)]
            print(f"all LAs: {len(result) - len(failed)} succeeded, {len(failed)} failed",
                  file=sys.stderr)
            return 1 if failed else 0
        return int(result) if isinstance(result, int) else 0

    # Workers start importing papermill/nbconvert now, while the analyses are validated.
    with NotebookPool(args.workers) as pool:
        # Validate every analysis first: nothing runs if any parameter is wrong.
        notebooks_all = discover_notebooks(args.notebooks_dir)
        declared_all = set().union(*(notebook_parameters(nb) for nb in notebooks_all))
        plans = []
        for name in names:
            params = load_analysis(name)
            if args.only:
                params["notebooks"] = args.only
            discover_notebooks(args.notebooks_dir, params.get("notebooks"))
            plans.append(validate_params(params, declared_all))
        seen = [p["analysis"] for p in plans]
        for name in seen:
            if seen.count(name) > 1:
                raise CareTrendsError(f"analysis {name} is given twice; name each analysis once")
        results = run_analyses(plans, reports_root, notebook_dir=args.notebooks_dir,
                               workers=args.workers, timeout=args.timeout,
                               progress=not args.no_progress, pool=pool)
    failures = []
    for name, result in results.items():
        if isinstance(result, str):
            failures.append(result)
            continue
        print(f"{name}: {len(result['notebooks'])} notebooks, {result['records']} estimates, "
              f"{result['seconds']:.0f} s -> {reports_root / name}", file=sys.stderr)
    index = build_index(reports_root)
    print(f"index: {index}", file=sys.stderr)
    if failures:
        # One line per failed analysis; the last one goes through the CLI's error line (exit 2).
        for message in failures[:-1]:
            print(f"care-trends: error: {message}", file=sys.stderr)
        raise CareTrendsError(failures[-1])
    return 0


def _call_accepting(fn, **kwargs):
    """Call fn with the keyword arguments its signature accepts (scaleout's is its owner's)."""
    import inspect

    signature = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        accepted = kwargs
    else:
        accepted = {k: v for k, v in kwargs.items() if k in signature.parameters}
    return fn(**accepted)
