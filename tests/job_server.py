"""Job scripts that start in a fraction of a second: the interpreter of the Snakemake jobs in
the tests, as a client of a server that imported the jobs' libraries once.

A job of the workflow is a Python script (Snakemake's `script:`) run in a new process; before
its own work it spends about 0.5 CPU-seconds importing numpy, pandas, pyarrow, Snakemake's
script support and promptscape, 1.5 more importing torch where it trains or scores a
network, 1.2 more on torch's compiler stack at its first optimiser, 0.5 on Altair where it
draws. The tests run
about two hundred such jobs, most of them small, and those imports were a third of the
suite's time. Here a server makes them once, and runs each job in a fork of itself.

The client: the tests' Snakemake processes run their jobs' scripts with `command()` as the
Python interpreter (in place of `sys.executable`, tests/snakemake_server.py), so a job starts as
`python -I -S tests/job_server.py SCRIPT`: that connects to the server for its environment
under the folder named by PROMPTSCAPE_TEST_JOB_SERVERS (starting it if none runs), hands it
the script, its arguments, working directory, environment and standard streams, forwards the
signals it receives to the job and exits with the job's status. Killed, it ends the job: the
server kills the job when the client's connection closes first.

The server (`python tests/job_server.py --serve SOCKET`) imports what the jobs import, the
promptscape of its PYTHONPATH included (a test that runs an edited copy of the library runs
its jobs as new processes, `workflow_helpers.environment`), and starts no thread (a fork
copies only the thread that forks). Each request gets a fork, the job; one loop of the
server watches every job and its client: the job's exit status goes back to the client, the
client's end (or a signal it forwards) goes to the job's process group. (A fork of the
server costs about 25 ms of CPU, most of it copying and then freeing the page tables of its
450 MB: a fork per connection that forked the job and watched it cost a job that much more.)
The job sets its environment, working
directory, `sys.argv`, `sys.path` and standard streams as `python SCRIPT` would and runs the
script as `__main__`; it ends as a new process ends (exit handlers, exit status, a traceback
for an uncaught exception).

One server per environment: the key is the environment but the variables pytest sets per
test or worker (PYTEST_*) and a few that no library reads as it loads (`UNREAD_AT_START`),
and the process's nice value. Thread counts (OMP_NUM_THREADS and
the like, which Snakemake sets per job from its threads) and numpy's and torch's kernel
choices (NPY_DISABLE_CPU_FEATURES, ATEN_CPU_CAPABILITY) are read when the libraries load, so
a job gets a server that loaded them under its own values. Each job draws new seeds for
the global random states of numpy and torch, as a new process does (`random` reseeds itself
in a fork). What the jobs of one server share, where new processes would each draw their
own, is the string-hash seed (the workflow's artifacts do not depend on it: a test rebuilds
a run with new processes, `workflow_helpers.snakemake(fresh_jobs=True)`, and compares).

Two things read differently: Snakemake's `benchmark:` files of a rule measure the client
(its process tree is the shell's), not the job; and a job's logged wall time leaves out the
imports it did not make.

CPU: every job's user + system seconds (with its children's), each
server's import time, and at each server's end the rest of its own (accepting and forking)
are appended to `cpu.tsv` in the folder (tab-separated: the job's PROMPTSCAPE_TEST_CPU_TAG,
or "server" and "server end"; seconds; the job's script's file name), for
benchmarks/pytest_cpu.py and the line the session ends with (`summary`). The servers are no
process's children (they outlive the job that started them), so `time python -m pytest` does
not count them: add that line's figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import sys

VARIABLE = "PROMPTSCAPE_TEST_JOB_SERVERS"  # empty: no servers, every job a new process


def _available() -> bool:
    """What the servers need: fork, file descriptors passed over Unix sockets, pidfds
    (Linux 5.3 and later)."""
    if not (hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(os, "pidfd_open")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


AVAILABLE = _available()
TAG = "PROMPTSCAPE_TEST_CPU_TAG"
# Variables no library reads when it loads, which differ between the jobs of a session: the
# CPU tag, the working directory the shell exports (sent apart), torch's compile cache folder
# (torch sets it in os.environ, to its default, once a process has used it).
UNREAD_AT_START = frozenset({TAG, "PWD", "OLDPWD", "_", "SHLVL", "TORCHINDUCTOR_CACHE_DIR"})
IDLE_SECONDS = 600  # a server with no job for this long ends (a session killed before its end)
# A client waits this long for a server to start while the server lives: its imports take
# about 4 CPU-s, which a server started at a low priority on busy cores gets slowly.
START_SECONDS = 900


def command() -> str:
    """The interpreter command line Snakemake should run job scripts with (its
    `sys.executable`): this file as a client, in an interpreter that starts with nothing."""
    return shlex.join([sys.executable, "-I", "-S", os.path.abspath(__file__)])


def key(env: dict[str, str]) -> str:
    """The server a job with environment `env` (and this process's nice value) runs on."""
    kept = sorted((k, v) for k, v in env.items()
                  if not k.startswith("PYTEST_") and k not in UNREAD_AT_START)
    text = json.dumps([kept, os.nice(0)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# -- the client ---------------------------------------------------------------------------

def _send(conn: socket.socket, message: dict, fds: list[int] = ()) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        sent = socket.send_fds(conn, [data], list(fds))
        data = data[sent:]
    conn.sendall(data)


def _lines(conn: socket.socket):
    pending = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield json.loads(line)


def _try_connect(path: str) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        return conn
    except OSError:
        conn.close()
        return None


def _connect(folder: str, env: dict[str, str]) -> socket.socket:
    """A connection to the server of `env`, started (by one client at a time) if none runs."""
    name = key(env)
    path = os.path.join(folder, f"{name}.sock")
    conn = _try_connect(path)
    if conn is not None:
        return conn
    import fcntl
    import subprocess
    import time

    with open(os.path.join(folder, f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _try_connect(path)  # another client started it meanwhile
        if conn is not None:
            return conn
        with open(os.path.join(folder, f"{name}.log"), "ab") as log:
            server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve",
                                       path], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while (conn := _try_connect(path)) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                log = open(os.path.join(folder, f"{name}.log"), errors="replace").read()
                raise SystemExit(f"job server for {path} did not start "
                                 f"({server.poll()}):\n{log[-4000:]}")
            time.sleep(0.02)
        return conn


def client(argv: list[str]) -> None:
    env = dict(os.environ)
    conn = _connect(env[VARIABLE], env)
    _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": env}, fds=[0, 1, 2])

    def forward(signum, frame):
        try:
            _send(conn, {"signal": signum})
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    for reply in _lines(conn):
        code = reply["returncode"]
        if code < 0:  # died of a signal: so does this process, as its caller would see it
            _die_of(-code)
        raise SystemExit(code)
    raise SystemExit("job server: the connection ended before the job did")


# -- the server ----------------------------------------------------------------------------

def _die_of(signum: int) -> None:
    if signum not in (signal.SIGKILL, signal.SIGSTOP):  # (those have no handler to reset)
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal whose default is not to end the process


def _warm() -> None:
    """What the workflow's jobs import (Snakemake's script preamble, the table and network
    libraries, the compiler stack torch's optimisers load, Altair, promptscape)."""
    import ctypes  # noqa: F401 (the jobs' parent-death signal)
    import pickle  # noqa: F401

    import altair  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import snakemake.io  # noqa: F401
    import snakemake.script  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401
    import vl_convert  # noqa: F401
    import yaml  # noqa: F401

    del torch
    # What the jobs imported after their fork began: Snakemake's job-end report (tabulate,
    # about 20 ms in every job), what Altair imports as it saves a chart, and SciPy, which
    # the prior's and the edit analysis's functions import as they run (0.3 s in each).
    import altair.utils.save  # noqa: F401
    import narwhals._interchange.dataframe  # noqa: F401
    import narwhals._pandas_like.dataframe  # noqa: F401
    import narwhals._pandas_like.namespace  # noqa: F401
    import narwhals.stable.v1._namespace  # noqa: F401
    import pandas.core.methods.to_dict  # noqa: F401
    import pandas.io.formats.string  # noqa: F401
    import scipy.integrate  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.sparse.csgraph  # noqa: F401
    import scipy.special  # noqa: F401
    import tabulate  # noqa: F401
    # And the library itself, every module of it: the one its PYTHONPATH names (part of the
    # server's key), as a job's would.
    import importlib
    import pkgutil

    import promptscape

    for module in pkgutil.walk_packages(promptscape.__path__, "promptscape."):
        if not module.name.endswith(".__main__"):  # a command line, which runs on import
            importlib.import_module(module.name)
    ready_to_fork()


def ready_to_fork() -> None:
    """The end of a server's imports (here, and in tests/snakemake_server.py). A fork copies
    the forking thread alone: the native threads of the libraries (pyarrow's allocator
    starts one) are made safe by their fork handlers, but a Python thread's locks would stay
    held in the fork, so there must be none. The imports' objects go out of the collector's
    reach: a fork's collections would otherwise go through all of them, and write to (copy)
    every page that holds one."""
    import gc
    import threading

    assert threading.active_count() == 1, f"threads at fork: {threading.enumerate()}"
    gc.collect()
    gc.freeze()


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_line(folder: str, tag: str, seconds: float, script: str = "") -> None:
    with open(os.path.join(folder, "cpu.tsv"), "a") as out:
        out.write(f"{tag}\t{seconds:.3f}\t{os.path.basename(script)}\n")


def enter(cwd: str, env: dict[str, str], streams: list[int]) -> None:
    """In a fork that runs a request as a new process would (a job here, a Snakemake command
    in tests/snakemake_server.py): its own process group (for its caller to signal or kill),
    the file descriptors `streams` as its standard input, output and error, the request's
    working directory and environment."""
    import importlib

    os.setpgid(0, 0)
    for target, fd in enumerate(streams):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(cwd)
    importlib.invalidate_caches()  # relative sys.path entries looked up from the server's
    os.environ.clear()
    os.environ.update(env)


def _job(request: dict, fds: list[int]):
    """In the job's process: everything as `python SCRIPT ARGS` sets it (`enter`, its signal
    handlers, `sys.argv`, `sys.path[0]`, new random seeds); returns the script, which
    `_run_script` runs at the top of the stack."""
    enter(request["cwd"], request["env"], fds)
    import ctypes

    try:  # killed with its server (PR_SET_PDEATHSIG), as it is with its client
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    script, *args = request["argv"]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    # New seeds for the global random states, as a new process draws them (`random`
    # reseeds itself after a fork).
    import numpy
    import torch

    numpy.random.seed()
    torch.seed()
    return script


def _run_script(script: str) -> None:
    import builtins
    import types

    with open(script, "rb") as source:  # not under this file's `from __future__` imports
        code = compile(source.read(), script, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins
    main.__cached__ = None
    sys.modules["__main__"] = main
    status = outcome(lambda: exec(code, main.__dict__))

    def clear_main():
        import gc

        main.__dict__.clear()  # the script's objects go first, as at an interpreter's end (a
        gc.collect()  # file it left open is flushed and closed)

    finish(status, clear_main)


def outcome(program) -> int:
    """Call `program` as the top of a process: the exit status the interpreter would end
    with (a SystemExit's code, its message printed; 1 after printing the traceback of an
    uncaught exception; -SIGINT, death by that signal, for KeyboardInterrupt)."""
    try:
        program()
        return 0
    except SystemExit as end:  # as the interpreter reads it
        code = end.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    except BaseException as error:  # noqa: BLE001 (printed, status 1, as for a script)
        trace = error.__traceback__  # from the first frame not of this file, as a new
        while trace is not None and trace.tb_frame.f_code.co_filename == __file__:  # process
            trace = trace.tb_next  # prints it
        sys.excepthook(type(error), error.with_traceback(trace), trace)
        # Python ends a program stopped by Ctrl-C by SIGINT, for its caller to see.
        return -signal.SIGINT if isinstance(error, KeyboardInterrupt) else 1


def finish(status: int, before_flush=None) -> None:
    """End a fork that ran a request as a new process (a job here, a Snakemake command in
    tests/snakemake_server.py) without tearing down its modules: that would write to every
    page the fork shares with its server (reference counts, the collector's marks), which
    was most of the cost of a small job and 0.3 CPU-s of every Snakemake command. What a
    process leaves to its end is done, in the interpreter's order: its threads are joined,
    its exit handlers run (logging's flush and Snakemake's last messages among them),
    `before_flush` runs, the standard streams are flushed; then it exits with `status`, or
    dies of signal -`status`."""
    import atexit
    import threading

    threading._shutdown()
    atexit._run_exitfuncs()
    if before_flush is not None:
        before_flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


def _request(conn: socket.socket) -> tuple[dict, list[int], bytes]:
    """A client's request, its standard streams' file descriptors, and what followed it (a
    signal forwarded at once)."""
    conn.settimeout(60)  # a client sends its request as it connects
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while b"\n" not in data:
        more = conn.recv(1 << 20)
        if not more:
            raise OSError("the client ended before its request")
        data += more
    conn.setblocking(True)
    line, pending = data.split(b"\n", 1)
    return json.loads(line), fds, pending


class _Job:
    """A running job, as the server watches it: its client's connection (None once the
    client ended) and what the client sent that is not a whole line yet."""

    def __init__(self, pid: int, conn: socket.socket, request: dict, pending: bytes):
        self.pid, self.conn, self.pending = pid, conn, pending
        self.tag, self.script = request["env"].get(TAG, ""), request["argv"][0]
        self.watch = os.pidfd_open(pid)

    def relay(self) -> None:
        """Forward the whole lines received (signals) to the job's process group."""
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            try:
                os.killpg(self.pid, json.loads(line)["signal"])
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def serve(path: str):
    """Run the server on the Unix socket `path`: accept requests, fork a job for each, and
    watch every running job and its client in one loop (a job's end goes to its client, the
    client's signals or end to the job). Returns, in a job's process only, the script to
    run."""
    import select
    import time

    folder = os.path.dirname(path)
    _warm()
    imports = _own_cpu()
    _cpu_line(folder, "server", imports)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = f"{path}.{os.getpid()}"
    listener.bind(temporary)
    listener.listen(64)
    with open(f"{path}.pid", "w") as out:
        out.write(str(os.getpid()))
    os.rename(temporary, path)  # clients connect once it accepts
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = os.getpid()
    jobs: dict[int, _Job] = {}  # by pidfd
    last = time.monotonic()
    try:
        while os.path.isdir(folder):
            conns = {job.conn: job for job in jobs.values() if job.conn is not None}
            ready, _, _ = select.select([listener, *conns, *jobs], [], [], 5)
            if not ready:
                if not jobs and time.monotonic() - last > IDLE_SECONDS:
                    break
                continue
            last = time.monotonic()
            for item in ready:
                if item is listener:
                    conn, _ = listener.accept()
                    try:
                        request, fds, pending = _request(conn)
                    except (OSError, ValueError):
                        conn.close()
                        continue
                    pid = os.fork()
                    if pid == 0:  # the job: none of the server's sockets and pidfds
                        listener.close()
                        conn.close()
                        for job in jobs.values():
                            job.close()
                            os.close(job.watch)
                        return _job(request, fds)
                    for fd in fds:
                        os.close(fd)
                    try:  # its process group, set on both sides (before a signal comes)
                        os.setpgid(pid, pid)
                    except (PermissionError, ProcessLookupError):
                        pass
                    job = _Job(pid, conn, request, pending)
                    job.relay()
                    jobs[job.watch] = job
                elif item in conns:
                    job = conns[item]
                    chunk = job.conn.recv(4096)
                    if chunk:
                        job.pending += chunk
                        job.relay()
                    else:  # the client ended (killed): so does the job
                        try:
                            os.killpg(job.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        job.close()
                else:  # a job ended
                    job = jobs.pop(item)
                    os.close(job.watch)
                    _, status, usage = os.wait4(job.pid, 0)
                    _cpu_line(folder, job.tag, usage.ru_utime + usage.ru_stime, job.script)
                    if job.conn is not None:
                        try:
                            _send(job.conn, {"returncode": os.waitstatus_to_exitcode(status)})
                        except OSError:
                            pass
                    job.close()
    except SystemExit:  # SIGTERM: the session's end
        pass
    finally:
        if os.getpid() == server:  # (not in a job, which returns through here)
            for name in (path, f"{path}.pid"):
                try:
                    os.unlink(name)
                except OSError:
                    pass
            if os.path.isdir(folder):
                _cpu_line(folder, "server end", _own_cpu() - imports)
    return None


# -- the pytest session ---------------------------------------------------------------------

def enabled(env=os.environ) -> bool:
    """Whether the processes of environment `env` run their jobs on the servers."""
    return bool(env.get(VARIABLE))


def start_session() -> str:
    """Make the folder of this session's servers, named in the environment, which every
    process of the session inherits. Returns the folder."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="ps-jobs-", dir="/tmp" if len(tempfile.gettempdir()) > 40
                              else None)  # a socket's path has at most 107 bytes
    os.environ[VARIABLE] = folder
    return folder


def cpu_rows(folder: str | None) -> list[tuple[str, float]]:
    """The (tag, seconds) rows of the session's `cpu.tsv` so far (none without servers)."""
    try:
        with open(os.path.join(folder, "cpu.tsv")) as rows:
            return [(tag, float(seconds)) for tag, seconds, *_ in
                    (row.rstrip("\n").split("\t") for row in rows)]
    except (OSError, TypeError):
        return []


def summary(folder: str) -> str:
    """What the servers of the session in `folder` did, from their `cpu.tsv`."""
    servers, ends, jobs = [], [], []
    for tag, seconds in cpu_rows(folder):
        {"server": servers, "server end": ends}.get(tag, jobs).append(seconds)
    return (f"job servers (tests/job_server.py): {len(servers)} started, "
            f"{sum(servers):.1f} CPU-s of imports, {sum(ends):.1f} of accepting and forking; "
            f"{len(jobs)} jobs, {sum(jobs):.1f} CPU-s (none of it in this process's "
            f"children's time)")


def stop_servers(folder: str) -> None:
    """End this session's servers (each writes its last CPU line) and wait for them."""
    import time

    servers = []
    for name in os.listdir(folder):
        if name.endswith(".pid"):
            try:
                with open(os.path.join(folder, name)) as pid_file:
                    servers.append(int(pid_file.read()))
            except (OSError, ValueError):  # a server that ended meanwhile
                pass
    for pid in servers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for pid in servers:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)


def end_session(folder: str) -> None:
    """End this session's servers and remove the folder."""
    import shutil

    stop_servers(folder)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        script = serve(sys.argv[2])
        if script is not None:  # in a job's process
            _run_script(script)
    else:
        client(sys.argv[1:])
