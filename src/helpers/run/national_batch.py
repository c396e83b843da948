"""`care-trends run --all-las` without a kernel per LA: the national batch.

1. Estimates: every LA's single-series ITS from one vectorised fit per model
   (`helpers.models.batch_its.its_for_many`), in this process, on the panel loaded once.
2. Pages: the LAs go to the workers in chunks (`PagesJob`: specs, fitted results and the
   template's notebooks in, each LA's page files out as bytes), on local worker processes or a
   Dask cluster (`helpers.run.executors`); each worker builds the pages of notebooks 01-03 with
   `helpers.run.batch_pages` (the pages papermill would make, byte for byte) and renders them
   through the publishing path and its sanitiser (`helpers.run.publish.render_page`).
3. Publishing: each LA's folder (`all-las/<slug>/`: pages, chart CSVs, results.json,
   manifest.json) is written here and swapped in atomically as the runner does, with the
   runner's crash repair at start-up. No timings or paths are written, so two runs give
   byte-identical folders.
4. Resuming: `all-las/.batch-progress.json` lists the LAs published so far with their spec
   fingerprints, under a key made of the data files, the package's code and the template's
   notebooks. A run stopped by Ctrl-C, SIGTERM or a kill leaves it, and the next run publishes
   only the LAs not listed (a changed spec, data or code starts afresh). A run that ends,
   even with some LAs failed, removes it.

A progress bar (stderr) counts LAs with an ETA. One LA failing does not stop the others; a worker
that dies costs its chunk one retry, LA by LA. Test hook (helpers.run.runner):
CARE_TRENDS_TEST_HOOK=all-las-published-K stops the run once K LAs have been published.

Notebooks that are not in `helpers.run.batch_pages.BUILDERS`, a `--notebooks-dir`, `--only` or
`--notebooks` use the papermill path (`helpers.run.runner.run_analyses`), which also leaves each
LA's executed notebooks beside its pages.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
from tqdm.auto import tqdm

from helpers import __version__, data
from helpers.core import paths
from helpers.core.collection import discover_notebooks
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_json
from helpers.core.records import RECORD_COLUMNS
from helpers.models.batch_its import its_for_many
from helpers.present import charts
from helpers.run import batch_pages, runner, scheduling
from helpers.run.publish import MANIFEST, add_answer_to_pages, page_header, render_page
from helpers.spec import Analysis

try:
    import resource  # CPU seconds of finished child processes (the benchmark; not on Windows)
except ImportError:  # pragma: no cover - Windows
    resource = None

#: The journal of a national batch in progress (in the all-las folder).
JOURNAL = ".batch-progress.json"
#: LAs per job at most (a stopped run loses at most a chunk of work).
MAX_CHUNK = 5
#: The notebook whose builder needs the fitted ITS.
ITS_STEM = "03_its"


def supported(specs: list[Analysis], notebook_dir=None, only=None) -> list[str]:
    """Why these specs need the papermill path (empty: the batch can publish them)."""
    if only:
        return ["--only updates chosen pages in place"]
    if notebook_dir is not None and Path(notebook_dir).resolve() != paths.notebooks_dir().resolve():
        return ["--notebooks-dir names other notebooks"]
    why = []
    stems = {nb.stem for spec in specs for nb in discover_notebooks(None, spec.notebooks or None)}
    missing = sorted(stems - set(batch_pages.BUILDERS))
    if missing:
        why.append(f"notebooks {', '.join(missing)} have no batch page builder")
    if any(spec.uses_own_903 for spec in specs):
        why.append("a council's own SSDA903 extract is named")
    return why


# --------------------------------------------------------------------------------------------
# Jobs (run on a worker)
# --------------------------------------------------------------------------------------------
def warm(pool) -> list:
    """Have each worker of a parallel pool load what pages need (modules, panel, fonts) now,
    while this process validates and fits. Keep the futures returned until the run ends (a
    cluster forgets a task nobody holds)."""
    return [pool.submit(None, fn=warm_worker) for _ in range(pool.workers)] if pool.parallel \
        else []


def warm_worker(_=None) -> None:
    """Load the panel and draw once, so a worker's first LA costs what the others do."""
    data.load_panel()
    charts.setup_style()
    figure = plt.figure()
    figure.canvas.draw()
    plt.close(figure)


@dataclass(frozen=True)
class PagesJob:
    """Some LAs' pages: the template's notebooks (stem, .ipynb bytes without outputs) and, per
    LA, its spec, page header and fitted ITS results."""
    notebooks: tuple[tuple[str, bytes], ...]
    items: tuple[tuple[Analysis, dict, dict], ...]

    @property
    def names(self) -> list[str]:
        return [spec.analysis for spec, _, _ in self.items]

    def split(self) -> list[PagesJob]:
        return [PagesJob(self.notebooks, (item,)) for item in self.items]


def build_pages(job: PagesJob) -> list[dict]:
    """Every LA's pages in the job; never raises for one LA. Per LA: analysis, ok, and files
    {relative path: bytes}, pages [{stem, title, headline}] and records; or the failing
    notebook (stem), ename and evalue."""
    out = []
    for spec, header, fits in job.items:
        outcome = {"analysis": spec.analysis, "ok": True, "files": {}, "pages": [],
                   "records": []}
        stem = None
        try:
            for stem, source in job.notebooks:
                node, page = batch_pages.build(stem, source, spec, fits)
                html, about = render_page(node, header, stem)
                outcome["files"][f"{stem}.html"] = html.encode("utf-8")
                outcome["files"].update(page.files)
                outcome["pages"].append({"stem": stem, **about})
                outcome["records"].extend(page.records)
        except Exception as exc:  # noqa: BLE001 - one LA's failure is reported, not raised
            text = str(exc).strip().splitlines()
            outcome = {"analysis": spec.analysis, "ok": False, "stem": stem,
                       "ename": type(exc).__name__, "evalue": text[0] if text else ""}
        out.append(outcome)
    return out


# --------------------------------------------------------------------------------------------
# Publishing one LA, and the journal
# --------------------------------------------------------------------------------------------
def publish_la(spec: Analysis, outcome: dict, target_root: Path, header: dict) -> dict:
    """Write one LA's folder (pages, files, results.json, manifest.json) beside its published
    one and swap it in; returns the manifest."""
    out_dir = target_root / spec.analysis
    work = target_root / f".{spec.analysis}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        for rel, content in outcome["files"].items():
            target = (work / rel).resolve()
            if not target.is_relative_to(work.resolve()):
                continue  # a file named outside the folder is not published
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        records = []
        for record in outcome["records"]:
            row = {key: record.get(key) for key in RECORD_COLUMNS}
            row["analysis"] = row["analysis"] or spec.analysis
            records.append(row)
        atomic_write_json(work / "results.json", records, sort_keys=False)
        entries = [{"stem": p["stem"], "title": p["title"], "html": f"{p['stem']}.html",
                    "headline": p["headline"], "seconds": None} for p in outcome["pages"]]
        manifest = runner.analysis_manifest(spec, header, entries, len(records))
        atomic_write_json(work / MANIFEST, manifest)
        add_answer_to_pages(work)  # glossary links (and an answer, had the template one)
        runner.swap_in(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def run_key(notebooks: list[Path]) -> str:
    """What a resumed run must share with the stopped one: the data files, this package's code,
    the template's notebooks and the version."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parents[1]
    files = ([("data", p) for folder in (paths.processed_dir(), paths.reference_dir())
              for p in sorted(folder.glob("*")) if p.is_file()]
             + [("code", p) for p in sorted(package.rglob("*"))
                if p.is_file() and p.suffix in (".py", ".j2", ".css", ".json")]
             + [("notebook", p) for p in notebooks])
    for kind, path in files:
        rel = path.name if kind != "code" else path.relative_to(package).as_posix()
        digest.update(f"{kind}:{rel}:".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_journal(target_root: Path, key: str) -> dict[str, str]:
    """{analysis: spec fingerprint} of the LAs a stopped run with this key published."""
    try:
        journal = json.loads((target_root / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(journal, dict) or journal.get("key") != key:
        return {}
    done = journal.get("done")
    return {str(k): str(v) for k, v in done.items()} if isinstance(done, dict) else {}


def write_journal(target_root: Path, key: str, done: dict[str, str]) -> None:
    atomic_write_json(target_root / JOURNAL, {"key": key, "done": done})


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def run_batch(specs: list[Analysis], target_root, pool, *, notebook_dir=None,
              timeout: float = runner.DEFAULT_TIMEOUT, progress: bool = True,
              on_done=None) -> dict[str, dict | str]:
    """Publish every spec's pages into target_root/<analysis>/ on `pool`. Returns {analysis:
    manifest} for the LAs published (now or by the stopped run this one resumes) and {analysis:
    one-line error} for the others; `on_done(name, result)` is called for each, also when the
    run is stopped."""
    target_root = Path(target_root).resolve()
    names = [s.analysis for s in specs]
    if len(set(names)) != len(names):
        raise CareTrendsError("an LA is given twice; name each LA once")
    for line in runner.repair_reports(target_root):
        print(f"care-trends: {line}", file=sys.stderr)
    target_root.mkdir(parents=True, exist_ok=True)
    stems = {nb.stem: nb for spec in specs
             for nb in discover_notebooks(notebook_dir, spec.notebooks or None)}
    notebooks = [stems[stem] for stem in sorted(stems)]
    key = run_key(notebooks)
    journal = read_journal(target_root, key)
    results: dict[str, dict | str] = {}
    done: dict[str, str] = {}
    todo = []
    for spec in specs:
        fingerprint = runner.spec_fingerprint(spec)
        manifest = runner.read_manifest(target_root / spec.analysis)
        if journal.get(spec.analysis) == fingerprint == manifest.get("spec_sha256"):
            results[spec.analysis], done[spec.analysis] = manifest, fingerprint
        else:
            todo.append(spec)
    if done:
        print(f"all LAs: resuming a stopped run; {len(done)} of {len(specs)} LAs were already "
              "published", file=sys.stderr)
    write_journal(target_root, key, done)

    fits, errors = ({}, {})
    if ITS_STEM in stems and todo:
        fits, errors = its_for_many(todo)
    for name, message in errors.items():
        results[name] = runner.failure_message(
            name, {"stem": ITS_STEM, "ename": "CareTrendsError", "evalue": message}, None)
    sources = tuple((nb.stem, _without_outputs(nb)) for nb in notebooks)
    items = [(spec, page_header(spec, notebooks), fits.get(spec.analysis, {}))
             for spec in todo if spec.analysis not in errors]
    jobs = [PagesJob(sources, chunk) for chunk in chunks(items, pool.workers)]
    by_name = {spec.analysis: spec for spec in specs}
    headers = {spec.analysis: header for spec, header, _ in items}
    bar = tqdm(total=len(specs), initial=len(specs) - len(items), desc="LAs", unit="LA",
               file=sys.stderr, disable=not progress, leave=True, dynamic_ncols=True)
    published = 0

    def finished(outcomes: list[dict]) -> None:
        nonlocal published
        for outcome in outcomes:
            name = outcome["analysis"]
            if outcome["ok"]:
                try:
                    results[name] = publish_la(by_name[name], outcome, target_root,
                                               headers[name])
                except (OSError, ValueError, CareTrendsError) as exc:
                    results[name] = runner.failure_message(
                        name, {"stem": "(publishing)", "ename": type(exc).__name__,
                               "evalue": str(exc)}, None)
                else:
                    done[name] = results[name]["spec_sha256"]
                    write_journal(target_root, key, done)
                    published += 1
                    runner._test_hook(f"all-las-published-{published}")
            else:
                results[name] = runner.failure_message(name, outcome, None)
            bar.update(1)

    clean = False
    try:
        _drive(pool, jobs, finished, timeout)
        clean = True
    finally:
        bar.close()
        for name in names:
            results.setdefault(name, f"analysis {name}: stopped before it finished; its "
                                     "previous reports are unchanged")
        if clean:
            (target_root / JOURNAL).unlink(missing_ok=True)
        if on_done is not None:
            for name in names:
                on_done(name, results[name])
    return {name: results[name] for name in names}


def chunks(items: list, workers: int) -> list[tuple]:
    """The LAs in jobs: about four per worker, of at most MAX_CHUNK LAs, the last few one LA
    each so the workers finish together."""
    size = max(1, min(MAX_CHUNK, math.ceil(len(items) / (4 * workers))))
    tail = min(len(items), 2 * workers) if size > 1 else 0
    head = len(items) - tail
    return ([tuple(items[i:min(i + size, head)]) for i in range(0, head, size)]
            + [(item,) for item in items[head:]])


def _without_outputs(notebook: Path) -> bytes:
    """The notebook's bytes without its committed outputs (they are filled per LA)."""
    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    return nbformat.writes(nb).encode("utf-8")


def _drive(pool, jobs: list[PagesJob], finished, timeout: float) -> None:
    """Keep the workers busy with `jobs` (a few queued ahead of them;
    `helpers.run.scheduling.drive`). A job whose worker dies is run again LA by LA
    (`scheduling.WORKER_DEATH_RETRIES` times) before its LAs are reported failed; a job over
    its deadline (`timeout` seconds per LA) fails its LAs and the workers restart."""
    pending = [(job, 0) for job in jobs]

    def lost(item, why: str, alone: bool) -> None:
        job, tries = item
        if tries < scheduling.WORKER_DEATH_RETRIES:
            pending[:0] = [(single, tries + 1) for single in job.split()]
            return
        times = f" {tries + 1} times" if tries else ""
        finished([{"analysis": name, "ok": False, "stem": "(pages)", "ename": "WorkerDied",
                   "evalue": f"{why}{times}"} for name in job.names])

    def late(item) -> None:
        finished([{"analysis": name, "ok": False, "stem": "(pages)", "ename": "Timeout",
                   "evalue": f"did not finish within {timeout:.0f} s per LA; raise --timeout"}
                  for name in item[0].names])

    scheduling.drive(
        pool, pending, submit=lambda item: pool.submit(item[0], fn=build_pages),
        done=lambda item, outcomes: finished(outcomes), lost=lost, late=late,
        deadline=lambda item: timeout * len(item[0].items) + 30,
        ahead=2 * pool.workers if pool.parallel else 1, poll=2)


# --------------------------------------------------------------------------------------------
# Benchmark: the national batch against one LA's notebooks
# --------------------------------------------------------------------------------------------
def bench_national(template=None, la: str = "861", workers: int = 2,
                   dask_workers: tuple[int, ...] = (), folder=None, local: bool = True,
                   one_la_runs: int = 3, dask_rounds: int = 1) -> dict:
    """Wall time of `care-trends run TEMPLATE --all-las` (every LA, the batch) against one LA's
    run of the same template through the papermill runner (`--la LA --notebooks`), each a fresh
    `care-trends` process in this session: the one-LA run `one_la_runs` times, before and after
    the batch (its median is the baseline, so a moment's load on a shared machine moves it
    less). Optionally the batch on local Dask clusters of each size in `dask_workers` (one
    thread per worker; `local=False` times only those; `dask_rounds` runs of each, mirrored
    order, mean time), whose published files must equal the local batch's (or, without it,
    each other's). Returns wall and CPU seconds (the CPU of the
    run's processes, workers and kernels: what a busy shared machine does not change), LAs,
    ratios, the published files' digests and the load average around the runs."""
    template = template or "templates/all-las"
    root = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="care-trends-bench-"))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    base = [sys.executable, "-m", "helpers", "run", str(template), "--all-las", "--no-progress",
            "--workers", str(workers)]

    def timed(args: list[str], out: Path) -> tuple[float, float]:
        """Wall seconds, and CPU seconds of the process and its workers and kernels."""
        shutil.rmtree(out, ignore_errors=True)
        cpu_before, start = _children_cpu_seconds(), time.monotonic()
        proc = subprocess.run(base + args + ["--reports-dir", str(out)], env=env,
                              capture_output=True, text=True)
        seconds, used = time.monotonic() - start, _children_cpu_seconds() - cpu_before
        if proc.returncode not in (0, 1):  # 1: some LAs failed (reported in summary.json)
            raise CareTrendsError(f"benchmark run failed: {proc.stderr.strip()[-300:]}")
        return round(seconds, 1), round(used, 1)

    def one_la() -> tuple[float, float]:
        return timed(["--la", la, "--notebooks"], root / "one-la")

    out = {"workers": workers, "cores": os.cpu_count(), "load_average_before": _load()}
    digests = {}
    if local:
        ones = [one_la() for _ in range(max(1, one_la_runs) // 2)]
        every, every_cpu = timed([], root / "batch")
        ones += [one_la() for _ in range(max(1, one_la_runs) - len(ones))]
        one, one_cpu = (float(statistics.median(v)) for v in zip(*ones))
        summary = json.loads((root / "batch" / "all-las" / "summary.json").read_text())
        digests["local"] = tree_digest(root / "batch" / "all-las")
        out.update({"one_la_notebooks_seconds": one, "one_la_notebooks_cpu_seconds": one_cpu,
                    "one_la_notebooks_runs": [s for s, _ in ones],
                    "all_las_batch_seconds": every, "all_las_batch_cpu_seconds": every_cpu,
                    "las": len(summary), "las_ok": sum(1 for r in summary if r["ok"]),
                    "ratio_all_to_one": round(every / one, 2)})
    if dask_workers:
        from distributed import LocalCluster  # a project dependency, needed only here

        # Each size `dask_rounds` times, in mirrored order (1 2 2 1): the machine's speed
        # drifts over minutes on a shared host, and a steady drift then cancels in the means.
        order = [n for r in range(dask_rounds)
                 for n in (dask_workers if r % 2 == 0 else dask_workers[::-1])]
        runs: dict[int, list[float]] = {n: [] for n in dask_workers}
        for i, n in enumerate(order):  # wall seconds (the cluster's workers are not our children)
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                runs[n].append(timed(["--scheduler", cluster.scheduler_address],
                                     root / f"dask-{n}-{i}")[0])
            digests[f"dask-{n}-{i}"] = tree_digest(root / f"dask-{n}-{i}" / "all-las")
            shutil.rmtree(root / f"dask-{n}-{i}", ignore_errors=True)
        dask = {n: round(statistics.fmean(times), 1) for n, times in runs.items()}
        out["dask_runs_seconds"] = runs
        out["dask_seconds"] = dask
        if 1 in dask:
            out["dask_speedup"] = {n: round(dask[1] / s, 2) for n, s in dask.items()}
    out["digests"] = digests
    out["same_files"] = len(set(digests.values())) <= 1
    out["load_average_after"] = _load()
    if folder is None:
        shutil.rmtree(root, ignore_errors=True)
    return out


def tree_digest(folder: Path) -> str:
    """SHA-256 over every file under `folder` (relative paths and bytes, in path order): equal
    for two runs that published the same files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _load() -> float:
    """The one-minute load average (NaN where unknown)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else math.nan


def _children_cpu_seconds() -> float:
    """CPU seconds of this process' finished children and theirs (NaN where unknown)."""
    if resource is None:
        return math.nan
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
