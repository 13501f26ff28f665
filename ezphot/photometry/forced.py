"""Forced photometry at given positions with photutils apertures (CONTRACT §4.4, §4.5).

Everything is measured on cut-outs around the positions: no full-frame temporary array is
made. The background comes from a map, a local annulus, or (when neither is given) from a
SExtractor-style estimate on tiles around the positions; the per-pixel noise from an RMS map,
or the same estimate.

Formulas (per aperture, ADU; g = gain in e-/ADU)::

    FLUX    = Σ w (data − sky)                 w: aperture weights (exact overlap by default)
    SKYSIG  = sqrt(Σ w rms²)
    FLUXERR = sqrt(SKYSIG² + max(FLUX, 0)/g [+ NPIX² σ_ann² / N_ann in annulus mode])
    MAG     = −2.5 log10(FLUX) + ZP  (NaN if FLUX ≤ 0);  MAGERR = 1.0857 FLUXERR / FLUX
    UL5/UL3 = −2.5 log10(5 or 3 × SKYSIG) + ZP

FLAGS bits: 1 aperture partly off the image, 2 fully off, 4 masked pixels inside,
8 non-finite pixels inside. An aperture with any of these has NaN flux, never an exception.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..background import poisson_skew_correction
from ..dataobjects.catalog import Catalog
from ..imageobjects import Background, BaseImage, Errormap
from .common import (aperture_diameters, as_image, as_list, catalog_info, finish_catalog,
                     resolve_maps)
from .geometry import sky_to_pixel_ellipse, to_pixel

log = logging.getLogger(__name__)

__all__ = ["circular_photometry", "elliptical_photometry", "FLAG_PARTIAL", "FLAG_OFF",
           "FLAG_MASKED", "FLAG_NONFINITE"]

FLAG_PARTIAL, FLAG_OFF, FLAG_MASKED, FLAG_NONFINITE = 1, 2, 4, 8
_TILE, _MARGIN = 512, 128


class _TileEstimate:
    """Background and RMS estimated on tiles around the positions (cached).

    Default (issue 15): the deep-masked 4-sigma-clipped mean of `calculate_bkg` on 64-pixel
    meshes of each tile (`ezphot.background.tile_background`), unbiased for faint sources
    next to bright ones. ``estimator='sextractor'``: SExtractor's mode (sep), skew-corrected
    when the gain is known (`poisson_skew_correction`) — the former default, which the
    sources' light pulled up (blank apertures -0.4 to -1 ADU/px on 7DT-like frames).
    """

    def __init__(self, img: BaseImage, mask: np.ndarray | None, box: int = 64, filt: int = 3,
                 estimator: str = "mean"):
        from ..background import _seeing_pixels

        if estimator not in ("mean", "sextractor"):
            raise ValueError(f"estimator must be 'mean' or 'sextractor', got {estimator!r}")
        self.img, self.mask, self.box, self.filt = img, mask, box, filt
        self.estimator = estimator
        self.gain, self.rdnoise = img.egain, img.rdnoise or 0.0
        self.fwhm = _seeing_pixels(img)
        self._tiles: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def label(self) -> dict:
        """What the estimate is, for the catalogue's metadata."""
        if self.estimator == "mean":
            return {"estimator": "clipped mean (4 sigma), deep source mask", "mesh": self.box,
                    "filter": self.filt, "tile": _TILE, "margin": _MARGIN,
                    "fwhm_pixel": self.fwhm,
                    "user_mask": self.mask is not None}
        return {"estimator": "sextractor mode (sep)", "mesh": self.box, "filter": self.filt,
                "tile": _TILE, "margin": _MARGIN,
                "skew_correction": bool(self.gain), "user_mask": self.mask is not None}

    def _whole_frame(self) -> bool:
        """Once tiles cover 15 % of the frame, one pass over the whole frame is cheaper than
        the rest of the tiles (their margins overlap): maps of the whole frame from then on."""
        if self.estimator != "mean":
            return False
        if "frame" not in self._tiles:
            ny, nx = self.img.shape
            area = sum((k[1] - k[0]) * (k[3] - k[2]) for k in self._tiles)
            if area < 0.15 * ny * nx:
                return False
            from ..background import tile_background

            ignore = None if self.mask is None else self.mask
            back, rms, _ = tile_background(self.img, ignore, box_size=self.box,
                                           filter_size=self.filt, fwhm=self.fwhm)
            self._tiles.clear()
            self._tiles["frame"] = (back, rms)
        return True

    def _tile(self, y0: int, y1: int, x0: int, x1: int):
        if self._whole_frame():
            back, rms = self._tiles["frame"]
            return back[y0:y1, x0:x1], rms[y0:y1, x0:x1]
        key = (y0, y1, x0, x1)
        if key not in self._tiles:
            data = np.array(self.img.data[y0:y1, x0:x1], dtype=np.float32)
            ignore = ~np.isfinite(data)
            if self.mask is not None:
                ignore |= self.mask[y0:y1, x0:x1]
            if ignore.all():
                nan = np.full(data.shape, np.nan, np.float32)
                self._tiles[key] = (nan, nan)
            elif self.estimator == "mean":
                from ..background import tile_background

                back, rms, _ = tile_background(data, ignore, box_size=self.box,
                                               filter_size=self.filt, fwhm=self.fwhm)
                self._tiles[key] = (back, rms)
            else:
                import sep

                data[~np.isfinite(data)] = 0.0
                b = sep.Background(data, mask=ignore if ignore.any() else None, bw=self.box,
                                   bh=self.box, fw=self.filt, fh=self.filt)
                back, rms = b.back(dtype=np.float32), b.rms(dtype=np.float32)
                if self.gain:
                    back += poisson_skew_correction(rms, self.gain, self.rdnoise)
                self._tiles[key] = (back, rms)
        return self._tiles[key]

    def cutouts(self, slc: tuple[slice, slice]):
        """(background, rms) over the full-frame slices ``slc``."""
        ny, nx = self.img.shape
        ys, xs = slc
        cy, cx = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
        ty, tx = cy // _TILE, cx // _TILE
        y0, x0 = max(0, ty * _TILE - _MARGIN), max(0, tx * _TILE - _MARGIN)
        y1, x1 = min(ny, (ty + 1) * _TILE + _MARGIN), min(nx, (tx + 1) * _TILE + _MARGIN)
        if ys.start < y0 or ys.stop > y1 or xs.start < x0 or xs.stop > x1:
            # an aperture larger than the tile margins: a box of its own
            pad = 2 * self.box
            y0, y1 = max(0, ys.start - pad), min(ny, ys.stop + pad)
            x0, x1 = max(0, xs.start - pad), min(nx, xs.stop + pad)
        back, rms = self._tile(y0, y1, x0, x1)
        local = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        return back[local], rms[local]


@dataclass
class _Sky:
    """Where sky level and per-pixel noise come from."""

    bkg: Background | float | None
    rms: Errormap | None
    estimate: _TileEstimate | None

    def cutouts(self, slc):
        est = self.estimate.cutouts(slc) if self.estimate is not None else (None, None)
        if isinstance(self.bkg, Background):
            back = self.bkg.data[slc]
        elif self.bkg is not None:
            back = float(self.bkg)
        else:
            back = est[0]
        rms = self.rms.data[slc] if self.rms is not None else est[1]
        return back, rms


_ANNULUS_LABEL = {"estimator": "clipped mean (median/MAD start, 4 sigma, 5 iterations)",
                  "deep_mask": True}


class _DeepTiles:
    """Deep source masks (`ezphot.background._deep_background`) of tiles around positions
    (cached; the whole frame at once when the tiles would cover 15 % of it)."""

    def __init__(self, data: np.ndarray, mask: np.ndarray | None, box: int = 64,
                 filt: int = 3):
        self.data, self.mask, self.box, self.filt = data, mask, box, filt
        self._tiles: dict = {}

    def _make(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, int]:
        from ..background import _ArrayRows, _deep_background

        arr = _ArrayRows(self.data[y0:y1, x0:x1])  # rows are copied to float32 as read
        masks = [] if self.mask is None else [self.mask[y0:y1, x0:x1]]
        _, _, deep, b, _ = _deep_background(arr, masks, [], self.box, self.filt, None)
        return deep, b

    def _tile(self, y0: int, y1: int, x0: int, x1: int):
        ny, nx = self.data.shape
        if "frame" not in self._tiles and sum(
                (k[1] - k[0]) * (k[3] - k[2]) for k in self._tiles) >= 0.15 * ny * nx:
            self._tiles.clear()
            self._tiles["frame"] = self._make(0, ny, 0, nx)
        if "frame" in self._tiles:
            return self._tiles["frame"], 0, 0
        key = (y0, y1, x0, x1)
        if key not in self._tiles:
            self._tiles[key] = self._make(y0, y1, x0, x1)
        return self._tiles[key], y0, x0

    def cutout(self, slc: tuple[slice, slice]) -> np.ndarray:
        ny, nx = self.data.shape
        ys, xs = slc
        cy, cx = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
        ty, tx = cy // _TILE, cx // _TILE
        y0, x0 = max(0, ty * _TILE - _MARGIN), max(0, tx * _TILE - _MARGIN)
        y1, x1 = min(ny, (ty + 1) * _TILE + _MARGIN), min(nx, (tx + 1) * _TILE + _MARGIN)
        if ys.start < y0 or ys.stop > y1 or xs.start < x0 or xs.stop > x1:
            pad = 2 * self.box
            y0, y1 = max(0, ys.start - pad), min(ny, ys.stop + pad)
            x0, x1 = max(0, xs.start - pad), min(nx, xs.stop + pad)
        (deep, b), oy, ox = self._tile(y0, y1, x0, x1)
        iy = (np.arange(ys.start, ys.stop) - oy) // b
        ix = (np.arange(xs.start, xs.stop) - ox) // b
        return deep[np.ix_(iy, ix)]


def _clipped_mean(v: np.ndarray, nsigma: float = 4.0, iterations: int = 5):
    """Mean and std of ``v`` clipped at ``nsigma`` about its mean (median/MAD start).

    A mean, not a median: the median of a Poisson sky sits ~0.5 ADU below its mean on 7DT
    frames (sky 400 ADU, gain 0.26), which biased annulus fluxes high by that per pixel."""
    c = np.median(v)
    s = 1.4826 * np.median(np.abs(v - c))
    if not s > 0:
        s = np.std(v)
    keep = np.abs(v - c) <= nsigma * s
    for _ in range(iterations):
        vk = v[keep]
        if vk.size < 5:
            break
        c, s = vk.mean(), vk.std()
        new = np.abs(v - c) <= nsigma * s
        if np.array_equal(new, keep):
            break
        keep = new
    vk = v[keep]
    return float(vk.mean()), float(vk.std()), int(vk.size)


def _annulus_sky(data: np.ndarray, mask: np.ndarray | None, ann_masks) -> tuple[np.ndarray, ...]:
    """Sky level, std and count of each annulus: a clipped mean of its pixels outside the
    user's mask and outside the deep source mask of the tile around it (neighbours and their
    wings). Where the deep mask leaves under 10 pixels (or 10 %) of an annulus, its pixels
    outside the user's mask are used instead."""
    n = len(ann_masks)
    med, std, cnt = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, int)
    deep = _DeepTiles(data, mask)
    for i, m in enumerate(ann_masks):
        slc_l, slc_s = m.get_overlap_slices(data.shape)
        if slc_l is None:
            continue
        w = m.data[slc_s] > 0
        v = np.asarray(data[slc_l], dtype=float)[w]
        good = np.isfinite(v)
        if mask is not None:
            good &= ~mask[slc_l][w]
        clear = good & ~deep.cutout(slc_l)[w]
        if clear.sum() >= max(10, 0.1 * w.sum()):
            good = clear
        v = v[good]
        if v.size >= 5:
            med[i], std[i], cnt[i] = _clipped_mean(v)
    return med, std, cnt


def _measure(img: BaseImage, masks_per_aperture: list[list], areas: list[np.ndarray],
             sky: _Sky, mask: np.ndarray | None, annulus=None):
    """Sum data, sky and variance in every aperture mask. Returns per-aperture arrays."""
    data = img.data
    shape = data.shape
    n = len(masks_per_aperture[0])
    ann_med = ann_std = ann_cnt = None
    if annulus is not None:
        ann_med, ann_std, ann_cnt = _annulus_sky(data, mask, annulus)
    results = []
    flags_all = np.zeros(n, dtype=np.int32)
    bkg_map = sky.bkg.data if isinstance(sky.bkg, Background) else None
    rms_map = sky.rms.data if sky.rms is not None else None
    for apmasks, area in zip(masks_per_aperture, areas):
        flux = np.full(n, np.nan)
        var_sky = np.full(n, np.nan)
        var_est = np.zeros(n)
        flags = np.zeros(n, dtype=np.int32)
        for i, m in enumerate(apmasks):
            slc_l, slc_s = m.get_overlap_slices(shape)
            if slc_l is None:
                flags[i] = FLAG_OFF
                continue
            w = m.data
            if w.shape != (slc_l[0].stop - slc_l[0].start, slc_l[1].stop - slc_l[1].start):
                w = w[slc_s]
                if w.sum() < m.data.sum() - 1e-9:  # weight really lost off the edge
                    flags[i] |= FLAG_PARTIAL
            d = data[slc_l]
            if not np.isfinite(d).all() and not np.isfinite(d[w > 0]).all():
                flags[i] |= FLAG_NONFINITE
            if mask is not None and mask[slc_l][w > 0].any():
                flags[i] |= FLAG_MASKED
            if flags[i]:
                continue
            # fast paths for the common cases (maps given): plain slices, dot products
            if annulus is not None:
                back = ann_med[i]
                rms = rms_map[slc_l] if rms_map is not None else ann_std[i]
                if ann_cnt[i] > 0:
                    var_est[i] = area[i] ** 2 * ann_std[i] ** 2 / ann_cnt[i]
            elif bkg_map is not None and rms_map is not None:
                back, rms = bkg_map[slc_l], rms_map[slc_l]
            else:
                back, rms = sky.cutouts(slc_l)
            wf = w.ravel()
            flux[i] = float(wf @ (d - back).ravel())
            if np.ndim(rms):
                var_sky[i] = float(wf @ np.square(rms, dtype=np.float64).ravel())
            else:
                var_sky[i] = float(wf.sum() * rms * rms)
        flags_all |= flags
        results.append((flux, var_sky, var_est, flags))
    return results, flags_all


def _photometry_columns(table: Table, suffix: str, flux, var_sky, var_est, area, gain,
                        zeropoint: float, kind: str) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        skysig = np.sqrt(var_sky)
        poisson = np.maximum(flux, 0) / gain if gain else np.zeros_like(flux)
        fluxerr = np.sqrt(var_sky + poisson + var_est)
        mag = np.where(flux > 0, -2.5 * np.log10(flux) + zeropoint, np.nan)
        magerr = np.where(flux > 0, 2.5 / math.log(10) * fluxerr / flux, np.nan)
        ul5 = -2.5 * np.log10(5 * skysig) + zeropoint
        ul3 = -2.5 * np.log10(3 * skysig) + zeropoint
    table[f"NPIX_{kind}{suffix}"] = np.asarray(area, float) * u.pix**2
    table[f"FLUX_{kind}{suffix}"] = flux * u.ct
    table[f"MAG_{kind}{suffix}"] = mag * u.mag
    table[f"FLUXERR_{kind}{suffix}"] = fluxerr * u.ct
    table[f"MAGERR_{kind}{suffix}"] = magerr * u.mag
    table[f"SKYSIG_{kind}{suffix}"] = skysig * u.ct
    table[f"UL5_{kind}{suffix}"] = ul5 * u.mag
    table[f"UL3_{kind}{suffix}"] = ul3 * u.mag


def _prepare(img, target_bkg, target_bkgrms, target_mask):
    bkg, rms, mask = resolve_maps(img, target_bkg, target_bkgrms, target_mask)
    return bkg, rms, None if mask is None else mask.data


def _positions(img, x_arr, y_arr, unit):
    if isinstance(x_arr, SkyCoord):
        px, py = to_pixel(img, x_arr)
    else:
        if np.ndim(x_arr) != np.ndim(y_arr) or np.size(x_arr) != np.size(y_arr):
            raise ValueError(f"x_arr and y_arr have different lengths ({np.size(x_arr)} and "
                             f"{np.size(y_arr)})")
        px, py = to_pixel(img, x_arr, y_arr, unit)
    if px.size == 0:
        raise ValueError("no positions given")
    if not (np.isfinite(px).all() and np.isfinite(py).all()):
        raise ValueError("positions must be finite numbers")
    return px, py


def _position_table(img, px, py) -> Table:
    """X_IMAGE, Y_IMAGE (0-based) and X_WORLD, Y_WORLD (ICRS; NaN without a WCS)."""
    table = Table()
    table["X_IMAGE"] = px * u.pix
    table["Y_IMAGE"] = py * u.pix
    if img.wcs is None:
        ra = dec = np.full(px.size, np.nan)
    else:
        sky = img.wcs.pixel_to_world(px, py).icrs
        ra, dec = sky.ra.deg, sky.dec.deg
    table["X_WORLD"] = ra * u.deg
    table["Y_WORLD"] = dec * u.deg
    return table


def _sky_source(img, bkg, rms, mask, annulus: bool):
    need_estimate = (bkg is None and not annulus) or (rms is None and not annulus)
    return _Sky(bkg, rms, _TileEstimate(img, mask) if need_estimate else None)


def _bkg_details(sky: _Sky, bkg, annulus) -> dict:
    """Which estimator and masks gave the sky, for ``Catalog.meta['background_details']``."""
    if isinstance(bkg, Background):
        h = bkg.header
        return {"source": "map", "estimator": h.get("BKGESTIM"), "mesh": h.get("BKGSIZE"),
                "filter": h.get("BKGFILT"), "deep_mask": h.get("BKGDEEP"),
                "masked_pixels": h.get("BKGNMASK")}
    if bkg is not None:
        return {"source": "constant", "value": float(bkg)}
    if annulus is not None:
        return {"source": "annulus", **_ANNULUS_LABEL}
    return {"source": "tiles", **sky.estimate.label()} if sky.estimate is not None else {}


def _gain(img, egain):
    gain = egain if egain is not None else img.egain
    if not gain:
        log.warning("%s: gain unknown; FLUXERR without the sources' Poisson noise", img.path)
    return gain


def circular_photometry(target_img, x_arr, y_arr, *, aperture_diameter_arcsec=(5, 7, 10),
                        aperture_diameter_seeing=(3.5, 4.5),
                        annulus_width_arcsec: float | None = None, unit: str = "pixel",
                        target_bkg=None, target_mask=None, target_bkgrms=None,
                        method: str = "exact", subpixels: int = 5, egain: float | None = None,
                        seeing: float | None = None, zeropoint: float = 0.0,
                        save: bool = True) -> Catalog:
    """Forced photometry in circular apertures; see `AperturePhotometry.circular_photometry`."""
    from photutils.aperture import CircularAnnulus, CircularAperture

    img = as_image(target_img)
    px, py = _positions(img, x_arr, y_arr, unit)
    seeing = seeing if seeing is not None else img.seeing
    diam_arcsec, diam_px = aperture_diameters(img, aperture_diameter_arcsec,
                                              aperture_diameter_seeing, seeing, img.pixelscale)
    bkg, rms, mask = _prepare(img, target_bkg, target_bkgrms, target_mask)
    xy = np.column_stack([px, py])
    masks, areas = [], []
    for d in diam_px:
        aper = CircularAperture(xy, r=d / 2.0)
        masks.append(aper.to_mask(method=method, subpixels=subpixels))
        areas.append(np.full(len(px), aper.area))
    annulus = None
    if annulus_width_arcsec is not None and bkg is None:
        width = as_list(annulus_width_arcsec, "annulus_width_arcsec")[0] / img.pixelscale
        # start clear of the star's wings: at 4 FWHM, or at the largest aperture if wider
        r_in = max(max(diam_px) / 2.0, 4 * seeing / img.pixelscale if seeing else 0.0)
        annulus = CircularAnnulus(xy, r_in=r_in, r_out=r_in + width).to_mask(method="center")
    sky = _sky_source(img, bkg, rms, mask, annulus is not None)
    results, flags = _measure(img, masks, areas, sky, mask, annulus)
    table = _position_table(img, px, py)
    gain = _gain(img, egain)
    for i, ((flux, var_sky, var_est, _), area) in enumerate(zip(results, areas)):
        _photometry_columns(table, "" if i == 0 else f"_{i}", flux, var_sky, var_est, area, gain,
                            zeropoint, "APER")
    table["FLAGS"] = flags
    table.meta.update(pixel_origin=0, aperture_method=method,
                      subpixels=subpixels if method == "subpixel" else None)
    meta = {"method": "circular", "aperture_method": method, "aperture_diameter_pixel": diam_px,
            "background": _bkg_label(bkg, annulus), "egain": gain,
            "background_details": _bkg_details(sky, bkg, annulus)}
    info = catalog_info(img, "circular", seeing=seeing, aperture_diameter_arcsec=diam_arcsec,
                        path=None)
    return finish_catalog(Catalog(table, info=info, meta=meta), img, ".circ.cat", save)


def _bkg_label(bkg, annulus) -> str:
    if isinstance(bkg, Background):
        return "map"
    if bkg is not None:
        return "constant"
    return "annulus" if annulus is not None else "estimated"


def elliptical_photometry(target_img, x_arr, y_arr, sma_arr, smi_arr, theta_arr, *,
                          unit: str = "pixel", annulus_ratio: float | None = None,
                          target_bkg=None, target_mask=None, target_bkgrms=None,
                          method: str = "exact", subpixels: int = 5, egain: float | None = None,
                          zeropoint: float = 0.0, save: bool = True) -> Catalog:
    """Forced photometry in elliptical apertures; see `AperturePhotometry.elliptical_photometry`."""
    from photutils.aperture import EllipticalAnnulus, EllipticalAperture

    img = as_image(target_img)
    px, py = _positions(img, x_arr, y_arr, unit)
    n = px.size
    try:
        a = np.broadcast_to(np.asarray(sma_arr, float), (n,)).copy()
        b = np.broadcast_to(np.asarray(smi_arr, float), (n,)).copy()
        theta = np.broadcast_to(np.asarray(theta_arr, float), (n,)).copy()
    except ValueError as exc:
        raise ValueError(f"sma_arr, smi_arr and theta_arr must be scalars or have one value per "
                         f"position ({n})") from exc
    if not (np.all(a > 0) and np.all(b > 0) and np.isfinite(theta).all()):
        raise ValueError("semi-axes must be positive and theta finite")
    if unit == "coord":
        a, b, theta_rad = sky_to_pixel_ellipse(img, px, py, a, b, theta)
    elif unit == "pixel":
        theta_rad = np.radians(theta)
    else:
        raise ValueError(f"unit must be 'pixel' or 'coord', got {unit!r}")
    swap = b > a  # "semi-major" given shorter than "semi-minor": the major axis is at +90 deg
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    theta_rad = np.where(swap, theta_rad + np.pi / 2, theta_rad)
    if annulus_ratio is not None and annulus_ratio <= 1:
        raise ValueError(f"annulus_ratio must be > 1, got {annulus_ratio}")
    bkg, rms, mask = _prepare(img, target_bkg, target_bkgrms, target_mask)
    masks, ann = [], [] if annulus_ratio is not None and bkg is None else None
    for i in range(n):
        aper = EllipticalAperture((px[i], py[i]), a=float(a[i]), b=float(b[i]),
                                  theta=float(theta_rad[i]))
        masks.append(aper.to_mask(method=method, subpixels=subpixels))
        if ann is not None:
            ann.append(EllipticalAnnulus((px[i], py[i]), a_in=float(a[i]),
                                         a_out=float(a[i]) * annulus_ratio,
                                         b_out=float(b[i]) * annulus_ratio,
                                         theta=float(theta_rad[i])).to_mask(method="center"))
    area = np.pi * a * b
    sky = _sky_source(img, bkg, rms, mask, ann is not None)
    results, flags = _measure(img, [masks], [area], sky, mask, ann)
    table = _position_table(img, px, py)
    table["SMA_IMAGE"] = a * u.pix
    table["SMI_IMAGE"] = b * u.pix
    table["THETA_IMAGE"] = np.degrees(theta_rad) * u.deg
    flux, var_sky, var_est, _ = results[0]
    _photometry_columns(table, "", flux, var_sky, var_est, area, _gain(img, egain), zeropoint,
                        "ELIP")
    table["FLAGS"] = flags
    table.meta.update(pixel_origin=0, aperture_method=method,
                      subpixels=subpixels if method == "subpixel" else None)
    meta = {"method": "elliptical", "aperture_method": method,
            "background": _bkg_label(bkg, ann),
            "background_details": _bkg_details(sky, bkg, ann)}
    info = catalog_info(img, "elliptical", seeing=img.seeing, aperture_diameter_arcsec=None,
                        path=None)
    return finish_catalog(Catalog(table, info=info, meta=meta), img, ".ellip.cat", save)
