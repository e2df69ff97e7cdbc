"""Processes as /proc shows them, for the tests and benchmarks that watch a real server.py: its
children (the intake, the store writers), their niceness and CPU time."""

from __future__ import annotations

import os
import time


def stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first: index 11 is utime, 12
    stime, 16 the niceness)."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def niceness(pid: int) -> int:
    return int(stat(pid)[16])


def children(pid: int, wait: float = 0.0) -> list[int]:
    """The child processes of `pid`; with `wait`, up to that many seconds for the first one."""
    deadline = time.time() + wait
    while True:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                found = [int(child) for child in handle.read().split()]
        except OSError:
            found = []
        if found or time.time() >= deadline:
            return found
        time.sleep(0.05)
