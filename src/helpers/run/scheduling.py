"""One scheduler for jobs on a pool (`helpers.run.executors`): the notebook runner's notebooks
(`helpers.run.runner`) and the national batch's chunks of LAs (`helpers.run.national_batch`).

`drive` keeps the workers busy, waits for results, and handles the three ways a job ends badly
the same way for both; what to do about each (run it again, split it, fail it) is the caller's,
through callbacks:

- a worker dies (or a cluster job raises instead of returning): `lost(job, why, alone)`, for
  the job and every job running beside it on a broken pool, which is then restarted;
- a job runs over `deadline(job)` seconds: `late(job)`; the workers are restarted (a job
  cannot be stopped on its own) and the jobs that were running beside it go to
  `restarted(jobs)` (default: first in the queue again);
- `runs_alone(job)`: a job started only when nothing else runs, and nothing beside it (a job
  whose worker died, so that a second death can be pinned on it).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable

#: More runs a job gets after its worker dies before it is reported failed (the runner runs
#: it again alone; the national batch LA by LA).
WORKER_DEATH_RETRIES = 1


def worker_lost(exc: BaseException) -> str:
    """Why a job came back without a result, in words."""
    if isinstance(exc, cf.BrokenExecutor):
        return "its worker process died (killed, or out of memory)"
    text = str(exc).strip().splitlines()
    return f"its worker failed ({type(exc).__name__}: {text[0] if text else ''})".replace(
        ": )", ")")


def drive(pool, pending: list, *, submit: Callable, done: Callable, lost: Callable,
          late: Callable, deadline: Callable[[object], float], ahead: int, poll: float,
          runs_alone: Callable[[object], bool] | None = None,
          restarted: Callable[[list], None] | None = None,
          tick: Callable[[list], None] | None = None) -> None:
    """Run the jobs of `pending` (a live list, first first: the callbacks may add and remove
    jobs) on `pool`, at most `ahead` at a time, until none is pending or running.

    submit(job) -> Future; done(job, result); lost(job, why, alone); late(job);
    deadline(job) -> seconds; runs_alone(job) -> bool; restarted(jobs); tick(running jobs),
    called after each round of starting jobs (a progress bar's caption)."""
    running: dict[cf.Future, tuple[object, float]] = {}

    def alone_only(job) -> bool:
        return runs_alone is not None and (
            runs_alone(job) or any(runs_alone(other) for other, _ in running.values()))

    while pending or running:
        broken = False
        while pending and len(running) < ahead:
            job = pending[0]
            if running and alone_only(job):
                break
            try:
                future = submit(job)
            except (cf.BrokenExecutor, RuntimeError):  # the pool broke since the last look
                broken = True
                break
            pending.pop(0)
            running[future] = (job, time.monotonic())
        if tick is not None:
            tick([job for job, _ in running.values()])
        alone = len(running) == 1
        finished, _ = cf.wait(running, timeout=0 if broken else poll,
                              return_when=cf.FIRST_COMPLETED)
        for future in finished:
            job, _ = running.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - jobs never raise: the worker died
                broken = broken or isinstance(exc, cf.BrokenExecutor)
                lost(job, worker_lost(exc), alone)
                continue
            done(job, result)
        if broken:  # every job on a broken pool is lost with it; fresh workers
            for job, _ in running.values():
                lost(job, worker_lost(cf.BrokenExecutor()), alone)
            running.clear()
            pool.restart()
            continue
        now = time.monotonic()
        overdue = [f for f, (job, started) in running.items() if now - started > deadline(job)]
        if overdue:
            for future in overdue:
                late(running.pop(future)[0])
            pool.restart()
            beside = [job for job, _ in running.values()]
            running.clear()
            if restarted is not None:
                restarted(beside)
            else:
                pending[:0] = beside
