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
    if touch == "centre":
        return _centre_positions(mask, radius, n, rng, edge, warn)
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
            touched = dy[:, None] ** 2 + dx[None, :] ** 2 < radius * radius
            if not padded[iy:iy + 2 * r + 1, ix:ix + 2 * r + 1][touched].any():
                xs.append(x)
                ys.append(y)
                if len(xs) == n:
                    return np.array(xs), np.array(ys)
    if warn:
        warnings.warn(f"only {len(xs)} of {n} blank apertures of radius {radius:.1f} px fit "
                      "between the sources", MeasurementWarning, stacklevel=2)
    return np.array(xs), np.array(ys)



def _centre_positions(mask, radius, n, rng, edge, warn):
    """`blank_positions` with ``touch='centre'``, vectorised: the same uniform draws with
    rejection as the loop, each batch of candidates checked at once against the disk of pixel
    centres within ``radius + 0.5`` of its rounded centre (~20x faster than the loop on a
    crowded 1 Mpx region, and than a distance transform of it)."""
    ny, nx = mask.shape
    r = int(math.ceil(radius + 0.5))
    off = np.arange(-r, r + 1)
    oy, ox = np.nonzero(off[:, None] ** 2 + off[None, :] ** 2 <= (radius + 0.5) ** 2)
    oy, ox = oy - r, ox - r
    padded = np.pad(np.asarray(mask, bool), r)  # windows near the borders stay in bounds
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    got = 0
    for _ in range(100):
        m = 4 * (n - got) + 32
        cx = rng.uniform(edge, nx - 1 - edge, m)
        cy = rng.uniform(edge, ny - 1 - edge, m)
        ix = np.rint(cx).astype(np.intp) + r
        iy = np.rint(cy).astype(np.intp) + r
        free = np.ones(m, bool)
        for k in range(0, oy.size, 64):  # bounded temporaries: m x 64 lookups at a time
            free &= ~padded[iy[:, None] + oy[None, k:k + 64], ix[:, None] + ox[None, k:k + 64]
                            ].any(axis=1)
        take = np.flatnonzero(free)[:n - got]
        xs.append(cx[take])
        ys.append(cy[take])
        got += take.size
        if got == n:
            break
    x, y = np.concatenate(xs), np.concatenate(ys)
    if got < n and warn:
        warnings.warn(f"only {got} of {n} blank apertures of radius {radius:.1f} px fit "
                      "between the sources", MeasurementWarning, stacklevel=3)
    return x, y


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
CONFUSION_CLIP = 4.0        # sigma: a few apertures on a bright neighbour's core do not decide


def excess_scatter(flux: np.ndarray, err: np.ndarray) -> dict:
    """The blank apertures' variance beyond the noise model, with its uncertainty.

    ``s²``: the variance of the fluxes after `CONFUSION_CLIP`-sigma clipping; ``m``: the
    median noise-model error. The excess variance ``s² - m²`` is an unbiased estimate of what
    the noise model leaves out; its standard error is the large-sample one of a variance,
    ``sqrt((mu4 - s⁴) / n)`` with the clipped sample's own fourth central moment (no
    Gaussian assumption: confusion by faint stars is skewed and heavy-tailed). The term
    returned, ``sigma_conf = sqrt(max(s² - m², 0))``, makes the reported error the larger of
    the model and the blank apertures' scatter (the blank-aperture error of Labbé et al.
    2003 and Skelton et al. 2014): no threshold, so no decision that flips on the
    estimate's noise.

    Returns
    -------
    dict
        ``n`` (apertures kept), ``blank_scatter`` (s), ``noise_model`` (m), ``ratio`` (s/m),
        ``ratio_err``, ``excess_variance`` and ``excess_variance_err`` (ADU²),
        ``significance`` (excess / its error) and ``sigma_conf`` (ADU).
    """
    from astropy.stats import sigma_clip

    flux = np.asarray(flux, float)
    kept = sigma_clip(flux, sigma=CONFUSION_CLIP, maxiters=10, masked=False)
    n = int(kept.size)
    mean = float(np.mean(kept))
    dev = kept - mean
    s2 = float(np.mean(dev ** 2))
    mu4 = float(np.mean(dev ** 4))
    s2_err = math.sqrt(max(mu4 - s2 * s2, 0.0) / n)
    m = float(np.median(err))
    s = math.sqrt(s2)
    excess = s2 - m * m
    return {"n": n, "blank_scatter": s, "noise_model": m,
            "ratio": s / m if m > 0 else float("nan"),
            "ratio_err": s2_err / (2.0 * s * m) if s > 0 and m > 0 else float("nan"),
            "excess_variance": excess, "excess_variance_err": s2_err,
            "significance": excess / s2_err if s2_err > 0 else float("nan"),
            "sigma_conf": math.sqrt(excess) if excess > 0 else 0.0}


def confusion_error(img: BaseImage, px: np.ndarray, py: np.ndarray, diam_px: Sequence[float],
                    user_mask: np.ndarray | None, *, measure, fwhm: float | None = None,
                    seed: int = 0, region_sky: bool = False) -> dict:
    """The error term forced photometry adds for what its noise model leaves out.

    Blank apertures — random centres in a region of ~`CONFUSION_PIXELS` (at most
    `CONFUSION_WIDTH` px wide, at least `CONFUSION_MIN_ROWS` rows) around the median of the
    positions, no pixel within ``radius + 0.5`` of their rounded centre in the deep source
    mask of the region (the background's own detection: a Gaussian of the seeing ``fwhm`` px
    at S/N 5, each source grown to where its profile falls below 0.001 of the pixel noise;
    see `ezphot.background.calculate_bkg`) or the user's mask — are measured by
    ``measure(x, y, sky)``: the caller's own kind of sky (maps, tiles or annulus); with
    ``region_sky`` the tile estimate is the region's own (``sky`` = (back, rms, y0, x0), the
    deep-masked clipped mean on 64-px meshes made in the same pass as the mask), else ``sky``
    is None. Per aperture size, `excess_scatter` compares their flux scatter with the
    median noise-model FLUXERR and gives ``sigma_conf`` for the caller to add in quadrature.

    The population: on the crowded test frame (tests/test_background_accuracy.py) the
    noiseless truth of every star gives, in 10" apertures, a confusion ratio of 1.055-1.058
    for random centres kept 0 to 20 px off this mask, 1.055 for centres 30 px from every
    detectable star (the injected stars' positions) and 1.060 at the injected positions
    themselves: where blank apertures may lie relative to the mask hardly matters; what
    mattered was the estimate's own noise (~3 % on the ratio from 600 apertures) against a
    5 % threshold, which is why there is none now.

    Returns
    -------
    dict
        ``method``, ``n`` (apertures measured), ``region`` ([y0, y1, x0, x1]), ``sky``,
        ``seed`` and ``apertures``: per size ``diameter_pixel`` and the keys of
        `excess_scatter`; ``note`` when not measured (then ``sigma_conf`` is 0).
    """
    from ..background import ArrayRows, _mesh_to_map, deep_background

    ny, nx = img.shape
    out = {"method": "blank apertures: excess of their 4-sigma-clipped variance over the "
                     "median noise-model FLUXERR squared (no threshold)",
           "seed": seed, "n": 0, "region": None,
           "sky": "region tile estimate" if region_sky else "the call's",
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
    # one pass gives the deep mask and, for the tile path, the region's sky (the tiles of
    # the region one by one cost 5x more)
    box, filt = 64, 3
    arr = ArrayRows(img.data[y0:y1, x0:x1])  # rows are copied to float32 as read
    masks = [] if user_mask is None else [user_mask[y0:y1, x0:x1]]
    mesh, spread, deep, b, _ = deep_background(arr, masks, [], box, filt, fwhm)
    mask = np.repeat(np.repeat(deep, b, axis=0), b, axis=1)[:y1 - y0, :x1 - x0]
    if mask.shape != (y1 - y0, x1 - x0):  # binned frame cut short at the edges
        full = np.ones((y1 - y0, x1 - x0), bool)
        full[:mask.shape[0], :mask.shape[1]] = mask
        mask = full
    if user_mask is not None:
        mask = mask | user_mask[y0:y1, x0:x1]
    sky = None
    if region_sky:
        if not np.isfinite(mesh).any():
            out["note"] = "no usable sky in the region: no confusion term"
            return out
        sky = (_mesh_to_map(mesh, filt, (y1 - y0, x1 - x0), box),
               _mesh_to_map(spread, filt, (y1 - y0, x1 - x0), box), y0, x0)
    radius = max(diam_px) / 2.0
    try:
        # 'centre': apertures may graze the mask's edge as an arbitrary position does
        bx, by = blank_positions(mask, radius, CONFUSION_N, np.random.default_rng(seed),
                                 touch="centre", warn=False)
    except ValueError:
        bx = by = np.empty(0)
    del mask
    if bx.size < CONFUSION_MIN_N:
        out["note"] = (f"only {bx.size} blank apertures of {2 * radius:.1f} px fit in the region:"
                       " no confusion term")
        return out
    columns, flags = measure(bx + x0, by + y0, sky)
    ok = flags == 0
    out["n"] = int(ok.sum())
    for k, row in enumerate(out["apertures"]):
        flux = np.asarray(columns[k]["FLUX"])[ok]
        err = np.asarray(columns[k]["FLUXERR"])[ok]
        good = np.isfinite(flux) & np.isfinite(err)
        if good.sum() < CONFUSION_MIN_N:
            continue
        row.update(excess_scatter(flux[good], err[good]))
    return out
