"""Kernels forked from the run's kernel server (helpers.run.kernels): a notebook comes out
byte-identical to one run in a freshly started kernel, the fork path is really taken, anything
the server did not preload for falls back to a usual kernel, and no kernel outlives its stub
or its server."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from helpers.run import execute, kernels
from helpers.run.execute import NotebookJob
from test_report import write_notebook


def run_async(coro):
    """asyncio.run on a thread of its own: an earlier test in this process (nbclient, papermill)
    may leave an event loop set on the main thread."""
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()

pytestmark = pytest.mark.skipif(not kernels.supported(), reason="kernels are forked on Linux only")

# What could differ between a kernel that imported everything itself and one forked from a
# process that imported before any kernel existed: display formatters and the chart backend
# (helpers.present registers them with the running shell), pandas' column limit (chosen at
# import from whether a kernel runs), the interpreter's arguments, path and main module, the
# working folder, the environment, signal handling; and files written there.
PROBE = '''
# %% [markdown]
# # Probe

# %% tags=["parameters"]
analysis = "probe"

# %%
import os, pathlib, signal, sys
import matplotlib, matplotlib.pyplot as plt, numpy as np, pandas as pd
from IPython.display import Markdown
from helpers.present import charts
from helpers.present.tables import Table

charts.setup_style()
pathlib.Path(os.environ["CT_PROBE"], f"{analysis}.pid").write_text(str(os.getppid()))
pathlib.Path("written.txt").write_text("kept")
print(os.path.basename(sys.argv[0]), sys.argv[1:2], sys.path[0] == "", __name__)
print(matplotlib.get_backend(), pd.get_option("display.max_columns"), os.getcwd() == str(pathlib.Path.cwd()))
print(os.environ.get("MPLBACKEND"), os.environ.get("PYTHONHASHSEED"), hash("care-trends"))
print(signal.getsignal(signal.SIGTERM), type(get_ipython()).__name__)

# %%
wide = pd.DataFrame(np.arange(60).reshape(2, 30) / 7, columns=[f"column {i}" for i in range(30)])
wide

# %%
print(wide)

# %%
Table(wide.iloc[:, :4], caption="A table")

# %%
fig, ax = plt.subplots()
ax.plot([2014, 2015, 2016], [1.0, 3.0, 2.0], label="observed")
ax.set_title("A chart")
ax.legend();

# %%
Markdown(f"**{analysis}**: {np.round(np.linalg.solve([[2.0, 1.0], [1.0, 3.0]], [1.0, 2.0]), 6)}")
'''

HEADER = {"analysis": "probe", "analysis_title": "Probe", "la": "Nowhere", "data_edition": "-",
          "version": "0", "nav": [["01_probe", "01. Probe"]]}


def probe_job(folder: Path, stem: str = "01_probe") -> NotebookJob:
    path = write_notebook(folder, stem, PROBE)
    return NotebookJob(stem=stem, notebook=path.read_bytes(), parameters={"analysis": stem},
                       header=HEADER, timeout=120)


@pytest.fixture
def probe_env(tmp_path, monkeypatch):
    """The probe's side folder in the environment before any server starts (a server forks
    only kernels asking for the environment it imported under)."""
    monkeypatch.setenv("CT_PROBE", str(tmp_path))
    execute.kernel_environment()
    yield tmp_path
    execute.use_kernel_server(None)


@pytest.fixture
def server(probe_env):
    """A kernel server started lazily, inside the test: pytest changes PYTEST_CURRENT_TEST
    between a fixture and the test, and the server forks only for its own environment."""
    started = []

    def start():
        started.append(kernels.KernelServer.start())
        return started[-1]
    yield start
    for srv in started:
        srv.close()


def run(job: NotebookJob, address: str | None) -> dict:
    execute.use_kernel_server(address)
    try:
        return execute.execute(job)
    finally:
        execute.use_kernel_server(None)


def parent_of(folder: Path, stem: str) -> int:
    return int((folder / f"{stem}.pid").read_text())


def test_forked_kernel_gives_the_same_bytes_as_a_fresh_one(server, probe_env, tmp_path):
    server = server()
    job = probe_job(tmp_path)
    fresh = run(job, None)
    assert fresh["ok"], fresh
    assert parent_of(probe_env, job.stem) == os.getpid()  # started by this process
    forked = run(job, server.address)
    assert forked["ok"], forked
    assert parent_of(probe_env, job.stem) == server.process.pid  # forked by the server
    assert sorted(forked["files"]) == sorted(fresh["files"]) == \
        ["01_probe.html", "01_probe.ipynb", "written.txt"]
    for name, content in fresh["files"].items():
        assert forked["files"][name] == content, name
    page = fresh["files"]["01_probe.ipynb"].decode()
    assert '"alt": "A chart' in page and "image/png" in page  # the formatters were there
    assert "ipykernel_launcher.py ['-f']" in page and "inline 20 True" in page


def test_another_environment_gets_a_usual_kernel(server, probe_env, tmp_path, monkeypatch):
    server = server()
    monkeypatch.setenv("CT_PROBE_OTHER", "1")  # not what the server imported under
    job = probe_job(tmp_path)
    outcome = run(job, server.address)
    assert outcome["ok"], outcome
    assert parent_of(probe_env, job.stem) == os.getpid()


def test_no_server_gets_a_usual_kernel(probe_env, tmp_path):
    job = probe_job(tmp_path)
    outcome = run(job, str(tmp_path / "no-such-socket"))
    assert outcome["ok"], outcome
    assert parent_of(probe_env, job.stem) == os.getpid()


def test_stub_command_only_for_this_interpreters_launcher():
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", "k.json"]
    stub = kernels.stub_command("/tmp/x/kernels", command)
    assert stub[:4] == [sys.executable, "-I", "-S", kernels.__file__] and stub[-4:] == command[1:]
    assert kernels.stub_command(None, command) == command
    other = ["/no/such/python", *command[1:]]
    assert kernels.stub_command("/tmp/x/kernels", other) == other
    assert kernels.stub_command("/tmp/x/kernels", [sys.executable, "-m", "other_kernel"]) == \
        [sys.executable, "-m", "other_kernel"]


def forked_kernels(srv) -> list[psutil.Process]:
    """The server's running kernels (one killed a moment ago may not be reaped yet)."""
    alive = []
    for proc in psutil.Process(srv.process.pid).children():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


async def start_kernel(address: str) -> AsyncKernelManager:
    execute.use_kernel_server(address)
    km = execute.ForkedKernelManager(kernel_name="python3")
    await km.start_kernel(extra_arguments=list(execute.KERNEL_ARGS))
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    client.stop_channels()
    return km


def test_a_kernel_dies_with_its_stub_and_all_with_the_server(server):
    server = server()
    km = run_async(start_kernel(server.address))
    [kernel] = forked_kernels(server)
    stub = psutil.Process(km.provisioner.process.pid)
    assert "stub" in stub.cmdline()
    os.kill(stub.pid, signal.SIGKILL)  # as the pool kills a worker's descendants
    assert wait_for(lambda: not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE)
    km2 = run_async(start_kernel(server.address))
    [kernel2] = forked_kernels(server)
    folder = server.folder
    server.close()
    assert wait_for(lambda: not kernel2.is_running() or kernel2.status() == psutil.STATUS_ZOMBIE)
    assert not Path(folder).exists()
    run_async(km2.shutdown_kernel(now=True))


def test_a_stopped_server_leaves_no_folder_and_stale_ones_go(server, tmp_path):
    srv = server()
    srv.process.stdin.close()  # as when the process that started it dies
    srv.process.wait(timeout=20)
    assert not Path(srv.folder).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{kernels.FOLDER_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / "kernels").touch()
    live = tmp_path / f"{kernels.FOLDER_PREFIX}{os.getpid()}-def"
    live.mkdir()
    execute.remove_stale_job_folders(tmp_path, prefix=kernels.FOLDER_PREFIX)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(kernels.FOLDER_PREFIX)) \
        == [live.name]


def test_interrupt_passes_through_the_stub(server):
    server = server()

    async def scenario():
        km = await start_kernel(server.address)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute("import time\ntime.sleep(30)")
        await asyncio.sleep(1.0)
        await km.interrupt_kernel()  # SIGINT to the stub, relayed to the kernel
        while True:
            reply = await client.get_shell_msg(timeout=20)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        client.stop_channels()
        await km.shutdown_kernel()
        return reply["content"]
    content = run_async(scenario())
    assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt"
    assert wait_for(lambda: not forked_kernels(server))
