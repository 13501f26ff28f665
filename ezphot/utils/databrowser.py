"""`DataBrowser`: find frames in a synced 7DT-style data tree.

Layout: ``<folder>/<observatory>/<telkey>/<objname>/<telname>/<filter>/*.fits``. Attributes
left None match anything; ``search`` globs the tree and returns paths, an `ImageSet` or a
`CatalogSet`, reading headers only.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

from ..config import resolve_data_path
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
        Files the last search could not read.
    """

    def __init__(self, folder: str | os.PathLike = "scidata", *, root: str | os.PathLike | None = None):
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

    @property
    def keys(self) -> dict[str, list[str]]:
        """The values present at each level, given the attributes already set."""
        if not self.basepath.is_dir():
            raise FileNotFoundError(f"{self.basepath}: no such data directory")
        values: dict[str, set[str]] = {level: set() for level in LEVELS}
        for path in glob.glob(self._pattern("")):
            rel = Path(path).relative_to(self.basepath).parts
            for level, value in zip(LEVELS, rel):
                values[level].add(value)
        return {level: sorted(v) for level, v in values.items()}

    def search(self, pattern: str = "*.fits", return_type: str = "path"):
        """Find files matching ``pattern`` under the selected directories.

        Parameters
        ----------
        pattern : str
            File-name glob, e.g. ``'*100.fits'``.
        return_type : {'path', 'science', 'reference', 'catalog'}

        Returns
        -------
        list of pathlib.Path, ImageSet or CatalogSet
        """
        if not self.basepath.is_dir():
            raise FileNotFoundError(f"{self.basepath}: no such data directory")
        full = self._pattern(pattern)
        paths = sorted(Path(p) for p in glob.glob(full) if os.path.isfile(p))
        log.info("Found %d files matching '%s'", len(paths), full)
        if return_type == "path":
            return paths
        if return_type in ("science", "reference"):
            imageset = load_images(paths, return_type, progress=None)
            self.failed = list(imageset.failed)
            return imageset
        if return_type == "catalog":
            return CatalogSet(paths)
        raise ValueError("return_type must be 'path', 'science', 'reference' or 'catalog', "
                         f"got {return_type!r}")
