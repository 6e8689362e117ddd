"""Logging for Snakemake jobs: everything a job says goes to its log file."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time

# A job's fixed cost against its work (benchmarks/job_sizes.py reads this line): the wall
# time from the process's start (the interpreter, Snakemake's script preamble, imports) and
# the time from `setup` to the job's end (its own work); and the process's CPU time (user +
# system, its own and its finished children's), which other jobs on the cores do not inflate
# as they do the wall time (the plan's rates are CPU seconds on one core).
TIMING = "job timing: wall %.3f s, work %.3f s, cpu %.3f s"


def _process_age() -> float:
    """Seconds since this process started (from /proc, to 10 ms; psutil elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        import psutil

        return time.time() - psutil.Process().create_time()


def _log_timing(start: float) -> None:
    t = os.times()
    logging.getLogger("promptscape").info(TIMING, _process_age(), time.monotonic() - start,
                                          t.user + t.system + t.children_user
                                          + t.children_system)


def setup(path: str | None) -> logging.Logger:
    """Send logging and stderr to `path` (the rule's log) and return the package logger."""
    if path:
        stream = open(path, "w", buffering=1)
        sys.stderr = stream
    else:
        stream = sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    atexit.register(_log_timing, time.monotonic())
    return logging.getLogger("promptscape")


class Progress:
    """Logs `done/total`, the fraction done, rate and time left at most every `every` seconds.

    A loop that finishes within `every` seconds logs nothing; one that has logged also logs
    its completion."""

    def __init__(self, logger: logging.Logger, total: int, what: str, every: float = 10.0):
        self.logger, self.total, self.what, self.every = logger, total, what, every
        self.start = self.last = time.monotonic()
        self.reported = False

    def update(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now - self.last < self.every and (done < self.total or not self.reported):
            return
        self.last, self.reported = now, True
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        self.logger.info("%s %d/%d (%.0f%%, %.1f/s, %.0f s left)%s", self.what, done,
                         self.total, 100.0 * done / max(self.total, 1), rate, left,
                         f" {extra}" if extra else "")
