"""Do two report folders hold the same results? (not a test; for checking a speed-up)

    python bench/compare_reports.py OLD_REPORTS NEW_REPORTS [--tol 1e-9] [--bytes]

Compares every analysis' results.json record by record, keyed by (notebook, outcome, event,
design, effect): the same keys on both sides, the same text fields, and numbers equal to within
`--tol` (absolute). With `--bytes`, every other published file (pages, executed notebooks,
extra numbers) must also be byte-identical; only manifest.json (which records run times) is
left out. Prints each difference and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

KEY = ("notebook", "outcome", "event", "design", "effect")
NUMBERS = ("estimate", "ci_low", "ci_high", "p_value")
SKIP = {"manifest.json"}


def records(path: Path) -> dict[tuple, dict]:
    keyed = {}
    for record in json.loads(path.read_text(encoding="utf-8")):
        key = tuple(record.get(k) for k in KEY)
        if key in keyed:
            raise SystemExit(f"{path}: two records for {key}")
        keyed[key] = record
    return keyed


def same_number(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def compare_results(old: Path, new: Path, tol: float) -> list[str]:
    problems = []
    a, b = records(old), records(new)
    for key in sorted(set(a) | set(b), key=str):
        if key not in b or key not in a:
            problems.append(f"{new.parent.name}: {key} only in {'old' if key in a else 'new'}")
            continue
        for field in sorted(set(a[key]) | set(b[key])):
            x, y = a[key].get(field), b[key].get(field)
            ok = same_number(x, y, tol) if field in NUMBERS else x == y
            if not ok:
                problems.append(f"{new.parent.name}: {key} {field}: {x!r} -> {y!r}")
    return problems


def compare_files(old: Path, new: Path) -> list[str]:
    problems = []
    names = {p.relative_to(old) for p in old.rglob("*") if p.is_file()} | \
            {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    for rel in sorted(names):
        if rel.name in SKIP or rel.name == "results.json":
            continue
        x, y = old / rel, new / rel
        if not (x.is_file() and y.is_file()):
            problems.append(f"{rel}: only in {'old' if x.is_file() else 'new'}")
        elif x.read_bytes() != y.read_bytes():
            problems.append(f"{rel}: bytes differ")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--tol", type=float, default=1e-9)
    parser.add_argument("--bytes", action="store_true", help="every other file byte-identical")
    args = parser.parse_args()
    problems, compared = [], 0
    for old in sorted(args.old.glob("*/results.json")):
        new = args.new / old.parent.name / "results.json"
        if not new.is_file():
            problems.append(f"{old.parent.name}: no results.json in {args.new}")
            continue
        problems += compare_results(old, new, args.tol)
        compared += len(records(old))
    if args.bytes:
        problems += compare_files(args.old, args.new)
    for line in problems:
        print(line)
    print(f"{compared} records compared (tolerance {args.tol:g})"
          + (", files byte for byte" if args.bytes else "") + f": {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
