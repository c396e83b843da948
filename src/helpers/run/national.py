"""An analysis for every LA: `care-trends run --all-las [--scheduler ADDRESS] [--notebooks]`.

Each LA's specification comes from one template (default `notebooks/params/templates/all-las.yaml`;
any string in it may use `{la}`, `{la_code}` and `{slug}`), validated like any analysis. Two
engines publish them, on local worker processes by default or on a Dask distributed cluster with
`scheduler="tcp://host:8786"` (workers need the same checkout and environment; each job carries
its inputs and brings its outputs back, so no shared filesystem is needed):

- "batch" (the default when the template's notebooks allow it): every LA's estimates from one
  vectorised fit and each LA's pages built without a kernel, resumable after a stop
  (`helpers.run.national_batch`);
- "notebooks" (`--notebooks`, and whenever the batch cannot publish the template): every LA's
  notebooks executed with papermill by the same scheduler as a single analysis
  (`helpers.run.runner.run_analyses`), with the executed notebooks beside the pages.

One LA failing (e.g. suppressed counts) is reported in the summary and does not stop the others.
Outputs: `<out_dir>/all-las/<slug>/` per LA, `<out_dir>/all-las/index.html`,
`<out_dir>/all-las/summary.json` and every LA's estimates in `<out_dir>/all-las/results.json`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from helpers import data, spec as specs
from helpers.core import paths, vocab
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_json
from helpers.models.national import local_authorities
from helpers.run import national_batch
from helpers.run.executors import DEFAULT_WORKERS, DaskPool, LocalPool
from helpers.run.publish import build_index
from helpers.run.runner import DEFAULT_TIMEOUT, run_analyses

SUBDIR = "all-las"


def eligible_las(start_year: int = 2014, end_year: int | None = None, panel=None) -> list[tuple]:
    """(la_code, la_name) of every LA with a continuous series (no boundary change) and a
    published count for every looked-after measure in every year of the window, in code order."""
    panel = data.load_panel() if panel is None else panel
    rows = local_authorities(panel, start_year=start_year, end_year=end_year)
    rows = rows[rows["measure"].isin(vocab.LOOKED_AFTER_MEASURES)]
    years = rows["year"].nunique()
    complete = rows.dropna(subset=["count"]).groupby("la_code")["year"].count()
    codes = complete[complete == years * rows["measure"].nunique()].index
    names = rows.sort_values("year").drop_duplicates("la_code", keep="last").set_index("la_code")
    return [(str(c), str(names.loc[c, "la_name"])) for c in sorted(codes)]


def specs_for(template=None, las=None) -> tuple[list[specs.Analysis], list[dict]]:
    """Validated specs, one per LA, from the template; and a failure row for each LA whose
    spec does not validate (it is reported, not run)."""
    template = template or specs.ALL_LAS_TEMPLATE
    raw = specs.read_yaml(specs.analysis_path(template))
    if las is None:
        chosen = [code for code, _ in eligible_las(raw.get("start_year") or 2014,
                                                   raw.get("end_year"))]
    else:
        chosen = [data.resolve_la(la).la_code for la in las]
    if not chosen:
        raise CareTrendsError("no local authorities to run; check the LAs or the template's years")
    ok, failed = [], []
    for code in chosen:
        try:
            ok.append(specs.load_analysis(template, la=code))
        except CareTrendsError as exc:
            failed.append({"analysis": specs.slugify(data.resolve_la(code).la_name), "la": code,
                           "ok": False, "error": str(exc)})
    return ok, failed


ENGINES = ("batch", "notebooks")
#: Every LA's records in one file (all-las/results.json), in LA order.
RESULTS = "results.json"


def national_records(target_root: Path, summary: list[dict]) -> list[dict]:
    """The records of every LA published (its results.json), in the summary's order."""
    records = []
    for row in summary:
        if not row["ok"]:
            continue
        try:
            records.extend(json.loads((target_root / row["analysis"] / RESULTS).read_text(
                encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


def run_all_las(template=None, out_dir=None, *, las=None, scheduler=None,
                workers: int = DEFAULT_WORKERS, notebook_dir=None, only=None,
                timeout: float = DEFAULT_TIMEOUT, progress: bool = True,
                engine: str | None = None) -> list[dict]:
    """Run the template analysis for every LA (or `las`: names or codes) and write the summary.

    `engine`: "batch", "notebooks" or None (the batch when it can publish the template, see
    `helpers.run.national_batch.supported`). Returns one status dict per LA (analysis, la, ok,
    records and pages, or error; seconds for notebook runs) and writes them to
    <out_dir>/all-las/summary.json; also rebuilds <out_dir>/all-las/index.html."""
    start = time.monotonic()
    if engine not in (None, *ENGINES):
        raise CareTrendsError(f"engine {engine!r}: use one of {', '.join(ENGINES)}")
    # The workers start (and, for the batch, load what its pages need) while the LAs' specs
    # are validated here.
    batch_likely = engine != "notebooks" and notebook_dir is None and not only
    pool = DaskPool(scheduler) if scheduler else LocalPool(workers, notebooks=not batch_likely)
    warming = []
    try:
        if batch_likely:
            warming = national_batch.warm(pool)
        ok_specs, summary = specs_for(template, las)
        why = national_batch.supported(ok_specs, notebook_dir, only)
        if engine == "batch" and why:
            raise CareTrendsError(f"the national batch cannot publish this template "
                                  f"({why[0]}); run it with --notebooks")
        engine = engine or ("notebooks" if why else "batch")
        if engine == "notebooks" and isinstance(pool, LocalPool) and not pool.notebooks:
            warming.clear()  # the template needs kernels after all: workers that start them
            pool.close(kill=True)
            pool = LocalPool(workers)
    except BaseException:
        pool.close(kill=True)
        raise
    target_root = ((Path(out_dir) if out_dir else paths.reports_dir()) / SUBDIR).resolve()
    results: dict[str, dict | str] = {}
    try:
        with pool:
            if engine == "batch":
                national_batch.run_batch(ok_specs, target_root, pool, notebook_dir=notebook_dir,
                                         timeout=timeout, progress=progress,
                                         on_done=results.__setitem__)
            else:
                run_analyses(ok_specs, target_root, notebook_dir=notebook_dir, only=only,
                             timeout=timeout, progress=progress, pool=pool,
                             report_refusals=True, on_done=results.__setitem__)
    finally:
        warming.clear()
        # Whatever happened (a dead worker, Ctrl-C), every LA is in the summary: the ones
        # that did not finish are reported as such.
        by_name = {s.analysis: s for s in ok_specs}
        for name, spec in by_name.items():
            result = results.get(name, f"analysis {name}: not run; the batch stopped first")
            row = {"analysis": name, "la": spec.la_name, "ok": not isinstance(result, str)}
            if isinstance(result, str):
                row["error"] = result
            else:
                row.update(records=result["records"], notebooks=len(result["notebooks"]))
                if result.get("seconds") is not None:  # notebook runs; the batch writes no timings
                    row["seconds"] = result["seconds"]
            summary.append(row)
        summary.sort(key=lambda r: str(r["analysis"]))
        atomic_write_json(target_root / "summary.json", summary)
        atomic_write_json(target_root / RESULTS, national_records(target_root, summary),
                          sort_keys=False)
        build_index(target_root)
    failed = [r for r in summary if not r["ok"]]
    print(f"all LAs: {len(summary) - len(failed)} of {len(summary)} analyses written to "
          f"{target_root} in {time.monotonic() - start:.0f} s"
          + (f"; {len(failed)} failed (see summary.json)" if failed else ""), file=sys.stderr)
    for r in failed[:10]:
        print(f"  {r['la']}: {r.get('error')}", file=sys.stderr)
    return summary
