"""`care-trends run` and `care-trends refresh-notebooks`."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from helpers import spec as specs
from helpers.core import paths
from helpers.core.collection import discover_notebooks
from helpers.core.errors import CareTrendsError
from helpers.run import national
from helpers.run.executors import DEFAULT_WORKERS, LocalPool, check_scheduler_address
from helpers.run.publish import build_index
from helpers.run.refresh import refresh_notebook
from helpers.run.runner import DEFAULT_TIMEOUT, check_reports_dir, repair_reports, run_analyses


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
                     help=f"seconds allowed per notebook (default {DEFAULT_TIMEOUT:.0f})")
    run.add_argument("--reports-dir", type=Path, default=None,
                     help="output folder (default reports/)")
    run.add_argument("--notebooks-dir", type=Path, default=None,
                     help="folder holding NN_*.ipynb (default notebooks/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--all-las", action="store_true",
                     help="run the analysis (a template) for every LA")
    run.add_argument("--la", action="append", metavar="LA",
                     help="with --all-las: only these LAs (repeat the option)")
    run.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="Dask scheduler address for --all-las (default: local processes)")
    run.add_argument("--notebooks", action="store_true",
                     help="with --all-las: execute each LA's notebooks with papermill (slower; "
                          "the executed notebooks are published beside the pages) instead of "
                          "the batch, which builds the same pages without a kernel per LA")
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


def _check_flags(args) -> Path:
    """Every flag, then the reports folder: one line and nothing written for any mistake."""
    if args.workers < 1:
        raise CareTrendsError(f"--workers {args.workers}: give at least 1 (e.g. --workers 2)")
    if not (0 < args.timeout < math.inf):
        raise CareTrendsError(f"--timeout {args.timeout:g}: give a positive number of seconds "
                              f"(default {DEFAULT_TIMEOUT:.0f})")
    if args.scheduler and not args.all_las:
        raise CareTrendsError("--scheduler only applies with --all-las")
    if args.la and not args.all_las:
        raise CareTrendsError("--la only applies with --all-las")
    if args.notebooks and not args.all_las:
        raise CareTrendsError("--notebooks only applies with --all-las (a single analysis "
                              "always runs its notebooks)")
    if args.scheduler:
        check_scheduler_address(args.scheduler)
    if args.notebooks_dir is not None and not Path(args.notebooks_dir).is_dir():
        raise CareTrendsError(f"--notebooks-dir {args.notebooks_dir} is not a folder; give the "
                              "folder holding NN_*.ipynb")
    reports_root = check_reports_dir(args.reports_dir or paths.reports_dir())
    discover_notebooks(args.notebooks_dir, args.only)  # fail early on a bad --only
    return reports_root


def yaml_sources(names) -> dict[Path, str]:
    """{YAML file: the folder it publishes to} for the analyses named, refusing two files that
    would publish to one folder (the analyses named, and every YAML in notebooks/params/)."""
    given = {}
    for name in names:
        path = specs.analysis_path(name).resolve()
        given[path] = specs.analysis_folder(path)
    owners: dict[str, set[Path]] = {}
    for path, folder in given.items():
        owners.setdefault(folder, set()).add(path)
    for name in specs.list_analyses():
        path = specs.analysis_path(name).resolve()
        if path in given:
            continue
        try:
            owners.setdefault(specs.analysis_folder(path), set()).add(path)
        except CareTrendsError:
            continue  # a broken file not asked for does not stop this run
    for path, folder in given.items():
        others = sorted(p.name if p.parent == path.parent else str(p)
                        for p in owners[folder] - {path})
        if others:
            raise CareTrendsError(
                f"analysis {folder}: {path.name} and {others[0]} would both publish to "
                f"reports/{folder}/; give one of them its own `analysis:` name")
    return given


def _repair(reports_root: Path) -> None:
    """At start-up: undo what a killed run left behind (see helpers.run.runner.repair_reports)."""
    for folder in (reports_root, reports_root / national.SUBDIR):
        for line in repair_reports(folder):
            print(f"care-trends: {line}", file=sys.stderr)


def _cli_run(args) -> int:
    reports_root = _check_flags(args)
    if args.all_las:
        if len(args.analyses) > 1:
            raise CareTrendsError("--all-las takes at most one analysis as the template")
        template = args.analyses[0] if args.analyses else None
        if template is not None:
            specs.analysis_path(template)  # fail early on a missing template
        _repair(reports_root)
        summary = national.run_all_las(
            template, reports_root, las=args.la,
            scheduler=args.scheduler, workers=args.workers, notebook_dir=args.notebooks_dir,
            only=args.only, timeout=args.timeout, progress=not args.no_progress,
            engine="notebooks" if args.notebooks else None)
        build_index(reports_root, order=specs.list_analyses())
        return 1 if any(not r["ok"] for r in summary) else 0

    names = args.analyses or specs.list_analyses()
    if not names:
        raise CareTrendsError("no analyses found in notebooks/params/; add a YAML file")
    # Workers start importing papermill/nbconvert now, while the analyses are validated.
    with LocalPool(args.workers) as pool:
        # Validate every analysis first: nothing runs if any of them is wrong.
        sources = yaml_sources(names)
        plans = [specs.load_analysis(path) for path in sources]
        _repair(reports_root)
        results = run_analyses(plans, reports_root, notebook_dir=args.notebooks_dir,
                               only=args.only, workers=args.workers, timeout=args.timeout,
                               progress=not args.no_progress, pool=pool,
                               sources={p.analysis: path.name
                                        for p, path in zip(plans, sources)})
    failures = []
    for name, result in results.items():
        if isinstance(result, str):
            failures.append(result)
            continue
        print(f"{name}: {len(result['notebooks'])} notebooks, {result['records']} estimates, "
              f"{result['seconds']:.0f} s -> {reports_root / name}", file=sys.stderr)
    index = build_index(reports_root, order=[p.analysis for p in plans])
    print(f"index: {index}", file=sys.stderr)
    if failures:
        # One line per failed analysis; the last one goes through the CLI's error line (exit 2).
        for message in failures[:-1]:
            print(f"care-trends: error: {message}", file=sys.stderr)
        raise CareTrendsError(failures[-1])
    return 0


def _cli_refresh(args) -> int:
    for name in args.notebooks or [p.stem for p in discover_notebooks()]:
        nb = discover_notebooks(None, [name])[0]
        start = time.monotonic()
        refresh_notebook(nb, timeout=args.timeout)
        print(f"{nb.name}: refreshed in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0
