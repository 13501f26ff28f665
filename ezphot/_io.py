"""Small file-system helpers: atomic writes and per-run temporary directories."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["atomic_write", "run_directory"]


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
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

    The parent directory is ``$EZPHOT_TMPDIR`` when set, else the system default.
    """
    parent = os.environ.get("EZPHOT_TMPDIR") or None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        if keep:
            log.info("Keeping run directory %s", path)
        else:
            shutil.rmtree(path, ignore_errors=True)
