"""Injection–recovery: completeness and flux bias measured on the image itself.

Artificial stars drawn with the image's own PSF are added at random positions to a copy of
the image (in the run's temporary directory — never beside the data) and measured again with
a chosen workflow; what comes back, against what went in, measures the depth (50 % and 90 %
completeness magnitudes) and the flux bias and scatter of that workflow on that image. The
method is that of the Dark Energy Survey's Balrog (Suchyta et al. 2016, MNRAS 457, 786;
Everett et al. 2022, ApJS 258, 15), here for point sources.

>>> res = injection_recovery('frame.fits', n_stars=300, workflow='forced', seed=1)
>>> res.summary              # per magnitude bin: completeness, flux ratio median and scatter
>>> res.mag50, res.mag90     # completeness magnitudes (instrumental unless zeropoint= given)
>>> fig = res.plot()

PSF (``psf=``): ``'auto'`` builds an effective PSF (photutils ``EPSFBuilder``) from bright,
unsaturated, round, isolated stars the binary finds on the image; with fewer than
``min_psf_stars`` such stars it fits a Moffat profile (astropy) to the ones there are, and
with none it uses a Moffat (beta 2.5) of the header's seeing. ``'moffat'`` uses that last
one directly; a 2-D array is used as the PSF image (centred, any normalisation).

Truth: every injected star is a stamp of ``4 x FWHM`` radius (at least 10 px) normalised to
``FLUX_INJ`` (its flux on the image); ``FLUX_INJ_APER`` is the stamp's flux in the
measurement aperture (photutils, exact overlap), the number a perfect aperture measurement
returns. ``RATIO = FLUX / FLUX_INJ_APER``.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from ._io import run_directory, write_float_image
from .exceptions import ImageError, MeasurementWarning
from .imageobjects import BaseImage
from .photometry.common import as_image
from .sextractor.imagerun import detect_sources

log = logging.getLogger(__name__)

__all__ = ["injection_recovery", "InjectionResult", "build_psf", "completeness_magnitudes"]

WORKFLOWS = ("forced", "sextractor")
_MAPS = (None, "calculate")
_EPSF_OVERSAMPLING = 1
_EPSF_ITERS = 4


@dataclass
class InjectionResult:
    """What `injection_recovery` returns (its fields are its attributes).

    Parameters
    ----------
    table : astropy.table.Table
        One row per injected star: X, Y (0-based), RA, DEC, MAG_INJ, FLUX_INJ,
        FLUX_INJ_APER, SNR_INJ (expected aperture S/N), FLUX, FLUXERR, RATIO, PULL,
        DETECTED, MATCH_DIST (px; sextractor workflow).
    summary : astropy.table.Table
        Per magnitude bin: N, COMPLETENESS, RATIO_MEDIAN, RATIO_SCATTER (1.4826 MAD),
        PULL_STD (robust).
    mag50, mag90 : float
        Magnitudes at 50 % and 90 % completeness (NaN when not reached).
    meta : dict
        Workflow, PSF (kind, FWHM, stars used), aperture, seed, detection settings.
    """

    table: Table
    summary: Table
    mag50: float
    mag90: float
    meta: dict = field(default_factory=dict)

    def plot(self, fig=None):
        """Completeness and flux ratio against magnitude (a matplotlib Figure, Agg-safe).

        Parameters
        ----------
        fig : matplotlib.figure.Figure, optional
            Draw into this figure (two axes are added); default a new 10x4 inch Figure.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn.
        """
        from matplotlib.figure import Figure

        fig = fig or Figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        s, t = self.summary, self.table
        ax1.plot(s["MAG"], s["COMPLETENESS"], "o-", color="C0")
        for m, ls, lab in ((self.mag50, "--", "50 %"), (self.mag90, ":", "90 %")):
            if np.isfinite(m):
                ax1.axvline(m, ls=ls, color="C3", label=f"{lab}: {m:.2f}")
        ax1.set_ylim(-0.05, 1.05)
        ax1.set_xlabel("injected magnitude")
        ax1.set_ylabel("completeness")
        ax1.legend(loc="lower left")
        ok = np.isfinite(t["RATIO"]) & t["DETECTED"]
        ax2.scatter(t["MAG_INJ"][ok], t["RATIO"][ok], s=4, color="0.6")
        ax2.errorbar(s["MAG"], s["RATIO_MEDIAN"], yerr=s["RATIO_SCATTER"], fmt="o-",
                     color="C1")
        ax2.axhline(1, color="k", lw=0.8)
        ax2.set_ylim(0, 2)
        ax2.set_xlabel("injected magnitude")
        ax2.set_ylabel("recovered / injected flux")
        fig.suptitle(f"injection-recovery ({self.meta.get('workflow')}, "
                     f"{len(t)} stars, PSF {self.meta.get('psf', {}).get('kind')})")
        return fig


# -- PSF ---------------------------------------------------------------------------------------

def _moffat_image(fwhm: float, beta: float, radius: int, oversample: int = 5) -> np.ndarray:
    """A Moffat profile on a (2r+1)² grid, averaged over ``oversample``² sub-pixels."""
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    n = 2 * radius + 1
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    x = (np.arange(n)[:, None] - radius + sub[None, :]).ravel()
    r2 = x[None, :] ** 2 + x[:, None] ** 2
    prof = (1.0 + r2 / alpha ** 2) ** (-beta)
    return prof.reshape(n, oversample, n, oversample).mean(axis=(1, 3))


@dataclass
class _PSF:
    """A PSF that renders stamps at sub-pixel positions."""

    kind: str
    fwhm: float
    model: object = None          # photutils ImagePSF (epsf) or None
    image: np.ndarray | None = None  # pixel-sampled PSF (array / moffat)
    beta: float | None = None
    n_stars: int = 0

    def stamp(self, dx: float, dy: float, radius: int) -> np.ndarray:
        """Unit-sum stamp of (2 radius+1)² pixels with the star at (radius+dx, radius+dy)."""
        n = 2 * radius + 1
        yy, xx = np.mgrid[0:n, 0:n]
        if self.model is not None:
            m = self.model
            vals = m.evaluate(xx, yy, 1.0, radius + dx, radius + dy)
        elif self.beta is not None:  # moffat, moffat-fit
            alpha = self.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0))
            # 3x3 sub-pixel average (the profile is smooth at these scales)
            sub = np.array([-1 / 3, 0, 1 / 3])
            vals = np.zeros((n, n))
            for sy in sub:
                for sx in sub:
                    r2 = (xx + sx - radius - dx) ** 2 + (yy + sy - radius - dy) ** 2
                    vals += (1.0 + r2 / alpha ** 2) ** (-self.beta)
        else:
            from scipy.ndimage import shift

            img = self.image
            pad = max(0, radius - img.shape[0] // 2)
            img = np.pad(img, pad) if pad else img
            c = img.shape[0] // 2
            img = img[c - radius:c + radius + 1, c - radius:c + radius + 1]
            vals = shift(img, (dy, dx), order=3, mode="constant")
        vals = np.asarray(vals, float)  # no clipping: noise in ePSF wings must not add flux
        total = vals.sum()
        return vals / total if total > 0 else vals

    def meta(self) -> dict:
        return {"kind": self.kind, "fwhm_pixel": self.fwhm, "beta": self.beta,
                "n_stars": self.n_stars}


def _psf_candidates(img: BaseImage, det: Table, radius: int) -> Table:
    """Bright, unsaturated, round, isolated stars away from the edges."""
    if len(det) == 0:
        return det
    ny, nx = img.shape
    x, y = np.asarray(det["X_IMAGE"]), np.asarray(det["Y_IMAGE"])
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.asarray(det["FLUX_AUTO"]) / np.asarray(det["FLUXERR_AUTO"])
    peak = np.asarray(det["FLUX_MAX"]) + np.asarray(det["BACKGROUND"])
    good = ((np.asarray(det["FLAGS"]) == 0) & (np.asarray(det["ELONGATION"]) < 1.3)
            & (snr > 30) & (peak < 0.7 * img.saturation)
            & (x > radius) & (x < nx - 1 - radius) & (y > radius) & (y < ny - 1 - radius)
            & (np.asarray(det["FWHM_IMAGE"]) > 1.0))
    # isolated: no other detection within the stamp
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([x, y]))
    counts = np.array([len(v) for v in tree.query_ball_point(np.column_stack([x, y]),
                                                              r=1.5 * radius)])
    good &= counts == 1
    cand = det[good]
    if len(cand) >= 3:  # galaxies and blends: FWHM far from the stars' median
        fwhm = np.asarray(cand["FWHM_IMAGE"], float)
        med = np.median(fwhm)
        mad = 1.4826 * np.median(np.abs(fwhm - med))
        cand = cand[np.abs(fwhm - med) < 3 * max(mad, 0.05 * med)]
    cand.sort("FLUX_AUTO", reverse=True)
    return cand


def build_psf(img: BaseImage | str | os.PathLike, psf="auto", *, detections: Table | None = None,
              min_psf_stars: int = 5, max_psf_stars: int = 40, beta: float = 2.5) -> _PSF:
    """The PSF `injection_recovery` injects with (see the module docstring).

    Parameters
    ----------
    img : image or path
        The image the PSF is for.
    psf : {'auto', 'moffat'} or 2-D array
        'auto': an ePSF from bright isolated stars, else a Moffat fitted to them, else a
        Moffat of the header seeing; 'moffat': a Moffat of the header (or measured) seeing;
        an array: that PSF (square, odd size, positive sum).
    detections : astropy.table.Table, optional
        SExtractor detections of the image to pick PSF stars from.
    min_psf_stars, max_psf_stars : int
        Fewest stars for an ePSF; most stars used.
    beta : float
        Moffat beta.

    Returns
    -------
    object
        The PSF (its ``kind``, ``fwhm`` in px and a ``stamp(dx, dy, radius)`` method).
    """
    img = as_image(img)
    if not isinstance(psf, str):
        arr = np.asarray(psf, float)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] % 2 == 0 \
                or not np.isfinite(arr).all() or arr.sum() <= 0:
            raise ValueError("psf array must be a finite, square 2-D image of odd size with a "
                             f"positive sum, got shape {arr.shape}")
        return _PSF("array", _fwhm_of(arr), image=arr / arr.sum())
    if psf not in ("auto", "moffat"):
        raise ValueError(f"psf must be 'auto', 'moffat' or a 2-D array, got {psf!r}")
    header_fwhm = img.seeing / img.pixelscale if img.seeing and img.pixelscale else None
    guess = header_fwhm
    if guess is None and detections is not None and len(detections):
        cand = _psf_candidates(img, detections, 10)
        if len(cand):
            guess = float(np.median(cand["FWHM_IMAGE"]))
    if psf == "moffat" or detections is None:
        if guess is None:
            raise ImageError(f"{img.path}: the seeing is unknown (no SEEING in the header and no "
                             "star measured): pass psf= an array")
        return _PSF("moffat", float(guess), beta=beta)
    radius = int(math.ceil(max(4 * (guess or 4.0), 10)))
    cand = _psf_candidates(img, detections, radius)[:max_psf_stars]
    if len(cand) >= min_psf_stars:
        try:
            return _epsf(img, cand, radius)
        except Exception as exc:  # photutils raises several kinds on bad star sets
            warnings.warn(f"{img.path}: ePSF from {len(cand)} stars failed ({exc}); fitting a "
                          "Moffat", MeasurementWarning, stacklevel=2)
    if len(cand):
        fitted = _fit_moffat(img, cand, radius)
        if fitted is not None:
            return fitted
    if guess is None:
        raise ImageError(f"{img.path}: no star to build the PSF from and no seeing in the header:"
                         " pass psf= an array")
    warnings.warn(f"{img.path}: no usable star for the PSF; Moffat (beta {beta:.1f}) of FWHM "
                  f"{guess:.2f} px", MeasurementWarning, stacklevel=2)
    return _PSF("moffat", float(guess), beta=beta)


def _fwhm_of(image: np.ndarray) -> float:
    """FWHM (px) of a PSF image from its half-maximum area."""
    return float(2.0 * math.sqrt((image >= 0.5 * image.max()).sum() / math.pi))


def _epsf(img: BaseImage, cand: Table, radius: int) -> _PSF:
    from photutils.psf import EPSFBuilder, EPSFStar, EPSFStars

    # cut-outs minus SExtractor's local background at each star (no full-frame copy)
    stars = []
    for row in cand:
        xc, yc = float(row["X_IMAGE"]), float(row["Y_IMAGE"])
        x0, y0 = int(round(xc)) - radius, int(round(yc)) - radius
        cut = np.asarray(img.data[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1], float)
        cut = cut - float(row["BACKGROUND"])
        if cut.shape != (2 * radius + 1,) * 2 or not np.isfinite(cut).all():
            continue
        stars.append(EPSFStar(cut, cutout_center=(xc - x0, yc - y0), origin=(x0, y0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder = EPSFBuilder(oversampling=_EPSF_OVERSAMPLING, maxiters=_EPSF_ITERS,
                              progress_bar=False)
        epsf, _ = builder(EPSFStars(stars))
    psf = _PSF("epsf", float("nan"), model=epsf, n_stars=len(stars))
    psf.fwhm = _fwhm_of(psf.stamp(0.0, 0.0, radius))
    log.info("%s: ePSF from %d stars, FWHM %.2f px", img.path, psf.n_stars, psf.fwhm)
    return psf


def _fit_moffat(img: BaseImage, cand: Table, radius: int) -> _PSF | None:
    from astropy.modeling import fitting, models

    fwhms, betas = [], []
    ny, nx = img.shape
    for row in cand[:10]:
        xc, yc = float(row["X_IMAGE"]), float(row["Y_IMAGE"])
        x0, y0 = int(round(xc)) - radius, int(round(yc)) - radius
        if x0 < 0 or y0 < 0 or x0 + 2 * radius >= nx or y0 + 2 * radius >= ny:
            continue
        cut = np.asarray(img.data[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1], float)
        cut = cut - float(row["BACKGROUND"])
        yy, xx = np.mgrid[0:cut.shape[0], 0:cut.shape[1]]
        init = models.Moffat2D(amplitude=cut.max(), x_0=xc - x0, y_0=yc - y0,
                               gamma=max(row["FWHM_IMAGE"], 2.0) / 2.0, alpha=2.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fitting.LevMarLSQFitter()(init, xx, yy, cut)
        if 0.5 < fit.alpha.value < 20 and fit.fwhm > 0.5:
            fwhms.append(float(fit.fwhm))
            betas.append(float(fit.alpha.value))
    if not fwhms:
        return None
    psf = _PSF("moffat-fit", float(np.median(fwhms)), beta=float(np.median(betas)),
               n_stars=len(fwhms))
    log.info("%s: Moffat fitted to %d stars: FWHM %.2f px, beta %.2f", img.path, len(fwhms),
             psf.fwhm, psf.beta)
    return psf


# -- positions and fluxes -----------------------------------------------------------------------

def _positions(shape, n: int, rng, *, edge: float, min_sep: float,
               avoid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random positions ``edge`` px from the borders, ``min_sep`` apart, off ``avoid``."""
    ny, nx = shape
    if nx - 2 * edge <= 1 or ny - 2 * edge <= 1:
        raise ValueError(f"the image ({nx}x{ny}) is too small for stamps {edge:.0f} px from "
                         "its edges")
    xs, ys = [], []
    cell = max(min_sep, 1.0)
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}
    tries = 0
    while len(xs) < n and tries < 50:
        tries += 1
        m = 4 * (n - len(xs)) + 16
        cx = rng.uniform(edge, nx - 1 - edge, m)
        cy = rng.uniform(edge, ny - 1 - edge, m)
        if avoid is not None:
            keep = ~avoid[np.round(cy).astype(int), np.round(cx).astype(int)]
            cx, cy = cx[keep], cy[keep]
        for x, y in zip(cx, cy, strict=False):
            i, j = int(x // cell), int(y // cell)
            near = [p for di in (-1, 0, 1) for dj in (-1, 0, 1) for p in grid.get((i + di, j + dj),
                                                                                  ())]
            if any((x - px) ** 2 + (y - py) ** 2 < min_sep ** 2 for px, py in near):
                continue
            grid.setdefault((i, j), []).append((x, y))
            xs.append(x)
            ys.append(y)
            if len(xs) == n:
                break
    if len(xs) < n:
        warnings.warn(f"room for only {len(xs)} of {n} injected stars (min separation "
                      f"{min_sep:.1f} px)", MeasurementWarning, stacklevel=2)
    return np.array(xs), np.array(ys)


def _sky_rms(img: BaseImage, rng) -> float:
    """Robust sky RMS from a random sample of pixels (for S/N -> flux)."""
    from astropy.stats import sigma_clipped_stats

    ny, nx = img.shape
    k = min(200_000, ny * nx)
    idx = rng.integers(0, ny * nx, k)
    vals = np.asarray(img.data).ravel()[idx].astype(float)
    vals = vals[np.isfinite(vals)]
    _, _, std = sigma_clipped_stats(vals, sigma=3, maxiters=10)
    return float(std)


def completeness_magnitudes(mag: np.ndarray, detected: np.ndarray) -> tuple[float, float, dict]:
    """50 % and 90 % completeness magnitudes from a logistic fit to detected(mag).

    C(m) = c_max / (1 + exp((m - m50') / w)); m50 and m90 are where C = 0.5 and 0.9 (NaN
    when the curve never reaches them).

    Parameters
    ----------
    mag : array
        Injected magnitudes.
    detected : array of bool
        Whether each was recovered.

    Returns
    -------
    mag50, mag90 : float
        The 50 % and 90 % completeness magnitudes (NaN when not reached or too few stars).
    fit : dict
        The fitted ``c_max``, ``m0``, ``width`` (empty when nothing was fitted).
    """
    from scipy.optimize import minimize

    mag = np.asarray(mag, float)
    det = np.asarray(detected, bool)
    if mag.size < 5 or det.all() or not det.any():
        return float("nan"), float("nan"), {}

    def nll(p):
        c, m0, lw = p
        cm = 1.0 / (1.0 + np.exp(-c))
        pr = cm / (1.0 + np.exp(np.clip((mag - m0) / np.exp(lw), -50, 50)))
        pr = np.clip(pr, 1e-9, 1 - 1e-9)
        return -np.sum(np.where(det, np.log(pr), np.log1p(-pr)))

    m0 = float(np.median(mag))
    res = minimize(nll, [3.0, m0, math.log(0.3)], method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 4000})
    c, m0, lw = res.x
    cmax, w = 1.0 / (1.0 + math.exp(-c)), math.exp(lw)

    def at(level):
        if level >= cmax:
            return float("nan")
        return float(m0 + w * math.log(cmax / level - 1.0))

    return at(0.5), at(0.9), {"c_max": cmax, "m0": float(m0), "width": w}


# -- the tool -----------------------------------------------------------------------------------

def injection_recovery(
    image: BaseImage | str | os.PathLike,
    *,
    magnitudes: tuple[float, float] | Sequence[float] | None = None,
    snr: tuple[float, float] | None = None,
    n_stars: int = 200,
    workflow: str = "forced",
    maps: str | None = None,
    psf="auto",
    aperture_diameter_arcsec: float | None = None,
    zeropoint: float = 0.0,
    detect_snr: float = 5.0,
    avoid_sources: bool = True,
    match_radius: float | None = None,
    n_bins: int = 12,
    seed: int | None = None,
    binary=None,
    photometry_kwargs: Mapping[str, object] | None = None,
) -> InjectionResult:
    """Inject artificial stars into a copy of ``image`` and measure them again.

    Parameters
    ----------
    image : ScienceImage or path
        Any image; a celestial WCS gives the RA/DEC columns (NaN without one).
    magnitudes : (min, max) or sequence, optional
        Magnitudes (with ``zeropoint``) drawn uniformly in [min, max], or one per star.
    snr : (min, max), optional
        Alternatively, expected aperture S/N drawn log-uniformly (default (1, 100) when
        neither is given), converted to fluxes with the sky RMS and the gain.
    n_stars : int
        Number of stars (fewer when the frame has no room; a warning says so).
    workflow : {'forced', 'sextractor'}
        ``'forced'``: `circular_photometry` at the injected positions, detected = S/N >=
        ``detect_snr``. ``'sextractor'``: `sex_photometry`, detected = a source within
        ``match_radius`` (default 1 FWHM); FLUX is its FLUX_APER in the same aperture.
    maps : {None, 'calculate'}
        None: the workflow's own sky estimate (forced: tiles; sextractor: the binary's).
        ``'calculate'``: `calculate_bkg` + `calculate_bkgrms_from_propagation` of the
        injected copy, given to the workflow (the tutorial's path).
    psf : 'auto', 'moffat' or 2-D array
        See the module docstring.
    aperture_diameter_arcsec : float, optional
        Measurement aperture; default 2 x the PSF FWHM.
    zeropoint : float
        Magnitude of 1 ADU (0: instrumental magnitudes).
    detect_snr : float
        Forced workflow: S/N that counts as a detection.
    avoid_sources : bool
        Keep injected stars off the image's detected sources (the binary at 3 sigma).
    match_radius : float, optional
        Sextractor workflow: match radius in pixels (default: the PSF FWHM).
    n_bins : int
        Magnitude bins of the summary.
    seed : int, optional
        Random seed (positions, fluxes).
    binary : SExtractorBinary or str, optional
    photometry_kwargs : mapping, optional
        More keywords for the workflow's photometry call (e.g. ``detection_sigma``,
        ``detection_filter``, ``target_mask``).

    Returns
    -------
    InjectionResult
    """
    if workflow not in WORKFLOWS:
        raise ValueError(f"workflow must be one of {WORKFLOWS}, got {workflow!r}")
    if maps not in _MAPS:
        raise ValueError(f"maps must be None or 'calculate', got {maps!r}")
    if not (isinstance(n_stars, int | np.integer) and n_stars > 0):
        raise ValueError(f"n_stars must be a positive integer, got {n_stars!r}")
    if magnitudes is not None and snr is not None:
        raise ValueError("give magnitudes or snr, not both")
    if not (math.isfinite(detect_snr) and detect_snr > 0):
        raise ValueError(f"detect_snr must be positive, got {detect_snr!r}")
    extra = dict(photometry_kwargs or {})
    img = as_image(image)
    rng = np.random.default_rng(seed)
    with run_directory("ezphot-inject-") as workdir:
        det = None
        if avoid_sources or (isinstance(psf, str) and psf == "auto"):
            det = detect_sources(img, binary=binary)
        model = build_psf(img, psf, detections=det)
        fwhm = model.fwhm
        radius = int(math.ceil(max(4 * fwhm, 10)))
        if aperture_diameter_arcsec is None:
            diam = 2.0 * fwhm
        else:
            if not img.pixelscale:
                raise ImageError(f"{img.path}: aperture in arcsec needs a pixel scale")
            diam = float(aperture_diameter_arcsec) / img.pixelscale
        avoid = None
        if avoid_sources and det is not None and len(det):
            from .masks import paint_disks

            avoid = np.zeros(img.shape, bool)
            r_src = np.maximum(2.0 * np.sqrt(np.asarray(det["ISOAREA_IMAGE"], float) / np.pi),
                               1.5 * fwhm) + diam / 2.0
            paint_disks(avoid, det["X_IMAGE"], det["Y_IMAGE"], r_src)
        x, y = _positions(img.shape, int(n_stars), rng, edge=radius + 1,
                          min_sep=max(2 * diam, 2.5 * fwhm), avoid=avoid)
        n = x.size
        if n == 0:
            raise ImageError(f"{img.path}: no room for injected stars away from sources and "
                             "edges")
        # stamps (unit sum) and the fraction of each inside the aperture: the truth
        stamps = [model.stamp(xi - round(xi), yi - round(yi), radius)
                  for xi, yi in zip(x, y, strict=False)]
        frac = _aperture_fractions(stamps, x, y, radius, diam)
        gain = img.egain
        if magnitudes is not None:
            arr = np.asarray(magnitudes, float)
            if arr.ndim == 1 and arr.size == 2 and not (np.size(magnitudes) == n == 2):
                mags = rng.uniform(min(arr), max(arr), n)
            elif arr.size >= n:
                mags = arr[:n]
            else:
                raise ValueError("magnitudes must be (min, max) or one value per star")
            flux = 10 ** (-0.4 * (mags - zeropoint))
            snr_inj = _snr(flux * frac, diam, _sky_rms(img, rng), gain)
        else:
            lo, hi = snr if snr is not None else (1.0, 100.0)
            if not (0 < lo < hi):
                raise ValueError(f"snr must be (min, max) with 0 < min < max, got {snr!r}")
            snr_inj = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
            sky = _sky_rms(img, rng)
            area = math.pi * diam ** 2 / 4
            g = gain or np.inf
            f_ap = (snr_inj ** 2 / g + np.sqrt(snr_inj ** 4 / g ** 2
                                               + 4 * snr_inj ** 2 * area * sky ** 2)) / 2
            flux = f_ap / frac
            mags = -2.5 * np.log10(flux) + zeropoint
        # the stars' own photon noise (the sky's is already in the image)
        scaled = [st * f for st, f in zip(stamps, flux, strict=False)]
        if gain:
            scaled = [st + rng.normal(0.0, 1.0, st.shape) * np.sqrt(np.clip(st, 0, None) / gain)
                      for st in scaled]
        copy = workdir / "injected.fits"
        _write_injected(img, copy, x, y, scaled, radius, write_float_image)
        table = _truth_table(img, x, y, mags, flux, flux * frac, snr_inj)
        measured = _measure(copy, table, workflow, maps, diam, fwhm, match_radius, detect_snr,
                            binary, extra, img)
    summary = _summary(measured, n_bins)
    mag50, mag90, fit = completeness_magnitudes(measured["MAG_INJ"], measured["DETECTED"])
    meta = {"workflow": workflow, "maps": maps, "psf": model.meta(),
            "aperture_diameter_pixel": diam, "n_injected": n, "seed": seed,
            "zeropoint": zeropoint, "detect_snr": detect_snr if workflow == "forced" else None,
            "match_radius_pixel": (match_radius or fwhm) if workflow == "sextractor" else None,
            "completeness_fit": fit, "image": str(img.path), "avoid_sources": avoid_sources,
            "photometry_kwargs": {k: v for k, v in extra.items() if np.isscalar(v)}}
    measured.meta.update(meta)
    log.info("%s: %d stars injected (%s); 50 %% / 90 %% completeness at %.2f / %.2f mag",
             img.path, n, workflow, mag50, mag90)
    return InjectionResult(measured, summary, mag50, mag90, meta)


def _snr(f_ap: np.ndarray, diam: float, sky: float, gain: float | None) -> np.ndarray:
    area = math.pi * diam ** 2 / 4
    var = area * sky ** 2 + (np.maximum(f_ap, 0) / gain if gain else 0.0)
    return f_ap / np.sqrt(var)


def _aperture_fractions(stamps, x, y, radius: int, diam: float) -> np.ndarray:
    """Fraction of each unit stamp inside the aperture (photutils, exact overlap)."""
    from photutils.aperture import CircularAperture

    out = np.empty(len(stamps))
    for k, (s, xi, yi) in enumerate(zip(stamps, x, y, strict=False)):
        c = (radius + xi - round(xi), radius + yi - round(yi))
        m = CircularAperture(c, r=diam / 2.0).to_mask(method="exact")
        out[k] = float(np.sum(m.multiply(s)))
    return out


def _write_injected(img: BaseImage, path: Path, x, y, stamps, radius: int, writer) -> None:
    """The image plus the stamps, written block by block (no full-frame temporary)."""
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    y_lo, y_hi = iy - radius, iy + radius + 1
    order = np.argsort(y_lo)
    y_lo, y_hi, ix, stamps_f = y_lo[order], y_hi[order], ix[order], [stamps[k] for k in order]

    def rows(a: int, b: int) -> np.ndarray:
        block = img.read_rows(a, b).astype(np.float32, copy=True)
        k0 = np.searchsorted(y_lo, a - 2 * radius - 1)
        k1 = np.searchsorted(y_lo, b)
        for k in range(k0, k1):
            lo, hi = max(a, y_lo[k]), min(b, y_hi[k])
            if lo >= hi:
                continue
            block[lo - a:hi - a, ix[k] - radius:ix[k] + radius + 1] += \
                stamps_f[k][lo - y_lo[k]:hi - y_lo[k]]
        return block

    try:
        writer(path, img.shape, rows, img.header)
    finally:
        img.close()


def _truth_table(img, x, y, mags, flux, flux_ap, snr_inj) -> Table:
    t = Table()
    t["X"] = x * u.pix
    t["Y"] = y * u.pix
    if img.wcs is not None:
        sky = img.wcs.pixel_to_world(x, y).icrs
        t["RA"], t["DEC"] = sky.ra.deg * u.deg, sky.dec.deg * u.deg
    else:
        t["RA"] = t["DEC"] = np.full(x.size, np.nan) * u.deg
    t["MAG_INJ"] = mags * u.mag
    t["FLUX_INJ"] = flux * u.ct
    t["FLUX_INJ_APER"] = flux_ap * u.ct
    t["SNR_INJ"] = snr_inj
    return t


def _measure(copy: Path, table: Table, workflow, maps, diam, fwhm, match_radius, detect_snr,
             binary, extra, original: BaseImage) -> Table:
    from .imageobjects import ScienceImage

    img = ScienceImage(copy, telescope_profile=original.profile)
    kw = dict(extra)
    if maps == "calculate":
        bkg = img.calculate_bkg(verbose=False)
        kw.setdefault("target_bkg", bkg)
        kw.setdefault("target_bkgrms", img.calculate_bkgrms_from_propagation(bkg, verbose=False))
    x, y = np.asarray(table["X"], float), np.asarray(table["Y"], float)
    t = table.copy()
    if workflow == "forced":
        from .photometry.forced import circular_photometry

        cat = circular_photometry(img, x, y, unit="pixel", aperture_diameter_arcsec=diam * u.pix,
                                  aperture_diameter_seeing=None, save=False, **kw)
        flux = np.asarray(cat.data["FLUX_APER"], float)
        err = np.asarray(cat.data["FLUXERR_APER"], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            detected = flux / err >= detect_snr
        dist = np.zeros(x.size)
    else:
        from scipy.spatial import cKDTree

        from .photometry.sexphot import sex_photometry

        params = dict(kw.pop("sex_params", None) or {})
        params["PHOT_APERTURES"] = diam
        kw.setdefault("aperture_diameter_seeing", None)
        cat = sex_photometry(img, sex_params=params, binary=binary, save=False, **kw).data
        flux = np.full(x.size, np.nan)
        err = np.full(x.size, np.nan)
        dist = np.full(x.size, np.nan)
        detected = np.zeros(x.size, bool)
        if len(cat):
            tree = cKDTree(np.column_stack([np.asarray(cat["X_IMAGE"], float),
                                            np.asarray(cat["Y_IMAGE"], float)]))
            d, j = tree.query(np.column_stack([x, y]))
            detected = d <= (match_radius or fwhm)
            flux[detected] = np.asarray(cat["FLUX_APER"], float)[j[detected]]
            err[detected] = np.asarray(cat["FLUXERR_APER"], float)[j[detected]]
            dist[detected] = d[detected]
    img.close()
    t["FLUX"] = flux * u.ct
    t["FLUXERR"] = err * u.ct
    with np.errstate(divide="ignore", invalid="ignore"):
        t["RATIO"] = flux / np.asarray(t["FLUX_INJ_APER"], float)
        t["PULL"] = (flux - np.asarray(t["FLUX_INJ_APER"], float)) / err
    t["DETECTED"] = detected
    t["MATCH_DIST"] = dist * u.pix
    return t


def _summary(t: Table, n_bins: int) -> Table:
    mag = np.asarray(t["MAG_INJ"], float)
    edges = np.linspace(mag.min(), mag.max() + 1e-9, n_bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        sel = (mag >= lo) & (mag < hi)
        if not sel.any():
            continue
        det = np.asarray(t["DETECTED"])[sel]
        ratio = np.asarray(t["RATIO"], float)[sel]
        pull = np.asarray(t["PULL"], float)[sel]
        r = ratio[det & np.isfinite(ratio)]
        p = pull[det & np.isfinite(pull)]
        med = float(np.median(r)) if r.size else np.nan
        rows.append(((lo + hi) / 2, lo, hi, int(sel.sum()), float(det.mean()), med,
                     float(1.4826 * np.median(np.abs(r - med))) if r.size else np.nan,
                     float(1.4826 * np.median(np.abs(p - np.median(p)))) if p.size else np.nan,
                     float(np.median(np.asarray(t["SNR_INJ"], float)[sel]))))
    s = Table(rows=rows, names=("MAG", "MAG_MIN", "MAG_MAX", "N", "COMPLETENESS", "RATIO_MEDIAN",
                                "RATIO_SCATTER", "PULL_STD", "SNR_MEDIAN"))
    for c in ("MAG", "MAG_MIN", "MAG_MAX"):
        s[c].unit = u.mag
    return s
