"""`care-trends data build | import | check | series`."""

from __future__ import annotations

from pathlib import Path

from helpers import data
from helpers.core import paths, vocab


def _cmd_build(args) -> int:
    panel = data.build_panel(args.raw_dir, output_dir=args.output)
    if not args.output:   # the statistical-neighbour tables are rebuilt alongside the default panel
        data.build_reference(paths.raw_dir(args.raw_dir))
    print(f"wrote {len(panel)} rows for {panel['year'].min()}-{panel['year'].max()} to "
          f"{Path(args.output) if args.output else paths.processed_dir()}")
    return 0


def _cmd_import(args) -> int:
    result = data.import_file(args.file, args.raw_dir, output_dir=args.output,
                              dry_run=args.dry_run)
    data.reset_caches()
    print(result.summary())
    return 0


def _cmd_fetch(args) -> int:
    result = data.fetch_raw_files(args.raw_dir, only=args.only or None, force=args.force,
                                  include_unlisted=args.all)
    print(result.summary())
    return 0 if result.ok else 1


def _cmd_check(args) -> int:
    checked = data.check_raw_files(args.raw_dir)
    print(f"all {len(checked)} raw files match data/{data.sources.MANIFEST_NAME}")
    return 0


def _cmd_series(args) -> int:
    series = data.annual_series(args.la, args.measure, args.start_year, args.end_year)
    print(series[["year", "count", "population", "rate_per_10000", "rate_source", "count_status"]]
          .to_string(index=False))
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build, check or extend the official data panel")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="check raw files against the manifest and rebuild data/processed/")
    p.add_argument("--raw-dir", help=f"folder of official raw files (default ${paths.RAW_DIR_ENV} or data/raw/)")
    p.add_argument("--output", help="folder to write the panel to (default data/processed/)")
    p.set_defaults(handler=_cmd_build)
    p = sub.add_parser("import", help="add the next EES edition of a dataset the panel uses and say what changed")
    p.add_argument("file", help="the downloaded CSV")
    p.add_argument("--raw-dir", help="folder of official raw files")
    p.add_argument("--output", help="folder to write the panel to (default data/processed/)")
    p.add_argument("--dry-run", action="store_true", help="validate and report what would change; write nothing")
    p.set_defaults(handler=_cmd_import)
    p = sub.add_parser("fetch", help="download the official raw files from their publishers and check them")
    p.add_argument("--raw-dir", help="folder to download into (default $CARE_TRENDS_RAW_DIR or data/raw/)")
    p.add_argument("--only", action="append", help="fetch only files whose path contains this (repeatable)")
    p.add_argument("--force", action="store_true", help="download even files already present and correct")
    p.add_argument("--all", action="store_true",
                   help="also fetch snapshot files the build does not read (not in the manifest, unchecked)")
    p.set_defaults(handler=_cmd_fetch)
    p = sub.add_parser("check", help="verify raw files against data/raw_manifest.sha256")
    p.add_argument("--raw-dir", help="folder of official raw files")
    p.set_defaults(handler=_cmd_check)
    p = sub.add_parser("series", help="print one LA's yearly series")
    p.add_argument("la", help="LA name or old code, e.g. Stoke-on-Trent or 861")
    p.add_argument("measure", choices=vocab.MEASURES)
    p.add_argument("--start-year", type=int)
    p.add_argument("--end-year", type=int)
    p.set_defaults(handler=_cmd_series)
