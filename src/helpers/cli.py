"""`care-trends` command line. Each module that offers commands defines `add_cli(subparsers)`;
this file only assembles them and turns user errors into one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import sys

from helpers import __version__
from helpers.core.errors import CareTrendsError

# Modules contributing sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("helpers.data", "helpers.report", "helpers.ssda903", "helpers.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="care-trends",
        description="Did a council's programme change the trend of children entering care?",
    )
    parser.add_argument("--version", action="version", version=f"care-trends {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # module not written yet
                continue
            raise
        add_cli = getattr(module, "add_cli", None)
        if add_cli is not None:
            add_cli(subparsers)
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
