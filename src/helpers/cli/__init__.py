"""`care-trends` command line: the top layer. Each module here defines `add_cli(subparsers)`;
this file assembles them and turns user errors into one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import sys

from helpers import __version__
from helpers.cli import bench, data, run, ssda903
from helpers.core.errors import CareTrendsError

# Modules contributing sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (data, run, ssda903, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="care-trends",
        description="Did a council's programme change the trend of children entering care?",
    )
    parser.add_argument("--version", action="version", version=f"care-trends {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result = handler(args)
    except CareTrendsError as exc:
        print(f"care-trends: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("care-trends: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
