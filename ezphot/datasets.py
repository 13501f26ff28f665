"""Realistic 7DT-like test frames with a truth table: for the demo, the tests and benchmarks.

A frame has a TAN WCS at 0.505"/px, Moffat stars with a power-law magnitude distribution,
Sersic galaxies, a sky gradient, Poisson noise through the gain plus read noise, saturation at
60000 ADU, 7DT headers and a 7DT file name. Beside each frame, ``<F>.truth.ecsv`` lists every
source (0-based pixel position, sky position, total flux in ADU, magnitude, type).

`make_multiband_field` makes one field in several filters (7DT medium bands ``m400`` ...
``m875``, broad ``u g r i z``): every star has a blackbody SED and every galaxy a power law,
so its magnitude in each filter is known; each filter has its own zero point; frames may sit
on shifted and rotated grids, and one star may vary. `make_reference_catalog` writes a
matching reference catalogue (RA, Dec, per-filter magnitudes and errors, optional outliers).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
           "moffat_enclosed_fraction", "true_sky", "FULL_SHAPE", "MultibandField",
           "make_multiband_field", "make_reference_catalog", "default_zeropoint",
           "sed_magnitude_offsets"]

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


# -- one field in several filters --------------------------------------------------------------

_H_PLANCK, _C_LIGHT, _K_BOLTZMANN = 6.62607015e-34, 2.99792458e8, 1.380649e-23
_SED_REF_NM = 600.0  # the scene's MAG is the AB magnitude at this wavelength (m600)
# zero points (magnitude of 1 ADU in 100 s) of the broad bands; medium bands: see below
_BROAD_ZP = {"u": 26.2, "g": 27.9, "r": 27.8, "i": 27.5, "z": 26.9}


def default_zeropoint(filter_name: str) -> float:
    """A plausible 7DT zero point (AB mag of 1 ADU in a 100 s frame) for a filter.

    Broad bands 26.2-27.9; medium bands (25 nm wide) ~26.0 at 600 nm, lower towards the blue
    and red ends of the CMOS response. Only a default of the generated frames: any numbers
    may be given to `make_multiband_field`.

    Parameters
    ----------
    filter_name : str
        A 7DT medium band (``'m400'`` ... ``'m875'``) or ``'u' 'g' 'r' 'i' 'z'``.

    Returns
    -------
    float
        The zero point (AB mag).

    Raises
    ------
    KeyError
        For an unknown filter (from `ezphot.filters.central_wavelength`).
    """
    from .filters import central_wavelength

    if filter_name in _BROAD_ZP:
        return _BROAD_ZP[filter_name]
    lam = central_wavelength(filter_name)
    return round(26.0 - 0.9 * ((lam - 620.0) / 300.0) ** 2, 3)


def sed_magnitude_offsets(wavelength_nm, *, temperature=None, alpha=None) -> np.ndarray:
    """AB magnitude at ``wavelength_nm`` minus the AB magnitude at 600 nm.

    ``temperature`` (K): a blackbody, f_nu ∝ B_nu(T); ``alpha``: a power law f_nu ∝ λ^alpha.
    Arrays broadcast (sources along the first axis, wavelengths along the last).

    Parameters
    ----------
    wavelength_nm : float or array
        Wavelength(s) in nm.
    temperature : float or array, optional
        Blackbody temperature(s) in K (one per source); used when given.
    alpha : float or array, optional
        Power-law slope(s) of f_nu ∝ λ^alpha (one per source), when no ``temperature``.

    Returns
    -------
    numpy.ndarray
        The magnitude offsets: shape ``(n_sources, n_wavelengths)`` for arrays, or that of
        the SED parameter for a scalar wavelength.

    Raises
    ------
    ValueError
        When neither ``temperature`` nor ``alpha`` is given.
    """
    lam = np.asarray(wavelength_nm, float) * 1e-9
    ref = _SED_REF_NM * 1e-9
    if temperature is not None:
        t = np.asarray(temperature, float)[..., None] if np.ndim(lam) else \
            np.asarray(temperature, float)

        def b_nu(wl):
            nu = _C_LIGHT / wl
            return nu**3 / np.expm1(_H_PLANCK * nu / (_K_BOLTZMANN * t))

        return -2.5 * np.log10(b_nu(lam) / b_nu(ref))
    if alpha is not None:
        a = np.asarray(alpha, float)[..., None] if np.ndim(lam) else np.asarray(alpha, float)
        return -2.5 * a * np.log10(lam / ref)
    raise ValueError("sed_magnitude_offsets needs a temperature or an alpha")


@dataclass
class MultibandField:
    """What `make_multiband_field` made.

    The parameters are also the attributes.

    Parameters
    ----------
    paths : list of pathlib.Path
        The frames, in the order of ``frames``.
    frames : astropy.table.Table
        One row per frame: PATH, FILTER, WAVELENGTH (nm), ZEROPOINT, EPOCH (index within the
        filter), RA/DEC of the grid centre, DX_ARCSEC/DY_ARCSEC (offset of the pointing),
        ROTATION (deg), OBSDATE, MJD, NOISE_SEED, VAR_DMAG (the variable star's magnitude
        offset in that frame; 0 without one).
    truth : astropy.table.Table
        One row per source: ID, TYPE, RA, DEC, TEFF (K, stars), ALPHA (f_nu ∝ λ^alpha,
        galaxies), R_EFF_ARCSEC, ELLIP, SERSIC_N, and ``MAG_<filter>``: its AB magnitude in
        every filter (the variable star's mean magnitude). ``<F>.truth.ecsv`` beside each
        frame lists what is on that frame (pixel positions on its grid, MAG, FLUX in ADU).
    zeropoints : dict
        Filter -> zero point (also the frames' EZZP header card).
    variable_id : int or None
        ID of the variable star.
    """

    paths: list[Path]
    frames: Table
    truth: Table
    zeropoints: dict[str, float] = field(default_factory=dict)
    variable_id: int | None = None


def _rotate_thetas(ref_wcs: WCS, frame_wcs: WCS, x, y, theta) -> np.ndarray:
    """A position angle on one pixel grid carried to another through the sky."""
    sky0 = ref_wcs.pixel_to_world(x, y)
    sky1 = ref_wcs.pixel_to_world(x + np.cos(theta), y + np.sin(theta))
    fx0, fy0 = frame_wcs.world_to_pixel(sky0)
    fx1, fy1 = frame_wcs.world_to_pixel(sky1)
    return np.mod(np.arctan2(fy1 - fy0, fx1 - fx0), np.pi)


def make_multiband_field(root: str | os.PathLike, filters: Sequence[str] = ("m400", "m500",
                                                                           "m600", "m700"), *,
                         spec: FrameSpec | None = None,
                         zeropoints: Mapping[str, float] | None = None,
                         frames_per_filter: int = 1,
                         pointings: Sequence[tuple[float, float, float]] = ((0.0, 0.0, 0.0),),
                         seeing: Mapping[str, float] | None = None,
                         temperature_range: tuple[float, float] = (3500.0, 12000.0),
                         galaxy_alpha_range: tuple[float, float] = (0.0, 2.5),
                         variable: bool | Mapping = False,
                         obs_interval_s: float = 137.0,
                         seed: int = 0) -> MultibandField:
    """One field observed in several filters, with known magnitudes in every filter.

    The sources are drawn once (`make_scene` on a grid large enough for every pointing) and
    fixed on the sky; each star gets a blackbody temperature, each galaxy a power-law slope,
    and the scene's magnitude is its AB magnitude at 600 nm. Each frame renders the sources
    through its own WCS, filter magnitude and zero point, with its own noise.

    Parameters
    ----------
    root : path-like
        Root of a ``scidata`` tree: frames go to ``<root>/7DT/<telkey>/<objname>/<telname>/
        <filter>/`` (found by `DataBrowser`). ``<root>/<objname>.multiband.truth.ecsv`` and
        ``.frames.ecsv`` hold the returned tables.
    filters : sequence of str
        7DT medium bands (``'m400'`` ... ``'m875'``) and/or ``'u' 'g' 'r' 'i' 'z'``.
    spec : FrameSpec, optional
        Template of every frame (shape, seeing, sky, noise, star density, magnitude range...);
        its ``filter``, ``zeropoint``, ``obsdate``, pointing and rotation are set per frame.
    zeropoints : mapping, optional
        Filter -> zero point (AB mag of 1 ADU); default `default_zeropoint`.
    frames_per_filter : int
        Frames (epochs) per filter.
    pointings : sequence of (dx_arcsec, dy_arcsec, rotation_deg)
        Offset of the grid centre (towards +RA·cos(Dec) and +Dec) and rotation of the
        ``k``-th frame of each filter (cycled). Default: every frame on the same grid.
    seeing : mapping, optional
        Filter -> seeing FWHM (arcsec); default the template's.
    temperature_range, galaxy_alpha_range : (float, float)
        Stars' temperatures (K, uniform in log T) and galaxies' slopes (uniform).
    variable : bool or mapping
        Make one star (the one nearest 15.5 mag at 600 nm within the central half of the
        field) vary: ``dmag = amplitude * sin(2 pi (MJD - MJD0) / period_days)``. A mapping
        sets ``amplitude`` (0.5 mag), ``period_days`` (0.03), ``mag`` (15.5).
    obs_interval_s : float
        Time between consecutive frames (frames are taken filter after filter, epoch by
        epoch).
    seed : int
        Seed of the scene, SEDs and noise (each frame's noise seed is ``seed + 1 + index``).

    Returns
    -------
    MultibandField
        The frames' paths, the frames and truth tables, the zero points and the variable
        star's ID.
    """
    from astropy.coordinates import SkyCoord

    from .exceptions import ArgumentError
    from .filters import central_wavelength

    filters = [safe_name(f, "filter") for f in filters]
    if not filters or len(set(filters)) != len(filters):
        raise ArgumentError(f"filters must be distinct names, got {filters}")
    waves = {}
    for f in filters:
        try:
            waves[f] = central_wavelength(f)
        except KeyError as exc:
            raise ArgumentError(str(exc.args[0])) from exc
    if int(frames_per_filter) < 1:
        raise ArgumentError(f"frames_per_filter must be >= 1, got {frames_per_filter}")
    pointings = [tuple(float(v) for v in p) for p in pointings] or [(0.0, 0.0, 0.0)]
    if any(len(p) != 3 for p in pointings):
        raise ArgumentError("pointings must be (dx_arcsec, dy_arcsec, rotation_deg) triples")
    base = spec or FrameSpec()
    zps = {f: float(default_zeropoint(f)) for f in filters}
    zps.update({f: float(v) for f, v in (zeropoints or {}).items() if f in zps})
    rng = np.random.default_rng(seed)

    # the scene: on a grid that covers every pointing (square, the frame's diagonal wide)
    ny, nx = base.shape
    shift_px = max(max(abs(p[0]), abs(p[1])) for p in pointings) / base.pixel_scale
    rotated = any(p[2] % 360 for p in pointings)
    side_x = int(np.ceil((np.hypot(nx, ny) if rotated else nx) + 2 * shift_px + 20))
    side_y = int(np.ceil((np.hypot(nx, ny) if rotated else ny) + 2 * shift_px + 20))
    big = dataclasses.replace(base, shape=(side_y, side_x), rotation_deg=0.0, filter="m600")
    scene = make_scene(big, seed)
    big_wcs = make_wcs(big)
    sky = big_wcs.pixel_to_world(scene["X"], scene["Y"])
    is_star = np.asarray(scene["TYPE"]) == "star"
    n = len(scene)
    lo_t, hi_t = temperature_range
    teff = np.where(is_star, np.exp(rng.uniform(np.log(lo_t), np.log(hi_t), n)), np.nan)
    alpha = np.where(is_star, np.nan, rng.uniform(*galaxy_alpha_range, n))
    truth = Table()
    truth["ID"] = scene["ID"]
    truth["TYPE"] = scene["TYPE"]
    truth["RA"] = sky.ra.deg * u.deg
    truth["DEC"] = sky.dec.deg * u.deg
    truth["TEFF"] = teff * u.K
    truth["ALPHA"] = alpha
    truth["R_EFF_ARCSEC"] = np.asarray(scene["R_EFF_PIX"]) * base.pixel_scale * u.arcsec
    truth["ELLIP"] = scene["ELLIP"]
    truth["SERSIC_N"] = scene["SERSIC_N"]
    mag600 = np.asarray(scene["MAG"], float)
    for f in filters:
        off = np.where(is_star, sed_magnitude_offsets(waves[f], temperature=np.nan_to_num(
            teff, nan=5800.0)), sed_magnitude_offsets(waves[f], alpha=np.nan_to_num(alpha)))
        truth[f"MAG_{f}"] = (mag600 + off) * u.mag

    variable_id, var = None, None
    if variable:
        var = {"amplitude": 0.5, "period_days": 0.03, "mag": 15.5}
        var.update(dict(variable) if isinstance(variable, Mapping) else {})
        central = is_star & (np.abs(scene["X"] - side_x / 2) < nx / 4) & \
            (np.abs(scene["Y"] - side_y / 2) < ny / 4)
        if not central.any():
            raise ArgumentError("no star in the central half of the field to make variable")
        cand = np.flatnonzero(central)
        variable_id = int(scene["ID"][cand[np.argmin(np.abs(mag600[cand] - var["mag"]))]])

    t0 = Time(base.obsdate)
    rows, paths = [], []
    index = 0
    for epoch in range(int(frames_per_filter)):
        for f in filters:
            dx, dy, rot = pointings[epoch % len(pointings)]
            centre = SkyCoord(base.ra * u.deg, base.dec * u.deg).spherical_offsets_by(
                dx * u.arcsec, dy * u.arcsec)
            obs = t0 + index * obs_interval_s * u.s
            fspec = dataclasses.replace(
                base, filter=f, zeropoint=zps[f], ra=float(centre.ra.deg),
                dec=float(centre.dec.deg), rotation_deg=rot, obsdate=obs.isot[:19],
                seeing=float((seeing or {}).get(f, base.seeing)))
            fwcs = make_wcs(fspec)
            fx, fy = fwcs.world_to_pixel(sky)
            margin = 250  # a bright star's wings reach this far (render_frame's stamp radius)
            keep = (fx > -margin) & (fx < nx + margin) & (fy > -margin) & (fy < ny + margin)
            fscene = scene[keep].copy()
            fscene["X"], fscene["Y"] = fx[keep], fy[keep]
            fscene["FWHM_PIX"] = np.where(is_star[keep], fspec.fwhm_pixel, np.nan)
            gal = ~is_star[keep]
            if gal.any():
                theta = np.asarray(fscene["THETA"], float)
                theta[gal] = _rotate_thetas(big_wcs, fwcs, np.asarray(scene["X"])[keep][gal],
                                            np.asarray(scene["Y"])[keep][gal], theta[gal])
                fscene["THETA"] = theta
            mags = np.asarray(truth[f"MAG_{f}"], float)[keep].copy()
            dmag = 0.0
            if variable_id is not None:
                dmag = float(var["amplitude"] * np.sin(2 * np.pi * (obs.mjd - t0.mjd)
                                                       / var["period_days"]))
                mags[np.asarray(fscene["ID"]) == variable_id] += dmag
            fscene["MAG"] = mags
            fscene["FLUX"] = 10 ** (-0.4 * (mags - zps[f]))
            noise_seed = seed + 1 + index
            path, _ = make_frame(spec=fspec, seed=seed, noise_seed=noise_seed, root=root,
                                 scene=fscene)
            paths.append(path)
            rows.append((str(path), f, waves[f], zps[f], epoch, fspec.ra, fspec.dec, dx, dy,
                         rot, fspec.obsdate, obs.mjd, noise_seed, dmag))
            index += 1
    frames = Table(rows=rows, names=["PATH", "FILTER", "WAVELENGTH", "ZEROPOINT", "EPOCH", "RA",
                                     "DEC", "DX_ARCSEC", "DY_ARCSEC", "ROTATION", "OBSDATE",
                                     "MJD", "NOISE_SEED", "VAR_DMAG"])
    frames["WAVELENGTH"].unit = u.nm
    frames["RA"].unit = frames["DEC"].unit = frames["ROTATION"].unit = u.deg
    frames["DX_ARCSEC"].unit = frames["DY_ARCSEC"].unit = u.arcsec
    frames["VAR_DMAG"].unit = u.mag
    meta = dict(filters=filters, zeropoints=zps, variable_id=variable_id, variable=var,
                sed_reference_nm=_SED_REF_NM, seed=seed, pixel_scale=base.pixel_scale)
    truth.meta.update(meta)
    frames.meta.update(meta)
    stem = Path(root) / safe_name(f"{base.objname}.multiband", "objname")
    atomic_write(Path(f"{stem}.truth.ecsv"), lambda tmp: truth.write(tmp, format="ascii.ecsv"))
    atomic_write(Path(f"{stem}.frames.ecsv"),
                 lambda tmp: frames.write(tmp, format="ascii.ecsv"))
    log.info("Generated a %d-filter field: %d frames, %d sources", len(filters), len(paths),
             len(truth))
    return MultibandField(paths, frames, truth, zps, variable_id)


_TABLE_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits",
                  ".parquet": "parquet"}


def make_reference_catalog(truth: Table, path: str | os.PathLike,
                           filters: Sequence[str] | None = None, *,
                           mag_limits: tuple[float, float] = (11.0, 20.5),
                           mag_err_floor: float = 0.01, mag_5sigma: float = 21.0,
                           outlier_fraction: float = 0.0,
                           outlier_offset: tuple[float, float] = (0.5, 1.5),
                           position_error_arcsec: float = 0.05, stars_only: bool = True,
                           seed: int = 0, overwrite: bool = False) -> Table:
    """A reference catalogue of a generated field, like a survey's export, and its truth.

    Columns of the file: ``ref_id``, ``ra``, ``dec`` (deg), and per filter ``<f>_mag`` and
    ``<f>_magerr`` (AB mag; NaN outside ``mag_limits``, as a survey saturates and runs out
    of depth). Errors follow a survey's noise: ``sqrt(floor² + (1.0857 / SNR)²)`` with
    SNR = 5 at ``mag_5sigma``; each magnitude is the truth plus a draw of that error.
    ``outlier_fraction`` of the magnitudes of each filter (chosen independently per filter)
    are the truth off by a random amount in ``outlier_offset`` (mag, either sign): blends,
    variables, wrong cross-matches.

    Parameters
    ----------
    truth : astropy.table.Table
        `MultibandField.truth` (or any table with ID, TYPE, RA, DEC and ``MAG_<f>``).
    path : path-like
        Output file; the format follows the suffix (.ecsv, .fits, .csv, .parquet). Written
        atomically; an existing file is an error unless ``overwrite=True``.
    filters : sequence of str, optional
        Filters to include (default: every ``MAG_<f>`` column).
    mag_limits : (float, float)
        Bright and faint limits (AB mag): a source is listed when inside them in at least
        one filter; a magnitude outside them is NaN.
    mag_err_floor : float
        Floor of the magnitude errors (mag), added in quadrature.
    mag_5sigma : float
        Magnitude at S/N 5 of the survey's noise model.
    outlier_fraction : float
        Fraction (0-1) of each filter's magnitudes made outliers.
    outlier_offset : (float, float)
        Range (mag) of the outliers' offsets, drawn uniformly, with a random sign.
    position_error_arcsec : float
        Gaussian scatter (arcsec, per axis) added to the true positions.
    stars_only : bool
        List only the truth's stars (TYPE 'star'), not galaxies.
    seed : int
        Seed of the random errors, outliers and position scatter.
    overwrite : bool
        Replace an existing file at ``path`` (else FileExistsError).

    Returns
    -------
    astropy.table.Table
        The reference's truth (also written as ``<path>.truth.ecsv``): ref_id, ID (the
        field's), TYPE, and per filter ``MAG_TRUE_<f>``, ``MAG_<f>``, ``MAGERR_<f>``,
        ``OUTLIER_<f>``.
    """
    from .exceptions import ArgumentError

    path = Path(path)
    fmt = _TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ArgumentError(f"{path}: unknown reference catalogue format {path.suffix!r} "
                            f"(use one of {sorted(_TABLE_FORMATS)})")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists and overwrite=False")
    if filters is None:
        filters = [c[4:] for c in truth.colnames if c.startswith("MAG_")]
    filters = list(filters)
    missing = [f for f in filters if f"MAG_{f}" not in truth.colnames]
    if missing:
        raise ArgumentError(f"the truth table has no MAG_<f> column for {missing}")
    if not 0.0 <= outlier_fraction <= 1.0:
        raise ArgumentError(f"outlier_fraction must be in [0, 1], got {outlier_fraction}")
    rng = np.random.default_rng(seed)
    rows = np.ones(len(truth), bool)
    if stars_only:
        rows &= np.asarray(truth["TYPE"]) == "star"
    lo, hi = mag_limits
    inside = np.zeros(len(truth), bool)
    for f in filters:
        m = np.asarray(truth[f"MAG_{f}"], float)
        inside |= (m >= lo) & (m <= hi)
    src = truth[rows & inside]
    n = len(src)
    ref = Table()
    ref["ref_id"] = np.arange(1, n + 1)
    cosd = np.cos(np.radians(np.asarray(src["DEC"], float)))
    ref["ra"] = (np.asarray(src["RA"], float) + rng.normal(0, position_error_arcsec, n)
                 / 3600.0 / cosd) * u.deg
    ref["dec"] = (np.asarray(src["DEC"], float)
                  + rng.normal(0, position_error_arcsec, n) / 3600.0) * u.deg
    true = Table()
    true["ref_id"] = ref["ref_id"]
    true["ID"] = src["ID"]
    true["TYPE"] = src["TYPE"]
    for f in filters:
        m = np.asarray(src[f"MAG_{f}"], float)
        snr = 5.0 * 10 ** (-0.4 * (m - mag_5sigma))
        err = np.sqrt(mag_err_floor**2 + (1.0857 / snr) ** 2)
        meas = m + rng.normal(0.0, 1.0, n) * err
        outlier = rng.uniform(size=n) < outlier_fraction
        # an outlier is wrong by the offset itself (at least its lower bound, whatever the
        # noise draw would have been)
        meas[outlier] = m[outlier] + rng.choice([-1.0, 1.0], outlier.sum()) * rng.uniform(
            *outlier_offset, outlier.sum())
        seen = (m >= lo) & (m <= hi)
        meas[~seen] = np.nan
        err = np.where(seen, err, np.nan)
        ref[f"{f}_mag"] = meas * u.mag
        ref[f"{f}_magerr"] = err * u.mag
        true[f"MAG_TRUE_{f}"] = m * u.mag
        true[f"MAG_{f}"] = ref[f"{f}_mag"]
        true[f"MAGERR_{f}"] = ref[f"{f}_magerr"]
        true[f"OUTLIER_{f}"] = outlier & seen
    meta = dict(filters=filters, mag_limits=list(mag_limits), mag_err_floor=mag_err_floor,
                mag_5sigma=mag_5sigma, outlier_fraction=outlier_fraction,
                outlier_offset=list(outlier_offset), seed=seed,
                columns={f: (f"{f}_mag", f"{f}_magerr") for f in filters})
    ref.meta.update(meta)
    true.meta.update(meta)

    def write(tmp: Path) -> None:
        table = ref
        if fmt != "ascii.ecsv":  # FITS headers and Parquet cannot hold the nested meta
            table = ref.copy(copy_data=False)
            table.meta.clear()
        table.write(tmp, format=fmt)

    atomic_write(path, write)
    atomic_write(Path(f"{path}.truth.ecsv"), lambda tmp: true.write(tmp, format="ascii.ecsv"))
    log.info("Reference catalogue %s: %d stars, %d filters", path, n, len(filters))
    return true
