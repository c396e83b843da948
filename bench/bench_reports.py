"""How long `care-trends run` (what `make reports` runs) takes, and its peak memory (not a test).

    PYTHONPATH=src .venv/bin/python bench/bench_reports.py [--repeat 3] [--out DIR] [-- ARGS]

Runs `python -m helpers run --no-progress --reports-dir DIR ARGS` `--repeat` times in a child
process and samples the whole process tree (the CLI, its worker processes and their notebook
kernels) every 0.1 s. For each run it prints the wall time, the CPU-seconds of the tree
(user + system of every process that ran, read when each exits; and, sampled, by part of the
run), the peak of the summed resident memory (RSS, an upper bound: pages shared between
processes, e.g. a forked kernel's and its server's, are counted in each) and of the summed
proportional memory (PSS: shared pages divided between the processes sharing them);
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


def role(proc: psutil.Process, server: set[int]) -> str:
    """Which part of the run a process is (for the CPU breakdown)."""
    try:
        line = " ".join(proc.cmdline())
        parent = proc.ppid()
    except psutil.Error:
        return "other"
    if parent in server:  # a fork keeps its server's command line
        return "kernels (forked)"
    if "kernels.py serve" in line:
        server.add(proc.pid)
        return "kernel server"
    if "ipykernel_launcher" in line and "kernels.py stub" not in line:
        return "kernels (started)"
    if "kernels.py stub" in line:
        return "kernel stubs"
    if "spawn_main" in line:
        return "workers"
    return "other"


def run_once(out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "helpers", "run", "--no-progress", "--reports-dir",
               str(out), *extra]
    before = os.times()
    start = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak, peak_pss, cpu, roles, server = 0, 0, {}, {}, set()
    at_peak: dict[str, int] = {}
    while child.poll() is None:
        total = pss = 0
        now: dict[str, int] = {}
        for proc in tree(root):
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    if key not in roles:
                        roles[key] = "care-trends run" if proc.pid == child.pid \
                            else role(proc, server)
                    memory = proc.memory_full_info()
                    total += memory.rss
                    pss += memory.pss
                    now[roles[key]] = now.get(roles[key], 0) + memory.rss
                    times = proc.cpu_times()
                    cpu[key] = times.user + times.system
            except psutil.Error:
                continue
        if total > peak:
            peak, at_peak = total, now
        peak_pss = max(peak_pss, pss)
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
    by_role: dict[str, float] = {}
    for key, seconds_used in cpu.items():
        by_role[roles[key]] = by_role.get(roles[key], 0.0) + seconds_used
    return {"wall": wall, "cpu": max(reaped, sum(cpu.values())), "peak_rss": peak,
            "peak_pss": peak_pss, "notebooks": seconds, "roles": by_role, "at_peak": at_peak}


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
                  f"peak RSS {result['peak_rss'] / 2**30:.2f} GiB, "
                  f"peak PSS {result['peak_pss'] / 2**30:.2f} GiB; CPU (sampled) by part: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(result["roles"].items()))
                  + "; RSS at the peak: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in
                                                      sorted(result["at_peak"].items())),
                  flush=True)
    print(f"median: wall {statistics.median(r['wall'] for r in runs):.1f} s, "
          f"CPU {statistics.median(r['cpu'] for r in runs):.1f} s, "
          f"peak RSS {statistics.median(r['peak_rss'] for r in runs) / 2**30:.2f} GiB, "
          f"peak PSS {statistics.median(r['peak_pss'] for r in runs) / 2**30:.2f} GiB")
    print("notebook seconds (median over runs):")
    for key in sorted(runs[0]["notebooks"]):
        values = [r["notebooks"].get(key) for r in runs if r["notebooks"].get(key) is not None]
        print(f"  {key:45s} {statistics.median(values):6.1f}")


if __name__ == "__main__":
    main()
