"""How long a 100,000-episode SSDA903 extract takes to validate and derive (not a unit test).

    .venv/bin/python bench/bench_ssda903.py [--episodes 100000] [--repeat 3]

Generates a SYNTHETIC extract of about the requested size (Stoke-on-Trent's published counts
scaled up) into a temporary folder, then times reading + validating the CSV files (`load_903`)
and deriving the monthly series, the annual DfE counts and the three starts breakdowns.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from helpers import ssda903
from helpers.ssda903 import synth

STOKE = {y: (s, c, n) for y, s, c, n in zip(
    range(2010, 2026),
    [179, 163, 192, 247, 226, 284, 271, 216, 220, 257, 248, 278, 269, 280, 287, 178],
    [171, 162, 168, 211, 173, 216, 231, 222, 134, 148, 183, 192, 254, 197, 243, 270],
    [403, 412, 440, 479, 536, 610, 655, 653, 740, 851, 917, 1004, 1022, 1106, 1152, 1063])}
EPISODES_PER_SCALE = 15_400  # episodes the unscaled Stoke stand-in has


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scale = args.episodes / EPISODES_PER_SCALE
    targets = {y: dict(starts=round(s * scale), ceased=round(c * scale), cla_31_march=round(n * scale))
               for y, (s, c, n) in STOKE.items()}
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        header, episodes = synth.write_synthetic(synth.synthesize("Benchshire", seed=1, targets=targets),
                                                 folder)
        print(f"generated SYNTHETIC extract in {time.perf_counter() - t0:.1f} s")
        best = {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            extract = ssda903.load_903(header, episodes)
            t1 = time.perf_counter()
            ssda903.monthly_series(extract)
            ssda903.annual_counts(extract)
            for by in ssda903.BREAKDOWNS:
                ssda903.starts_by(extract, by)
            t2 = time.perf_counter()
            for key, value in (("validate", t1 - t0), ("derive", t2 - t1), ("total", t2 - t0)):
                best[key] = min(best.get(key, float("inf")), value)
        print(f"{extract.report.n_episodes:,} episodes, {extract.report.n_children:,} children: "
              f"read+validate {best['validate']:.2f} s, derive {best['derive']:.2f} s, "
              f"total {best['total']:.2f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
