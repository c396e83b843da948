"""How long `care-trends run` (what `make reports` runs) takes, and its peak memory (not a test).

    PYTHONPATH=src .venv/bin/python bench/bench_reports.py [--repeat 3] [--out DIR] [-- ARGS]

Runs `python -m helpers run --no-progress --reports-dir DIR ARGS` `--repeat` times in a child
process and samples the whole process tree (the CLI, its worker processes and their notebook
kernels) every 0.1 s. For each run it prints the wall time, the CPU-seconds of the tree
(user + system of every process that ran, read when each exits) and the peak of the summed
resident memory (RSS, an upper bound: pages shared between processes are counted in each);
then the median of the runs and each notebook's seconds from the published manifests (median
over the runs). The machine may be shared, so CPU-seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def run_once(out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "helpers", "run", "--no-progress", "--reports-dir",
               str(out), *extra]
    before = os.times()
    start = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak, cpu = 0, {}  # cpu: pid -> (user + system) last seen, for processes not reaped here
    while child.poll() is None:
        total = 0
        for proc in tree(root):
            try:
                with proc.oneshot():
                    total += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                continue
        peak = max(peak, total)
        time.sleep(0.1)
    wall = time.monotonic() - start
    after = os.times()
    # Every process of the tree is reaped by its parent, so its CPU time reaches this process'
    # children totals when the CLI exits (the sampled figure is a floor, kept as a check).
    reaped = (after.children_user - before.children_user
              + after.children_system - before.children_system)
    if child.returncode != 0:
        raise SystemExit(f"care-trends run exited with {child.returncode}")
    seconds = {}
    for manifest in sorted(out.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        for entry in data.get("notebooks", []):
            seconds[f"{data['analysis']}/{entry['stem']}"] = entry.get("seconds")
    return {"wall": wall, "cpu": max(reaped, sum(cpu.values())), "peak_rss": peak,
            "notebooks": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None,
                        help="reports folder (default: a temporary one)")
    parser.add_argument("extra", nargs="*", help="more `care-trends run` arguments (after --)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="care-trends-bench-") as tmp:
        out = args.out or Path(tmp) / "reports"
        for i in range(args.repeat):
            result = run_once(out, args.extra)
            runs.append(result)
            print(f"run {i + 1}: wall {result['wall']:.1f} s, CPU {result['cpu']:.1f} s, "
                  f"peak RSS {result['peak_rss'] / 2**30:.2f} GiB", flush=True)
    print(f"median: wall {statistics.median(r['wall'] for r in runs):.1f} s, "
          f"CPU {statistics.median(r['cpu'] for r in runs):.1f} s, "
          f"peak RSS {statistics.median(r['peak_rss'] for r in runs) / 2**30:.2f} GiB")
    print("notebook seconds (median over runs):")
    for key in sorted(runs[0]["notebooks"]):
        values = [r["notebooks"].get(key) for r in runs if r["notebooks"].get(key) is not None]
        print(f"  {key:45s} {statistics.median(values):6.1f}")


if __name__ == "__main__":
    main()
