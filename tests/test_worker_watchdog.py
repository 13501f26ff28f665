"""The photutils workers of a killed caller exit (issue 14; ``detect._watch_caller``).

A caller killed with SIGKILL cannot shut its process pool down, and the workers are children
of Python's fork server, not of the caller: without the watchdog they would wait for work
forever. The test runs the caller in a child Python, finds its workers in /proc, kills the
caller in the middle of ``photutils_photometry(nproc=2)`` and watches the workers go."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

CALLER = """
import sys
from ezphot.photometry.detect import photutils_photometry

if __name__ == "__main__":
    print("calling", flush=True)
    photutils_photometry(sys.argv[1], nproc=2, aperture_diameter_arcsec=[5], save=False)
    print("returned", flush=True)
"""


def _stat(pid: int) -> tuple[int, str, int, int] | None:
    """(parent pid, state, start time, process group) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and ')'
    return int(fields[1]), fields[0], int(fields[19]), int(fields[2])


def _processes() -> dict[int, tuple[int, str, int, int]]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st
    return out


def _descendants(pid: int) -> dict[int, tuple[int, int]]:
    """pid -> (depth, start time) of every live descendant of ``pid`` (the caller's children
    are at depth 1: the fork server, the resource tracker; the workers at depth 2)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for p, st in procs.items():
        children.setdefault(st[0], []).append(p)
    out, todo = {}, [(pid, 0)]
    while todo:
        parent, depth = todo.pop()
        for child in children.get(parent, []):
            out[child] = (depth + 1, procs[child][2])
            todo.append((child, depth + 1))
    return out


def _alive(pid: int, start: int) -> bool:
    """The process (not a later one with its pid) runs; a zombie (exited, not yet reaped by
    whoever inherited it) is gone."""
    st = _stat(pid)
    return st is not None and st[2] == start and st[1] not in ("Z", "X")


def _session(leader: int, start: int) -> list[int]:
    """The live processes of the caller's session: its process group (its pid, from
    ``start_new_session``), started no earlier than the caller."""
    return [p for p, (_, state, began, group) in _processes().items()
            if group == leader and began >= start and state not in ("Z", "X")]


def _kill_session(leader: int, start: int) -> None:
    """SIGKILL what is left of the caller's session; Python's resource tracker last, once
    the others are gone (it then unlinks the semaphores the killed caller left in /dev/shm)."""
    def tracker(pid: int) -> bool:
        try:
            return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    for final in (False, True):
        for p in _session(leader, start):
            if final or not tracker(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _session(leader, start) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_workers_exit_when_the_caller_is_killed(dense_frame, tmp_path):
    path, _ = dense_frame
    out = tmp_path / "caller.out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        # the killed caller cannot remove its run directory: keep it out of the test's
        "EZPHOT_TMPDIR": str(tmp_path / "runs"), "MPLBACKEND": "Agg"}
    (tmp_path / "runs").mkdir()
    seen: dict[int, tuple[int, int]] = {}
    with open(out, "w") as stdout:
        caller = subprocess.Popen([sys.executable, "-c", CALLER, str(path)], stdout=stdout,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
    started = (_stat(caller.pid) or (0, "", 0, 0))[2]
    try:
        deadline = time.monotonic() + 60
        workers: dict[int, tuple[int, int]] = {}
        while len(workers) < 2:
            assert caller.poll() is None, f"the caller ended first:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"no workers after 60 s: {seen}"
            time.sleep(0.05)
            seen.update(_descendants(caller.pid))
            workers = {p: v for p, v in seen.items() if v[0] == 2 and _alive(p, v[1])}
        seen.update(_descendants(caller.pid))
        os.kill(caller.pid, signal.SIGKILL)
        # not reaped yet (a zombie, as under a busy parent): the workers must go all the same
        deadline = time.monotonic() + 5
        while any(_alive(p, v[1]) for p, v in workers.items()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p, v in workers.items() if _alive(p, v[1])]
        assert not left, f"workers {left} of the killed caller still run"
        caller.wait(timeout=10)
        assert caller.returncode == -signal.SIGKILL
        assert "returned" not in out.read_text(), "the call ended before the kill"
    finally:  # nothing left behind, whatever failed
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        _kill_session(caller.pid, started)
