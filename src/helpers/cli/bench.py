"""`care-trends bench`."""

from __future__ import annotations

from pathlib import Path

from helpers.core.errors import CareTrendsError
from helpers.run.bench import format_table, run_benchmarks


def _cmd_bench(args) -> int:
    if args.repeats < 1:
        raise CareTrendsError("--repeats must be at least 1, e.g. --repeats 5")
    results = run_benchmarks(repeats=args.repeats, skip_run=args.skip_run, cores=args.cores,
                             output=args.output)
    print(format_table(results))
    print(f"figures written to {results['output']}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the batch fits, the synthetic control and the whole run",
        description="Benchmarks (medians over repeats, ratios against baselines run in the same "
                    "process); writes bench/results.json and prints a table.")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per benchmark (median)")
    parser.add_argument("--skip-run", action="store_true",
                        help="skip timing the whole `care-trends run` (quick check)")
    parser.add_argument("--cores", type=int, default=2, help="cores the timed run is pinned to")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the JSON figures (default bench/results.json)")
    parser.set_defaults(handler=_cmd_bench)
