"""`care-trends` command line: the top layer. Each module here defines `add_cli(subparsers)`;
this file assembles them and turns user errors into one clear line and a non-zero exit.

SIGTERM is handled like Ctrl-C: the command stops its worker processes and their notebook
kernels, leaves the previous reports as they were, and exits 128 + the signal number."""

from __future__ import annotations

import argparse
import signal
import sys

import psutil

from helpers import __version__
from helpers.cli import bench, data, run, ssda903
from helpers.core.errors import CareTrendsError

# Modules contributing sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (data, run, ssda903, bench)


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line (`care-trends: error: ...`), like every other."""

    def error(self, message):
        command = self.prog.partition(" ")[2]
        self.exit(2, f"care-trends: error: {command + ': ' if command else ''}{message}; see "
                     f"{self.prog} --help\n")


class Stopped(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived: unwind like Ctrl-C, remembering which signal it was."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="care-trends",
        description="Did a council's programme change the trend of children entering care?",
    )
    parser.add_argument("--version", action="version", version=f"care-trends {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=OneLineParser)
    for module in COMMAND_MODULES:
        module.add_cli(subparsers)
    return parser


def _stop(signum, frame):
    # Further signals are ignored while the run cleans up (it stops its own processes).
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


def _stop_children() -> None:
    """Anything this process started that is still running (notebook kernels of an in-process
    run) goes with it."""
    try:
        children = [p for p in psutil.Process().children(recursive=True)
                    if "resource_tracker" not in " ".join(p.cmdline())]
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, _stop)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        result = handler(args)
    except CareTrendsError as exc:
        # One line, whatever a message quotes from the input (a name with a line break...).
        print(f"care-trends: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        _stop_children()
        print(f"care-trends: stopped by {signal.Signals(signum).name}; published reports are "
              "unchanged except analyses that had finished", file=sys.stderr)
        return 128 + int(signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
