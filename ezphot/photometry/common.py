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
from ..imageobjects import Background, BaseImage, Errormap, Mask, ScienceImage

log = logging.getLogger(__name__)

__all__ = ["as_image", "as_list", "as_map", "resolve_maps", "aperture_diameters",
           "catalog_info", "catalog_path", "finish_catalog"]


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


def aperture_diameters(img: BaseImage, arcsec, seeing_multiples, seeing: float | None,
                       pixelscale: float | None) -> tuple[list[float] | None, list[float]]:
    """Aperture diameters: fixed ones first, then multiples of the seeing.

    ``arcsec`` holds numbers in arcsec, or an astropy Quantity in angle units or in pixels
    (pixels need no pixel scale).

    Returns
    -------
    (diameters_arcsec, diameters_pixel)
        ``diameters_arcsec`` is None when the image has no pixel scale.
    """
    in_pixels = isinstance(arcsec, u.Quantity) and arcsec.unit == u.pix
    if isinstance(arcsec, u.Quantity) and not in_pixels:
        if arcsec.unit.physical_type != "angle":
            raise u.UnitsError(f"aperture_diameter_arcsec must be an angle or in pixels, got "
                               f"unit {arcsec.unit}")
        arcsec = arcsec.to_value(u.arcsec)
    fixed = as_list(arcsec.value if in_pixels else arcsec, "aperture_diameter_arcsec")
    multiples = as_list(seeing_multiples, "aperture_diameter_seeing")
    if multiples and seeing is None:
        raise ImageError(f"{img.path}: aperture_diameter_seeing needs the seeing, which is not "
                         "in the header (SEEING); pass seeing=")
    if not fixed and not multiples:
        raise ValueError("no aperture given (aperture_diameter_arcsec and "
                         "aperture_diameter_seeing are both empty)")
    has_scale = pixelscale is not None and pixelscale > 0
    if not has_scale and (multiples or not in_pixels):
        raise ImageError(f"{img.path}: apertures in arcsec need the pixel scale, but the image "
                         "has no WCS and its telescope profile none")
    if in_pixels:
        diam_px = fixed + [m * seeing / pixelscale for m in multiples]
    else:
        diam_px = [d / pixelscale for d in fixed + [m * seeing for m in multiples]]
    diam_arcsec = [d * pixelscale for d in diam_px] if has_scale else None
    return diam_arcsec, diam_px


def as_map(value, cls, img: BaseImage, name: str):
    """Accept a map object, an array, or a saved file for a Background/Errormap/Mask."""
    if value is None or isinstance(value, cls):
        obj = value
    elif isinstance(value, str | Path):
        obj = cls(value)
    elif isinstance(value, np.ndarray):
        obj = cls(value, target_img=img.path)
    else:
        raise TypeError(f"{name} must be a {cls.__name__}, an array or a path, "
                        f"got {type(value).__name__}")
    if obj is not None:
        obj.check_shape(img.shape, img.path)
        if obj.target_img and Path(obj.target_img).absolute() != img.path:
            raise ImageError(f"{name} belongs to {obj.target_img}, not to {img.path}")
    return obj


def resolve_maps(img: BaseImage, target_bkg, target_bkgrms, target_mask):
    """The three optional maps of a photometry call, checked against the image.

    ``target_bkg`` may also be a number (a constant background).
    """
    bkg = target_bkg if isinstance(target_bkg, int | float) else as_map(
        target_bkg, Background, img, "target_bkg")
    return (bkg, as_map(target_bkgrms, Errormap, img, "target_bkgrms"),
            as_map(target_mask, Mask, img, "target_mask"))


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
