"""Batches that are interrupted, lose a worker, or run twice at once never leave a bad result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ezphot.dataobjects import Catalog
from ezphot.datasets import make_sample_tree


@pytest.fixture()
def tree(tmp_path):
    make_sample_tree(tmp_path / "scidata", 8, shape=(1536, 2048), seed=2)
    return tmp_path / "scidata"


def start(tree: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ezphot.cli", "photometry", str(tree),
                             "--workers", "2", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def catalogues(tree: Path) -> list[Path]:
    return sorted(tree.rglob("*.fits.cat"))


def all_complete(tree: Path) -> bool:
    return all(Catalog.is_complete(p) for p in catalogues(tree))


def wait_for(cond, timeout=120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.05)
    return False


def workers_of(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(d.name))
    return found


@pytest.fixture()
def big_tree(tmp_path):
    make_sample_tree(tmp_path / "scidata", 16, shape=(1536, 2048), seed=2)
    return tmp_path / "scidata"


def _default_sigint() -> None:
    """In the CLI's process before exec: SIGINT delivered and handled as at a terminal."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_then_resume(big_tree):
    import warnings

    tree, n = big_tree, 16
    # A child inherits its parent's blocked signals and ignored dispositions: a suite run
    # as a background job of a non-interactive shell (which starts those with SIGINT
    # ignored) made the CLI ignore the signal and finish every frame with exit 0. A user's
    # shell gives the CLI the default; say what this process had.
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = signal.getsignal(signal.SIGINT)
    if blocked or handler in (signal.SIG_IGN, None):
        warnings.warn(f"pytest's main thread has SIGINT blocked={blocked}, handler={handler}",
                      stacklevel=1)
    proc = subprocess.Popen([sys.executable, "-m", "ezphot.cli", "photometry", str(tree),
                             "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    # the signal goes as soon as a catalogue appears (checking them all first, several per
    # poll, let a fast batch finish before it), while frames are left: 16 frames of
    # 1536x2048 on 2 workers take several seconds
    assert wait_for(lambda: len(catalogues(tree)) >= 1)
    proc.send_signal(signal.SIGINT)
    assert all_complete(tree)  # every catalogue that appears is complete at every moment
    out, err = proc.communicate(timeout=120)
    assert all_complete(tree)
    done_before = len(catalogues(tree))
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err, blocked,
                                                             handler)
    assert done_before < n
    again = subprocess.run([sys.executable, "-m", "ezphot.cli", "photometry", str(tree),
                            "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    status = [line.split()[0] for line in again.stdout.splitlines()[:-1]]
    assert status.count("skipped") == done_before
    assert status.count("done") == n - done_before
    assert len(catalogues(tree)) == n and all_complete(tree)


def test_killed_worker_is_retried(tree):
    proc = start(tree)
    assert wait_for(lambda: len(workers_of(proc.pid)) >= 1)
    time.sleep(0.5)
    victims = workers_of(proc.pid)
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "8 images: 8 ok, 0 failed"
    assert len(catalogues(tree)) == 8 and all_complete(tree)


def test_two_batches_at_once(tree):
    a, b = start(tree, "--no-resume"), start(tree, "--no-resume")
    while a.poll() is None or b.poll() is None:
        assert all_complete(tree)
        time.sleep(0.05)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr.read(), b.stderr.read())
    cats = catalogues(tree)
    assert len(cats) == 8 and all(len(Catalog(p).data) > 0 for p in cats)
    assert not list(tree.rglob("*.part"))


LEAVE_LEFTOVERS = """
import sys, time
from pathlib import Path
from ezphot._io import atomic_write, run_directory
with run_directory("ezphot-sex-") as d:
    def writer(tmp):
        tmp.write_bytes(b"half")
        print(d, flush=True)
        print(tmp, flush=True)
        time.sleep(600)
    atomic_write(Path(sys.argv[1]), writer)
"""


def test_leftovers_of_killed_processes_are_removed(tmp_path, monkeypatch):
    """A SIGKILLed process leaves its run directory and a half-written `.part` file; the next
    run on the same host removes them (their ownership markers name a dead process).
    Look-alikes without a marker are kept: tests/test_resume_provenance.py."""
    from ezphot._io import atomic_write, run_directory

    runs = tmp_path / "runs"
    runs.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", LEAVE_LEFTOVERS, str(tmp_path / "f.fits")],
                            env={**os.environ, "EZPHOT_TMPDIR": str(runs)},
                            stdout=subprocess.PIPE, text=True)
    run_dir, part = Path(proc.stdout.readline().strip()), Path(proc.stdout.readline().strip())
    proc.kill()
    proc.wait()
    assert run_dir.is_dir() and part.read_bytes() == b"half"
    monkeypatch.setenv("EZPHOT_TMPDIR", str(runs))
    with run_directory("ezphot-sex-") as mine:
        assert not run_dir.exists()
        assert mine.name.startswith("ezphot-sex-")
    assert not mine.exists() and not list(runs.iterdir())
    atomic_write(tmp_path / "f.fits", lambda t: t.write_bytes(b"y"))
    assert not part.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.fits", "runs"]
    assert (tmp_path / "f.fits").read_bytes() == b"y"
