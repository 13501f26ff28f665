"""`ImageSet` and `CatalogSet`: collections of images or catalogues found by the browser."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ..exceptions import ImageError, SkippedInputWarning
from ..imageobjects import BaseImage, ReferenceImage, ScienceImage
from ..imageobjects.scienceimage import progress_disable

log = logging.getLogger(__name__)

__all__ = ["ImageSet", "CatalogSet", "load_images"]

_KINDS = {"science": ScienceImage, "reference": ReferenceImage}


def load_images(paths: Iterable[str | os.PathLike], kind: str = "science",
                progress: bool | None = None) -> ImageSet:
    """Open images (headers only) with a progress bar; unreadable files go to ``failed``.

    Parameters
    ----------
    paths : iterable of path-like
        The FITS files.
    kind : {'science', 'reference'}
        The image class to open them as.
    progress : bool, optional
        Show a tqdm progress bar (None: for two or more files; False: never).

    Returns
    -------
    ImageSet
        The images; ``failed`` lists ``(path, reason)`` of the unreadable ones.
    """
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    paths = list(paths)
    images, failed = [], []
    for path in tqdm(paths, desc=f"Loading {kind.title()} Images",
                     disable=progress_disable(progress, len(paths))):
        try:
            images.append(cls(path))
        except ImageError as exc:
            warnings.warn(f"Unreadable image skipped: {exc}", SkippedInputWarning, stacklevel=2)
            failed.append((str(path), str(exc)))
    return ImageSet(images, failed=failed)


class _Selectable(Sequence):
    """List-like with attribute selection."""

    def __init__(self, items: Iterable, failed: list[tuple[str, str]] | None = None) -> None:
        self._items = list(items)
        self.failed: list[tuple[str, str]] = list(failed or [])

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return type(self)(self._items[i])
        return self._items[i]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def _attr(self, item, name: str):
        return getattr(item, name)

    def _match(self, item, criteria: dict) -> bool:
        for name, wanted in criteria.items():
            value = self._attr(item, name)
            allowed = wanted if isinstance(wanted, list | tuple | set) else [wanted]
            if value not in allowed:
                return False
        return True

    def select(self, **criteria) -> _Selectable:
        """Items whose attributes equal the given values (a list means any of them)."""
        return type(self)([x for x in self._items if self._match(x, criteria)])

    def exclude(self, **criteria) -> _Selectable:
        """Items that do not match all the given values."""
        return type(self)([x for x in self._items if not self._match(x, criteria)])


class ImageSet(_Selectable):
    """A set of images. Pickles as paths (workers never receive pixel arrays).

    Parameters
    ----------
    items : iterable of BaseImage
        The images.
    failed : list of (str, str), optional
        ``(path, reason)`` of files that could not be opened.
    """

    @property
    def target_images(self) -> list[BaseImage]:
        """The images as a list (the tutorial's name)."""
        return list(self._items)

    @property
    def paths(self) -> list[Path]:
        return [img.path for img in self._items]

    def __repr__(self) -> str:
        return f"ImageSet({len(self)} images, {len(self.failed)} unreadable)"


class CatalogSet(_Selectable):
    """A set of saved catalogues, loaded on access.

    Parameters
    ----------
    items : iterable of path-like
        The catalogue files.
    failed : list of (str, str), optional
        ``(path, reason)`` of files that could not be used.
    """

    def __init__(self, items: Iterable, failed=None) -> None:
        super().__init__([Path(p) for p in items], failed)

    def __getitem__(self, i):
        from ..dataobjects import Catalog

        if isinstance(i, slice):
            return CatalogSet(self._items[i])
        return Catalog(self._items[i])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _attr(self, item, name):
        from ..dataobjects import Catalog

        return getattr(Catalog(item).info, name)

    @property
    def paths(self) -> list[Path]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"CatalogSet({len(self)} catalogues)"
