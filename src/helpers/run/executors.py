"""Where notebook jobs run. The scheduler (`helpers.run.runner`) only needs `submit(job)`
returning a concurrent.futures Future, `workers`, `parallel`, `restart()` and `close()`:

- `LocalPool`: spawned worker processes on this machine (or, with one worker, in-process);
- `DaskPool`: the workers of a Dask distributed cluster, through the client's
  concurrent.futures executor (jobs carry their inputs and bring their outputs back as bytes,
  so workers need no shared disk)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing

from helpers.core.errors import CareTrendsError
from helpers.run.execute import NotebookJob, execute

DEFAULT_WORKERS = 2


def _warm_worker() -> None:
    """Import what every notebook job needs once per worker, while the parent validates."""
    import nbconvert  # noqa: F401  (imported for its side effect: a warm worker)
    import papermill  # noqa: F401


class LocalPool:
    """Worker processes shared by every notebook of every analysis in one `care-trends run`.

    Started before validation so the workers' imports (papermill, nbconvert) overlap it; a
    worker then runs one notebook after another without paying them again. With one worker (or
    inside a daemonic process, which cannot start a pool) jobs run in this process."""

    def __init__(self, workers: int = DEFAULT_WORKERS):
        self.workers = max(1, int(workers))
        self._pool = None
        if self.workers > 1 and not multiprocessing.current_process().daemon:
            self._start()

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # safe with threads and on Windows
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        for _ in range(self.workers):
            self._pool.submit(_warm_worker)

    def submit(self, job: NotebookJob) -> cf.Future:
        if self._pool is None:
            future: cf.Future = cf.Future()
            future.set_result(execute(job))
            return future
        return self._pool.submit(execute, job)

    def restart(self) -> None:
        """Stop every worker (a notebook over its timeout) and start fresh ones."""
        self.close(kill=True)
        if self.workers > 1:
            self._start()

    def close(self, kill: bool = False) -> None:
        if self._pool is None:
            return
        if kill:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)


class DaskPool:
    """The workers of a Dask distributed cluster (`tcp://host:8786`, or a `distributed.Client`)."""

    def __init__(self, scheduler):
        try:
            from distributed import Client  # optional at import time: only --scheduler needs it
        except ImportError as exc:  # pragma: no cover - dask is a project dependency
            raise CareTrendsError("--scheduler needs dask.distributed; install the project's "
                                  "dependencies") from exc
        if isinstance(scheduler, Client):
            self.client, self._own = scheduler, False
        else:
            try:
                self.client, self._own = Client(scheduler, timeout="20s"), True
            except (OSError, TimeoutError) as exc:
                raise CareTrendsError(
                    f"cannot reach the Dask scheduler at {scheduler}; check the address (e.g. "
                    "tcp://10.0.0.5:8786) and that the scheduler is running") from exc
        self._executor = self.client.get_executor(pure=False)
        self.workers = max(1, sum(w.get("nthreads", 1) for w in
                                  self.client.scheduler_info()["workers"].values()))

    parallel = True

    def submit(self, job: NotebookJob) -> cf.Future:
        return self._executor.submit(execute, job)

    def restart(self) -> None:
        """A timed-out job on a cluster is abandoned, not killed: the cluster carries on."""

    def close(self, kill: bool = False) -> None:
        if self._own:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
