"""`care-trends bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.run.bench import (BenchConfig, benchmark_names, blas_single_threaded,
                               default_output, format_table, one_blas_thread_env,
                               run_benchmarks, update_readme)


def _read_results(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CareTrendsError(f"no benchmark figures at {path}; run `care-trends bench` first")
    except json.JSONDecodeError as exc:
        raise CareTrendsError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); "
                              "run `care-trends bench` again to rewrite it")


def _bench_argv(args) -> list[str]:
    """The `bench` command line that `args` came from."""
    argv = ["bench", "--repeats", str(args.repeats), "--cores", str(args.cores)]
    for name in args.only or []:
        argv += ["--only", name]
    if args.output:
        argv += ["--output", str(args.output)]
    argv += [flag for flag, on in (("--skip-run", args.skip_run),
                                   ("--update-readme", args.update_readme)) if on]
    return argv


def _cmd_bench(args) -> int:
    if args.repeats < 1:
        raise CareTrendsError("--repeats must be at least 1, e.g. --repeats 7")
    if args.cores < 1:
        raise CareTrendsError("--cores must be at least 1, e.g. --cores 2")
    output = args.output or default_output()
    if not args.from_results and not blas_single_threaded():
        # Measure in a fresh process with BLAS on one thread (see helpers.run.bench).
        return subprocess.call([sys.executable, "-m", "helpers", *_bench_argv(args)],
                               env=one_blas_thread_env())
    if args.from_results:
        results = _read_results(output)
    else:
        config = replace(BenchConfig(), repeats=args.repeats,
                         baseline_repeats=min(args.repeats, BenchConfig().baseline_repeats),
                         cores=args.cores)
        results = run_benchmarks(config, only=args.only, skip_run=args.skip_run, output=output,
                                 progress=lambda name: print(f"running {name} ...",
                                                             file=sys.stderr, flush=True))
    print(format_table(results))
    try:
        shown = output.resolve().relative_to(paths.project_root().resolve())
    except ValueError:
        shown = output
    if not args.from_results:
        print(f"figures written to {shown}")
    if args.update_readme:
        update_readme(paths.project_root() / "README.md", results)
        print("README.md table updated from these figures")
    return 0


def add_cli(subparsers) -> None:
    names = benchmark_names()
    parser = subparsers.add_parser(
        "bench", help="time the batch fits, synthetic control, synthetic DiD and the whole run",
        description="Benchmarks against baselines in the same process (the fast side and the "
                    "baseline interleaved, medians over repeats), each with its target and a check "
                    "that both give the same answers; writes bench/results.json and prints a "
                    f"table. Benchmarks: {', '.join(names)}.")
    parser.add_argument("--repeats", type=int, default=BenchConfig().repeats,
                        help="timed repeats of the fast side (median; baselines: up to 5)")
    parser.add_argument("--only", action="append", choices=names, metavar="NAME",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--skip-run", action="store_true",
                        help="skip timing the whole `care-trends run` (quick check)")
    parser.add_argument("--cores", type=int, default=BenchConfig().cores,
                        help="cores the timed run is pinned to")
    parser.add_argument("--output", type=Path, default=None,
                        help="where the JSON figures go (default bench/results.json)")
    parser.add_argument("--update-readme", action="store_true",
                        help="rewrite README.md's benchmark table from the figures")
    parser.add_argument("--from-results", action="store_true",
                        help="measure nothing: show (and with --update-readme, publish) the "
                             "figures already in the results file")
    parser.set_defaults(handler=_cmd_bench)
