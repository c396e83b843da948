"""The papermill runner: executes every notebook of one or many analyses (validated specs) on
one pool of workers and publishes each analysis' folder atomically.

One scheduler serves everything: a single analysis, both default analyses, or every LA
(`helpers.run.national`), on local processes or a Dask cluster (`helpers.run.executors`).
Within an analysis, notebooks that read the others' results (they declare `results_dir`, or are
named *_summary) run after the rest; across analyses the longest notebooks start first. Each
analysis is written to its own temporary folder, which replaces reports/<analysis>/ only when
every notebook succeeded; a failed analysis leaves its previous reports untouched (the partly
run folder is kept under .failed/) while the others still publish.

Safety rules (issue 13):
- `only` (`care-trends run --only NN`) updates those pages in place: the temporary folder starts
  as a copy of the published one, the new records replace the old ones of the same notebooks in
  results.json, and the other pages, the manifest entries and the index links stay. It is
  refused when the analysis' YAML changed since those pages were made (pages of two specs would
  sit under one header).
- A folder is published by one YAML only: the manifest records the YAML's file name and a run
  from another file into the same folder is refused before anything is written.
- The swap is two renames (reports/X -> .X.old-PID, .X.tmp-PID -> reports/X) with SIGINT and
  SIGTERM held between them; a kill between them (SIGKILL cannot be held) leaves .X.old-PID and
  no X, which `repair_reports` (called at the start of every run) renames back. Temporary
  folders of dead processes are removed there too.
- A worker process that dies (killed, out of memory) costs its notebooks one retry, then fails
  only their analyses.
- The council's SSDA903 files never reach a published notebook's parameters: each job carries
  them as input files under `ssda903/` (its private folder) and the injected spec names them by
  that relative path.

Test hook: the environment variable CARE_TRENDS_TEST_HOOK=POINT[:ACTION] stops this process at
a named point, so tests can prove what a crash there leaves behind. POINT is one of
`before-swap` (every notebook done, nothing renamed), `swap-old-moved` (reports/X renamed
aside, the new folder not yet in), `swap-new-in` (new folder in, the old one not yet removed);
ACTION is `kill` (SIGKILL this process; the default) or `sleep=SECONDS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
from tqdm.auto import tqdm

from helpers import __version__
from helpers.core.collection import (RESULTS_DIR, RESULTS_PATH, discover_notebooks,
                                     notebook_parameters)
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_json
from helpers.core.records import RECORD_COLUMNS
from helpers.run import scheduling
from helpers.run.execute import NotebookJob
from helpers.run.executors import DEFAULT_WORKERS, LocalPool
from helpers.run.publish import MANIFEST, add_answer_to_pages, page_header
from helpers.spec import Analysis, check_folder_name, parameters_for_notebook

DEFAULT_TIMEOUT = 1200  # seconds per notebook
#: Typical seconds per notebook on 2 cores, to start the slowest first before any run is recorded.
TYPICAL_SECONDS = {"06_sensitivity": 20.0, "04_comparisons": 8.0}
RESULTS_FOLDER = "results"
#: Where a job's private folder holds the council's SSDA903 files (never published).
SSDA903_FOLDER = "ssda903"
SSDA903_KEYS = ("ssda903_header", "ssda903_episodes")
TEST_HOOK_ENV = "CARE_TRENDS_TEST_HOOK"
#: Leftovers of a run: `.X.tmp-PID` (being written) and `.X.old-PID` (set aside by a swap).
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")
#: Temporary files of helpers.core.io.atomic_write_bytes (`.NAME.RANDOM.tmp`).
_ATOMIC_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
_ATOMIC_TEMP_AGE = 3600  # seconds: no atomic write takes that long


def plan_stages(declared: dict[Path, set[str]]) -> list[list[Path]]:
    """Execution order: notebooks reading the others' results (they declare `results_dir`,
    or are named *_summary) run after all the rest; within a stage, in parallel."""
    def consumer(p: Path) -> bool:
        return RESULTS_DIR in declared[p] or p.stem.endswith("_summary")

    first = [p for p in declared if not consumer(p)]
    last = [p for p in declared if consumer(p)]
    return [stage for stage in (first, last) if stage]


def published_parameters(spec: Analysis) -> tuple[dict, dict[str, Path]]:
    """What a notebook's parameters cell receives (`analysis` and the whole validated spec as
    `overrides`), with each SSDA903 file named by a relative path inside the job's folder
    instead of its absolute path on this machine; and {relative path: file} to copy there."""
    params = parameters_for_notebook(spec)
    overrides = dict(params["overrides"])
    files: dict[str, Path] = {}
    by_file: dict[Path, str] = {}
    for key in SSDA903_KEYS:
        value = overrides.get(key)
        if not value:
            continue
        names = []
        for item in ([value] if isinstance(value, str) else list(value)):
            path = Path(item)
            if path not in by_file:
                safe = re.sub(r"[^A-Za-z0-9._-]", "_", path.name).lstrip(".")[:80] or "file"
                rel, n = f"{SSDA903_FOLDER}/{safe}", 1
                while rel in files:  # two folders holding files of one name
                    n += 1
                    rel = f"{SSDA903_FOLDER}/{n}/{safe}"
                files[rel], by_file[path] = path, rel
            names.append(by_file[path])
        overrides[key] = names[0] if isinstance(value, str) else names
    return {**params, "overrides": overrides}, files


def notebook_inputs(spec: Analysis, declared: set[str], stem: str) -> dict:
    """The parameters the notebook declares: the analysis name and its whole validated spec,
    and where to write or read results (relative to the notebook's working folder)."""
    parameters, _ = published_parameters(spec)
    inputs = {k: v for k, v in parameters.items() if k in declared}
    if RESULTS_PATH in declared:
        inputs[RESULTS_PATH] = f"{RESULTS_FOLDER}/{stem}.json"
    if RESULTS_DIR in declared:
        inputs[RESULTS_DIR] = RESULTS_FOLDER
    return inputs


def spec_fingerprint(spec: Analysis) -> str:
    """A digest of the validated spec, so `--only` can tell whether the pages it keeps were
    made from the same analysis."""
    text = json.dumps(spec.to_parameters(), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(out_dir: Path) -> dict:
    """The published manifest of an analysis folder ({} when there is none or it is unreadable)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


class AnalysisRun:
    """One analysis' state while its notebooks run: its temporary folder, stages and outcomes.

    Creating it only reads and checks (a refusal writes nothing); `prepare()` makes the folder."""

    def __init__(self, spec: Analysis, out_dir: Path, notebook_dir, timeout: float, only=None,
                 source: str | None = None):
        self.spec = spec
        self.analysis = spec.analysis
        self.out_dir = out_dir
        self.source = source
        self.notebooks = discover_notebooks(notebook_dir, only or spec.notebooks or None)
        self.declared = {nb: notebook_parameters(nb) for nb in self.notebooks}
        self.stages = plan_stages(self.declared)
        self.timeout = timeout
        self.fingerprint = spec_fingerprint(spec)
        self.parameters, self.private_files = published_parameters(spec)
        previous = read_manifest(out_dir)
        self._check_owner(previous)
        self.partial = bool(only) and out_dir.is_dir()
        self.kept: list[dict] = []  # manifest entries of the pages `only` leaves in place
        self.header = page_header(spec, self.notebooks)
        if self.partial:
            self._check_same_spec(previous)
            running = {nb.stem for nb in self.notebooks}
            self.kept = [entry for entry in previous.get("notebooks", [])
                         if isinstance(entry, dict) and entry.get("stem") not in running
                         and (out_dir / str(entry.get("html", ""))).is_file()]
        self.pages = sorted({nb.stem for nb in self.notebooks} | {e["stem"] for e in self.kept})
        self.header = page_header(spec, [Path(f"{stem}.ipynb") for stem in self.pages])
        self.outcomes: dict[str, dict] = {}
        self.running = 0
        self.error: dict | None = None
        self.manifest: dict | None = None
        self.previous = previous_seconds(out_dir)
        self.start = time.monotonic()
        self.work = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        self.private_inputs: dict[str, bytes] = {}
        self.split_stems: set[str] = set()  # notebooks whose kept records `only` split out

    def _check_owner(self, previous: dict) -> None:
        owner = previous.get("source")
        if self.source and owner and owner != self.source:
            raise CareTrendsError(
                f"analysis {self.analysis}: {self.out_dir.name}/ holds the analysis published "
                f"from {owner}, not {self.source}; give {self.source} its own `analysis:` name "
                f"or delete {self.out_dir.name}/ first")

    def _check_same_spec(self, previous: dict) -> None:
        """`only` keeps pages made from this very spec and data, or refuses."""
        made_from = previous.get("spec_sha256")
        if made_from and made_from != self.fingerprint:
            raise CareTrendsError(
                f"analysis {self.analysis}: its YAML changed since the pages in "
                f"{self.out_dir.name}/ were made, so --only would mix two versions; run all its "
                "notebooks (drop --only)")
        edition = previous.get("data_edition")
        if edition and edition != self.header["data_edition"]:
            raise CareTrendsError(
                f"analysis {self.analysis}: the data changed since the pages in "
                f"{self.out_dir.name}/ were made ({edition}), so --only would mix two editions; "
                "run all its notebooks (drop --only)")

    def prepare(self) -> None:
        """The temporary folder (a copy of the published one when `only` keeps pages) and the
        SSDA903 files every job carries."""
        for rel, path in self.private_files.items():
            try:
                self.private_inputs[rel] = path.read_bytes()
            except OSError as exc:
                raise CareTrendsError(f"analysis {self.analysis}: cannot read the SSDA903 file "
                                      f"{path.name} ({exc.strerror or type(exc).__name__})") from None
        shutil.rmtree(self.work, ignore_errors=True)
        if self.partial:
            shutil.copytree(self.out_dir, self.work, symlinks=True)
            self.split_stems = split_records(self.work)
            for nb in self.notebooks:  # rerun: its old records and extras go
                for old in (self.work / RESULTS_FOLDER).glob("*.json"):
                    if old.name == f"{nb.stem}.json" or old.name.startswith(f"{nb.stem}."):
                        old.unlink()
        (self.work / RESULTS_FOLDER).mkdir(parents=True, exist_ok=True)

    def next_stage(self) -> list[NotebookJob]:
        """Jobs of the next stage (empty when every stage has run)."""
        if not self.stages:
            return []
        stage = self.stages.pop(0)
        results = {f"{RESULTS_FOLDER}/{p.name}": p.read_bytes()
                   for p in sorted((self.work / RESULTS_FOLDER).glob("*.json"))}
        jobs = []
        for nb in stage:
            inputs = dict(self.private_inputs)
            if RESULTS_DIR in self.declared[nb]:
                inputs.update(results)
            jobs.append(NotebookJob(stem=nb.stem, notebook=nb.read_bytes(),
                                    parameters=notebook_inputs(self.spec, self.declared[nb],
                                                               nb.stem),
                                    header=self.header, timeout=self.timeout, inputs=inputs))
        return jobs

    def store(self, outcome: dict) -> None:
        """Write what a finished job brought back into the temporary folder."""
        for rel, content in outcome.pop("files", {}).items():
            target = (self.work / rel).resolve()
            if not target.is_relative_to(self.work.resolve()):
                continue  # a notebook's file named outside its folder is not published
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # a copied page is replaced, never written through
            target.write_bytes(content)
        self.outcomes[outcome["stem"]] = outcome

    def publish(self) -> None:
        self.manifest = finish(self)
        self.manifest["seconds"] = round(time.monotonic() - self.start, 1)
        atomic_write_json(self.work / MANIFEST, self.manifest)
        add_answer_to_pages(self.work)  # every page opens with the analysis' short answer
        _test_hook("before-swap")
        swap_in(self.work, self.out_dir)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def split_records(folder: Path) -> set[str]:
    """results.json of a published folder -> results/<notebook>.json (what the notebooks write),
    so records of the notebooks `only` reruns are replaced and the others kept. Returns the
    notebooks split out."""
    path = folder / "results.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = []
    by_notebook: dict[str, list] = {}
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and record.get("notebook"):
            by_notebook.setdefault(str(record["notebook"]), []).append(record)
    (folder / RESULTS_FOLDER).mkdir(parents=True, exist_ok=True)
    written = set()
    for stem, rows in by_notebook.items():
        if re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z_.-]*", stem):
            atomic_write_json(folder / RESULTS_FOLDER / f"{stem}.json", rows, sort_keys=False)
            written.add(stem)
    path.unlink(missing_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    return written


def previous_seconds(out_dir: Path) -> dict[str, float]:
    """Per-notebook seconds of the last published run (to start the longest notebooks first)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
        return {n["stem"]: float(n.get("seconds") or 0) for n in manifest["notebooks"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# --------------------------------------------------------------------------------------------
# The reports folder: checks, repair after a crash, the swap
# --------------------------------------------------------------------------------------------
def check_reports_dir(path) -> Path:
    """The reports folder as an absolute path, refused in one line when it is a file or cannot
    be created (nothing is created here)."""
    path = Path(path).expanduser()
    try:
        path = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise CareTrendsError(f"--reports-dir {path}: {exc}; give a folder") from None
    if path.exists() and not path.is_dir():
        raise CareTrendsError(f"--reports-dir {path} is a file; give a folder (it is created "
                              "if missing)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CareTrendsError(f"--reports-dir {path} cannot be created: {existing} is a file; "
                              "give another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CareTrendsError(f"--reports-dir {path} cannot be written (no permission on "
                              f"{existing}); give a folder you can write to")
    return path


def _alive(pid: int) -> bool:
    # psutil, not os.kill(pid, 0): on Windows that call would end the process.
    return pid == os.getpid() or psutil.pid_exists(pid)


def repair_reports(root) -> list[str]:
    """Undo what a killed run left in a reports folder (only of processes no longer running):
    a half-finished swap (`.X.old-PID` with no `X`) is restored, other `.X.old-PID` and every
    `.X.tmp-PID` folder is removed, and stale atomic-write temporaries go. Returns one line per
    repair (for the console)."""
    root = Path(root)
    if not root.is_dir():
        return []
    done = []
    leftovers = []
    for entry in root.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _alive(int(match["pid"])):
            leftovers.append((match, entry))
        elif _ATOMIC_TEMP.match(entry.name) and entry.is_file():
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > _ATOMIC_TEMP_AGE:
                    entry.unlink()
    # The newest set-aside copy of a folder is the one a swap was replacing.
    leftovers.sort(key=lambda item: (item[0]["kind"] != "old", -_mtime(item[1])))
    for match, entry in leftovers:
        target = root / match["name"]
        if match["kind"] == "old" and not target.exists() and not target.is_symlink():
            try:
                entry.rename(target)
                done.append(f"restored {target} from an interrupted run")
                continue
            except OSError:
                pass
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            done.append(f"removed {entry.name}, left by an interrupted run")
    return done


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM wait until the block is done (then are delivered): the two renames of
    a swap are never separated by a Ctrl-C or a `kill`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def swap_in(work: Path, out_dir: Path) -> None:
    """Replace out_dir by work with two renames, so a reader never sees a half-written folder
    (see `repair_reports` for a kill between them)."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    with signals_held():
        if out_dir.exists():
            out_dir.rename(old)
            _test_hook("swap-old-moved")
        work.rename(out_dir)
    _test_hook("swap-new-in")
    shutil.rmtree(old, ignore_errors=True)


def _test_hook(point: str) -> None:
    """CARE_TRENDS_TEST_HOOK=POINT[:kill|:sleep=SECONDS] (see the module docstring)."""
    setting = os.environ.get(TEST_HOOK_ENV, "")
    name, _, action = setting.partition(":")
    if name != point:
        return
    if action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
        return
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    time.sleep(60)  # never reached: the kill is immediate


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
def run_analyses(specs: list[Analysis], reports_root, *, notebook_dir=None, only=None,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT,
                 progress: bool = True, pool=None, sources: dict[str, str] | None = None,
                 on_done=None, report_refusals: bool = False) -> dict[str, dict | str]:
    """Execute several validated analyses into reports_root/<analysis>/ with one shared pool.
    Returns {analysis: manifest} for successes and {analysis: one-line error} for failures.

    `sources` names each analysis' YAML file (recorded in its manifest; a folder published from
    another file is refused). `on_done(name, result)` is called for every analysis once the run
    ends, also when it is stopped (a stopped analysis gets a one-line result). A refusal
    (e.g. `only` after the YAML changed) stops everything before anything is written, unless
    `report_refusals`, when it becomes that analysis' result and the others run."""
    reports_root = Path(reports_root).resolve()
    names = [s.analysis for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise CareTrendsError(f"analysis {name} is given twice; name each analysis once")
        check_folder_name(name)
    for line in repair_reports(reports_root):
        print(f"care-trends: {line}", file=sys.stderr)
    sources = sources or {}
    # Every check first: a refusal writes nothing.
    runs, refused = [], {}
    for spec in specs:
        try:
            runs.append(AnalysisRun(spec, reports_root / spec.analysis, notebook_dir, timeout,
                                    only, sources.get(spec.analysis)))
        except CareTrendsError as exc:
            if not report_refusals:
                raise
            refused[spec.analysis] = str(exc)
            if on_done is not None:
                on_done(spec.analysis, str(exc))
    own_pool = pool is None
    pool = pool if pool is not None else LocalPool(workers)
    try:
        reports_root.mkdir(parents=True, exist_ok=True)
        for run in runs:
            run.prepare()
        results = schedule(runs, pool, timeout=timeout, progress=progress, on_done=on_done)
    finally:
        for run in runs:
            run.cleanup()
        if own_pool:
            pool.close()
    done = dict(zip([run.analysis for run in runs], results))
    return {name: done.get(name, refused.get(name)) for name in names}


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
             unit: str = "notebook", on_done=None) -> list[dict | str]:
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
            except (OSError, ValueError, CareTrendsError) as exc:
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
            elif run.error is not None:
                results.append(failure_message(run.analysis, run.error,
                                               keep_failed(run.work, run.out_dir)))
            else:  # stopped (Ctrl-C, SIGTERM) before it finished
                results.append(f"analysis {run.analysis}: stopped before it finished; its "
                               "previous reports are unchanged")
        if on_done is not None:
            for run, result in zip(runs, results):
                on_done(run.analysis, result)
    return results


def _drive(pool, ready: list, completed, timeout: float, bar,
           retries: int = scheduling.WORKER_DEATH_RETRIES) -> None:
    """At most `pool.workers` notebooks at a time, each with its own deadline
    (`helpers.run.scheduling.drive`).

    A notebook over its timeout fails its analysis; the workers are restarted and the other
    notebooks that were running then are started again. When a worker dies (or a cluster job
    raises instead of returning) the notebooks running then are run again, each alone, so a
    death can be pinned on one notebook: a notebook whose worker dies while it runs alone gets
    `retries` more runs, then fails (its analysis only); the others carry on."""
    suspects: set[int] = set()  # run alone from now on
    deaths: dict[int, int] = {}  # deaths while running alone: the notebook's own

    def lost(item, why: str, alone: bool) -> None:
        run, job = item
        if alone:
            deaths[id(job)] = deaths.get(id(job), 0) + 1
        suspects.add(id(job))
        if deaths.get(id(job), 0) <= retries and run.error is None:
            run.running -= 1
            ready.insert(0, item)
            return
        n = deaths.get(id(job), 0)
        times = f" {n} times" if n > 1 else ""
        completed(run, {"stem": job.stem, "ok": False, "cell": None, "ename": "WorkerDied",
                        "evalue": f"{why}{times}"})

    def late(item) -> None:
        run, job = item
        completed(run, {"stem": job.stem, "ok": False, "cell": None, "ename": "Timeout",
                        "evalue": f"did not finish within {timeout:.0f} s; raise --timeout or "
                                  "make the notebook faster"})

    def restarted(items: list) -> None:  # stopped with the late one: run them again
        for run, job in items:
            run.running -= 1
            if run.error is None:
                ready.insert(0, (run, job))

    def submit(item):
        item[0].running += 1
        try:
            return pool.submit(item[1])
        except BaseException:
            item[0].running -= 1
            raise

    scheduling.drive(
        pool, ready, submit=submit, done=lambda item, outcome: completed(item[0], outcome),
        lost=lost, late=late, restarted=restarted,
        deadline=lambda item: timeout + 30,  # the grace covers kernel start and HTML
        ahead=pool.workers, poll=5, runs_alone=lambda item: id(item[1]) in suspects,
        tick=lambda items: bar.set_postfix_str(", ".join(sorted(
            f"{run.analysis}/{job.stem}" for run, job in items))))


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
    if not work.is_dir():
        return None
    target = out_dir.parent / ".failed" / out_dir.name
    try:
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work), str(target))
    except OSError:
        return None
    return target


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


def finish(run: AnalysisRun) -> dict:
    """results.json and the manifest for the analysis (pages run now, and those `only` kept).
    The per-notebook record files are merged and dropped; the notebooks' extra numbers
    (`results/<notebook>.<name>.json`, e.g. the sensitivity headline) stay published beside
    them, so a later `--only 09` still finds them."""
    work, spec = run.work, run.spec
    order = run.pages + sorted(run.split_stems - set(run.pages))
    records = merge_records(work / RESULTS_FOLDER, order)
    for record in records:
        record["analysis"] = record["analysis"] or spec.analysis
    atomic_write_json(work / "results.json", records, sort_keys=False)
    for stem in order:
        (work / RESULTS_FOLDER / f"{stem}.json").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (work / RESULTS_FOLDER).rmdir()  # when no notebook left extra numbers
    kept = {entry["stem"]: entry for entry in run.kept}
    entries = []
    for stem in run.pages:
        if stem in run.outcomes:
            outcome = run.outcomes[stem]
            entries.append({"stem": stem, "title": outcome.get("title", stem),
                            "html": f"{stem}.html", "headline": outcome.get("headline", ""),
                            "seconds": outcome.get("seconds")})
        else:
            entries.append(kept[stem])
    return analysis_manifest(spec, run.header, entries, len(records), run.source)


def analysis_manifest(spec: Analysis, header: dict, entries: list[dict], records: int,
                      source: str | None = None) -> dict:
    """An analysis folder's manifest.json: what was run, from which spec and data, its pages."""
    manifest = {
        "analysis": spec.analysis,
        "title": header["analysis_title"],
        "la": spec.la_name,
        "data_edition": header["data_edition"],
        "version": __version__,
        "records": records,
        "notebooks": entries,
        "spec_sha256": spec_fingerprint(spec),
    }
    if source:
        manifest["source"] = source
    return manifest
