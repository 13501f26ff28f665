"""Random (blank) apertures: the depth an image really reaches, next to the noise model's.

Apertures placed at random away from every source measure what the sky, its noise, the
background estimate and whatever faint light the mask missed (confusion) do to a flux. The
robust scatter of their fluxes is the empirical 1-sigma error of a point-source measurement;
the noise model's error (sqrt of the summed RMS² in the aperture, from an Errormap or the
estimated RMS, plus the background estimate's error) is what catalogues report. The two agree
on clean uncorrelated noise; in crowded or resampled images the blank-aperture scatter is
larger, and the ratio says by how much the reported errors understate the truth (Labbé et al.
2003, AJ 125, 1107; Skelton et al. 2014, ApJS 214, 24, section 3.4).

>>> from ezphot.photometry.depth import blank_apertures
>>> blank_apertures('frame.fits', aperture_diameter_arcsec=[3, 5, 7], zeropoint=28.0)
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from ..exceptions import ImageError, MeasurementWarning
from ..imageobjects import BaseImage, Mask
from .common import as_image, as_list

log = logging.getLogger(__name__)

__all__ = ["blank_apertures", "blank_positions"]


def blank_positions(mask: np.ndarray, radius: float, n: int, rng, *,
                    edge: float | None = None,
                    touch: str = "exact", warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random centres whose disk of ``radius`` px holds no masked pixel.

    Centres stay ``edge`` px (default ``radius + 1``) from the borders. Fewer are returned
    (with a warning) when the free area is too small.

    Parameters
    ----------
    mask : 2-D bool array
        True where a pixel may not be covered (sources, bad pixels).
    radius : float
        Aperture radius in pixels.
    n : int
        How many centres.
    rng : numpy.random.Generator
        Random generator.
    edge : float, optional
        Distance to keep from the borders, in pixels.
    touch : {'exact', 'centre'}
        Which pixels must be free: ``'exact'``, every pixel the disk touches (no masked pixel
        adds to a blank aperture's flux: `blank_apertures`); ``'centre'``, the pixels whose
        centres lie within ``radius + 0.5`` of the rounded centre, so that an aperture may
        graze a mask's edge with corner pixels as an arbitrary position does (the confusion
        term of forced photometry).
    warn : bool
        Warn (`MeasurementWarning`) when fewer than ``n`` fit; False when the caller reports
        the count itself.

    Returns
    -------
    x, y : numpy.ndarray
        0-based pixel centres.
    """
    if touch not in ("exact", "centre"):
        raise ValueError(f"touch must be 'exact' or 'centre', got {touch!r}")
    ny, nx = mask.shape
    edge = radius + 1 if edge is None else edge
    if nx - 2 * edge <= 1 or ny - 2 * edge <= 1:
        raise ValueError(f"the image ({nx}x{ny}) is too small for apertures of radius "
                         f"{radius:.1f} px")
    # every pixel the aperture touches: its square comes within radius of the (unrounded)
    # centre, as photutils' exact overlap sees it (a disk of radius + 0.5 about the rounded
    # centre missed corners up to 0.9 px further out)
    r = int(math.ceil(radius)) + 1
    off = np.arange(-r, r + 1)
    padded = np.pad(np.asarray(mask, bool), r)  # windows near the borders stay in bounds
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(100):
        m = 4 * (n - len(xs)) + 32
        cx = rng.uniform(edge, nx - 1 - edge, m)
        cy = rng.uniform(edge, ny - 1 - edge, m)
        for x, y in zip(cx, cy, strict=False):
            ix, iy = int(round(x)), int(round(y))
            dx = np.maximum(np.abs(ix + off - x) - 0.5, 0.0)
            dy = np.maximum(np.abs(iy + off - y) - 0.5, 0.0)
            if touch == "exact":
                touched = dy[:, None] ** 2 + dx[None, :] ** 2 < radius * radius
            else:
                touched = off[:, None] ** 2 + off[None, :] ** 2 <= (radius + 0.5) ** 2
            if not padded[iy:iy + 2 * r + 1, ix:ix + 2 * r + 1][touched].any():
                xs.append(x)
                ys.append(y)
                if len(xs) == n:
                    return np.array(xs), np.array(ys)
    if warn:
        warnings.warn(f"only {len(xs)} of {n} blank apertures of radius {radius:.1f} px fit "
                      "between the sources", MeasurementWarning, stacklevel=2)
    return np.array(xs), np.array(ys)


def _source_mask(img: BaseImage, binary, *, grow: float) -> np.ndarray:
    """Disks over the binary's 3-sigma detections: 2 x isophotal radius, at least ``grow``."""
    from ..masks import paint_disks
    from ..sextractor.imagerun import detect_sources

    det = detect_sources(img, binary=binary)
    mask = np.zeros(img.shape, bool)
    if len(det):
        r = np.maximum(2.0 * np.sqrt(np.asarray(det["ISOAREA_IMAGE"], float) / np.pi),
                       np.maximum(grow, 2.0 * np.asarray(det["FWHM_IMAGE"], float).clip(0, 50)))
        paint_disks(mask, det["X_IMAGE"], det["Y_IMAGE"], r)
    log.info("%s: %d sources masked for blank apertures (%.1f %% of the pixels)", img.path,
             len(det), 100 * mask.mean())
    return mask


def blank_apertures(
    image: BaseImage | str | os.PathLike,
    *,
    aperture_diameter_arcsec: float | Sequence[float] | u.Quantity = (3, 5, 7, 10),
    n_apertures: int = 500,
    source_mask: Mask | np.ndarray | None = None,
    target_bkg=None,
    target_bkgrms=None,
    target_mask: Mask | np.ndarray | None = None,
    zeropoint: float | None = None,
    seed: int | None = None,
    binary=None,
) -> Table:
    """Fluxes in random apertures away from sources, against the noise model, per size.

    Parameters
    ----------
    image : ScienceImage or path
    aperture_diameter_arcsec : float, list or Quantity
        Aperture diameters (arcsec; or a Quantity in ``u.pix``).
    n_apertures : int
        Apertures per size (all sizes share the centres, placed for the largest).
    source_mask : Mask or bool array, optional
        Pixels to keep every aperture off; default: the binary's 3-sigma detections, each
        covered by twice its isophotal radius (at least 2 FWHM).
    target_bkg, target_bkgrms, target_mask
        As for `circular_photometry`, which measures the apertures (without maps: its own
        tile estimate of the sky and its RMS).
    zeropoint : float, optional
        Calibrated 5-sigma depths when given; instrumental (zero point 0) otherwise.
    seed : int, optional
    binary : SExtractorBinary or str, optional

    Returns
    -------
    astropy.table.Table
        One row per diameter: DIAMETER (arcsec), DIAMETER_PIX, N, MEAN_FLUX (ADU),
        MEAN_PER_PIXEL (ADU/px: the background bias), SCATTER_MAD (1.4826 MAD),
        SCATTER_CLIPPED (3-sigma-clipped std), NOISE_MODEL (median FLUXERR of the
        catalogue: sqrt(sum RMS²) plus the background's error), SCATTER_RATIO
        (SCATTER_MAD / NOISE_MODEL), DEPTH5_BLANK and DEPTH5_MODEL (mag of 5 sigma).
        ``meta`` holds the centres (``x``, ``y``, 0-based), the mask's origin, the zero
        point and the background label of the measurement.
    """
    from .forced import circular_photometry

    img = as_image(image)
    if not (isinstance(n_apertures, int | np.integer) and n_apertures >= 5):
        raise ValueError(f"n_apertures must be an integer >= 5, got {n_apertures!r}")
    if isinstance(aperture_diameter_arcsec, u.Quantity) and aperture_diameter_arcsec.unit == u.pix:
        diam_px = as_list(aperture_diameter_arcsec.value, "aperture_diameter_arcsec")
    else:
        arcsec = aperture_diameter_arcsec
        if isinstance(arcsec, u.Quantity):
            arcsec = arcsec.to_value(u.arcsec)
        arcsec = as_list(arcsec, "aperture_diameter_arcsec")
        if not img.pixelscale:
            raise ImageError(f"{img.path}: apertures in arcsec need a pixel scale (WCS or "
                             "profile); give a Quantity in u.pix")
        diam_px = [d / img.pixelscale for d in arcsec]
    if not diam_px:
        raise ValueError("aperture_diameter_arcsec is empty")
    rng = np.random.default_rng(seed)
    if source_mask is None:
        fwhm = img.seeing / img.pixelscale if img.seeing and img.pixelscale else 3.0
        mask = _source_mask(img, binary, grow=2.0 * fwhm)
        origin = "detections"
    else:
        mask = np.asarray(source_mask.data if isinstance(source_mask, Mask) else source_mask,
                          bool)
        if mask.shape != img.shape:
            raise ValueError(f"source_mask has shape {mask.shape}, the image {img.shape}")
        origin = "given"
    if target_mask is not None:
        extra = target_mask.data if isinstance(target_mask, Mask) else target_mask
        mask = mask | np.asarray(extra, bool)
    x, y = blank_positions(mask, max(diam_px) / 2.0, int(n_apertures), rng)
    if x.size < 5:
        raise ImageError(f"{img.path}: no room for blank apertures of {max(diam_px):.1f} px "
                         "between the sources")
    cat = circular_photometry(img, x, y, unit="pixel", aperture_diameter_arcsec=diam_px * u.pix,
                              aperture_diameter_seeing=None, target_bkg=target_bkg,
                              target_bkgrms=target_bkgrms, target_mask=target_mask, save=False)
    zp = 0.0 if zeropoint is None else float(zeropoint)
    rows = []
    for i, d in enumerate(diam_px):
        suffix = "" if i == 0 else f"_{i}"
        flux = np.asarray(cat.data[f"FLUX_APER{suffix}"], float)
        err = np.asarray(cat.data[f"FLUXERR_APER{suffix}"], float)
        ok = np.isfinite(flux) & np.isfinite(err)
        flux, err = flux[ok], err[ok]
        med = float(np.median(flux))
        mad = float(1.4826 * np.median(np.abs(flux - med)))
        _, _, clipped = sigma_clipped_stats(flux, sigma=3, maxiters=10)
        model = float(np.median(err))
        area = math.pi * d * d / 4.0
        rows.append((d * img.pixelscale if img.pixelscale else np.nan, d, int(ok.sum()),
                     float(np.mean(flux)), float(np.mean(flux)) / area, mad, float(clipped),
                     model, mad / model if model > 0 else np.nan,
                     -2.5 * math.log10(5 * mad) + zp if mad > 0 else np.nan,
                     -2.5 * math.log10(5 * model) + zp if model > 0 else np.nan))
    t = Table(rows=rows, names=("DIAMETER", "DIAMETER_PIX", "N", "MEAN_FLUX", "MEAN_PER_PIXEL",
                                "SCATTER_MAD", "SCATTER_CLIPPED", "NOISE_MODEL", "SCATTER_RATIO",
                                "DEPTH5_BLANK", "DEPTH5_MODEL"))
    for col, unit in (("DIAMETER", u.arcsec), ("DIAMETER_PIX", u.pix), ("MEAN_FLUX", u.ct),
                      ("MEAN_PER_PIXEL", u.ct / u.pix ** 2), ("SCATTER_MAD", u.ct),
                      ("SCATTER_CLIPPED", u.ct), ("NOISE_MODEL", u.ct),
                      ("DEPTH5_BLANK", u.mag), ("DEPTH5_MODEL", u.mag)):
        t[col].unit = unit
    t.meta.update(image=str(img.path), n_positions=int(x.size), source_mask=origin,
                  zeropoint=zeropoint, calibrated=zeropoint is not None, seed=seed,
                  background=cat.meta.get("background"),
                  x=x.tolist(), y=y.tolist())  # the apertures' centres (0-based pixels)
    return t


# -- confusion error of forced photometry ------------------------------------------------------
CONFUSION_PIXELS = 1 << 20  # area of the region around the positions holding the apertures
CONFUSION_WIDTH = 4096      # px: its widest (then 256 rows: a 7DT frame)
CONFUSION_MIN_ROWS = 256
CONFUSION_N = 600           # blank apertures per call
CONFUSION_MIN_N = 100       # fewer fit: no term (meta says why)
CONFUSION_THRESHOLD = 1.05  # blank scatter / noise model above which the excess is added


def confusion_error(img: BaseImage, px: np.ndarray, py: np.ndarray, diam_px: Sequence[float],
                    user_mask: np.ndarray | None, *, measure, fwhm: float | None = None,
                    seed: int = 0) -> dict:
    """The error term forced photometry adds for what its noise model leaves out.

    Blank apertures — random centres in a region of ~`CONFUSION_PIXELS` (at most
    `CONFUSION_WIDTH` px wide, at least `CONFUSION_MIN_ROWS` rows) around the median of the
    positions, their disks clear of every source the deep mask finds there
    (the background's own detection: a Gaussian of the seeing ``fwhm`` px at S/N 5, each
    source grown to where its profile falls below 0.001 of the pixel noise; see
    `ezphot.background.calculate_bkg`) and of the user's mask — are measured by ``measure(x,
    y)`` (the caller's own sky: maps, tiles or annulus) and their 4-sigma-clipped flux
    scatter compared, per aperture size, with the median noise-model FLUXERR. Stars below
    the detection limit (confusion) and the background's own error make the scatter larger;
    where the ratio exceeds `CONFUSION_THRESHOLD` (the estimate's precision with
    `CONFUSION_N` apertures is ~3 %), ``sigma_conf = sqrt(scatter² - model²)`` is returned
    for the caller to add in quadrature; else 0.

    Returns
    -------
    dict
        ``method``, ``n`` (apertures measured), ``region`` ([y0, y1, x0, x1]), ``threshold``,
        ``seed`` and ``apertures``: per size ``diameter_pixel``, ``blank_scatter``,
        ``noise_model``, ``ratio`` and ``sigma_conf`` (ADU); ``note`` when not measured.
    """
    from .forced import _DeepTiles

    ny, nx = img.shape
    out = {"method": "blank apertures, 4-sigma-clipped scatter vs median noise-model FLUXERR",
           "threshold": CONFUSION_THRESHOLD, "seed": seed, "n": 0, "region": None,
           "apertures": [{"diameter_pixel": float(d), "blank_scatter": None,
                          "noise_model": None, "ratio": None, "sigma_conf": 0.0}
                         for d in diam_px]}
    inside = (px > -0.5) & (px < nx - 0.5) & (py > -0.5) & (py < ny - 0.5)
    if not inside.any():
        out["note"] = "no position on the image"
        return out
    # a strip of ~1 Mpx, wide and short: forced photometry reads whole rows, so a short
    # strip keeps the rows read for the blank apertures (and the memory) small
    w = min(nx, CONFUSION_WIDTH)
    h = min(ny, max(CONFUSION_MIN_ROWS, CONFUSION_PIXELS // w))
    cy, cx = float(np.median(py[inside])), float(np.median(px[inside]))
    y0 = int(np.clip(round(cy) - h // 2, 0, ny - h))
    x0 = int(np.clip(round(cx) - w // 2, 0, nx - w))
    y1, x1 = y0 + h, x0 + w
    out["region"] = [y0, y1, x0, x1]
    tiles = _DeepTiles(img.data, user_mask, fwhm=fwhm)
    deep, b = tiles._make(y0, y1, x0, x1)
    mask = np.repeat(np.repeat(deep, b, axis=0), b, axis=1)[:y1 - y0, :x1 - x0]
    if mask.shape != (y1 - y0, x1 - x0):  # binned frame cut short at the edges
        full = np.ones((y1 - y0, x1 - x0), bool)
        full[:mask.shape[0], :mask.shape[1]] = mask
        mask = full
    if user_mask is not None:
        mask = mask | user_mask[y0:y1, x0:x1]
    radius = max(diam_px) / 2.0
    try:
        # 'centre': the confusion at arbitrary positions includes the faint wings just
        # outside the deep mask, which the exact rule keeps every aperture away from
        # (crowded test frame, 10": excess 1.079 -> term, pulls 1.07; exact rule 1.039 ->
        # no term, pulls 1.15)
        bx, by = blank_positions(mask, radius, CONFUSION_N, np.random.default_rng(seed),
                                 touch="centre", warn=False)
    except ValueError:
        bx = by = np.empty(0)
    if bx.size < CONFUSION_MIN_N:
        out["note"] = (f"only {bx.size} blank apertures of {2 * radius:.1f} px fit in the region:"
                       " no confusion term")
        return out
    columns, flags = measure(bx + x0, by + y0)
    ok = flags == 0
    out["n"] = int(ok.sum())
    for k, row in enumerate(out["apertures"]):
        flux = np.asarray(columns[k]["FLUX"])[ok]
        err = np.asarray(columns[k]["FLUXERR"])[ok]
        good = np.isfinite(flux) & np.isfinite(err)
        if good.sum() < CONFUSION_MIN_N:
            continue
        _, _, scatter = sigma_clipped_stats(flux[good], sigma=4.0, maxiters=10)
        model = float(np.median(err[good]))
        ratio = float(scatter) / model if model > 0 else float("nan")
        row.update(blank_scatter=float(scatter), noise_model=model, ratio=ratio)
        if ratio > CONFUSION_THRESHOLD:
            row["sigma_conf"] = float(math.sqrt(scatter ** 2 - model ** 2))
    return out
