"""Where ezphot finds its data tree, its output root and its SExtractor configuration files.

Nothing here touches the disk at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "resolve_data_path", "output_root", "sextractor_config_dir"]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$EZPHOT_DATA_DIR``, else ``~/ezphot/data``.

    Parameters
    ----------
    root : path-like, optional
        An explicit root (``~`` expanded).

    Returns
    -------
    pathlib.Path
        The data root.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("EZPHOT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / "ezphot" / "data"


def resolve_data_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve ``path`` against the data root unless it is absolute or exists as given.

    ``'scidata'`` means ``<root>/scidata``; ``'/any/path'`` is used as it is.

    Parameters
    ----------
    path : path-like
        A folder or file, relative to the data root or absolute.
    root : path-like, optional
        The data root (default: `data_root`'s).

    Returns
    -------
    pathlib.Path
        The resolved path.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or (p.exists() and str(path).startswith((".", os.sep))):
        return p
    return data_root(root) / p


def output_root() -> Path | None:
    """Root under which products are written when the data tree is read-only.

    ``$EZPHOT_OUTPUT_DIR`` when set, else None (products go beside the images).

    Returns
    -------
    pathlib.Path or None
        The output root, or None.
    """
    env = os.environ.get("EZPHOT_OUTPUT_DIR")
    return Path(env).expanduser() if env else None


def sextractor_config_dir() -> Path:
    """Directory holding ezphot's default SExtractor files and telescope profiles.

    ``$EZPHOT_SEXTRACTOR_CONFIGS`` when set; else the copy installed inside the package;
    else the repository's top-level ``sextractor_configs/`` (source checkout).

    Returns
    -------
    pathlib.Path
        The directory.
    """
    env = os.environ.get("EZPHOT_SEXTRACTOR_CONFIGS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "sextractor_configs", here.parent / "sextractor_configs"):
        if (candidate / "default.conv").is_file():
            return candidate
    raise FileNotFoundError(
        "ezphot's SExtractor configuration files were not found (looked in "
        f"{here / 'sextractor_configs'} and {here.parent / 'sextractor_configs'}); "
        "set EZPHOT_SEXTRACTOR_CONFIGS."
    )
