"""A Snakemake command line that starts in a fraction of a second: this process imports
Snakemake (and collects its plugins) once, then runs each command it is sent in a fork of
itself, as `python -m snakemake ARGS` would run it in a new process.

A new Snakemake process spends about 1.5 CPU-seconds importing Snakemake, its plugins and
their dependencies before it reads the Snakefile, and 0.16 more importing the promptscape
modules the rule files import; the tests start about a hundred of them (mostly dry runs of a
changed config, each about 2 CPU-seconds in all). A fork starts with those imports made:
promptscape's from the src/ folder given by `--library` (`_preload`), which a command whose
PYTHONPATH starts elsewhere (an edited copy of the library) forgets before it starts
(`_purge_library`). Nothing else is shared: this process never runs a command itself, so
every fork starts from the state the imports left, as a new process would, with the
command's environment, working directory and `sys.path` (its PYTHONPATH first, as Python
puts it). One difference remains: the forks share the server's string-hash seed, where new
processes each draw one (the order of a set of strings, in Snakemake's own process only).

Used by `workflow_helpers.snakemake` (one server per test process, started at its first
command). `python tests/snakemake_server.py --main ARGS` is `python -m snakemake ARGS` in a
new process. Both run the job scripts on the session's job servers (tests/job_server.py)
where the environment names them. The protocol, one JSON object per line: a request
{"argv", "env", "cwd", "stdout", "stderr"} (the same path for both: one file), and "sigint"
(true: SIGINT raises KeyboardInterrupt in the command, as in a process started with it
handled by default) on standard input; the replies {"pid"} when the
fork starts and {"returncode", "cpu"} when it ends (`cpu`: user + system seconds of the fork
and everything it waited for). End of input ends the server.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import signal
import sys
from pathlib import Path

import job_server


def _warm() -> None:
    """What `python -m snakemake` imports and collects before it reads a Snakefile."""
    import snakemake.api  # noqa: F401
    import snakemake.cli  # noqa: F401
    import snakemake.dag  # noqa: F401
    import snakemake.persistence  # noqa: F401
    import snakemake.scheduling.job_scheduler  # noqa: F401
    import snakemake.workflow  # noqa: F401
    # What every command imported after its fork began (about 190 modules, 0.1 CPU-s):
    # its arguments' dataclasses, its profiles and storage, the config's JSON schema, and
    # smart_open (with requests), which Snakemake's reading of the Snakefile imports.
    import argparse_dataclass  # noqa: F401
    import graphlib  # noqa: F401
    import jsonschema  # noqa: F401
    import packaging.version  # noqa: F401
    import platformdirs  # noqa: F401
    import smart_open  # noqa: F401
    import snakemake.profiles  # noqa: F401
    import snakemake.storage  # noqa: F401
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
    from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

    for registry in (ExecutorPluginRegistry, LoggerPluginRegistry, ReportPluginRegistry,
                     StoragePluginRegistry):
        registry()
    assert not any(name.split(".")[0] == "promptscape" for name in sys.modules), \
        "Snakemake imported promptscape"


def _run(request: dict, base_path: list[str]) -> None:
    """In the fork: the command as `python -m snakemake` runs it. Ends by raising SystemExit
    with its exit status (which `serve` ends the fork with, `job_server.finish`)."""
    # Its own process group, for the client's timeout to kill; no input, its output to the
    # client's files.
    output = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    streams = [os.open(os.devnull, os.O_RDONLY), output,
               os.dup(output) if request["stderr"] == request["stdout"] else
               os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    if request.get("sigint"):  # Ctrl-C raises KeyboardInterrupt, even where this process
        signal.signal(signal.SIGINT, signal.default_int_handler)  # was started ignoring it
    job_server.enter(request["cwd"], request["env"], streams)
    python_path = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    # As Python builds it: a .pth file's folder already on the path is not added again.
    sys.path[:] = [request["cwd"], *python_path, *(p for p in base_path if p not in python_path)]
    _main(request["argv"])


def _main(argv: list[str]) -> None:
    """`python -m snakemake ARGV`, its job scripts run by the session's job servers
    (tests/job_server.py) where the environment names their folder."""
    import snakemake
    from snakemake.cli import main

    if job_server.enabled():
        _scripts_on_job_servers()
    # As `python -m snakemake` sets it (argparse names the program after it).
    sys.argv = [os.path.join(os.path.dirname(snakemake.__file__), "__main__.py"), *argv]
    main(argv)  # exits: SystemExit


def _scripts_on_job_servers() -> None:
    """Snakemake runs a `script:` job as `{sys.executable} SCRIPT` (without a conda env or a
    container): here as `{job_server.command()} SCRIPT`. Nothing else Snakemake starts
    changes (a `run:` job, a `shell:` command)."""
    from snakemake.script import PythonScript

    original = PythonScript.execute_script
    python = job_server.command()

    def execute_script(self, fname, edit=False):
        if self.container_img is not None or self.conda_env is not None or self.env_modules:
            return original(self, fname, edit)
        self._execute_cmd("{py_exec} {fname:q}", py_exec=python, fname=fname,
                          is_python_script=True)

    PythonScript.execute_script = execute_script


def _preload(library: str) -> None:
    """Import the promptscape modules the workflow's rule files import at parse time, from
    `library` (a src/ folder), whatever else provides a promptscape (an editable install of
    another checkout)."""
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    sys.path.insert(0, library)
    try:
        import promptscape

        assert Path(promptscape.__file__).resolve().is_relative_to(Path(library).resolve()), \
            f"promptscape preloaded from {promptscape.__file__}, not from {library}"
        names = set()
        for path in sorted(rules.glob("*.smk")):
            for match in re.finditer(r"^\s*(?:from\s+(promptscape[\w.]*)\s+import\s+(\w+)|"
                                     r"import\s+(promptscape[\w.]*))", path.read_text(), re.M):
                module, name, plain = match.groups()
                names.add(plain or module)
                if module and importlib.util.find_spec(module) is not None:
                    names.add(f"{module}.{name}")  # a submodule, if it is one
        for name in sorted(names):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:  # `from package import function`
                pass
    finally:
        sys.path.remove(library)


def _purge_library() -> None:
    """Forget the preloaded promptscape (a command that runs another copy of it)."""
    for name in [n for n in sys.modules if n.split(".")[0] == "promptscape"]:
        del sys.modules[name]


def serve(library: str | None = None) -> None:
    _warm()
    # sys.path as a process started without PYTHONPATH (the client starts the server so) has
    # it after importing Snakemake (which appends its pip-deployments folder), less the
    # script's folder (sys.path[0], which `python -m` replaces by the working directory).
    base_path = sys.path[1:]
    if library is not None:
        _preload(library)
    job_server.ready_to_fork()  # no thread; the imports frozen
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            if request["env"].get("PYTHONPATH", "").split(os.pathsep)[0] != library:
                _purge_library()
            # As a new process ends (exit handlers: Snakemake's logging writes its last
            # messages from a queue there), without tearing down the modules (0.3 CPU-s).
            job_server.finish(job_server.outcome(lambda: _run(request, base_path)))
        try:  # its process group, set on both sides: it exists before the client can kill it
            os.setpgid(pid, pid)
        except (PermissionError, ProcessLookupError):  # the fork set it, or ended
            pass
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status, usage = os.wait4(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                                  "cpu": usage.ru_utime + usage.ru_stime}) + "\n")
        replies.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--main"]:  # a new process: `python -m snakemake ARGS`, as above
        sys.path[0] = os.getcwd()
        _main(sys.argv[2:])
    serve(*sys.argv[2:3] if sys.argv[1:2] == ["--library"] else ())
