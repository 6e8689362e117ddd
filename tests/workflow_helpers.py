"""Running the workflow through the Snakemake CLI from tests."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import job_server

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TINY = REPO / "tests" / "data" / "tiny" / "config.yaml"
NEURAL = REPO / "tests" / "data" / "neural" / "config.yaml"
STUBS = REPO / "tests" / "stubs"


def environment(library: Path | None = None, fresh_jobs: bool = False,
                **extra: str) -> dict[str, str]:
    """os.environ for a subprocess (Snakemake, its jobs, a command line), with `extra`:
    - this tree's src/ first on PYTHONPATH, so that it imports the promptscape under test,
      not the one an editable install of another checkout points at (or only `library`, a
      copy of src/, see `edited_library`);
    - tests/stubs first on PATH: its `scontrol` spares every Snakemake process a wait of
      about 9 s where no Slurm controller answers (see the stub);
    - the folder of the session's job servers (tests/job_server.py), unless `fresh_jobs` or
      `library`: a Snakemake process of `snakemake` or of the shared runs runs its jobs
      there; without it, as new processes (an edited library's jobs so, which would each
      need a server of their own)."""
    python_path = str(library) if library is not None else os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    path = os.pathsep.join(filter(None, [str(STUBS), os.environ.get("PATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "PATH": path, **extra}
    if fresh_jobs or library is not None or not job_server.enabled(env):
        env.pop(job_server.VARIABLE, None)
    return env


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    """The command line of snakemake on the repository's Snakefile in `workdir` with
    `config` (run it with `environment()`)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True,
              timeout: int = 900, library: Path | None = None,
              fresh_jobs: bool = False) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in `workdir` with `config`; with the
    promptscape package of `library` (a copy of src/, see `edited_library`) if given. The
    command runs as `python -m snakemake` would, in a fork of this process's Snakemake server
    (tests/snakemake_server.py), which spares it Snakemake's imports; its jobs run on the
    session's job servers (tests/job_server.py), or as new processes with `fresh_jobs` (or
    `library`)."""
    return _server().run(snakemake_command(workdir, config, *args),
                         env=environment(library, fresh_jobs), timeout=timeout, check=check)


class _Server:
    """This process's Snakemake server (tests/snakemake_server.py): started at the first
    command, ended when the process exits."""

    def __init__(self):
        env = environment()
        del env["PYTHONPATH"]  # each command gets its own (the server preloads src/'s)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name(
            "snakemake_server.py")), "--library", str(SRC)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0, env=env, cwd=REPO)
        self.pending = b""  # read from the server, not yet a whole reply
        self.started: Started | None = None  # the command `start` started
        atexit.register(self.close)

    def close(self) -> None:
        """End the server (end of its input) and reap it, so that its CPU counts as this
        process's children's."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _reply(self, deadline: float | None) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            if deadline is not None:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise subprocess.TimeoutExpired(self.proc.args, 0)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the Snakemake server ended ({self.proc.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def _send(self, request: dict) -> None:
        data = json.dumps(request).encode() + b"\n"
        while data:  # a raw pipe may take part of it
            data = data[self.proc.stdin.write(data):]

    def start(self, command: list[str], *, env: dict, log: Path) -> Started:
        """`command` started as its fork, its output and errors to `log`; SIGINT raises
        KeyboardInterrupt in it. Nothing else runs on this server until it has ended."""
        assert command[1:3] == ["-m", "snakemake"], command
        self._idle()
        self._send({"argv": command[3:], "env": env, "cwd": os.getcwd(), "stdout": str(log),
                    "stderr": str(log), "sigint": True})
        self.started = Started(self, command, self._reply(None)["pid"])
        return self.started

    def _idle(self) -> None:
        assert self.started is None or self.started.returncode is not None, \
            "a command started in the background has not ended"

    def run(self, command: list[str], *, env: dict, timeout: float,
            check: bool) -> subprocess.CompletedProcess:
        """`command`: `python -m snakemake ARGS` (`snakemake_command`), run as its fork."""
        assert command[1:3] == ["-m", "snakemake"], command
        self._idle()
        argv = command[3:]
        with tempfile.TemporaryDirectory(prefix="snakemake-output-") as folder:
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            self._send({"argv": argv, "env": env, "cwd": os.getcwd(), "stdout": str(out),
                        "stderr": str(err)})
            pid = self._reply(None)["pid"]
            try:
                done = self._reply(time.monotonic() + timeout)
            except BaseException as stop:  # a timeout, or the test stopped (Ctrl-C)
                try:
                    os.killpg(pid, signal.SIGKILL)  # the command, its jobs and their children
                except ProcessLookupError:  # it ended meanwhile
                    pass
                try:
                    self._reply(None)  # its end, before the next command's replies
                except Exception:  # noqa: BLE001 (the server itself failed: a new one next)
                    self.proc.kill()
                if isinstance(stop, subprocess.TimeoutExpired):
                    raise subprocess.TimeoutExpired(command, timeout) from None
                raise
            _forked_cpu[0] += done["cpu"]
            proc = subprocess.CompletedProcess(command, done["returncode"],
                                               out.read_text(errors="replace"),
                                               err.read_text(errors="replace"))
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc


class Started:
    """A command `start` ran in the background: what the tests use of a subprocess.Popen
    (`pid`, its process group's too; `poll`, `wait`, `kill`, `returncode`)."""

    def __init__(self, server: _Server, args: list[str], pid: int):
        self.server, self.args, self.pid = server, args, pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                done = self.server._reply(None if timeout is None
                                          else time.monotonic() + timeout)
            except subprocess.TimeoutExpired:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            _forked_cpu[0] += done["cpu"]
            self.returncode = done["returncode"]
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL to its process group (the command, its jobs and their children)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait()


def start(workdir: Path, config: Path, *args: str, log: Path) -> Started:
    """Snakemake in the background as `snakemake` runs it (a fork of this process's server,
    in its own process group, its jobs on the job servers), its output and errors to `log`,
    SIGINT handled as in a new Python process."""
    return _server().start(snakemake_command(workdir, config, *args), env=environment(),
                           log=log)


_servers: list[_Server] = []
_forked_cpu = [0.0]  # seconds of CPU of the commands the servers ran


def _server() -> _Server:
    if not _servers or _servers[0].proc.poll() is not None:
        _servers[:] = [_Server()]
    return _servers[0]


def forked_cpu() -> float:
    """CPU seconds of the commands `snakemake` ran in this process (in the server's forks,
    which this process's resource usage does not count)."""
    return _forked_cpu[0]


def planned_jobs(workdir: Path, config: Path, library: Path | None = None) -> dict[str, int]:
    """Jobs a dry run would execute, by rule ({} when there is nothing to do)."""
    proc = snakemake(workdir, config, "-n", library=library)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    stats = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in stats.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of a completed run (file times kept, so Snakemake sees it as complete) for a
    test that changes it; the shared runs (tests/workflow/conftest.py) stay as they are."""
    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    return target


def fingerprint(workdir: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and modification time of every file of a run but Snakemake's own locks, logs
    and I/O cache (every invocation, a dry run too, rewrites .snakemake/iocache): what a test
    that changed the run would have changed."""
    own = {(".snakemake", "locks"), (".snakemake", "log"), (".snakemake", "iocache")}
    return {str(p.relative_to(workdir)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                          p.stat().st_mtime_ns)
            for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.relative_to(workdir).parts[:2] not in own}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load_config(path: Path = TINY) -> dict:
    return yaml.safe_load(path.read_text())


def digests(workdir: Path) -> dict[str, str]:
    """SHA-256 of every Parquet artifact under results/."""
    root = workdir / "results"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def edited_library(tmp_path: Path, path: str, old: str | None, new: str) -> Path:
    """A copy of src/ (the real files are never touched) in which src/promptscape/`path`
    has its first `old` replaced by `new` (`new` appended when `old` is None)."""
    return edited_library_with(tmp_path, [(path, old, new)])


def edited_library_with(tmp_path: Path, edits: list[tuple[str, str | None, str]]) -> Path:
    """A copy of src/ with every (path, old, new) edit of `edits` made, in order (see
    `edited_library`)."""
    root = tmp_path / "library"
    shutil.copytree(REPO / "src", root, ignore=shutil.ignore_patterns("__pycache__"))
    for path, old, new in edits:
        target = root / "promptscape" / path
        text = target.read_text()
        if old is None:
            text += new
        else:
            assert old in text, f"{old!r} not in {path}"
            text = text.replace(old, new, 1)
        target.write_text(text)
    return root
