"""An analysis for every LA: `care-trends run --all-las [--scheduler ADDRESS]`.

Each LA's parameters come from one template (default `notebooks/params/templates/all-las.yaml`):
every string in it may use `{la}` (LA name), `{la_code}` and `{slug}` (folder name). Each LA is then
one call of `helpers.report.run_analysis`, the same runner as a single analysis, so validation,
atomic output folders and failure reports behave the same.

Where the calls run:
- default: local worker processes (`concurrent.futures`, `workers` at a time);
- `scheduler="tcp://host:8786"`: tasks on a Dask distributed cluster (dask.distributed does the
  scheduling, retries and data transfer). Workers need the same checkout and environment (for
  `helpers` and data/processed/); the notebooks are sent with each task and each LA's finished
  report comes back to this machine as an archive, so no shared filesystem is needed (pass
  `shared_filesystem=True` to let workers write into `out_dir` directly).

One LA failing (e.g. suppressed counts) is reported in the summary and does not stop the others.
Outputs: `<out_dir>/all-las/<slug>/` per LA, `<out_dir>/all-las/index.html` (report.build_index)
and `<out_dir>/all-las/summary.json`.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import io
import json
import multiprocessing
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from helpers import report
from helpers.core import paths
from helpers.core.errors import CareTrendsError

SUBDIR = "all-las"
DEFAULT_TEMPLATE = "all-las.yaml"
DEFAULT_TIMEOUT = 1200  # seconds per notebook, as helpers.report


def template_path() -> Path:
    return paths.notebooks_dir() / "params" / "templates" / DEFAULT_TEMPLATE


def slugify(name: str) -> str:
    """'Stoke-on-Trent' -> 'stoke-on-trent'; 'Bristol, City of' -> 'bristol-city-of'."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def load_template(template=None) -> dict:
    """The template as a dict: a dict as given, a YAML path, or the default template file."""
    if isinstance(template, dict):
        return copy.deepcopy(template)
    path = Path(template) if template else template_path()
    if not path.exists():
        raise CareTrendsError(f"template parameter file {path} not found; give a YAML path")
    return report.load_analysis(path)  # its `analysis` is replaced per LA


def _fill(value, values: dict):
    if isinstance(value, str):
        for key, text in values.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def params_for(template: dict, la_code: str, la_name: str) -> dict:
    """One LA's parameters from the template ({la}, {la_code}, {slug} filled in)."""
    slug = slugify(la_name)
    params = _fill(copy.deepcopy(template), {"la": la_name, "la_code": la_code, "slug": slug})
    params["la"] = la_name
    params["analysis"] = slug
    if "{la}" not in str(template.get("title", "")):  # e.g. one LA's own analysis file as template
        params["title"] = f"{la_name}: did the trend of children entering care change?"
    return params


def eligible_las(start_year: int = 2014, end_year: int | None = None, panel=None) -> list[tuple]:
    """(la_code, la_name) of every LA with a continuous series (no boundary change) and a
    published count for every measure in every year of the window, in code order."""
    from helpers import data
    from helpers.national import local_authorities

    panel = data.load_panel() if panel is None else panel
    rows = local_authorities(panel, start_year=start_year, end_year=end_year)
    years = rows["year"].nunique()
    complete = rows.dropna(subset=["count"]).groupby("la_code")["year"].count()
    codes = complete[complete == years * rows["measure"].nunique()].index
    names = rows.sort_values("year").drop_duplicates("la_code", keep="last").set_index("la_code")
    return [(str(c), str(names.loc[c, "la_name"])) for c in sorted(codes)]


def _resolve(las) -> list[tuple]:
    from helpers import data

    out = []
    for la in las:
        record = data.resolve_la(la)
        out.append((str(record.la_code), str(record.la_name)))
    return out


# ---------------------------------------------------------------------------------------------
# One LA (runs in a worker process or on a Dask worker; top-level so it pickles)
# ---------------------------------------------------------------------------------------------

def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def _unpack(archive: bytes, out_dir: Path) -> None:
    """Extract next to out_dir, then swap it in (a reader never sees a half-written folder)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(work, filter="data")
        report.swap_in(work / out_dir.name, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_one(params: dict, out_dir: str, notebook_dir: str | None = None,
            notebooks: dict[str, bytes] | None = None, timeout: float = DEFAULT_TIMEOUT,
            ship: bool = False) -> dict:
    """Run one LA's analysis; never raises, returns a picklable status dict.

    `notebooks` {file name: bytes} are written to a temporary folder and used instead of
    `notebook_dir` (so a remote worker runs the client's notebooks). With `ship`, the report is
    built in a temporary folder and returned as a .tar.gz in `archive`."""
    start = time.monotonic()
    status = {"analysis": params.get("analysis"), "la": params.get("la"), "ok": False,
              "host": socket.gethostname(), "pid": os.getpid()}
    with tempfile.TemporaryDirectory(prefix="care-trends-") as tmp:
        try:
            if notebooks:
                notebook_dir = Path(tmp) / "notebooks"
                notebook_dir.mkdir()
                for name, content in notebooks.items():
                    (notebook_dir / name).write_bytes(content)
            target = Path(tmp) / "out" / params["analysis"] if ship else Path(out_dir)
            manifest = report.run_analysis(params, target, notebook_dir=notebook_dir, workers=1,
                                           timeout=timeout, progress=False)
            status.update(ok=True, records=manifest.get("records"),
                          notebooks=len(manifest.get("notebooks", [])))
            if ship:
                status["archive"] = _pack(target)
        except CareTrendsError as exc:
            status["error"] = str(exc)
        except Exception as exc:  # a worker must report, not die: the other LAs carry on
            lines = str(exc).strip().splitlines()
            status["error"] = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    status["seconds"] = round(time.monotonic() - start, 1)
    return status


# ---------------------------------------------------------------------------------------------
# Every LA
# ---------------------------------------------------------------------------------------------

def _notebook_bytes(notebook_dir, only) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in report.discover_notebooks(notebook_dir, only)}


def run_all_las(template=None, out_dir=None, *, las=None, scheduler: str | None = None,
                workers: int = 2, notebook_dir=None, timeout: float = DEFAULT_TIMEOUT,
                progress: bool = True, shared_filesystem: bool | None = None,
                start_year: int | None = None) -> list[dict]:
    """Run the template analysis for every LA (or `las`: names or codes).

    template   dict, YAML path, or None for notebooks/params/templates/all-las.yaml.
    out_dir    reports root (default reports/); LA reports go to <out_dir>/all-las/<slug>/.
    scheduler  None: `workers` local processes. An address ("tcp://10.0.0.5:8786"): a Dask
               distributed cluster, one task per LA.
    Returns one status dict per LA (analysis, la, ok, seconds, records or error, host) and writes
    them to <out_dir>/all-las/summary.json; also rebuilds <out_dir>/all-las/index.html.
    """
    template = load_template(template)
    root = Path(out_dir) if out_dir else paths.reports_dir()
    target_root = (root / SUBDIR).resolve()
    if las is None:
        chosen = eligible_las(start_year or template.get("start_year") or 2014,
                              template.get("end_year"))
    else:
        chosen = _resolve(las)
    if not chosen:
        raise CareTrendsError("no local authorities to run; check `las` or the template's years")
    jobs = [params_for(template, code, name) for code, name in chosen]
    if workers < 1:
        raise CareTrendsError("workers must be at least 1")
    only = template.get("notebooks")
    notebook_dir = str(Path(notebook_dir).resolve()) if notebook_dir else None
    report.discover_notebooks(notebook_dir, only)  # fail early on a bad notebook list

    bar = _progress(len(jobs), progress)
    results: list[dict] = []
    try:
        if scheduler:
            ship = not shared_filesystem
            results = _run_dask(jobs, target_root, scheduler, notebook_dir, only, timeout, ship,
                                bar)
        else:
            results = _run_local(jobs, target_root, workers, notebook_dir, timeout, bar)
    finally:
        bar.close()
    results.sort(key=lambda r: str(r["analysis"]))
    summary = [{k: v for k, v in r.items() if k != "archive"} for r in results]
    target_root.mkdir(parents=True, exist_ok=True)
    tmp = target_root / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    tmp.replace(target_root / "summary.json")
    report.build_index(target_root)
    failed = [r for r in summary if not r["ok"]]
    print(f"all LAs: {len(summary) - len(failed)} of {len(summary)} analyses written to "
          f"{target_root}" + (f"; {len(failed)} failed (see summary.json)" if failed else ""),
          file=sys.stderr)
    for r in failed[:10]:
        print(f"  {r['la']}: {r.get('error')}", file=sys.stderr)
    return summary


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="all LAs", unit="LA", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


def _run_local(jobs, target_root: Path, workers: int, notebook_dir, timeout, bar) -> list[dict]:
    results = []
    if workers == 1 or len(jobs) == 1:
        for params in jobs:
            results.append(run_one(params, str(target_root / params["analysis"]), notebook_dir,
                                   None, timeout))
            bar.update(1)
        return results
    ctx = multiprocessing.get_context("spawn")  # safe with threads and on Windows
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_one, params, str(target_root / params["analysis"]),
                               notebook_dir, None, timeout) for params in jobs]
        for future in cf.as_completed(futures):
            results.append(future.result())
            bar.update(1)
    return results


def _run_dask(jobs, target_root: Path, scheduler: str, notebook_dir, only, timeout, ship,
              bar) -> list[dict]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is a project dependency
        raise CareTrendsError("--scheduler needs dask.distributed; install the project's "
                              "dependencies") from exc
    notebooks = _notebook_bytes(notebook_dir, only) if ship else None
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise CareTrendsError(f"cannot reach the Dask scheduler at {scheduler}; check the "
                              "address (e.g. tcp://10.0.0.5:8786) and that the scheduler is "
                              "running") from exc
    results = []
    by_key = {f"care-trends-{params['analysis']}": params for params in jobs}
    with client:
        # One copy of the notebooks per worker, not one per task.
        nb_future = client.scatter([notebooks], broadcast=True)[0] if notebooks else None
        futures = [client.submit(run_one, params, str(target_root / params["analysis"]),
                                 None if ship else notebook_dir, nb_future, timeout, ship,
                                 key=f"care-trends-{params['analysis']}", pure=False)
                   for params in jobs]
        for future in as_completed(futures):
            try:
                status = future.result()
            except Exception as exc:  # the worker itself died (memory, lost connection)
                params = by_key[future.key]
                status = {"analysis": params["analysis"], "la": params["la"], "ok": False,
                          "error": f"{type(exc).__name__}: {exc}"}
            archive = status.pop("archive", None)
            if archive:
                _unpack(archive, target_root / status["analysis"])
            results.append(status)
            bar.update(1)
    return results
