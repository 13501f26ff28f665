"""`sex_photometry`: detection photometry with the real SExtractor binary (docs/catalogue.md).

How the binary is run on an image (configuration, maps, run directory) is
`ezphot.sextractor.imagerun`'s; this module owns the arguments and the column contract.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from .. import _validate as validate
from ..config import sextractor_config_dir
from ..dataobjects.catalog import Catalog
from ..exceptions import HeaderWarning, ImageError, MeasurementWarning
from ..imageobjects import Background, BaseImage, Errormap, Mask
from ..sextractor import SExtractorBinary, find_sextractor
from ..sextractor.binary import resolve_timeout
from ..sextractor.checkimage import CheckImage, checkimage_file_name
from ..sextractor.configfile import checkimage_types, format_value, read_param_file, validate_config
from ..sextractor.convfilter import resolve_detection_filter
from ..sextractor.imagerun import image_config, run_on_image
from ..sextractor.ldac import LDACCatalog
from .common import (
    aperture_diameters,
    as_image,
    as_list,
    catalog_info,
    catalog_path,
    finish_catalog,
)
from .registry import METHODS

log = logging.getLogger(__name__)

__all__ = ["sex_photometry", "measure_seeing", "default_parameters", "zero_based_columns"]

# Pixel positions SExtractor reports 1-based: X/Y..._IMAGE columns in pixels.
_POSITION = re.compile(r"^[XY][A-Z]*_IMAGE(_DBL)?(_\d+)?$")


def default_parameters() -> list[str]:
    """ezphot's default output parameters (``sextractor_configs/default.param``).

    Returns
    -------
    list of str
        SExtractor output parameter names.
    """
    return read_param_file(sextractor_config_dir() / "default.param")


def zero_based_columns(table: Table) -> list[str]:
    """Columns holding pixel positions (X_IMAGE, XWIN_IMAGE, XPEAK_IMAGE, XMIN_IMAGE, ...).

    Parameters
    ----------
    table : astropy.table.Table
        A SExtractor catalogue.

    Returns
    -------
    list of str
        The names of its pixel-position columns (1-based in SExtractor, 0-based in ezphot).
    """
    return [c for c in table.colnames if _POSITION.match(c) and table[c].unit == u.pix]


def _numbers(value) -> list[float]:
    """Configuration value (``'2.5,3.5'``, ``[2.5, 3.5]`` or ``2.5``) as a list of floats."""
    if isinstance(value, str):
        return [float(v) for v in re.split(r"[,\s]+", value.strip()) if v]
    return [float(v) for v in np.atleast_1d(value)]


def _first_number(value) -> float:
    return _numbers(value)[0]


def measure_seeing(img: BaseImage, *, binary: SExtractorBinary | None = None,
                   saturation_level: float | None = None, min_stars: int = 5,
                   timeout: float | None = None) -> float | None:
    """Seeing FWHM (arcsec) measured by SExtractor on bright, unsaturated, round stars.

    One quick pass at 20 sigma with a handful of parameters; the result is the median
    FWHM_IMAGE of isolated point-like sources with S/N > 20, converted with the pixel scale.

    Parameters
    ----------
    img : BaseImage
        The image.
    binary : SExtractorBinary, optional
        The SExtractor binary (default: found on the path).
    saturation_level : float, optional
        SATUR_LEVEL in ADU (default: the image's, from the header or telescope profile).
    min_stars : int
        Fewest qualifying stars for a result.
    timeout : float, optional
        Seconds allowed to the binary (default ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else one that
        grows with the image size).

    Returns
    -------
    float or None
        The seeing FWHM in arcsec; None when fewer than ``min_stars`` stars qualify.
    """
    pixelscale = img.pixelscale
    if not pixelscale:
        return None
    config = image_config(img, saturation_level=saturation_level or img.saturation,
                          DETECT_THRESH=20, ANALYSIS_THRESH=20, PHOT_APERTURES=10,
                          PIXEL_SCALE=pixelscale, CLEAN="Y")
    params = ["FWHM_IMAGE", "FLAGS", "ELONGATION", "FLUX_AUTO", "FLUXERR_AUTO", "CLASS_STAR"]
    run = run_on_image(img, config=config, parameters=params, prefix="ezphot-seeing-",
                       binary=binary, timeout=timeout)
    t = run.catalogs[0].table
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = t["FLUX_AUTO"] / t["FLUXERR_AUTO"]
    good = (t["FLAGS"] == 0) & (t["ELONGATION"] < 1.3) & (snr > 20) & (t["FWHM_IMAGE"] > 0.5)
    fwhm = np.asarray(t["FWHM_IMAGE"][good], dtype=float)
    if fwhm.size < min_stars:
        warnings.warn(f"{img.path}: only {fwhm.size} stars to measure the seeing",
                      MeasurementWarning, stacklevel=2)
        return None
    from astropy.stats import mad_std

    # Clip galaxies and blends (broad) before the median (one 3-sigma pass about the median,
    # sigma the MAD-based std, at least 5 % of the median).
    med = np.median(fwhm)
    fwhm = fwhm[np.abs(fwhm - med) < 3 * max(mad_std(fwhm), 0.05 * med)]
    seeing = float(np.median(fwhm) * pixelscale)
    log.info("%s: seeing measured on %d stars: %.3f arcsec", img.path, fwhm.size, seeing)
    return seeing


def _postprocess(table: Table, ldac: LDACCatalog, img: BaseImage, *, detect_thresh: float,
                 diam_px: list[float]) -> Table:
    """Apply the column contract: 0-based positions, world-coordinate check, extra columns."""
    shifted = zero_based_columns(table)
    for name in shifted:
        col = table[name]
        if col.dtype.kind == "f":  # float64 keeps the shift exact for float32 columns
            table[name] = col.astype(np.float64) - 1.0
            table[name].unit = col.unit
        else:
            table[name] = col - 1
    table.meta["pixel_origin"] = 0
    table.meta["zero_based_columns"] = shifted
    _check_world(table, img)
    n = len(table)
    table["SKYSIG"] = np.full(n, ldac.background_rms, dtype=float) * u.ct
    table["SKYVAL"] = np.full(n, ldac.background, dtype=float) * u.ct
    table["DETECT_THRESH"] = np.full(n, detect_thresh, dtype=float)
    if {"KRON_RADIUS", "A_IMAGE", "B_IMAGE"} <= set(table.colnames):
        kron = np.asarray(table["KRON_RADIUS"], dtype=float)
        table["NPIX_AUTO"] = (np.pi * kron * np.asarray(table["A_IMAGE"], dtype=float)
                              * kron * np.asarray(table["B_IMAGE"], dtype=float)) * u.pix**2
    for i, d in enumerate(diam_px):
        suffix = "" if i == 0 else f"_{i}"
        table[f"NPIX_APER{suffix}"] = np.full(n, np.pi * (d / 2.0) ** 2) * u.pix**2
        table[f"PIXSIZE_APER{suffix}"] = np.full(n, d) * u.pix
    return table


# (world x, world y, pixel x, pixel y, J2000?) pairs SExtractor derives from the WCS.
_WORLD_PAIRS = [
    ("X_WORLD", "Y_WORLD", "X_IMAGE", "Y_IMAGE", False),
    ("ALPHA_J2000", "DELTA_J2000", "X_IMAGE", "Y_IMAGE", True),
    ("XWIN_WORLD", "YWIN_WORLD", "XWIN_IMAGE", "YWIN_IMAGE", False),
    ("ALPHAWIN_J2000", "DELTAWIN_J2000", "XWIN_IMAGE", "YWIN_IMAGE", True),
    ("XPEAK_WORLD", "YPEAK_WORLD", "XPEAK_IMAGE", "YPEAK_IMAGE", False),
    ("ALPHAPEAK_J2000", "DELTAPEAK_J2000", "XPEAK_IMAGE", "YPEAK_IMAGE", True),
]


def _check_world(table: Table, img: BaseImage, tol_arcsec: float = 0.01) -> None:
    """Make world coordinates agree with astropy's WCS of the image.

    SExtractor 2.25 ignores SIP distortion and misreads some headers; astropy's WCS is the
    reference. When they disagree (or there is no celestial WCS) the columns are replaced
    (or set to NaN) with a warning — never silently wrong.
    """
    present = [p for p in _WORLD_PAIRS if p[0] in table.colnames and p[2] in table.colnames]
    if not present or len(table) == 0:
        return
    wcs = img.wcs
    if wcs is None:
        warnings.warn(f"{img.path} has no celestial WCS: world-coordinate columns set to NaN",
                      HeaderWarning, stacklevel=2)
        for wx, wy, *_ in present:
            table[wx] = np.full(len(table), np.nan)
            table[wy] = np.full(len(table), np.nan)
        return
    from astropy.coordinates import FK5, SkyCoord, angular_separation

    cache: dict[tuple[str, str], SkyCoord] = {}

    def sky(px: str, py: str) -> SkyCoord:
        if (px, py) not in cache:
            x = np.asarray(table[px], dtype=float)
            y = np.asarray(table[py], dtype=float)
            cache[(px, py)] = wcs.pixel_to_world(x, y)  # positions are 0-based here
        return cache[(px, py)]

    wx, wy, px, py, j2000 = present[0]
    ref = sky(px, py)
    ref = ref.transform_to(FK5(equinox="J2000")) if j2000 else ref
    # Vincenty's formula (astropy): exact at any separation, where the law of cosines loses
    # precision below ~0.01 arcsec in float64
    sep = np.degrees(angular_separation(
        np.radians(np.asarray(table[wx], float)), np.radians(np.asarray(table[wy], float)),
        np.radians(ref.spherical.lon.deg), np.radians(ref.spherical.lat.deg))) * 3600.0
    worst = float(np.nanmax(sep)) if np.isfinite(sep).any() else math.inf
    if worst <= tol_arcsec:
        return
    warnings.warn(f"{img.path}: SExtractor's world coordinates differ from astropy's WCS by up "
                  f"to {worst:.3g} arcsec; recomputed with astropy", HeaderWarning, stacklevel=2)
    for wx, wy, px, py, j2000 in present:
        c = sky(px, py)
        c = c.transform_to(FK5(equinox="J2000")) if j2000 else c
        table[wx] = c.spherical.lon.deg
        table[wy] = c.spherical.lat.deg
        table[wx].unit = table[wy].unit = u.deg
    table.meta["world_from"] = "astropy"


def sex_photometry(
    target_img: BaseImage | str | Path,
    *,
    target_bkg: Background | float | np.ndarray | None = None,
    target_bkgrms: Errormap | np.ndarray | None = None,
    target_mask: Mask | np.ndarray | None = None,
    sex_params: Mapping[str, object] | None = None,
    detection_sigma: float = 5,
    aperture_diameter_arcsec: float | Sequence[float] | None = (5, 7, 10),
    aperture_diameter_seeing: float | Sequence[float] | None = (3.5, 4.5),
    annulus_width_arcsec: float | None = None,
    saturation_level: float | None = None,
    kron_factor: float = 2.5,
    parameters: Sequence[str] | None = None,
    egain: float | None = None,
    zeropoint: float | str = 0.0,
    seeing: float | None = None,
    binary: SExtractorBinary | str | None = None,
    checkimages: Sequence[str] | None = None,
    timeout: float | None = None,
    save: bool = True,
    detection_filter: str | np.ndarray | None = "gauss",
    detection_filter_fwhm: float | None = None,
    detection_filter_size: int | None = None,
) -> Catalog:
    """Detect and measure sources with SExtractor; see `AperturePhotometry.sex_photometry`.

    Parameters
    ----------
    target_img : BaseImage or path
        The image.
    target_bkg, target_bkgrms, target_mask : optional
        Background map or value (ADU), background RMS map (ADU), mask (True = excluded).
    sex_params : mapping, optional
        Any SExtractor keyword (validated against the binary); not modified.
    detection_sigma : float
        DETECT_THRESH and ANALYSIS_THRESH in sigmas.
    aperture_diameter_arcsec, aperture_diameter_seeing : float or list, optional
        Aperture diameters: fixed (arcsec) first, then multiples of the seeing FWHM.
    annulus_width_arcsec : float, optional
        Local background annulus thickness (BACKPHOTO_TYPE LOCAL).
    saturation_level : float
        SATUR_LEVEL in ADU.
    kron_factor : float
        First PHOT_AUTOPARAMS value.
    parameters : list of str, optional
        Output parameters (default: `default_parameters`).
    egain : float, optional
        GAIN in e-/ADU (default: header / telescope profile).
    zeropoint : float or str, optional
        MAG_ZEROPOINT (default 0: instrumental magnitudes), or the header keyword that holds
        it (``'ZP'``...; missing or not a number: `ImageError`). Recorded in
        ``meta['zeropoint']``; ``info.depth`` is measured with it.
    seeing : float, optional
        Seeing FWHM in arcsec (default: the header's, else measured when seeing-multiple
        apertures need it).
    binary : SExtractorBinary or str, optional
        The SExtractor binary (default: ``$EZPHOT_SEXTRACTOR``, else found on the path).
    checkimages : list of str, optional
        SExtractor check-image types, returned in ``catalog.checkimages``.
    timeout : float, optional
        Seconds allowed to the binary.
    save : bool
        Write the catalogue beside the image (atomically).
    detection_filter : str or 2-D array, optional
        'gauss' (matched to the seeing), 'tophat', 'mexhat', 'default' or a kernel array.
    detection_filter_fwhm : float, optional
        FWHM (px) of the generated filter (default: the seeing).
    detection_filter_size : int, optional
        Odd kernel size (px) of the generated filter.

    Returns
    -------
    Catalog
        SExtractor's measurements (0-based pixel positions) with units and the info.
    """
    img = as_image(target_img)
    zeropoint = validate.zeropoint(zeropoint, img.header, img.path)
    if saturation_level is None:  # a telescope fact: the profile's (never the header's)
        saturation_level = img.profile.saturation
    validate.photometry_args(egain=egain, saturation_level=saturation_level, seeing=seeing,
                             kron_factor=kron_factor, zeropoint=zeropoint)
    resolve_timeout(timeout, 1.0)  # a bad timeout (argument or environment) fails first
    binary = binary if isinstance(binary, SExtractorBinary) else find_sextractor(binary,
                                                                                 timeout=timeout)
    params = list(parameters) if parameters is not None else default_parameters()
    # a copy (never mutate theirs), every keyword, value and input file checked before any run
    user = validate_config(sex_params or {}, binary)
    if "MAG_ZEROPOINT" in user:  # sex_params win: the magnitudes (and the depth) carry theirs
        zeropoint = validate.ZeroPoint(_first_number(user["MAG_ZEROPOINT"]),
                                       "sex_params MAG_ZEROPOINT")
    check_types = checkimage_types(checkimages)
    if not math.isfinite(detection_sigma) or detection_sigma <= 0:
        raise ValueError(f"detection_sigma must be positive, got {detection_sigma}")
    bkg, rms, mask = validate.resolved_maps(img, target_bkg, target_bkgrms, target_mask,
                                            masked_nan_ok=False)

    pixelscale = float(user["PIXEL_SCALE"]) if float(user.get("PIXEL_SCALE", 0) or 0) > 0 \
        else img.pixelscale
    if seeing is None:
        seeing = img.seeing
    needs_seeing = bool(as_list(aperture_diameter_seeing, "aperture_diameter_seeing")) \
        or "CLASS_STAR" in params or (isinstance(detection_filter, str)
                                      and detection_filter != "default"
                                      and detection_filter_fwhm is None)
    if seeing is None and pixelscale and needs_seeing and "PHOT_APERTURES" not in user:
        seeing = measure_seeing(img, binary=binary, saturation_level=saturation_level,
                                timeout=timeout)
    if "PHOT_APERTURES" in user:  # explicit pixel diameters win over arcsec/seeing ones
        diam_px = _numbers(user["PHOT_APERTURES"])
        diam_arcsec = [d * pixelscale for d in diam_px] if pixelscale else None
    else:
        diam_arcsec, diam_px = aperture_diameters(img, aperture_diameter_arcsec,
                                                  aperture_diameter_seeing, seeing, pixelscale)
    gain = egain if egain is not None else (img.egain or 0.0)
    validate.apertures_fit(diam_px, img.shape, "aperture diameters", img.path)

    config = image_config(img, saturation_level=saturation_level, gain=gain)
    min_radius = _numbers(config.get("PHOT_AUTOPARAMS", "2.5,3.5"))[-1]
    config.update(
        DETECT_THRESH=detection_sigma, ANALYSIS_THRESH=detection_sigma,
        PHOT_APERTURES=diam_px, PHOT_AUTOPARAMS=(kron_factor, min_radius),
        PIXEL_SCALE=pixelscale or 0.0, MAG_ZEROPOINT=zeropoint,
    )
    if seeing:
        config["SEEING_FWHM"] = seeing
    if annulus_width_arcsec is not None:
        if not pixelscale or annulus_width_arcsec <= 0:
            raise ValueError("annulus_width_arcsec must be positive and needs a pixel scale")
        # an integer keyword: SExtractor truncated the float ezphot used to write
        config.update(BACKPHOTO_TYPE="LOCAL",
                      BACKPHOTO_THICK=int(annulus_width_arcsec / pixelscale))

    # detection filter matched to the seeing (sextractor/convfilter.py); sex_params win
    dfilter = resolve_detection_filter(
        detection_filter, fwhm=detection_filter_fwhm, size=detection_filter_size,
        seeing_pixel=seeing / pixelscale if seeing and pixelscale else None)
    run = run_on_image(img, config=config, parameters=params, n_apertures=len(diam_px),
                       prefix="ezphot-sex-", bkg=bkg, rms=rms, mask=mask,
                       detection_filter=dfilter, detection_sigma=detection_sigma,
                       overrides=user, binary=binary, timeout=timeout, checkimages=check_types)
    ldac = run.catalogs[0]
    table = ldac.table
    if len(table) == 0 and not np.isfinite(img.data).any():
        raise ImageError(f"{img.path}: every pixel is NaN or infinite")
    table = _postprocess(table, ldac, img, detect_thresh=_first_number(run.config["DETECT_THRESH"]),
                         diam_px=diam_px)
    info = catalog_info(img, "all", seeing=seeing, aperture_diameter_arcsec=diam_arcsec, path=None)
    meta = {
        "method": "sextractor",
        "sextractor_version": binary.version,
        "sextractor_path": binary.path,
        "sextractor_config": {k: format_value(v) for k, v in run.config.items()},
        "sextractor_parameters": run.parameters,
        "aperture_diameter_pixel": diam_px,
        "background": "sextractor" if bkg is None else ("map" if isinstance(bkg, Background)
                                                        else "constant"),
        # which estimator and masks made the map (calculate_bkg's header), as forced photometry
        "background_details": (
            {"source": "map", "estimator": bkg.header.get("BKGESTIM"),
             "mesh": bkg.header.get("BKGSIZE"), "filter": bkg.header.get("BKGFILT"),
             "deep_mask": bkg.header.get("BKGDEEP"), "masked_pixels": bkg.header.get("BKGNMASK")}
            if isinstance(bkg, Background) else
            {"source": "sextractor", "BACK_SIZE": format_value(run.config.get("BACK_SIZE")),
             "BACK_FILTERSIZE": format_value(run.config.get("BACK_FILTERSIZE"))}
            if bkg is None else {"source": "constant", "value": float(bkg)}),
        "profile": img.profile.name,
        "seconds_binary": run.seconds,
        "detection_filter": ({"kind": "sex_params", "FILTER_NAME": str(user["FILTER_NAME"])}
                             if "FILTER_NAME" in user else dfilter.meta()),
    }
    catalog = Catalog(table, info=info, meta=meta)
    catalog.checkimages = {t: CheckImage(data, check_type=t, header=header, target_img=img.path)
                           for t, (data, header) in run.checkimages.items()}
    if save and catalog.checkimages:  # before the catalogue, whose presence means "done"
        base = catalog_path(img, METHODS["sextractor"].suffix)
        for t, check in catalog.checkimages.items():
            check.save(f"{base}.{checkimage_file_name(t)}.fits")
    return finish_catalog(catalog, img, "sextractor", save, zeropoint=zeropoint)
