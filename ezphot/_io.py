"""Small file-system helpers: atomic writes and per-run temporary directories."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["atomic_write", "run_directory"]

# Temporary names carry "<pid>@<host>" so that what a killed process (SIGKILL, OOM) left
# behind can be recognised and removed by a later run on the same host.
_OWNER = re.compile(r"\.?ezphot-[^@]*?(\d+)@(.+)-[^-]+$|^\..+\.(\d+)@(.+)\.[^.]+\.part$")


def _owner_tag() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _is_stale(name: str) -> bool:
    """True for a temporary name of a process of this host that no longer runs."""
    m = _OWNER.match(name)
    if m is None:
        return False
    pid, host = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if host != socket.gethostname() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # alive (another user's) or not a pid: leave it
    return False


def remove_stale(directory: Path, startswith: str) -> int:
    """Remove temporary files/directories of dead processes (this host) in ``directory``."""
    removed = 0
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(startswith)]
    except OSError:
        return 0
    for entry in entries:
        if not _is_stale(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        log.info("Removed %s, left by a process that no longer runs", entry.path)
        removed += 1
    return removed


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Write a file atomically.

    ``writer`` is called with a temporary path in the destination directory; the temporary
    file is renamed onto ``path`` only when ``writer`` returns, so readers never see a
    half-written file and a crash leaves the previous file intact.

    Parameters
    ----------
    path : path-like
        Final destination.
    writer : callable
        Function that writes the complete file to the path it is given.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".part",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        tmp_path.unlink()  # writers (astropy) refuse to overwrite; give them a free name
        writer(tmp_path)
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
    return path


@contextlib.contextmanager
def run_directory(prefix: str = "ezphot-", keep: bool = False) -> Iterator[Path]:
    """A private temporary directory for one run, removed afterwards even on failure.

    The parent directory is ``$EZPHOT_TMPDIR`` when set, else the system default. Run
    directories that killed processes of this host left there are removed first.
    """
    parent = Path(os.environ.get("EZPHOT_TMPDIR") or tempfile.gettempdir())
    remove_stale(parent, "ezphot-")
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner_tag()}-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            log.info("Keeping run directory %s", path)
        else:
            shutil.rmtree(path, ignore_errors=True)
