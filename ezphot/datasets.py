"""Realistic 7DT-like test frames with a truth table: for the demo, the tests and benchmarks.

A frame has a TAN WCS at 0.505"/px, Moffat stars with a power-law magnitude distribution,
Sersic galaxies, a sky gradient, Poisson noise through the gain plus read noise, saturation at
60000 ADU, 7DT headers and a 7DT file name. Beside each frame, ``<F>.truth.ecsv`` lists every
source (0-based pixel position, sky position, total flux in ADU, magnitude, type).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from ._io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["FrameSpec", "make_frame", "make_scene", "render_frame", "make_sample_tree",
           "moffat_enclosed_fraction", "true_sky", "FULL_SHAPE"]

FULL_SHAPE = (6388, 9576)  # (ny, nx) of a 7DT C361K 1x1 frame
_FULL_STARS = 12000        # stars from mag 10 to 21 on a full frame (~1.2 deg^2)


@dataclass
class FrameSpec:
    """What a generated frame looks like (all defaults are 7DT C361K, HIGH gain, 1x1).

    Parameters
    ----------
    shape : tuple of int
        (ny, nx) in pixels.
    telname, objname, filter : str
        Header TELESCOP/OBJECT/FILTER values (plain names: they become folder names).
    exptime : float
        Exposure time in seconds.
    obsdate : str
        Observation start (ISO, UTC).
    ra, dec : float
        Frame centre in degrees.
    rotation_deg : float
        WCS rotation in degrees.
    pixel_scale : float
        arcsec/pixel.
    seeing : float
        Moffat FWHM in arcsec.
    moffat_beta : float
        Moffat beta of the stars.
    sky : float
        Sky level in ADU at the centre.
    sky_gradient : tuple of float
        Fractional sky change across x and y.
    egain : float
        Gain in e-/ADU.
    gain_setting : int
        The camera's GAIN setting written to the header (2750: HIGH mode).
    rdnoise : float
        Read noise in e-.
    saturation : float
        End of the linear range in ADU (what SATUR_LEVEL should be).
    full_well : float
        ADU where saturated pixels pile up.
    zeropoint : float
        Magnitude of 1 ADU in the exposure.
    star_density : float
        Multiple of the 7DT-like star density.
    mag_range : tuple of float
        Magnitudes of the stars (brightest, faintest).
    n_galaxies_per_1000_stars : int
        Sersic galaxies per 1000 stars.
    write_seeing_keyword : bool
        Write the seeing to the header.
    header_saturate : float or None
        A header SATURATE value (one that must not override the arguments), or none.
    dtype : str
        Pixel dtype of the file.
    """

    shape: tuple[int, int] = (1024, 1536)
    telname: str = "7DT14"
    objname: str = "T00528"
    filter: str = "m600"
    exptime: float = 100.0
    obsdate: str = "2025-09-06T02:58:55"
    ra: float = 326.2509829204
    dec: float = -77.26234951715
    rotation_deg: float = 0.0
    pixel_scale: float = 0.505
    seeing: float = 2.8           # arcsec FWHM
    moffat_beta: float = 2.5
    sky: float = 400.0            # ADU
    sky_gradient: tuple[float, float] = (0.04, -0.03)  # fractional change across x, y
    egain: float = 0.2561         # e-/ADU
    gain_setting: int = 2750      # 7DT header GAIN (camera setting, HIGH mode)
    rdnoise: float = 6.0          # e-
    saturation: float = 60000.0   # ADU: end of the linear range (what SATUR_LEVEL should be)
    full_well: float = 64000.0    # ADU: where saturated pixels pile up (below the ADC's 65535)
    zeropoint: float = 28.0       # mag of 1 ADU in the exposure
    star_density: float = 1.0     # multiple of the 7DT-like star density
    mag_range: tuple[float, float] = (10.0, 21.0)
    n_galaxies_per_1000_stars: int = 80
    write_seeing_keyword: bool = True
    header_saturate: float | None = 65535.0  # a header SATURATE that must not override args
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("telname", "objname", "filter"):
            safe_name(getattr(self, name), name)

    @property
    def fwhm_pixel(self) -> float:
        return self.seeing / self.pixel_scale

    def file_name(self) -> str:
        """The 7DT-style file name of the frame (``calib_<tel>_<obj>_<date>_<filter>_<exp>.fits``).

        Returns
        -------
        str
            The file name.
        """
        stamp = Time(self.obsdate).strftime("%Y%m%d_%H%M%S")
        return safe_name(f"calib_{self.telname}_{self.objname}_{stamp}_{self.filter}_"
                         f"{int(round(self.exptime))}.fits", "file name")

    def tree_dir(self, root: str | os.PathLike) -> Path:
        """The folder of the frame in a 7DT-style data tree under ``root``.

        Parameters
        ----------
        root : path-like
            The tree's root.

        Returns
        -------
        pathlib.Path
            ``<root>/7DT/7DT_C361K_<mode>_1x1/<objname>/<telname>/<filter>``.
        """
        binning = "1x1"
        mode = "HIGH" if self.gain_setting == 2750 else "LOW"
        parts = [safe_name(v, k) for k, v in (("objname", self.objname),
                                              ("telname", self.telname),
                                              ("filter", self.filter))]
        return Path(root).joinpath("7DT", f"7DT_C361K_{mode}_{binning}", *parts)


def safe_name(value, name: str) -> str:
    """``value`` as one plain path component: nothing that could leave the output root
    (``..``, an absolute path, a separator) or break a file name (control characters)."""
    from .exceptions import ArgumentError

    text = str(value)
    if (not text or text in (".", "..") or "/" in text or "\\" in text or os.sep in text
            or (os.altsep and os.altsep in text) or any(ord(c) < 32 for c in text)):
        raise ArgumentError(f"{name} {text!r} cannot be used as a file or folder name: it "
                            "must be one plain name (no '..', no separator, not absolute)")
    return text


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha for a FWHM (same units)."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_enclosed_fraction(radius: float, fwhm: float, beta: float = 2.5) -> float:
    """Fraction of a Moffat profile's flux inside a circle of ``radius`` (same units as fwhm).

    Parameters
    ----------
    radius : float
        Circle radius.
    fwhm : float
        The profile's FWHM.
    beta : float
        Moffat beta.

    Returns
    -------
    float
        The enclosed fraction (0-1).
    """
    alpha = moffat_alpha(fwhm, beta)
    return float(1.0 - (1.0 + (radius / alpha) ** 2) ** (1.0 - beta))


def make_wcs(spec: FrameSpec) -> WCS:
    """North-up, east-left TAN WCS (optionally rotated) centred on the frame."""
    ny, nx = spec.shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [spec.ra, spec.dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    s = spec.pixel_scale / 3600.0
    t = np.radians(spec.rotation_deg)
    w.wcs.cd = np.array([[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]])
    w.wcs.radesys = "ICRS"
    return w


def true_sky(header: fits.Header, shape: tuple[int, int]) -> np.ndarray:
    """The noiseless sky model of a generated frame (from its EZSKY* keywords).

    Parameters
    ----------
    header : astropy.io.fits.Header
        The frame's header.
    shape : tuple of int
        (ny, nx).

    Returns
    -------
    numpy.ndarray
        The sky in ADU per pixel.
    """
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    return (header["EZSKY0"] * (1.0 + header["EZSKYGX"] * (x / nx - 0.5)
                                + header["EZSKYGY"] * (y / ny - 0.5))).astype(np.float64)


def make_scene(spec: FrameSpec, seed: int = 0) -> Table:
    """Random sources for a frame: positions, fluxes, shapes (no pixels yet).

    Parameters
    ----------
    spec : FrameSpec
        The frame.
    seed : int
        Random seed.

    Returns
    -------
    astropy.table.Table
        ID, TYPE ('star'/'galaxy'), X, Y (0-based px), MAG, FLUX (ADU), FWHM_PIX, SERSIC_N,
        R_EFF_PIX, ELLIP, THETA.
    """
    rng = np.random.default_rng(seed)
    ny, nx = spec.shape
    area = nx * ny / (FULL_SHAPE[0] * FULL_SHAPE[1])
    n_stars = max(1, int(round(_FULL_STARS * area * spec.star_density)))
    lo, hi = spec.mag_range
    # N(<m) ∝ 10^(0.3 m): inverse-CDF sampling
    k = 0.3 * np.log(10)
    u_ = rng.uniform(size=n_stars)
    mags = np.log(np.exp(k * lo) + u_ * (np.exp(k * hi) - np.exp(k * lo))) / k
    n_gal = int(round(n_stars * spec.n_galaxies_per_1000_stars / 1000))
    gmags = rng.uniform(lo + 0.35 * (hi - lo), hi - 0.1 * (hi - lo), size=n_gal)
    n = n_stars + n_gal
    t = Table()
    t["ID"] = np.arange(1, n + 1)
    t["TYPE"] = np.array(["star"] * n_stars + ["galaxy"] * n_gal)
    t["X"] = rng.uniform(-10, nx + 10, size=n)
    t["Y"] = rng.uniform(-10, ny + 10, size=n)
    t["MAG"] = np.concatenate([mags, gmags])
    t["FLUX"] = 10 ** (-0.4 * (t["MAG"] - spec.zeropoint))
    t["FWHM_PIX"] = np.where(t["TYPE"] == "star", spec.fwhm_pixel, np.nan)
    t["SERSIC_N"] = np.where(t["TYPE"] == "galaxy", rng.choice([1.0, 4.0], size=n), np.nan)
    t["R_EFF_PIX"] = np.where(t["TYPE"] == "galaxy", rng.uniform(1.5, 5.0, size=n)
                              / spec.pixel_scale, np.nan)
    t["ELLIP"] = np.where(t["TYPE"] == "galaxy", rng.uniform(0.0, 0.6, size=n), 0.0)
    t["THETA"] = np.where(t["TYPE"] == "galaxy", rng.uniform(0, np.pi, size=n), 0.0)
    return t


def _moffat_stamp(x: float, y: float, flux: float, fwhm: float, beta: float, radius: int):
    alpha = moffat_alpha(fwhm, beta)
    xc, yc = int(round(x)), int(round(y))
    yy, xx = np.mgrid[yc - radius:yc + radius + 1, xc - radius:xc + radius + 1]
    r2 = ((xx - x) ** 2 + (yy - y) ** 2) / alpha**2
    stamp = flux * (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2) ** (-beta)
    return xc - radius, yc - radius, stamp


def _sersic_stamp(x, y, flux, n, r_eff, ellip, theta, radius):
    from scipy.special import gammaincinv

    bn = gammaincinv(2.0 * n, 0.5)
    xc, yc = int(round(x)), int(round(y))
    yy, xx = np.mgrid[yc - radius:yc + radius + 1, xc - radius:xc + radius + 1].astype(float)
    dx, dy = xx - x, yy - y
    c, s = np.cos(theta), np.sin(theta)
    xr, yr = dx * c + dy * s, -dx * s + dy * c
    r = np.sqrt(xr**2 + (yr / (1.0 - ellip)) ** 2)
    prof = np.exp(-bn * ((r / r_eff) ** (1.0 / n) - 1.0))
    return xc - radius, yc - radius, flux * prof / prof.sum()


def _add(image: np.ndarray, x0: int, y0: int, stamp: np.ndarray) -> float:
    ny, nx = image.shape
    sy, sx = stamp.shape
    ix0, iy0 = max(0, x0), max(0, y0)
    ix1, iy1 = min(nx, x0 + sx), min(ny, y0 + sy)
    if ix0 >= ix1 or iy0 >= iy1:
        return 0.0
    part = stamp[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    image[iy0:iy1, ix0:ix1] += part
    return float(part.sum())


def render_frame(spec: FrameSpec, scene: Table, noise_seed: int = 0):
    """Pixels of a frame (ADU, float) and the noiseless source flux actually on the frame.

    Parameters
    ----------
    spec : FrameSpec
        The frame.
    scene : astropy.table.Table
        Its sources (`make_scene`).
    noise_seed : int
        Seed of the Poisson and read noise.

    Returns
    -------
    image : numpy.ndarray
        The pixels (ADU, ``spec.dtype``), clipped at the full well.
    on_image : numpy.ndarray
        Per source, the noiseless flux (ADU) that falls on the frame.
    peaks : numpy.ndarray
        Per source, the noiseless peak pixel value (ADU).
    """
    ny, nx = spec.shape
    model = np.zeros((ny, nx), dtype=np.float64)
    on_image = np.zeros(len(scene))
    peaks = np.zeros(len(scene))
    for i, row in enumerate(scene):
        if row["TYPE"] == "star":
            alpha = moffat_alpha(row["FWHM_PIX"], spec.moffat_beta)
            peak = row["FLUX"] * (spec.moffat_beta - 1.0) / (np.pi * alpha**2)
            # out to where the profile falls below 0.02 ADU (tails matter for apertures)
            radius = alpha * ((peak / 0.02) ** (1.0 / (2 * spec.moffat_beta)))
            radius = int(np.clip(radius, 4 * row["FWHM_PIX"], 250))
            x0, y0, stamp = _moffat_stamp(row["X"], row["Y"], row["FLUX"], row["FWHM_PIX"],
                                          spec.moffat_beta, radius)
            peaks[i] = peak
        else:
            radius = int(np.clip(6 * row["R_EFF_PIX"], 10, 150))
            x0, y0, stamp = _sersic_stamp(row["X"], row["Y"], row["FLUX"], row["SERSIC_N"],
                                          row["R_EFF_PIX"], row["ELLIP"], row["THETA"], radius)
            peaks[i] = stamp.max()
        on_image[i] = _add(model, x0, y0, stamp)
    header_sky = fits.Header({"EZSKY0": spec.sky, "EZSKYGX": spec.sky_gradient[0],
                              "EZSKYGY": spec.sky_gradient[1]})
    sky = true_sky(header_sky, spec.shape)
    rng = np.random.default_rng(noise_seed)
    expected_e = (model + sky) * spec.egain
    electrons = rng.poisson(expected_e).astype(np.float64)
    electrons += rng.normal(0.0, spec.rdnoise, size=electrons.shape)
    image = electrons / spec.egain
    np.minimum(image, spec.full_well, out=image)
    return image.astype(spec.dtype), on_image, peaks


def frame_header(spec: FrameSpec) -> fits.Header:
    """A 7DT-style header (WCS included)."""
    h = make_wcs(spec).to_header()
    cards = {
        "OBSERVAT": ("7DT", "Observatory"),
        "TELESCOP": (spec.telname, "Telescope unit"),
        "INSTRUME": ("C361K", "Camera"),
        "OBJECT": (spec.objname, "Target tile"),
        "FILTER": (spec.filter, "Filter"),
        "EXPTIME": (spec.exptime, "Exposure time [s]"),
        "DATE-OBS": (Time(spec.obsdate).isot, "Exposure start (UTC)"),
        "JD": (Time(spec.obsdate).jd, "Julian date at start"),
        "GAIN": (spec.gain_setting, "Camera gain setting (not e-/ADU)"),
        "EGAIN": (spec.egain, "Electronic gain [e-/ADU]"),
        "XBINNING": (1, "Binning along x"),
        "YBINNING": (1, "Binning along y"),
        "EZSKY0": (spec.sky, "ezphot truth: sky level at centre [ADU]"),
        "EZSKYGX": (spec.sky_gradient[0], "ezphot truth: fractional sky gradient along x"),
        "EZSKYGY": (spec.sky_gradient[1], "ezphot truth: fractional sky gradient along y"),
        "EZZP": (spec.zeropoint, "ezphot truth: magnitude of 1 ADU"),
        "EZFWHM": (spec.seeing, "ezphot truth: seeing FWHM [arcsec]"),
        "EZSYNTH": (True, "Synthetic frame made by ezphot.datasets"),
    }
    if spec.write_seeing_keyword:
        cards["SEEING"] = (spec.seeing, "Seeing FWHM [arcsec]")
    if spec.header_saturate is not None:
        cards["SATURATE"] = (spec.header_saturate, "ADC maximum [ADU]")
    for k, v in cards.items():
        h[k] = v
    return h


def make_frame(path: str | os.PathLike | None = None, spec: FrameSpec | None = None, *,
               seed: int = 0, noise_seed: int | None = None, root: str | os.PathLike | None = None,
               scene: Table | None = None) -> tuple[Path, Table]:
    """Write one frame and its truth table.

    Parameters
    ----------
    path : path-like, optional
        Output FITS path. Default: the 7DT tree under ``root`` with a 7DT file name.
    spec : FrameSpec, optional
    seed : int
        Seed of the scene (sources).
    noise_seed : int, optional
        Seed of the noise (default ``seed``): same scene, new noise = another realisation.
    root : path-like, optional
        Root of a ``scidata`` tree (used when ``path`` is None).
    scene : astropy.table.Table, optional
        Sources to use instead of a random scene.

    Returns
    -------
    (pathlib.Path, astropy.table.Table)
        The frame and its truth table (also written as ``<F>.truth.ecsv``).
    """
    spec = spec or FrameSpec()
    if path is None:
        if root is None:
            raise ValueError("make_frame needs a path or a root")
        path = spec.tree_dir(root) / spec.file_name()
    path = Path(path)
    scene = make_scene(spec, seed) if scene is None else scene.copy()
    image, on_image, peaks = render_frame(spec, scene, seed if noise_seed is None else noise_seed)
    header = frame_header(spec)
    wcs = make_wcs(spec)
    sky = wcs.pixel_to_world(scene["X"], scene["Y"])
    truth = scene.copy()
    truth["RA"] = sky.ra.deg
    truth["DEC"] = sky.dec.deg
    truth["FLUX_ON_IMAGE"] = on_image
    truth["PEAK"] = peaks
    local_sky = true_sky(header, (1, 1))[0, 0]  # only for the saturation flag below
    truth["SATURATED"] = peaks + local_sky * 1.2 >= spec.saturation
    truth.meta.update(dict(zeropoint=spec.zeropoint, seeing=spec.seeing,
                           fwhm_pixel=spec.fwhm_pixel, moffat_beta=spec.moffat_beta,
                           egain=spec.egain, rdnoise=spec.rdnoise, sky=spec.sky,
                           pixel_scale=spec.pixel_scale, pixel_origin=0))

    def write_fits(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.PrimaryHDU(image, header=header).writeto(tmp)

    atomic_write(path, write_fits)
    atomic_write(Path(f"{path}.truth.ecsv"), lambda tmp: truth.write(tmp, format="ascii.ecsv"))
    log.info("Generated %s (%d sources)", path, len(truth))
    return path, truth


def make_sample_tree(root: str | os.PathLike, n_frames: int = 4, *,
                     shape: tuple[int, int] = (1024, 1536), seed: int = 0) -> list[Path]:
    """A small 7DT-style ``scidata`` tree: several units, filters and dates.

    Frames are written under ``<root>/7DT/<telkey>/<objname>/<telname>/<filter>/``.

    Parameters
    ----------
    root : path-like
        The tree's root.
    n_frames : int
        How many frames.
    shape : tuple of int
        (ny, nx) of each frame.
    seed : int
        Random seed of the scene (noise seeds follow it).

    Returns
    -------
    list of pathlib.Path
        The frames written.
    """
    telnames = ["7DT14", "7DT16", "7DT03"]
    filters = ["m600", "m625", "r"]
    paths = []
    for i in range(n_frames):
        spec = FrameSpec(shape=shape, telname=telnames[i % len(telnames)],
                         filter=filters[(i // len(telnames)) % len(filters)],
                         obsdate=(Time("2025-09-06T02:58:55") + i * 137.0 * u.s).isot[:19],
                         seeing=2.6 + 0.1 * (i % 4))
        path, _ = make_frame(spec=spec, seed=seed, noise_seed=seed + i, root=root)
        paths.append(path)
    return paths
