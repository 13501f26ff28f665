"""Helpers shared by the photometry methods: inputs, apertures, catalogue info and saving."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import astropy.units as u
import numpy as np

from ..config import output_root
from ..dataobjects.catalog import Catalog, CatalogInfo
from ..exceptions import ImageError
from ..imageobjects import BaseImage, ScienceImage

log = logging.getLogger(__name__)

__all__ = ["as_image", "as_list", "aperture_diameters", "catalog_info", "catalog_path",
           "finish_catalog"]


def as_image(target_img: BaseImage | str | os.PathLike) -> BaseImage:
    """Accept an image object or a path."""
    if isinstance(target_img, BaseImage):
        return target_img
    if isinstance(target_img, str | os.PathLike):
        return ScienceImage(target_img)
    raise TypeError(f"target_img must be an image or a path, got {type(target_img).__name__}")


def as_list(value, name: str) -> list[float]:
    """A number, a sequence of numbers or None -> list of positive finite floats."""
    if value is None:
        return []
    if isinstance(value, str):
        raise TypeError(f"{name} must be a number or a list of numbers, got {value!r}")
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a number or a 1-D list, got shape {arr.shape}")
    bad = arr[~np.isfinite(arr) | (arr <= 0)]
    if bad.size:
        raise ValueError(f"{name} must be positive and finite, got {bad.tolist()}")
    return arr.tolist()


def _to_arcsec(value, pixelscale: float | None, name: str):
    """Quantity apertures (angle or pixel) -> plain arcsec numbers; numbers pass through."""
    if not isinstance(value, u.Quantity):
        return value
    if value.unit.physical_type == "angle":
        return value.to_value(u.arcsec)
    if value.unit == u.pix:
        if not pixelscale:
            raise ImageError(f"{name} in pixels needs a pixel scale")
        return value.value * pixelscale
    raise u.UnitsError(f"{name} must be an angle or in pixels, got unit {value.unit}")


def aperture_diameters(img: BaseImage, arcsec, seeing_multiples, seeing: float | None,
                       pixelscale: float | None) -> tuple[list[float], list[float]]:
    """Aperture diameters: fixed arcsec first, then multiples of the seeing.

    Returns
    -------
    (diameters_arcsec, diameters_pixel)
    """
    fixed = as_list(_to_arcsec(arcsec, pixelscale, "aperture_diameter_arcsec"),
                    "aperture_diameter_arcsec")
    multiples = as_list(seeing_multiples, "aperture_diameter_seeing")
    if multiples and seeing is None:
        raise ImageError(f"{img.path}: aperture_diameter_seeing needs the seeing, which is "
                         "neither in the header (SEEING) nor measurable")
    diam_arcsec = fixed + [m * seeing for m in multiples]
    if not diam_arcsec:
        raise ValueError("no aperture given (aperture_diameter_arcsec and "
                         "aperture_diameter_seeing are both empty)")
    if pixelscale is None or pixelscale <= 0:
        raise ImageError(f"{img.path}: apertures in arcsec need the pixel scale, but the image "
                         "has no WCS and its telescope profile none")
    return diam_arcsec, [d / pixelscale for d in diam_arcsec]


def catalog_info(img: BaseImage, catalog_type: str, *, seeing: float | None,
                 aperture_diameter_arcsec: list[float] | None, path: Path | None) -> CatalogInfo:
    """The ``Catalog.info`` of a measurement on ``img``."""
    center = img.center
    return CatalogInfo(
        path=None if path is None else str(path),
        target_img=str(img.path),
        obsdate=img.obsdate,
        filter=img.filter,
        exptime=img.exptime,
        depth=img.depth,
        seeing=seeing,
        catalog_type=catalog_type,
        ra=None if center is None else float(center.icrs.ra.deg),
        dec=None if center is None else float(center.icrs.dec.deg),
        fov_ra=None if img.fovx is None else round(img.fovx, 3),
        fov_dec=None if img.fovy is None else round(img.fovy, 3),
        objname=img.objname,
        observatory=img.observatory,
        telname=img.telname,
        aperture_diameter_arcsec=None if aperture_diameter_arcsec is None
        else [round(d, 6) for d in aperture_diameter_arcsec],
    )


def catalog_path(img: BaseImage, suffix: str) -> Path:
    """Where a catalogue of ``img`` is saved: beside it, else under ``$EZPHOT_OUTPUT_DIR``."""
    beside = Path(f"{img.path}{suffix}")
    if os.access(img.path.parent, os.W_OK):
        return beside
    root = output_root()
    if root is None:
        raise PermissionError(f"{img.path.parent} is read-only; set EZPHOT_OUTPUT_DIR to save "
                              "catalogues elsewhere")
    return root / img.path.relative_to(img.path.anchor).parent / beside.name


def finish_catalog(catalog: Catalog, img: BaseImage, suffix: str, save: bool) -> Catalog:
    """Save the catalogue when asked (``save=False`` writes and deletes nothing)."""
    if save:
        catalog.save(catalog_path(img, suffix))
    return catalog
