"""`sex_photometry`: detection photometry with the real SExtractor binary (docs/catalogue.md)."""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from .. import _validate as validate
from .._io import run_directory
from ..config import sextractor_config_dir
from ..dataobjects.catalog import Catalog
from ..exceptions import ImageError
from ..imageobjects import Background, BaseImage, Errormap, Mask
from ..sextractor import SExtractorBinary, find_sextractor, run_sextractor
from ..sextractor.binary import resolve_timeout
from ..sextractor.checkimage import CheckImage, checkimage_file_name
from ..sextractor.configfile import (checkimage_types, format_value, read_param_file,
                                     validate_config)
from ..sextractor.convfilter import detection_filter_config, resolve_detection_filter
from ..sextractor.ldac import LDACCatalog
from .common import (aperture_diameters, as_image, as_list, catalog_info, catalog_path,
                     finish_catalog)

log = logging.getLogger(__name__)

__all__ = ["sex_photometry", "measure_seeing", "default_parameters", "zero_based_columns"]

# Keywords ezphot sets so that header values (SATURATE, GAIN) never override the arguments:
# SExtractor reads SATUR_KEY/GAIN_KEY from the image header when present.
_NO_KEY = "EZNOKEY"
# Pixel positions SExtractor reports 1-based: X/Y..._IMAGE columns in pixels.
_POSITION = re.compile(r"^[XY][A-Z]*_IMAGE(_DBL)?(_\d+)?$")
# Keywords of the tile-compression convention (and of extensions), dropped from a plain copy.
_COMPRESSION_KEY = re.compile(
    r"^(XTENSION|PCOUNT|GCOUNT|ZIMAGE|ZSIMPLE|ZEXTEND|ZBLOCKED|ZTENSION|ZPCOUNT|ZGCOUNT|ZBITPIX|"
    r"ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+|ZVAL\d+|ZMASKCMP|ZQUANTIZ|ZDITHER0|ZHECKSUM|"
    r"ZDATASUM)$")
# Weight threshold above which MAP_RMS pixels are treated as bad (masked).
_MASKED_RMS = 1.0e30


def default_parameters() -> list[str]:
    """ezphot's default output parameters (``sextractor_configs/default.param``)."""
    return read_param_file(sextractor_config_dir() / "default.param")


def zero_based_columns(table: Table) -> list[str]:
    """Columns holding pixel positions (X_IMAGE, XWIN_IMAGE, XPEAK_IMAGE, XMIN_IMAGE, ...)."""
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
    Returns None when fewer than ``min_stars`` stars qualify. ``timeout``: seconds allowed
    to the binary (default ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else one that grows with the
    image size).
    """
    pixelscale = img.pixelscale
    if not pixelscale:
        return None
    binary = binary or find_sextractor(timeout=timeout)
    config = dict(img.profile.sextractor)
    config.update(DETECT_THRESH=20, ANALYSIS_THRESH=20, PHOT_APERTURES=10,
                  SATUR_LEVEL=saturation_level or img.saturation, SATUR_KEY=_NO_KEY,
                  GAIN=0.0, GAIN_KEY=_NO_KEY, PIXEL_SCALE=pixelscale, CLEAN="Y")
    params = ["FWHM_IMAGE", "FLAGS", "ELONGATION", "FLUX_AUTO", "FLUXERR_AUTO", "CLASS_STAR"]
    with run_directory("ezphot-seeing-") as workdir:
        image_path = _sextractor_input(img, workdir)
        run = run_sextractor(image_path, workdir=workdir, config=config, parameters=params,
                             n_apertures=1, binary=binary, timeout=timeout)
    t = run.catalogs[0].table
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = t["FLUX_AUTO"] / t["FLUXERR_AUTO"]
    good = (t["FLAGS"] == 0) & (t["ELONGATION"] < 1.3) & (snr > 20) & (t["FWHM_IMAGE"] > 0.5)
    fwhm = np.asarray(t["FWHM_IMAGE"][good], dtype=float)
    if fwhm.size < min_stars:
        log.warning("%s: only %d stars to measure the seeing", img.path, fwhm.size)
        return None
    from astropy.stats import mad_std

    # Clip galaxies and blends (broad) before the median (one 3-sigma pass about the median,
    # sigma the MAD-based std, at least 5 % of the median).
    med = np.median(fwhm)
    fwhm = fwhm[np.abs(fwhm - med) < 3 * max(mad_std(fwhm), 0.05 * med)]
    seeing = float(np.median(fwhm) * pixelscale)
    log.info("%s: seeing measured on %d stars: %.3f arcsec", img.path, fwhm.size, seeing)
    return seeing


_STRUCTURAL = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|BZERO|BSCALE|BLANK|CHECKSUM|DATASUM)$")


def _plain_header(header: fits.Header, shape: tuple[int, int]) -> fits.Header:
    """A float32 primary header with the image's metadata and WCS (no structure/compression)."""
    out = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", shape[1]),
                       ("NAXIS2", shape[0])])
    for card in header.cards:
        if card.keyword and not (_STRUCTURAL.match(card.keyword)
                                 or _COMPRESSION_KEY.match(card.keyword)):
            out.append(card, end=True)
    return out


# Bytes per row block when streaming an image: blocks that stay in the CPU cache and below
# malloc's mmap threshold. With blocks of 512 rows (19 MB for 7DT) every temporary was a
# fresh mmap whose pages the kernel had to fault in and zero: writing the two maps of a full
# 7DT frame took 0.4-0.6 s, now 0.15-0.25 s (benchmarks/, "maps").
_BLOCK_BYTES = 1 << 19


def write_float_image(path: Path, shape: tuple[int, int], rows, header: fits.Header | None = None,
                      chunk: int | None = None) -> str:
    """Write a float32 FITS image row block by row block (no full-frame temporary array).

    ``rows(y0, y1)`` returns the rows ``y0:y1`` of the image; ``chunk`` rows are asked for at
    a time (default: about 512 KiB of pixels).
    """
    chunk = chunk or max(1, _BLOCK_BYTES // (4 * shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        head = _plain_header(header or fits.Header(), shape).tostring().encode("ascii")
    # a plain FITS file written directly: astropy's StreamingHDU flushes every block (slow)
    block = np.empty((chunk, shape[1]), dtype=">f4")  # one reused big-endian buffer
    with open(path, "wb", buffering=0) as fh:
        fh.write(head)
        for y0 in range(0, shape[0], chunk):
            y1 = min(shape[0], y0 + chunk)
            out = block[: y1 - y0]
            out[...] = rows(y0, y1)
            fh.write(out.data)
        fh.write(b"\0" * (-fh.tell() % 2880))  # FITS blocks are 2880 bytes
    return str(path)


def _sextractor_input(img: BaseImage, workdir: Path) -> str:
    """A path the binary can read: the file itself, or a plain copy (tile-compressed input)."""
    path = img.sextractor_path
    if path is not None:
        return path
    log.debug("%s is tile-compressed: measuring a plain copy", img.path)
    try:
        return write_float_image(workdir / "image.fits", img.shape, img.read_rows, img.header)
    finally:
        img.close()


def _prepare_maps(img: BaseImage, workdir: Path, image_path: str, config: dict, bkg, rms, mask,
                  saturation_level: float) -> str:
    """Write the background-subtracted image and the weight map the binary needs.

    SExtractor takes no background map: a map is subtracted into a copy and the binary told
    BACK_TYPE MANUAL 0, with the saturation level lowered by the background removed. RMS map
    and mask become one weight image in which masked pixels are bad, hence neither detected
    nor measured (SExtractor's own way: in apertures they are replaced by their mirror pixel
    about the centre). An RMS map loaded from a file, unmodified and without a mask is
    linked instead of copied. Files are written concurrently (file writes release the GIL).

    Marking masked pixels as -1e30 in the subtracted copy instead would spare the weight file,
    but SExtractor 2.25 treats such pixels differently in apertures (zero, not the mirror
    pixel: a star half under a mask lost half its FLUX_AUTO) and in its noise estimate, so
    the mask stays in the weight map.
    """
    from concurrent.futures import ThreadPoolExecutor

    jobs = {}
    if isinstance(bkg, Background):
        jobs["image"] = (workdir / "image_subbkg.fits",
                         lambda a, b: img.read_rows(a, b) - bkg.data[a:b], img.header)
        # a smooth map: its median from a sparse grid of pixels is the median
        config["SATUR_LEVEL"] = saturation_level - float(np.nanmedian(bkg.data[::8, ::8]))
        config.update(BACK_TYPE="MANUAL", BACK_VALUE=0.0)
    elif bkg is not None:
        config.update(BACK_TYPE="MANUAL", BACK_VALUE=float(bkg))
    linked = None
    if rms is not None:
        # absolute RMS map; masked pixels beyond WEIGHT_THRESH are bad
        config.update(WEIGHT_TYPE="MAP_RMS", WEIGHT_THRESH=_MASKED_RMS / 10, RESCALE_WEIGHTS="N")
        source = rms.unmodified_file() if mask is None else None
        if source is not None and _plain_primary_image(source):
            # loaded from a file and unmodified: handed over as it is, not copied
            linked = workdir / "weight.fits"
            os.symlink(source.resolve(), linked)  # a plain name for the configuration file
        else:
            def weight_rows(a: int, b: int) -> np.ndarray:
                rows = np.array(rms.data[a:b], dtype=np.float32)
                if mask is not None:
                    rows[mask.data[a:b]] = _MASKED_RMS
                return rows

            jobs["weight"] = (workdir / "weight.fits", weight_rows, None)
    elif mask is not None:
        # mask only: relative weights 1/0, rescaled by SExtractor to the measured noise
        def weight_rows(a: int, b: int) -> np.ndarray:
            return (~mask.data[a:b]).astype(np.float32)

        config.update(WEIGHT_TYPE="MAP_WEIGHT", WEIGHT_THRESH=0.5, RESCALE_WEIGHTS="Y")
        jobs["weight"] = (workdir / "weight.fits", weight_rows, None)
    if rms is not None or mask is not None:
        config["WEIGHT_GAIN"] = "N"
    if mask is not None:
        config["INTERP_TYPE"] = "NONE"  # masked pixels stay excluded, not filled in
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            written = {k: pool.submit(write_float_image, path, img.shape, rows, header)
                       for k, (path, rows, header) in jobs.items()}
            written = {k: f.result() for k, f in written.items()}
    finally:
        img.close()  # the file handle read_rows opened
    if "weight" in written or linked is not None:
        config["WEIGHT_IMAGE"] = written.get("weight", str(linked))
    log.debug("%s: written for the binary: %s%s", img.path, sorted(written) or "nothing",
              "; RMS map linked" if linked is not None else "")
    return written.get("image", image_path)


def _plain_primary_image(path: Path) -> bool:
    """True when the primary HDU of ``path`` is a 2-D image SExtractor can read."""
    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError):
        return False
    return header.get("NAXIS") == 2 and header.get("BITPIX") in (8, 16, 32, -32, -64)


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
        log.warning("%s has no celestial WCS: world-coordinate columns set to NaN", img.path)
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
    log.warning("%s: SExtractor's world coordinates differ from astropy's WCS by up to %.3g "
                "arcsec; recomputed with astropy", img.path, worst)
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
    saturation_level: float = 60000,
    kron_factor: float = 2.5,
    parameters: Sequence[str] | None = None,
    egain: float | None = None,
    zeropoint: float | None = None,
    seeing: float | None = None,
    binary: SExtractorBinary | str | None = None,
    checkimages: Sequence[str] | None = None,
    timeout: float | None = None,
    save: bool = True,
    detection_filter: str | np.ndarray | None = "gauss",
    detection_filter_fwhm: float | None = None,
    detection_filter_size: int | None = None,
) -> Catalog:
    """Detect and measure sources with SExtractor; see `AperturePhotometry.sex_photometry`."""
    img = as_image(target_img)
    validate.photometry_args(egain=egain, saturation_level=saturation_level, seeing=seeing,
                             kron_factor=kron_factor, zeropoint=zeropoint)
    resolve_timeout(timeout, 1.0)  # a bad timeout (argument or environment) fails first
    binary = binary if isinstance(binary, SExtractorBinary) else find_sextractor(binary,
                                                                                 timeout=timeout)
    params = list(parameters) if parameters is not None else default_parameters()
    # a copy (never mutate theirs), every keyword, value and input file checked before any run
    user = validate_config(sex_params or {}, binary)
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

    config = dict(img.profile.sextractor)
    min_radius = _numbers(config.get("PHOT_AUTOPARAMS", "2.5,3.5"))[-1]
    config.update(
        DETECT_THRESH=detection_sigma, ANALYSIS_THRESH=detection_sigma,
        PHOT_APERTURES=diam_px, PHOT_AUTOPARAMS=(kron_factor, min_radius),
        SATUR_LEVEL=saturation_level, SATUR_KEY=_NO_KEY, GAIN=gain, GAIN_KEY=_NO_KEY,
        PIXEL_SCALE=pixelscale or 0.0, MAG_ZEROPOINT=zeropoint or 0.0,
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
    with run_directory("ezphot-sex-") as workdir:
        image_path = _prepare_maps(img, workdir, _sextractor_input(img, workdir), config, bkg,
                                   rms, mask, saturation_level)
        config.update(detection_filter_config(dfilter, workdir))
        config["DETECT_THRESH"] = detection_sigma * dfilter.threshold_scale
        config.update(user)
        run = run_sextractor(image_path, workdir=workdir, config=config, parameters=params,
                             n_apertures=len(diam_px), binary=binary, timeout=timeout,
                             checkimages=check_types)
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
        base = catalog_path(img, ".cat")
        for t, check in catalog.checkimages.items():
            check.save(f"{base}.{checkimage_file_name(t)}.fits")
    return finish_catalog(catalog, img, ".cat", save)
