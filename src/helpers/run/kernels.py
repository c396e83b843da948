"""Notebook kernels forked from a warm process (Linux): the kernel's start-up and the notebooks'
imports are paid once per run instead of once per notebook.

A kernel server (`python kernels.py serve ADDRESS`, started by the local pool)
imports what the notebooks import (ipykernel, IPython, matplotlib, the helpers layers below
`run` and through them pandas, SciPy and statsmodels), then waits on a Unix socket in a private
folder. The kernel command jupyter_client runs becomes a stub: this file run as a script with
the standard library only (`python -I -S kernels.py stub ADDRESS -m ipykernel_launcher -f ...`).
The stub sends the server its working folder, environment and standard streams; the server
forks, and the fork becomes the kernel exactly as `python -m ipykernel_launcher` would (its own
session, that folder, environment and streams, sys.argv and sys.path), starting from the state
the server reached by importing and nothing else. The stub stays the process jupyter_client
manages: it relays signals (interrupts, terminate) to the kernel and exits with its exit code.

Isolation and clean-up: every notebook still gets its own kernel process. The server kills a
kernel whose stub is gone (killed with its worker), and exits, killing its kernels, when the
process that started it closes its stdin or dies; a kernel dies with the server. When the
server is missing, busy starting, refuses (another interpreter, another kernel command, another
environment than the one it preloaded under) or fails, the stub simply starts the kernel the
usual way (exec of the kernel command), so the outputs never depend on which path ran.

Only the standard library is imported at the top of this file: the stub runs without
site-packages. Linux only (fork, pidfd); elsewhere kernels start the usual way.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import importlib.util
import json
import os
import pkgutil
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings

#: The kernel command this server can fork (after the interpreter): `-m ipykernel_launcher`.
LAUNCHER = ["-m", "ipykernel_launcher"]
#: What the server imports before forking (each package with all its modules): what the
#: notebooks import, up to the checks layer. Never a module that behaves differently when
#: imported inside a kernel: `helpers.present` registers its chart and table formatters with
#: the running shell as it is imported, so each notebook imports it itself (its libraries are
#: preloaded here).
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "IPython.display",
           "matplotlib.pyplot", "seaborn", "statsmodels.api", "scipy.stats")
PRELOAD_PACKAGES = ("helpers.core", "helpers.data", "helpers.ssda903", "helpers.spec",
                    "helpers.models", "helpers.checks")
#: Cached reads nearly every notebook makes (the official panel and its list of areas, through
#: `helpers.data.list_las`), made once in the server: the caches key on the file's path and
#: modification time, so a kernel still reads a file that changed since.
WARM_UP = (("helpers.data", "list_las"),)
#: The matplotlib backend ipykernel sets when none is set (before the notebook's imports).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Environment variables a kernel may differ in from the server (set per kernel by
#: jupyter_client; none is read while importing).
PER_KERNEL_ENV = ("JPY_PARENT_PID", "JPY_SESSION_NAME")
#: Set to 0 to start every kernel the usual way (no server).
SWITCH_ENV = "CARE_TRENDS_KERNEL_SERVER"
#: The server's private folder: this prefix, the pid of the process that started it, '-'.
FOLDER_PREFIX = "care-trends-kernels-"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_HEADER = struct.Struct("!I")
_MAX_ADDRESS = 100  # bytes: a Unix socket path must be shorter than 108
_LISTEN_TIMEOUT = 10.0  # seconds for a server to listen (it imports nothing before)


class KernelServer:
    """The server process of one run, listening in a private folder (mode 0700). It starts
    importing at once; kernels asked for meanwhile wait for it. Closing its stdin stops it."""

    def __init__(self, folder: str, process: subprocess.Popen):
        self.folder = folder
        self.address = os.path.join(folder, "kernels")
        self.process = process

    @classmethod
    def start(cls) -> KernelServer | None:
        """A server under this process' environment, or None where kernels cannot be forked
        (or $CARE_TRENDS_KERNEL_SERVER is 0)."""
        if not supported() or os.environ.get(SWITCH_ENV) == "0":
            return None
        folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        if len(os.fsencode(os.path.join(folder, "kernels"))) > _MAX_ADDRESS:
            os.rmdir(folder)
            return None
        # Run as a script, not as a module of helpers.run: nothing of the runner's process
        # (e.g. what helpers.run/__init__ changes) may reach the kernels.
        # The environment passed as jupyter_client passes a kernel's (os.environ, not the C
        # environment, which e.g. GNU readline extends with LINES and COLUMNS when imported).
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", os.path.join(folder, "kernels")],
            stdin=subprocess.PIPE, cwd=folder, env=dict(os.environ))
        server = cls(folder, process)
        # Listening takes a moment (before the imports); a kernel asked for sooner would start
        # the usual way, so wait for it (a kernel asked for during the imports waits for them).
        deadline = time.monotonic() + _LISTEN_TIMEOUT
        while not os.path.exists(server.address):
            if process.poll() is not None or time.monotonic() > deadline:
                server.close()
                return None
            time.sleep(0.005)
        return server

    def close(self, timeout: float = 5.0) -> None:
        """Stop the server (its kernels, if any still run, with it)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") \
        and hasattr(socket, "send_fds")


def stub_command(address: str | None, command: list[str]) -> list[str]:
    """The kernel command through the server at `address`: unchanged unless it is this
    interpreter's `-m ipykernel_launcher` (the server forks nothing else)."""
    if not address or not supported() or len(command) < 3 or command[1:3] != LAUNCHER \
            or not _same_file(command[0], sys.executable):
        return command
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "stub", address, *command[1:]]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def comparable_env(env: dict) -> dict:
    """The environment a kernel is compared on (without what jupyter_client sets per kernel
    and the backend ipykernel would set anyway)."""
    env = {k: v for k, v in env.items() if k not in PER_KERNEL_ENV}
    if env.get("MPLBACKEND") == INLINE_BACKEND:
        del env["MPLBACKEND"]
    return env


# --------------------------------------------------------------------------------------------
# The stub (standard library only)
# --------------------------------------------------------------------------------------------
def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("ascii", "replace").strip()


def stub(address: str, argv: list[str]) -> None:
    """Ask the server to fork the kernel `python *argv`; stay as its stand-in until it exits.
    Whatever goes wrong before the fork, start the kernel the usual way instead."""
    reply = ""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                              "executable": sys.executable}).encode()
        socket.send_fds(sock, [_HEADER.pack(len(payload)) + payload], [0, 1, 2])
        reply = _read_line(sock)
    except OSError:
        pass
    if not reply.startswith("pid "):
        os.execv(sys.executable, [sys.executable, *argv])
    pid = int(reply.split()[1])

    def relay(signum, _frame):
        try:
            os.killpg(pid, signum)  # the kernel leads its own session, as a usual kernel does
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, relay)
    status = _read_line(sock)  # the kernel's exit code, sent once the server has reaped it
    code = int(status) if status.lstrip("-").isdigit() else 1
    sys.exit(code if code >= 0 else 128 - code)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    import ctypes  # standard library; only the server and its kernels need it

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def preload() -> None:
    """Import what the notebooks import, and make the reads they all make, without creating a
    figure, a thread or a kernel and without a warning (a notebook would have shown it): a fork
    must start from what a fresh kernel would reach by importing the same modules."""
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    with warnings.catch_warnings(record=True) as caught:
        for name in PRELOAD:
            importlib.import_module(name)
        for name in PRELOAD_PACKAGES:
            package = importlib.import_module(name)
            for module in pkgutil.walk_packages(getattr(package, "__path__", []), f"{name}."):
                importlib.import_module(module.name)
        for module, function in WARM_UP:
            try:
                getattr(importlib.import_module(module), function)()
            except Exception:  # noqa: BLE001 - e.g. no panel yet: each notebook says so itself
                pass
    pyplot = sys.modules["matplotlib.pyplot"]
    problems = []
    if getattr(pyplot, "_backend_mod", None) is not None or \
            "matplotlib_inline.backend_inline" in sys.modules:
        problems.append("the matplotlib backend was chosen while importing")
    if threading.active_count() != 1:
        problems.append("a thread was started while importing")
    if caught:
        problems.append(f"a warning while importing ({caught[0].category.__name__}: "
                        f"{str(caught[0].message)[:80]})")
    if problems:
        raise RuntimeError("; ".join(problems))
    # The preloaded objects stay out of every fork's garbage collections: a collection would
    # touch them and copy the pages they sit on into the fork.
    gc.collect()
    gc.freeze()


class _Server:
    def __init__(self, address: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address + ".new")
        self.listener.listen(64)
        os.rename(address + ".new", address)  # the address appears ready to connect to
        self.env = comparable_env(dict(os.environ))
        self.executable = sys.executable
        self.kernels: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (stub socket, pid)
        self.ready = False

    def refuse(self, conn: socket.socket, why: str) -> None:
        try:
            conn.sendall(f"refused {why}\n".encode())
        except OSError:
            pass
        conn.close()

    def receive(self, conn: socket.socket) -> tuple[dict, list[int]]:
        conn.settimeout(10)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        if len(data) < _HEADER.size:
            raise ValueError("short request")
        (size,) = _HEADER.unpack(data[:_HEADER.size])
        data = data[_HEADER.size:]
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ValueError("short request")
            data += chunk
        conn.settimeout(None)
        return json.loads(data), fds

    def why_not(self, request: dict, fds: list[int]) -> str | None:
        if len(fds) != 3:
            return "no standard streams"
        if request.get("argv", [])[:2] != LAUNCHER:
            return "not an ipykernel_launcher kernel"
        if not _same_file(request.get("executable", ""), self.executable):
            return "another interpreter"
        if comparable_env(request.get("env", {})) != self.env:
            return "another environment"
        if not self.ready:
            return "still importing"
        return None

    def accept(self):
        """One request: refused, or forked. Returns the request in the fork, else None."""
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            request, fds = self.receive(conn)
            why = self.why_not(request, fds)
        except (OSError, ValueError) as exc:
            request, why = None, f"bad request ({type(exc).__name__})"
        if why:
            for fd in fds:
                os.close(fd)
            self.refuse(conn, why)
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.listener.close()
            for pidfd, (other, _) in self.kernels.items():
                os.close(pidfd)
                other.close()
            conn.close()
            _die_with_parent(parent)
            return request, fds
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:  # the stub is gone already
            os.kill(pid, signal.SIGKILL)
        self.kernels[os.pidfd_open(pid)] = (conn, pid)
        return None

    def serve(self, lifeline: int):
        """Until the lifeline closes; returns (request, fds) in a fork only."""
        while True:
            stubs = {conn.fileno(): pidfd for pidfd, (conn, _) in self.kernels.items()}
            readable, _, _ = select.select([self.listener, lifeline, *stubs, *self.kernels],
                                           [], [])
            if lifeline in readable and not os.read(lifeline, 4096):
                for conn, pid in self.kernels.values():
                    _kill(pid)
                return None
            for fd in readable:
                if fd in self.kernels:  # a kernel exited: reap it, tell its stub
                    conn, pid = self.kernels.pop(fd)
                    os.close(fd)
                    _, status = os.waitpid(pid, 0)
                    try:
                        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                    except OSError:
                        pass
                    conn.close()
                elif fd in stubs and stubs[fd] in self.kernels:  # a stub went away (or spoke)
                    conn, pid = self.kernels[stubs[fd]]
                    try:
                        gone = not conn.recv(4096)  # a stub says nothing more: discarded
                    except OSError:
                        gone = True
                    if gone:
                        _kill(pid)  # its pidfd reports the exit; reaped there
            if self.listener in readable:
                forked = self.accept()
                if forked is not None:
                    return forked


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def as_imported_in_a_kernel() -> None:
    """What a library decided at import from whether a kernel was running, decided as inside
    one: pandas shows at most 20 columns in a kernel (in a terminal, as many as fit)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        pandas.set_option("display.max_columns", 20)


def become_kernel(request: dict, fds: list[int]) -> None:
    """In the fork: the kernel `python -m ipykernel_launcher ARGS` would have started."""
    os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin, *request["argv"][2:]]
    as_imported_in_a_kernel()
    kernelapp = importlib.import_module("ipykernel.kernelapp")
    code = 0
    try:
        kernelapp.launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, then exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit(code: int) -> None:
    """A kernel's exit without the interpreter's final teardown of every preloaded module
    (which would copy the server's whole memory into the fork, page by page, for a second or
    so): what that teardown does that matters is done here. Threads that are not daemons are
    waited for, the exit handlers run (IPython's clears the notebook's namespace, so files it
    left open are closed and flushed, and closes its history), the streams are flushed."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def serve(address: str) -> None:
    """The server's main: listen first (stubs queue), import, then fork kernels on request."""
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # this script's folder; a kernel's `-m` entry is dropped by its launcher
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the runner decides what stops
    server = _Server(address)
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - a server that cannot preload forks nothing
        print(f"care-trends kernel server: not forking kernels ({exc})", file=sys.stderr)
    else:
        server.ready = True
    forked = server.serve(lifeline=0)
    if forked is None:  # stopped: its folder goes (the runner removes it too, or a later run)
        shutil.rmtree(os.path.dirname(address), ignore_errors=True)
        sys.exit(0)
    become_kernel(*forked)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "stub":
        stub(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: kernels.py stub ADDRESS ARGV... | kernels.py serve ADDRESS")
