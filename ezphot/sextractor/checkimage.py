"""SExtractor's check images (BACKGROUND, SEGMENTATION, ...) as image objects."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..imageobjects.maps import ImageMap

__all__ = ["CheckImage", "checkimage_file_name"]


def checkimage_file_name(check_type: str) -> str:
    """File-name part of a check-image type: ``'background'``, ``'minus_background'``, ...

    Parameters
    ----------
    check_type : str
        A CHECKIMAGE_TYPE value (``'BACKGROUND'``, ``'-BACKGROUND'``...).

    Returns
    -------
    str
        Lower case, a leading ``-`` written ``minus_``.
    """
    name = check_type.lower()
    return "minus_" + name[1:] if name.startswith("-") else name


class CheckImage(ImageMap):
    """A check image the binary wrote (``check_type``: ``'BACKGROUND'``, ``'SEGMENTATION'``...).

    Saved (atomically) as ``<frame>.cat.<type>.fits`` beside the catalogue, with ``-TYPE``
    written ``minus_type`` (e.g. ``<frame>.cat.minus_background.fits``).

    Parameters
    ----------
    source : path-like or array_like
        A saved check image to load, or the data.
    check_type : str, optional
        The CHECKIMAGE_TYPE (default: the header's EZCHECK).
    header : astropy.io.fits.Header, optional
        The binary's header of the check image (copied).
    target_img : path-like, optional
        The measured image.
    """

    suffix = ".cat.checkimage.fits"
    kind = "check image"

    def __init__(self, source: str | os.PathLike | np.ndarray, *, check_type: str | None = None,
                 header: fits.Header | None = None,
                 target_img: str | os.PathLike | None = None) -> None:
        super().__init__(source, header=header, target_img=target_img)
        self.check_type = str(check_type or self.header.get("EZCHECK", "")).upper() or None

    def __repr__(self) -> str:
        return (f"CheckImage({self.check_type}, shape={self.shape}, "
                f"target_img={self.target_img!r})")

    def default_path_for(self, catalog_path: str | os.PathLike) -> Path:
        """``<catalogue>.<type>.fits``: where it is saved beside a catalogue.

        Parameters
        ----------
        catalog_path : path-like
            The catalogue.

        Returns
        -------
        pathlib.Path
            The check image's path.
        """
        return Path(f"{catalog_path}.{checkimage_file_name(self.check_type or 'check')}.fits")

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Save atomically as FITS (default: beside the target image's ``.cat``).

        Parameters
        ----------
        path : path-like, optional
            Destination.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        if path is None and self.target_img is not None:
            path = self.default_path_for(f"{self.target_img}.cat")
        if self.check_type:
            self.header["EZCHECK"] = (self.check_type, "SExtractor CHECKIMAGE_TYPE")
        return super().save(path)
