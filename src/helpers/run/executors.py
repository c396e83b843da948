"""Where notebook jobs run. The scheduler (`helpers.run.runner`) only needs `submit(job)`
(or `submit(job, fn)` for another kind of job, e.g. the national batch's pages) returning a
concurrent.futures Future, `workers`, `parallel`, `restart()` and `close()`:

- `LocalPool`: spawned worker processes on this machine (or, with one worker, in-process);
- `DaskPool`: the workers of a Dask distributed cluster, through the client's
  concurrent.futures executor (jobs carry their inputs and bring their outputs back as bytes,
  so workers need no shared disk)."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading

import psutil

from helpers.core.errors import CareTrendsError
from helpers.run import kernels
from helpers.run.execute import (execute, kernel_environment, remove_stale_job_folders,
                                 use_kernel_server)

DEFAULT_WORKERS = 2
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _warm_worker() -> None:
    """Import what every notebook job needs once per worker, while the parent validates."""
    import nbconvert  # noqa: F401  (imported for its side effect: a warm worker)
    import papermill  # noqa: F401


def _init_worker(parent: int, kernel_server: str | None) -> None:
    """Worker initializer: dies with the parent; forks its kernels from the run's server."""
    _die_with_parent(parent)
    use_kernel_server(kernel_server)


def _die_with_parent(parent: int) -> None:
    """On Linux the kernel kills this worker when the `care-trends` process dies, even by
    SIGKILL (its notebook kernels then see their parent gone and exit); a worker never goes on
    running for an abandoned run."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    # Ctrl-C reaches the whole foreground process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the command's SIGTERM handler (helpers.cli): it ends the way a
    # spawned one does instead.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process `pid` started (a worker's notebook kernels)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_all(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """Kill processes that are not this process' own children (psutil polls for them, so it
    reaps nothing multiprocessing still tracks)."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


class LocalPool:
    """Worker processes shared by every notebook of every analysis in one `care-trends run`.

    Started before validation so the workers' imports (papermill, nbconvert) and the kernel
    server's (the notebooks' imports, once: `helpers.run.kernels`) overlap it; a worker then
    runs one notebook after another without paying them again, each in a fresh kernel forked
    from the server. With one worker (or inside a daemonic process, which cannot start a pool)
    jobs run in this process. `notebooks=False`: workers for jobs that start no kernel (the
    national batch's pages), without the kernel server or the papermill warm-up."""

    def __init__(self, workers: int = DEFAULT_WORKERS, notebooks: bool = True):
        self.workers = max(1, int(workers))
        self.notebooks = notebooks
        self._pool = None
        self._server = None
        if notebooks:  # jobs that need no kernel (the national batch's pages) skip the server
            kernel_environment()  # the server imports under the kernels' environment
            remove_stale_job_folders(prefix=kernels.FOLDER_PREFIX)  # of runs that were killed
            self._server = kernels.KernelServer.start()
        if self.workers > 1 and not multiprocessing.current_process().daemon:
            self._start()
        else:
            use_kernel_server(self._server_address())

    def _server_address(self) -> str | None:
        return self._server.address if self._server is not None else None

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def _start(self) -> None:
        method = self._start_method()
        ctx = multiprocessing.get_context(method)
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                            initializer=_init_worker,
                                            initargs=(os.getpid(), self._server_address()))
        if method == "fork":
            # Forked now (a pool forks every worker at its first job), with this process'
            # objects frozen: the workers' garbage collector never walks them (nor copies
            # their pages by touching them), as the gc.freeze documentation advises.
            gc.freeze()
            try:
                self._pool.submit(int).result()
            finally:
                gc.unfreeze()
        if self.notebooks:
            for _ in range(self.workers):
                self._pool.submit(_warm_worker)

    def _start_method(self) -> str:
        """"spawn" (safe with threads, and on Windows and macOS); for workers that start no
        kernels, on Linux, while this process runs no other thread, "fork": they then begin
        with this process' modules loaded instead of importing them again (2 CPU seconds
        each)."""
        if (not self.notebooks and sys.platform.startswith("linux")
                and threading.active_count() == 1):
            return "fork"
        return "spawn"

    def submit(self, job, fn=None) -> cf.Future:
        """Run `fn(job)` on a worker (default: `execute`, a notebook job); `fn` must be a
        module-level function, so it can be sent to a worker."""
        fn = fn or execute
        if self._pool is None:
            future: cf.Future = cf.Future()
            future.set_result(fn(job))
            return future
        return self._pool.submit(fn, job)

    def restart(self) -> None:
        """Stop every worker (a notebook over its timeout) and start fresh ones; the kernel
        server stays (the kernels of killed workers die with their stubs)."""
        self._close_workers(kill=True)
        if self.workers > 1:
            self._start()

    def close(self, kill: bool = False) -> None:
        """Stop the workers (killed with their kernels when `kill`) and the kernel server."""
        self._close_workers(kill)
        if self._server is not None:
            self._server.close()
            self._server = None
        use_kernel_server(None)

    def _close_workers(self, kill: bool) -> None:
        if self._pool is None:
            return
        if kill:  # the workers, then the kernels they started: nothing runs on
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            children = [k for process in processes if process.pid is not None
                        for k in descendants(process.pid)]
            for process in processes:  # through multiprocessing, which must reap its own
                if process.is_alive():
                    process.kill()
            for process in processes:
                process.join(timeout=5)
            kill_all(children)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Workers without kernels hold nothing once their jobs are back: stopped at once
        # rather than each waiting for its interpreter to tidy up (a second at the end).
        self.close(kill=exc[0] is not None or not self.notebooks)


def check_scheduler_address(address: str) -> str:
    """A Dask scheduler address such as tcp://10.0.0.5:8786, refused in one line when it
    cannot be one (before any connection is tried)."""
    try:
        from distributed.comm import registry
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError as exc:  # pragma: no cover - dask is a project dependency
        raise CareTrendsError("--scheduler needs dask.distributed; install the project's "
                              "dependencies") from exc
    problem = None
    try:
        scheme, location = parse_address(str(address), strict=True)
        if scheme not in registry.backends:
            problem = f"unknown scheme {scheme!r} (use one of {', '.join(sorted(registry.backends))})"
        elif scheme != "inproc":
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if problem:
        raise CareTrendsError(f"--scheduler {address!r} is not a Dask scheduler address: "
                              f"{problem}; give one such as tcp://10.0.0.5:8786")
    return str(address)


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
            check_scheduler_address(scheduler)
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

    def submit(self, job, fn=None) -> cf.Future:
        return self._executor.submit(fn or execute, job)

    def restart(self) -> None:
        """A timed-out job on a cluster is abandoned, not killed: the cluster carries on."""

    def close(self, kill: bool = False) -> None:
        if self._own:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
