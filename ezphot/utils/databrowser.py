"""`DataBrowser`: find frames in a synced 7DT-style data tree.

Layout: ``<folder>/<observatory>/<telkey>/<objname>/<telname>/<filter>/*.fits``. Attributes
left None match anything; ``search`` globs the tree and returns paths, an `ImageSet` or a
`CatalogSet`, reading headers only.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import warnings
from pathlib import Path

from ..config import resolve_data_path
from ..exceptions import SkippedInputWarning
from .imageset import CatalogSet, load_images

log = logging.getLogger(__name__)

__all__ = ["DataBrowser"]

LEVELS = ("observatory", "telkey", "objname", "telname", "filter")


class DataBrowser:
    """Filter a data tree by its directory levels and a file-name pattern.

    Parameters
    ----------
    folder : str or path-like
        ``'scidata'`` means ``<data root>/scidata`` (root: argument, ``$EZPHOT_DATA_DIR`` or
        ``~/ezphot/data``); an absolute path is used as it is.
    root : path-like, optional
        Data root overriding ``$EZPHOT_DATA_DIR``.

    Attributes
    ----------
    observatory, telkey, objname, telname, filter : str or None
        Values to match (glob patterns allowed); None matches anything.
    failed : list of (path, error)
        Folders (permission denied, dangling links...) and files the last search or ``keys``
        could not read; each search also warns about unreadable folders.
    """

    def __init__(self, folder: str | os.PathLike = "scidata", *,
                 root: str | os.PathLike | None = None):
        self.basepath = resolve_data_path(folder, root)
        self.observatory: str | None = None
        self.telkey: str | None = None
        self.objname: str | None = None
        self.telname: str | None = None
        self.filter: str | None = None
        self.failed: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        set_ = {k: getattr(self, k) for k in LEVELS if getattr(self, k) is not None}
        return f"DataBrowser({str(self.basepath)!r}, {set_})"

    def _pattern(self, filename: str) -> str:
        parts = [glob.escape(str(self.basepath))]
        parts += [getattr(self, level) or "*" for level in LEVELS]
        return os.path.join(*parts, filename)

    def _walk(self) -> tuple[list[Path], list[tuple[str, str]]]:
        """The folders matching every level, and the folders that could not be read.

        Unlike ``glob``, which silently skips what it cannot read, each unreadable folder
        (permission denied, a dangling link, an I/O error) is reported.
        """
        dirs, failed = [self.basepath], []
        for level in LEVELS:
            wanted = getattr(self, level) or "*"
            found = []
            for d in dirs:
                for entry in _entries(d, failed):
                    if not _matches(entry.name, wanted):
                        continue
                    try:
                        if entry.is_dir():
                            found.append(Path(entry.path))
                        elif entry.is_symlink() and not os.path.exists(entry.path):
                            failed.append((entry.path, "dangling symbolic link, not a folder"))
                    except OSError as exc:
                        failed.append((entry.path, f"cannot be read: {exc.strerror or exc}"))
            dirs = sorted(found)
        return dirs, failed

    def _report(self, failed: list[tuple[str, str]]) -> None:
        if failed:
            shown = "; ".join(f"{p}: {e}" for p, e in failed[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            warnings.warn(f"{len(failed)} folder(s) of {self.basepath} could not be read and "
                          f"were skipped: {shown}{more}", SkippedInputWarning, stacklevel=3)

    @property
    def keys(self) -> dict[str, list[str]]:
        """The values present at each level, given the attributes already set."""
        if not self.basepath.is_dir():
            raise FileNotFoundError(f"{self.basepath}: no such data directory")
        values: dict[str, set[str]] = {level: set() for level in LEVELS}
        dirs, failed = self._walk()
        self.failed = failed
        self._report(failed)
        for path in dirs:
            rel = Path(path).relative_to(self.basepath).parts
            for level, value in zip(LEVELS, rel, strict=False):
                values[level].add(value)
        return {level: sorted(v) for level, v in values.items()}

    def search(self, pattern: str = "*.fits", return_type: str = "path",
               verbose: bool | None = None):
        """Find files matching ``pattern`` under the selected directories.

        Parameters
        ----------
        pattern : str
            File-name glob, e.g. ``'*100.fits'``.
        return_type : {'path', 'science', 'reference', 'catalog'}
        verbose : bool, optional
            Say how many files matched (one line on ``sys.stdout``). Default: only in a
            Jupyter kernel (scripts and the CLI keep their output clean).

        Returns
        -------
        list of pathlib.Path, ImageSet or CatalogSet
        """
        if not self.basepath.is_dir():
            raise FileNotFoundError(f"{self.basepath}: no such data directory")
        if return_type not in ("path", "science", "reference", "catalog"):
            raise ValueError("return_type must be 'path', 'science', 'reference' or 'catalog', "
                             f"got {return_type!r}")
        full = self._pattern(pattern)
        dirs, failed = self._walk()
        paths = []
        for d in dirs:
            if os.sep in pattern:  # a pattern with sub-folders: glob below each folder
                paths += [Path(p) for p in glob.glob(os.path.join(glob.escape(str(d)), pattern))
                          if os.path.isfile(p)]
                continue
            for entry in _entries(d, failed):
                if _matches(entry.name, pattern) and entry.is_file():
                    paths.append(Path(entry.path))
        paths.sort()
        self.failed = failed
        self._report(failed)
        from ..imageobjects.scienceimage import verbosity
        from ..visualization import jupyter_kernel

        with verbosity(jupyter_kernel() is not None if verbose is None else verbose):
            log.info("Found %d files matching '%s'", len(paths), full)
        if return_type == "path":
            return paths
        if return_type in ("science", "reference"):
            imageset = load_images(paths, return_type, progress=None)
            self.failed = failed + list(imageset.failed)
            return imageset
        if return_type == "catalog":
            return CatalogSet(paths)


def _entries(folder: Path, failed: list[tuple[str, str]]) -> list[os.DirEntry]:
    """A folder's entries; an unreadable folder goes to ``failed`` (nothing raised)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        failed.append((str(folder), f"cannot be read: {exc.strerror or exc}"))
        return []


def _matches(name: str, pattern: str) -> bool:
    """glob's rule for one path component: case-sensitive, hidden names only when asked."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)
