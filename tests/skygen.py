"""Test-side sky generator, written independently of ``ezphot.datasets``.

7DT-like frames (C361K HIGH gain: 0.2561 e-/ADU, read noise 6 e-, 0.505"/px, profile
``sextractor_configs/profiles/7DT_C361K.toml``) of Moffat beta = 2.5 stars drawn with
``astropy.modeling.functional_models.Moffat2D`` in cut-outs reaching 0.005 ADU/px, on a
smooth sky known per pixel (a tilted plane plus a gentle quadratic bowl), with Poisson noise
in electrons and Gaussian read noise from a seed. Magnitudes follow dN/dm ∝ 10^(0.33 m)
(high-latitude star counts) between ``mag_range``; a few extra bright stars give wide wings.

Injected stars (`inject`) are the same Moffat profile added to a copy of the pixels; their
true flux inside any aperture is measured on the noiseless stamp by the test itself.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.modeling.functional_models import Moffat2D
from astropy.table import Table
from astropy.wcs import WCS

GAIN, RDNOISE, PIXSCALE, SATURATE = 0.2561, 6.0, 0.505, 64000.0


@dataclass
class Sky:
    """Sky model: s0 · (1 + gx·u + gy·v + q·(u² + v²)), u = (x − nx/2)/9576,
    v = (y − ny/2)/6388: the same slopes per pixel on any frame size (a smaller frame is a
    cut-out of a full 7DT frame)."""

    s0: float
    gx: float
    gy: float
    q: float
    shape: tuple[int, int]

    def __call__(self, y, x) -> np.ndarray:
        ny, nx = self.shape
        u, v = (x - nx / 2) / 9576.0, (y - ny / 2) / 6388.0
        return self.s0 * (1.0 + self.gx * u + self.gy * v + self.q * (u * u + v * v))

    def rows(self, y0: int, y1: int) -> np.ndarray:
        y, x = np.mgrid[y0:y1, 0:self.shape[1]]
        return self(y.astype(float), x.astype(float))


@dataclass
class SkyFrame:
    path: Path
    truth: Table           # X, Y (0-based), MAG, FLUX (total, ADU), PEAK (ADU/px)
    sky: Sky
    fwhm: float            # pixels
    beta: float
    zeropoint: float
    sigma: float           # per-pixel noise of the sky at its centre level, ADU
    mag_limit: float       # matched-filter S/N 5 (what "detectable" means for blank apertures)
    extra: dict = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return self.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0))

    def nea(self) -> float:
        """Noise-equivalent area of the Moffat profile (px): 1 / Σ p²."""
        b = self.beta
        return math.pi * self.alpha ** 2 * (2 * b - 1) / (b - 1) ** 2

    def flux_for_snr(self, snr: float, area: float) -> float:
        """Flux (ADU) giving S/N ``snr`` in an aperture of ``area`` px holding all of it:
        snr = F / sqrt(area σ² + F/g) solved for F."""
        s2 = self.sigma ** 2
        return 0.5 * (snr ** 2 / GAIN + math.sqrt(snr ** 4 / GAIN ** 2 + 4 * snr ** 2 * area * s2))


def moffat_stamp(x: float, y: float, flux: float, alpha: float, beta: float,
                 floor: float = 0.005, rmax: int = 400):
    """(x0, y0, stamp) of a Moffat star sampled at pixel centres, out to ``floor`` ADU/px."""
    amp = flux * (beta - 1.0) / (math.pi * alpha ** 2)
    r = alpha * math.sqrt(max((amp / floor) ** (1.0 / beta) - 1.0, 1.0))
    r = int(min(max(r, 8), rmax))
    xc, yc = int(round(x)), int(round(y))
    yy, xx = np.mgrid[yc - r:yc + r + 1, xc - r:xc + r + 1]
    stamp = Moffat2D.evaluate(xx.astype(float), yy.astype(float), amp, x, y, alpha, beta)
    return xc - r, yc - r, stamp


def add_stamp(image: np.ndarray, x0: int, y0: int, stamp: np.ndarray) -> None:
    ny, nx = image.shape
    sy, sx = stamp.shape
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(nx, x0 + sx), min(ny, y0 + sy)
    if ix0 < ix1 and iy0 < iy1:
        image[iy0:iy1, ix0:ix1] += stamp[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]


def _wcs(shape) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    s = PIXSCALE / 3600
    w.wcs.cd = [[-s, 0.0], [0.0, s]]
    return w


def make_sky_frame(path: Path, *, shape: tuple[int, int], n_stars: int, seed: int,
                   mag_range=(10.0, 21.0), bright: tuple[float, ...] = (),
                   seeing_arcsec: float = 2.9, beta: float = 2.5, sky0: float = 420.0,
                   zeropoint: float = 28.1) -> SkyFrame:
    rng = np.random.default_rng(seed)
    ny, nx = shape
    fwhm = seeing_arcsec / PIXSCALE
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    k = 0.33 * math.log(10)
    lo, hi = mag_range
    u = rng.uniform(size=n_stars)  # inverse CDF of dN/dm ∝ 10^(0.33 m)
    mags = np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k
    mags = np.concatenate([mags, np.asarray(bright, float)])
    n = mags.size
    x = rng.uniform(-5, nx + 5, n)
    y = rng.uniform(-5, ny + 5, n)
    flux = 10 ** (-0.4 * (mags - zeropoint))
    model = np.zeros(shape, np.float32)
    for xi, yi, fi in zip(x, y, flux, strict=False):
        x0, y0, st = moffat_stamp(xi, yi, fi, alpha, beta)
        add_stamp(model, x0, y0, st.astype(np.float32))
    sky = Sky(sky0, 0.05, -0.04, 0.03, shape)
    # Poisson in electrons plus read noise, by row blocks (memory); saturation at the ADC end
    for y0 in range(0, ny, 512):
        y1 = min(ny, y0 + 512)
        e = rng.poisson((model[y0:y1] + sky.rows(y0, y1)) * GAIN).astype(np.float32)
        e += rng.normal(0.0, RDNOISE, e.shape).astype(np.float32)
        e /= np.float32(GAIN)
        np.minimum(e, SATURATE, out=e)
        model[y0:y1] = e
    header = _wcs(shape).to_header()
    for key, value in dict(OBSERVAT="7DT", TELESCOP="7DT11", INSTRUME="C361K", OBJECT="TSKY",
                           FILTER="m575", EXPTIME=100.0, DATE_OBS="2025-10-01T01:02:03",
                           GAIN=2750, EGAIN=GAIN, XBINNING=1, YBINNING=1,
                           SEEING=seeing_arcsec).items():
        header[key.replace("DATE_OBS", "DATE-OBS")] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.PrimaryHDU(model, header=header).writeto(path, overwrite=True)
    truth = Table({"X": x, "Y": y, "MAG": mags, "FLUX": flux,
                   "PEAK": flux * (beta - 1.0) / (math.pi * alpha ** 2)})
    sigma = math.sqrt(sky0 / GAIN + (RDNOISE / GAIN) ** 2)
    frame = SkyFrame(path, truth, sky, fwhm, beta, zeropoint, sigma, 0.0)
    frame.mag_limit = zeropoint - 2.5 * math.log10(5 * sigma * math.sqrt(frame.nea()))
    return frame


def isolated_positions(frame: SkyFrame, n: int, rng, *, margin: float = 60,
                       min_dist: float = 25.0, avoid=None, wing_floor: float = 0.02,
                       limit: float | None = None, mutual: bool = False) -> np.ndarray:
    """Up to ``n`` random positions at least ``min_dist`` px from every truth star brighter
    than ``limit`` (default: the detection limit), beyond where any such star's profile is
    above ``wing_floor`` ADU/px, and ``min_dist`` px from the positions in ``avoid``
    (``mutual``: also 2 ``min_dist`` from each other)."""
    from scipy.spatial import cKDTree

    ny, nx = frame.sky.shape
    t = frame.truth
    lim = frame.mag_limit if limit is None else limit
    sel = np.asarray(t["MAG"]) <= lim
    xs, ys, peaks = np.asarray(t["X"])[sel], np.asarray(t["Y"])[sel], np.asarray(t["PEAK"])[sel]
    wing = frame.alpha * np.sqrt(np.maximum((peaks / wing_floor) ** (1 / frame.beta) - 1, 0))
    excl = np.maximum(min_dist, wing)
    tree = cKDTree(np.column_stack([xs, ys]))
    rmax = float(excl.max()) if excl.size else min_dist
    cand = np.column_stack([rng.uniform(margin, nx - margin, 20 * n),
                            rng.uniform(margin, ny - margin, 20 * n)])
    ok = np.ones(len(cand), bool)
    for i, near in enumerate(tree.query_ball_point(cand, rmax)):
        if near:
            d = np.hypot(xs[near] - cand[i, 0], ys[near] - cand[i, 1])
            ok[i] = np.all(d >= excl[near])
    cand = cand[ok]
    if avoid is not None and len(avoid):
        near = cKDTree(np.asarray(avoid, float).reshape(-1, 2)).query(cand)[0]
        cand = cand[near >= min_dist]
    if not mutual:
        return cand[:n]
    out: list[np.ndarray] = []
    for c in cand:
        if len(out) >= n:
            break
        if out and np.min(np.hypot(*(np.asarray(out) - c).T)) < 2 * min_dist:
            continue
        out.append(c)
    return np.array(out)


def inject(frame: SkyFrame, dest: Path, xy: np.ndarray, flux: np.ndarray, seed: int):
    """A copy of the frame with Moffat stars added (Poisson noise of their own light
    included); returns the path and each star's noiseless stamp (x0, y0, stamp)."""
    rng = np.random.default_rng(seed)
    with fits.open(frame.path) as hdul:
        data = np.array(hdul[0].data, np.float32)
        header = hdul[0].header.copy()
    stamps = []
    for (x, y), f in zip(xy, flux, strict=False):
        x0, y0, st = moffat_stamp(x, y, f, frame.alpha, frame.beta)
        noisy = rng.poisson(np.clip(st, 0, None) * GAIN) / GAIN  # the star's own shot noise
        add_stamp(data, x0, y0, noisy.astype(np.float32))
        stamps.append((x0, y0, st))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.PrimaryHDU(data, header=header).writeto(dest, overwrite=True)
    return Path(dest), stamps
