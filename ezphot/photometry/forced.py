"""Forced photometry at given positions with photutils apertures (docs/forced.md).

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
8 non-finite pixels inside, 16 background or RMS not finite inside. An aperture with any of
these has NaN flux, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Column, Table

from .. import _validate as validate
from .._aliases import renamed
from ..background import poisson_skew_correction
from ..dataobjects.catalog import Catalog
from ..exceptions import ArgumentError, HeaderWarning, ImageError, PositionWarning
from ..imageobjects import Background, BaseImage, Errormap
from .common import aperture_diameters, as_image, catalog_info, finish_catalog
from .geometry import sky_to_pixel_ellipse, to_pixel

log = logging.getLogger(__name__)

__all__ = ["circular_photometry", "elliptical_photometry", "prepare_sky_cache", "FLAG_PARTIAL",
           "FLAG_OFF", "FLAG_MASKED", "FLAG_NONFINITE", "FLAG_BADSKY"]

FLAG_PARTIAL, FLAG_OFF, FLAG_MASKED, FLAG_NONFINITE = 1, 2, 4, 8
FLAG_BADSKY = 16  # background or RMS not finite in the aperture (e.g. an all-masked tile)
_TILE, _MARGIN = 512, 128


def _tile_box(slc: tuple[slice, slice], shape: tuple[int, int],
              box: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the cached tile holding the full-frame slices ``slc``: the
    _TILE-pixel tile of their centre with _MARGIN pixels around it, or, for an aperture
    larger than the margins, a box of its own (2 meshes around it)."""
    ny, nx = shape
    ys, xs = slc
    cy, cx = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
    ty, tx = cy // _TILE, cx // _TILE
    y0, x0 = max(0, ty * _TILE - _MARGIN), max(0, tx * _TILE - _MARGIN)
    y1, x1 = min(ny, (ty + 1) * _TILE + _MARGIN), min(nx, (tx + 1) * _TILE + _MARGIN)
    if ys.start < y0 or ys.stop > y1 or xs.start < x0 or xs.stop > x1:
        pad = 2 * box
        y0, y1 = max(0, ys.start - pad), min(ny, ys.stop + pad)
        x0, x1 = max(0, xs.start - pad), min(nx, xs.stop + pad)
    return y0, y1, x0, x1


class _TileEstimate:
    """Background and RMS estimated on tiles around the positions (cached), or on the whole
    frame when the tiles would cover 15 % of it.

    Default (issue 15): the deep-masked 4-sigma-clipped mean of `calculate_bkg` on 64-pixel
    meshes of each tile (`ezphot.background.tile_background`), unbiased for faint sources
    next to bright ones. ``estimator='sextractor'``: SExtractor's mode (sep), skew-corrected
    when the gain is known (`poisson_skew_correction`) — the former default, which the
    sources' light pulled up (blank apertures -0.4 to -1 ADU/px on 7DT-like frames).

    Whole frame ('mean' only): the mesh levels of one pass over the frame, evaluated in each
    aperture's cut-out (`ezphot.background.MeshSpline`: no frame-sized maps). `plan` decides
    it from all the positions before the first is measured, so every position of a call gets
    the same kind of sky. ``sky_cache``: a directory where those mesh levels are kept
    (`_MeshCache`).
    """

    def __init__(self, img: BaseImage, mask: np.ndarray | None, box: int = 64, filt: int = 3,
                 estimator: str = "mean", sky_cache: Path | None = None):
        from ..background import seeing_pixels

        if estimator not in ("mean", "sextractor"):
            raise ValueError(f"estimator must be 'mean' or 'sextractor', got {estimator!r}")
        self.img, self.mask, self.box, self.filt = img, mask, box, filt
        self.shape = img.shape  # (a header lookup each time it is asked)
        self.estimator = estimator
        self.sky_cache = sky_cache
        self.gain, self.rdnoise = img.egain, img.rdnoise or 0.0
        self.fwhm = seeing_pixels(img)
        self._tiles: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._frame = None  # (MeshSpline of the level, of the RMS), or "nan": no usable mesh

    def label(self) -> dict:
        """What the estimate is, for the catalogue's metadata."""
        if self.estimator == "mean":
            return {"estimator": "clipped mean (4 sigma), deep source mask", "mesh": self.box,
                    "filter": self.filt, "tile": _TILE, "margin": _MARGIN,
                    "fwhm_pixel": self.fwhm, "whole_frame": self._frame is not None,
                    "user_mask": self.mask is not None}
        return {"estimator": "sextractor mode (sep)", "mesh": self.box, "filter": self.filt,
                "tile": _TILE, "margin": _MARGIN,
                "skew_correction": bool(self.gain), "user_mask": self.mask is not None}

    def plan(self, px: np.ndarray, py: np.ndarray, extent: float) -> None:
        """Use the whole frame from the start when the tiles around the positions (``px``,
        ``py``: pixels; apertures of half size ``extent``) would cover 15 % of it."""
        if self.estimator != "mean" or self._frame is not None or px.size == 0:
            return
        ny, nx = self.shape
        if extent + 2 >= _MARGIN:  # apertures wider than the margins: a box each
            side = 2 * (extent + 2 + 2 * self.box)
            area = px.size * side * side
        else:
            ty = np.clip(np.round(py).astype(np.int64) // _TILE, 0, (ny - 1) // _TILE)
            tx = np.clip(np.round(px).astype(np.int64) // _TILE, 0, (nx - 1) // _TILE)
            tiles = np.unique(ty * (nx // _TILE + 1) + tx)
            ty, tx = np.divmod(tiles, nx // _TILE + 1)
            hy = np.minimum(ny, (ty + 1) * _TILE + _MARGIN) - np.maximum(0, ty * _TILE - _MARGIN)
            hx = np.minimum(nx, (tx + 1) * _TILE + _MARGIN) - np.maximum(0, tx * _TILE - _MARGIN)
            area = int(np.sum(hy * hx))
        if area >= 0.15 * ny * nx:
            self._use_frame()

    def _whole_frame(self) -> bool:
        """Once tiles cover 15 % of the frame, one pass over the whole frame is cheaper than
        the rest of the tiles (their margins overlap): the whole frame from then on (for
        positions `plan` did not see)."""
        if self.estimator != "mean":
            return False
        if self._frame is None:
            ny, nx = self.shape
            area = sum((k[1] - k[0]) * (k[3] - k[2]) for k in self._tiles)
            if area < 0.15 * ny * nx:
                return False
            self._use_frame()
        return True

    def frame_meshes(self) -> tuple[np.ndarray, np.ndarray]:
        """The mesh levels and spreads of the whole frame (`deep_background`, as
        `tile_background` makes them): from ``sky_cache`` when it holds them for this file
        and these parameters, else computed (and stored there). With a user mask they are
        always computed."""
        from ..background import deep_background

        cache = None
        if self.sky_cache is not None and self.mask is None:
            cache = _MeshCache(self.sky_cache, self.img, self.box, self.filt, self.fwhm)
            # the entry is the file's at the path now: drop a read handle (or decompressed
            # pixels) of an earlier file there, or its meshes would be kept under this one's
            # identity (and the call would measure the one with the other's sky)
            self.img.close()
            if getattr(self.img, "compressed", False):
                self.img.clear()
            got = cache.load()
            if got is not None:
                return got
        masks = [np.asarray(self.mask, bool)] if self.mask is not None and self.mask.any() \
            else []
        mesh, spread, _, _, _ = deep_background(self.img, masks, [], self.box, self.filt,
                                                self.fwhm)
        if cache is not None:
            cache.store(mesh, spread)
        return mesh, spread

    def _use_frame(self) -> None:
        from ..background import MeshSpline

        mesh, spread = self.frame_meshes()
        self._tiles.clear()
        if not np.isfinite(mesh).any():
            self._frame = "nan"
            return
        self._frame = (MeshSpline(mesh, self.filt, self.shape, self.box),
                       MeshSpline(spread, self.filt, self.shape, self.box))

    def _tile(self, y0: int, y1: int, x0: int, x1: int):
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
        ys, xs = slc
        if self._whole_frame():
            if self._frame == "nan":
                nan = np.full((ys.stop - ys.start, xs.stop - xs.start), np.nan, np.float32)
                return nan, nan
            back, rms = self._frame
            return (back.box(ys.start, ys.stop, xs.start, xs.stop),
                    rms.box(ys.start, ys.stop, xs.start, xs.stop))
        y0, y1, x0, x1 = _tile_box(slc, self.shape, self.box)
        back, rms = self._tile(y0, y1, x0, x1)
        local = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        return back[local], rms[local]


_MESH_CACHE_FORMAT = 1


def _file_identity(img: BaseImage) -> tuple | None:
    """(resolved path, HDU, size, mtime_ns, inode, ctime_ns) of the image's file; None
    without one. The ctime: a rewrite whose mtime was put back (``os.utime``) still changes
    it (only the kernel sets it)."""
    try:
        path = Path(img.path).resolve()
        st = os.stat(path)
    except (AttributeError, TypeError, OSError):
        return None
    return (str(path), getattr(img, "hdu", None), st.st_size, st.st_mtime_ns, st.st_ino,
            st.st_ctime_ns)


class _MeshCache:
    """One entry of a ``sky_cache`` directory: the whole-frame mesh levels and spreads of
    one image (kilobytes; `multiband_catalog` fills one while it detects).

    The entry's name is a digest of the image file's identity (resolved path, HDU, size,
    mtime_ns, inode, ctime_ns), the shape, the estimate's parameters (mesh, filter, seeing
    FWHM) and the ezphot version, which the entry also holds and which a read must match: a
    rewritten file or other parameters never find it. It is written atomically and never replaces a
    file already there.
    """

    def __init__(self, directory: Path, img: BaseImage, box: int, filt: int,
                 fwhm: float | None):
        from .. import __version__

        self.img, self.box = img, int(box)
        self.identity = _file_identity(img)
        key = {"format": _MESH_CACHE_FORMAT, "ezphot": __version__, "file": self.identity,
               "shape": list(img.shape), "estimator": "mean", "box": int(box),
               "filter": int(filt), "fwhm": None if fwhm is None else float(fwhm).hex()}
        self.key = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:40]
        self.path = Path(directory) / f"sky-{digest}.npz"

    def load(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached (mesh, spread), or None: no entry, or one that does not read as this
        image's (then they are computed again)."""
        if self.identity is None or self.identity != _file_identity(self.img):
            return None
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                key, mesh, spread = str(z["key"]), z["mesh"], z["spread"]
        except Exception as exc:  # noqa: BLE001 - zip, format or key errors: not an entry
            log.warning("%s: not a sky cache entry (%s); the sky is computed again",
                        self.path, exc)
            return None
        ny, nx = self.img.shape
        grid = (-(-ny // self.box), -(-nx // self.box))  # the meshes of deep_background
        if key != self.key or mesh.dtype != np.float64 or mesh.shape != spread.shape \
                or mesh.shape != grid or spread.dtype != np.float64:
            log.warning("%s: not a sky cache entry of %s; the sky is computed again",
                        self.path, self.img.path)
            return None
        log.debug("%s: whole-frame sky meshes from %s", self.img.path, self.path)
        return mesh, spread

    def store(self, mesh: np.ndarray, spread: np.ndarray) -> bool:
        """Write the entry (atomically), unless the file changed while the meshes were made
        or something is there already. A failure to write only logs (the meshes were made)."""
        from .._io import atomic_write
        from ..exceptions import EzphotError

        if self.identity is None or self.identity != _file_identity(self.img) \
                or os.path.lexists(self.path):
            return False
        if not self.path.parent.is_dir():  # removed meanwhile: atomic_write would remake it
            log.warning("%s: sky meshes not cached: %s is gone", self.img.path,
                        self.path.parent)
            return False

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, key=np.array(self.key), mesh=np.asarray(mesh, np.float64),
                         spread=np.asarray(spread, np.float64))

        try:
            atomic_write(self.path, write, may_replace=_keep_existing)
        except (OSError, EzphotError) as exc:
            log.warning("%s: sky meshes not cached in %s (%s)", self.img.path,
                        self.path.parent, exc)
            return False
        return True


def _keep_existing(path: Path) -> None:
    from ..exceptions import OutputError

    raise OutputError(f"{path}: already there (kept)")


def _sky_cache_dir(sky_cache) -> Path | None:
    """Validate ``sky_cache``: None or an existing directory."""
    if sky_cache is None:
        return None
    if isinstance(sky_cache, str) and not sky_cache.strip():
        # Path("") is the current directory: never fill it unasked
        raise ArgumentError(f"sky_cache must be a directory, got {sky_cache!r}")
    try:
        path = Path(sky_cache)
    except TypeError as exc:
        raise ArgumentError(f"sky_cache must be a directory, got {sky_cache!r}") from exc
    if not path.is_dir():
        raise ArgumentError(f"sky_cache: {path} is not a directory")
    return path


def prepare_sky_cache(image, sky_cache: str | os.PathLike) -> bool:
    """Make (or find) the whole-frame sky meshes that forced photometry without maps or
    mask would make for ``image``, in the cache directory ``sky_cache``: exactly the estimate
    of `circular_photometry`/`elliptical_photometry` (same mesh, filter and seeing).

    Parameters
    ----------
    image : BaseImage, ImageDescriptor or path
        The image.
    sky_cache : path-like
        An existing directory.

    Returns
    -------
    bool
        True when the entry exists afterwards. Never raises for a bad image (a forced call
        then meets the problem itself): logs and returns False.
    """
    img = None
    try:
        img = as_image(image)
        est = _TileEstimate(img, None, sky_cache=_sky_cache_dir(sky_cache))
        cache = _MeshCache(est.sky_cache, img, est.box, est.filt, est.fwhm)
        if cache.load() is None:
            est.frame_meshes()
        return cache.load() is not None
    except Exception as exc:  # noqa: BLE001 - a preparation only saves time
        log.warning("%s: sky meshes not prepared (%s: %s)", image, type(exc).__name__, exc)
        return False
    finally:
        if img is not None:
            img.close()  # the file handle read_rows opened


class _RegionEstimate:
    """A tile estimate already made over one region (``back``, ``rms`` from row ``y0``,
    column ``x0``): the blank apertures of the confusion term, all inside it."""

    def __init__(self, back: np.ndarray, rms: np.ndarray, y0: int, x0: int):
        self.back, self.rms, self.y0, self.x0 = back, rms, y0, x0

    def cutouts(self, slc: tuple[slice, slice]):
        ys, xs = slc
        local = (slice(ys.start - self.y0, ys.stop - self.y0),
                 slice(xs.start - self.x0, xs.stop - self.x0))
        return self.back[local], self.rms[local]


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
    """Deep source masks (`ezphot.background.deep_background`) of tiles around positions
    (cached; the whole frame at once when the tiles would cover 15 % of it)."""

    def __init__(self, data: np.ndarray, mask: np.ndarray | None, box: int = 64,
                 filt: int = 3, fwhm: float | None = None):
        self.data, self.mask, self.box, self.filt = data, mask, box, filt
        self.fwhm = fwhm  # the seeing in pixels: the detection filter and the growth of masks
        self._tiles: dict = {}

    def _make(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, int]:
        from ..background import ArrayRows, deep_background

        arr = ArrayRows(self.data[y0:y1, x0:x1])  # rows are copied to float32 as read
        masks = [] if self.mask is None else [self.mask[y0:y1, x0:x1]]
        _, _, deep, b, _ = deep_background(arr, masks, [], self.box, self.filt, self.fwhm)
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
        ys, xs = slc
        (deep, b), oy, ox = self._tile(*_tile_box(slc, self.data.shape, self.box))
        iy = (np.arange(ys.start, ys.stop) - oy) // b
        ix = (np.arange(xs.start, xs.stop) - ox) // b
        return deep[np.ix_(iy, ix)]


def _seeing_fwhm(img: BaseImage, seeing: float | None = None) -> float | None:
    """The seeing FWHM in pixels for the annulus' deep mask: ``seeing`` (arcsec) or the
    header's, else measured on the frame (`measure_seeing`, SExtractor), else None (the deep
    mask's default, 5 px, with a warning)."""
    from ..background import seeing_pixels

    scale = img.pixelscale
    if seeing and scale:
        return float(seeing) / float(scale)
    fwhm = seeing_pixels(img)
    if fwhm:
        return fwhm
    try:
        from .sexphot import measure_seeing

        measured = measure_seeing(img)
        if measured and scale:
            return float(measured) / float(scale)
    except Exception as exc:  # noqa: BLE001 - an unmeasurable seeing falls back, loudly
        log.warning("%s: seeing not in the header and not measurable (%s); the annulus' "
                    "source mask assumes a %.0f px FWHM", img.path, exc, 5.0)
    return None


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


def _annulus_sky(data: np.ndarray, mask: np.ndarray | None, ann_masks,
                 deep: _DeepTiles | None = None) -> tuple[np.ndarray, ...]:
    """Sky level, std and count of each annulus: a clipped mean of its pixels outside the
    user's mask and outside the deep source mask of the tile around it (neighbours and their
    wings). Where the deep mask leaves under 10 pixels (or 10 %) of an annulus, its pixels
    outside the user's mask are used instead. ``deep`` must be built on the whole frame (a
    chunk's rows do not hold the tiles around its positions)."""
    n = len(ann_masks)
    med, std, cnt = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, int)
    deep = deep if deep is not None else _DeepTiles(data, mask)
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


class _RowBlock:
    """Rows ``y0:y0 + len(rows)`` of a frame, indexed with full-frame slices.

    Forced photometry reads the rows a chunk of positions needs and nothing else: memory stays
    bounded whatever the number of positions, and no memory map of the whole frame stays
    resident.
    """

    def __init__(self, rows: np.ndarray, y0: int, shape: tuple[int, int]):
        self.rows, self.y0, self.shape = rows, y0, shape

    def __getitem__(self, slc):
        ys, xs = slc
        return self.rows[ys.start - self.y0:ys.stop - self.y0, xs]


def _pixel_dtype(img: BaseImage):
    """The dtype arithmetic on the pixels had before (float64 for 32/64-bit integers)."""
    bitpix = int(img.header.get("BITPIX", -32)) if not img.compressed else int(
        img.header.get("ZBITPIX", img.header.get("BITPIX", -32)))
    return np.float64 if bitpix in (-64, 32, 64) else np.float32


def _measure(img: BaseImage, masks_per_aperture: list[list], areas: list[np.ndarray],
             sky: _Sky, mask: np.ndarray | None, annulus=None, data=None,
             deep: _DeepTiles | None = None):
    """Sum data, sky and variance in every aperture mask. Returns per-aperture arrays.

    ``data`` (full-frame indexable, e.g. a `_RowBlock`) defaults to the image's pixels.
    A background or RMS that is not finite in an aperture gives NaN and `FLAG_BADSKY`; an RMS
    map with zero or negative pixels in an (unmasked) aperture is refused.
    """
    data = img.data if data is None else data
    shape = data.shape
    n = len(masks_per_aperture[0])
    ann_med = ann_std = ann_cnt = None
    if annulus is not None:
        ann_med, ann_std, ann_cnt = _annulus_sky(data, mask, annulus, deep)
    results = []
    flags_all = np.zeros(n, dtype=np.int32)
    bkg_map = sky.bkg.data if isinstance(sky.bkg, Background) else None
    rms_map = sky.rms.data if sky.rms is not None else None
    for apmasks, area in zip(masks_per_aperture, areas, strict=False):
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
            if rms_map is not None and np.ndim(rms) and not rms.min() > 0 \
                    and (rms[w > 0] <= 0).any():
                bb = m.bbox
                raise ImageError(f"target_bkgrms has zero or negative pixels in the aperture "
                                 f"at x {bb.ixmin}:{bb.ixmax}, y {bb.iymin}:{bb.iymax} (not "
                                 "masked): an RMS must be positive")
            wf = w.ravel()
            f = float(wf @ (d - back).ravel())
            if np.ndim(rms):
                v = float(wf @ np.square(rms, dtype=np.float64).ravel())
            else:
                v = float(wf.sum() * rms * rms)
            if not (math.isfinite(f) and math.isfinite(v)):
                # no usable sky here (an all-masked tile, a NaN map pixel): never FLAGS 0
                flags[i] |= FLAG_BADSKY
                continue
            flux[i], var_sky[i] = f, v
        flags_all |= flags
        results.append((flux, var_sky, var_est, flags))
    return results, flags_all


# Positions measured per chunk: the aperture masks of a chunk (a few kB each) and the rows
# it covers (at most _BLOCK_BYTES of pixels) are all the memory forced photometry needs
# beyond its output, whatever the number of positions.
_CHUNK = 1024  # aperture masks of 1024 positions x 5 apertures: ~20 MB
_BLOCK_BYTES = 32 << 20


def _chunks(ys: np.ndarray, max_rows: int):
    """Slices of ``ys`` (sorted) with at most _CHUNK positions spanning at most ``max_rows``."""
    start, n = 0, ys.size
    while start < n:
        stop = min(n, start + _CHUNK)
        # fewer positions when they spread over too many rows
        stop = max(start + 1, min(stop, int(np.searchsorted(ys, ys[start] + max_rows,
                                                            side="right"))))
        yield slice(start, stop)
        start = stop


def _chunked_measure(img: BaseImage, px: np.ndarray, py: np.ndarray, usable: np.ndarray,
                     make_masks, n_apertures: int, extent: float, sky: _Sky,
                     mask: np.ndarray | None, what: str, gain, zeropoint: float, *,
                     fwhm: float | None = None):
    """Measure all positions chunk by chunk, sorted along y so that each chunk reads only
    the rows it covers. ``make_masks(idx)`` returns (aperture masks per aperture, their areas,
    annulus masks or None) for the positions ``idx``; ``extent`` bounds their half size in pixels;
    ``fwhm`` (pixels) is the seeing the annulus' deep source mask is matched to.

    Returns the output columns of every aperture (`_column_values`, without NPIX), filled
    chunk by chunk into their final arrays (no full-length intermediate arrays: with 10^6
    positions the output table is the only large allocation), and the FLAGS of every position.
    """
    from tqdm.auto import tqdm

    from ..imageobjects.scienceimage import progress_disable

    n = px.size
    columns = [{name: np.full(n, np.nan, dtype=_DTYPES.get(name, np.float64))
                for name, _ in _COLUMNS if name != "NPIX"} for _ in range(n_apertures)]
    flags = np.zeros(n, dtype=np.int32)
    flags[~usable] = FLAG_OFF
    ny, nx = img.shape
    margin = extent + 2
    order = np.flatnonzero(usable)
    order = order[np.argsort(py[order], kind="stable")]
    dtype = _pixel_dtype(img)
    max_rows = max(1, _BLOCK_BYTES // (np.dtype(dtype).itemsize * nx) - int(2 * margin) - 2)
    chunks = list(_chunks(py[order], max_rows))
    deep = None  # annulus neighbours' deep mask: tiles of the whole frame, shared by the chunks
    try:
        for chunk in tqdm(chunks, unit="chunk", desc=f"{what} photometry",
                          disable=progress_disable(None, len(chunks), minimum=8)):
            idx = order[chunk]
            y0 = int(np.clip(np.floor(py[idx].min() - margin), 0, ny))
            y1 = int(np.clip(np.ceil(py[idx].max() + margin) + 1, 0, ny))
            aper_masks, areas, ann_masks = make_masks(idx)
            data = _RowBlock(img.read_rows(y0, y1, dtype=dtype), y0, (ny, nx)) \
                if y1 > y0 else _RowBlock(np.empty((0, nx), dtype), 0, (ny, nx))
            if ann_masks is not None and deep is None:
                deep = _DeepTiles(img.data, mask, fwhm=fwhm)
            results, fl = _measure(img, aper_masks, areas, sky, mask, ann_masks, data=data,
                                   deep=deep)
            for k, (f, vs, ve, _) in enumerate(results):
                for name, values in _column_values(f, vs, ve, gain, zeropoint).items():
                    columns[k][name][idx] = values
            flags[idx] |= fl
    finally:
        img.close()  # the file handle read_rows opened
    return columns, flags


# Output columns per aperture. MAG, MAGERR, the upper limits and NPIX are float32, as
# SExtractor writes MAG_APER/MAGERR_APER (FITS format E; 7 significant digits, 1e-6 mag);
# FLUX, FLUXERR and SKYSIG stay float64. This keeps 10^6 positions x 5 apertures within
# 4x a full frame's bytes (issue 9).
_COLUMNS = (("NPIX", u.pix**2), ("FLUX", u.ct), ("MAG", u.mag), ("FLUXERR", u.ct),
            ("MAGERR", u.mag), ("SKYSIG", u.ct), ("UL5", u.mag), ("UL3", u.mag))
_DTYPES = {"NPIX": np.float32, "MAG": np.float32, "MAGERR": np.float32, "UL5": np.float32,
           "UL3": np.float32}


def _column_values(flux, var_sky, var_est, gain, zeropoint: float) -> dict:
    """FLUX, MAG, FLUXERR, MAGERR, SKYSIG, UL5, UL3 (module formulas, computed in float64)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        skysig = np.sqrt(var_sky)
        poisson = np.maximum(flux, 0) / gain if gain else np.zeros_like(flux)
        fluxerr = np.sqrt(var_sky + poisson + var_est)
        mag = np.where(flux > 0, -2.5 * np.log10(flux) + zeropoint, np.nan)
        magerr = np.where(flux > 0, 2.5 / math.log(10) * fluxerr / flux, np.nan)
        ul5 = -2.5 * np.log10(5 * skysig) + zeropoint
        ul3 = -2.5 * np.log10(3 * skysig) + zeropoint
    return {"FLUX": flux, "MAG": mag, "FLUXERR": fluxerr, "MAGERR": magerr, "SKYSIG": skysig,
            "UL5": ul5, "UL3": ul3}


def _add_error(columns: dict, sigma: float, step: int = 1 << 16) -> None:
    """Add ``sigma`` (ADU) in quadrature to FLUXERR, and MAGERR accordingly, in place (by
    blocks: no full-length temporaries)."""
    if not sigma > 0:
        return
    flux, fluxerr, magerr = columns["FLUX"], columns["FLUXERR"], columns["MAGERR"]
    for s in range(0, flux.size, step):
        f, e = flux[s:s + step], fluxerr[s:s + step]
        np.sqrt(e * e + sigma * sigma, out=e)
        with np.errstate(divide="ignore", invalid="ignore"):
            magerr[s:s + step] = np.where(f > 0, 2.5 / math.log(10) * e / f, np.nan)


def _add_columns(table: Table, suffix: str, columns: dict, npix, kind: str) -> None:
    """Add one aperture's columns (``columns`` from `_chunked_measure`) in the output order;
    the arrays become the columns as they are (no copies: millions of rows)."""
    columns = {"NPIX": np.asarray(npix, dtype=np.float32), **columns}
    for name, unit in _COLUMNS:
        values = columns[name]
        if values.dtype != _DTYPES.get(name, np.float64):
            values = values.astype(_DTYPES.get(name, np.float64))
        table.add_column(Column(values, name=f"{name}_{kind}{suffix}", unit=unit, copy=False),
                         copy=False)


def photometry_columns(table: Table, suffix: str, flux, var_sky, var_est, area, gain,
                       zeropoint: float, kind: str) -> None:
    """The output columns of one aperture from its sums (the formulas of the module notes).

    Parameters
    ----------
    table : astropy.table.Table
        The output table; the columns are appended.
    suffix : str
        Column-name suffix (``''``, ``'_1'``, ...).
    flux, var_sky, var_est : numpy.ndarray
        Sky-subtracted sums, their sky variance and the sky estimate's variance.
    area : float or numpy.ndarray
        Aperture areas (pixels).
    gain : float or None
        e-/ADU for the Poisson term.
    zeropoint : float
        Magnitude zero point.
    kind : str
        ``'APER'`` or ``'ELIP'``.
    """
    _add_columns(table, suffix, _column_values(flux, var_sky, var_est, gain, zeropoint), area,
                 kind)


def _prepare(img, target_bkg, target_bkgrms, target_mask):
    # map pixels are checked where they are used (`_measure`): no full-frame pass per call
    bkg, rms, mask = validate.resolved_maps(img, target_bkg, target_bkgrms, target_mask,
                                            check_pixels=False)
    return bkg, rms, None if mask is None else mask.data


def _positions(img, x_arr, y_arr, unit):
    """0-based pixel positions and which of them can be measured.

    Positions projected from the sky that fall nowhere near the frame (far side of the sky,
    beyond ±1e7 pixels) are kept as rows flagged off the image, not refused.
    """
    if isinstance(x_arr, SkyCoord):
        px, py = to_pixel(img, x_arr)
    else:
        x, y = validate.positions(x_arr, y_arr, unit, ("x", "y"))
        if np.ndim(x_arr) != np.ndim(y_arr) or x.size != y.size:
            raise ArgumentError(f"x and y have different lengths ({x.size} and "
                                f"{y.size})")
        px, py = to_pixel(img, x, y, unit)
    if px.size == 0:
        raise ArgumentError("no positions given (x is empty)")
    usable = (np.isfinite(px) & np.isfinite(py) & (np.abs(px) <= validate.MAX_PIXEL)
              & (np.abs(py) <= validate.MAX_PIXEL))
    if not usable.all():
        warnings.warn(f"{img.path}: {int((~usable).sum())} of {px.size} positions do not project "
                      "onto the image plane; flagged off the image", PositionWarning, stacklevel=2)
    return px, py, usable


def _position_table(img, px, py) -> Table:
    """X_IMAGE, Y_IMAGE (0-based; ``px``/``py`` become the columns, not copied) and X_WORLD,
    Y_WORLD (ICRS; NaN without a WCS), converted in blocks (no full-length temporaries)."""
    table = Table()
    table.add_column(Column(px, name="X_IMAGE", unit=u.pix, copy=False), copy=False)
    table.add_column(Column(py, name="Y_IMAGE", unit=u.pix, copy=False), copy=False)
    ra, dec = np.full(px.size, np.nan), np.full(px.size, np.nan)
    if img.wcs is not None:
        step = 1 << 16
        for s in range(0, px.size, step):
            sky = img.wcs.pixel_to_world(px[s:s + step], py[s:s + step]).icrs
            ra[s:s + step], dec[s:s + step] = sky.ra.deg, sky.dec.deg
    table.add_column(Column(ra, name="X_WORLD", unit=u.deg, copy=False), copy=False)
    table.add_column(Column(dec, name="Y_WORLD", unit=u.deg, copy=False), copy=False)
    return table


def _sky_source(img, bkg, rms, mask, annulus: bool, px, py, usable, extent: float,
                sky_cache: Path | None = None) -> _Sky:
    """The call's sky; a tile estimate decides at once whether it uses the whole frame."""
    need_estimate = (bkg is None and not annulus) or (rms is None and not annulus)
    if not need_estimate:
        return _Sky(bkg, rms, None)
    est = _TileEstimate(img, mask, sky_cache=sky_cache)
    est.plan(px[usable], py[usable], extent)
    return _Sky(bkg, rms, est)


def _bkg_details(sky: _Sky, bkg, annulus, fwhm: float | None = None) -> dict:
    """Which estimator and masks gave the sky, for ``Catalog.meta['background_details']``."""
    if isinstance(bkg, Background):
        h = bkg.header
        return {"source": "map", "estimator": h.get("BKGESTIM"), "mesh": h.get("BKGSIZE"),
                "filter": h.get("BKGFILT"), "deep_mask": h.get("BKGDEEP"),
                "masked_pixels": h.get("BKGNMASK")}
    if bkg is not None:
        return {"source": "constant", "value": float(bkg)}
    if annulus is not None:
        return {"source": "annulus", **_ANNULUS_LABEL, "fwhm_pixel": fwhm}
    return {"source": "tiles", **sky.estimate.label()} if sky.estimate is not None else {}


def _gain(img, egain):
    gain = validate.egain(egain)
    gain = gain if gain is not None else img.egain
    if not gain:
        warnings.warn(f"{img.path}: gain unknown; FLUXERR without the sources' Poisson noise",
                      HeaderWarning, stacklevel=2)
    return gain


def _off_image(img, px, py, usable, extent: float) -> int:
    """How many positions lie with their whole aperture off the image."""
    ny, nx = img.shape
    inside = usable & (px > -extent - 1) & (px < nx + extent) & (py > -extent - 1) & \
        (py < ny + extent)
    return int((~inside).sum())


@renamed(x_arr="x", y_arr="y")
def circular_photometry(target_img, x, y, *, aperture_diameter_arcsec=(5, 7, 10),
                        aperture_diameter_seeing=(3.5, 4.5),
                        annulus_width_arcsec: float | None = None, unit: str = "pixel",
                        target_bkg=None, target_mask=None, target_bkgrms=None,
                        method: str = "exact", subpixels: int = 5, egain: float | None = None,
                        seeing: float | None = None, zeropoint: float | str = 0.0,
                        save: bool = True, confusion_error: bool = True,
                        sky_cache: str | os.PathLike | None = None) -> Catalog:
    """Forced photometry in circular apertures; see `AperturePhotometry.circular_photometry`.

    Positions are measured in chunks (bounded memory for any number of positions).
    ``confusion_error=True``: blank apertures near the positions, measured with the same sky,
    tell how much more their fluxes scatter than the noise model says (stars below the
    detection limit, the background's own error); where that is over 5 %, the excess is
    added in quadrature to FLUXERR (and MAGERR) of every position, per aperture size, and
    recorded in ``meta['confusion_error']`` (`ezphot.photometry.depth.confusion_error`).

    Parameters
    ----------
    target_img : BaseImage or path
        The image.
    x, y : float, list or array (or a SkyCoord as ``x``)
        0-based pixels (``unit='pixel'``) or RA/Dec in degrees (``unit='coord'``).
        ``x_arr``/``y_arr``: deprecated aliases.
    aperture_diameter_arcsec, aperture_diameter_seeing : float, list or Quantity
        Diameters: fixed (arcsec, or a Quantity in angle or pixels), then seeing multiples.
    annulus_width_arcsec : float, optional
        Width of the local-sky annulus (used when no ``target_bkg`` is given).
    unit : {'pixel', 'coord'}
        How positions are given.
    target_bkg, target_bkgrms, target_mask : optional
        Background map or value (ADU), background RMS map (ADU), mask (True = excluded).
    method : {'exact', 'center', 'subpixel'}
        photutils' aperture-pixel overlap method.
    subpixels : int
        Sub-pixels per pixel side for ``method='subpixel'``.
    egain : float, optional
        Gain in e-/ADU for the source Poisson noise (default: header / telescope profile).
    seeing : float, optional
        Seeing FWHM in arcsec (default: the image's).
    zeropoint : float or str
        Magnitude zero point, or the header keyword that holds it (``'ZP'``...; missing or
        not a number: `ImageError`). Recorded in ``meta['zeropoint']``; ``info.depth`` is
        measured with it.
    save : bool
        Write the catalogue beside the image (atomically).
    confusion_error : bool
        Add the blank apertures' excess scatter over the noise model to FLUXERR/MAGERR
        (see above; ``meta['confusion_error']``). False: the noise model alone.
    sky_cache : path-like, optional
        A directory keeping the whole-frame sky estimate (used when no ``target_bkg``/
        ``target_bkgrms``/``target_mask`` is given and the positions' tiles would cover 15 %
        of the frame): its mesh levels are read from there when an entry for this file
        (path, HDU, size, mtime, inode, ctime) and estimate exists, else made and stored there
        (atomically; kilobytes). The numbers are those made without it. Default: none.

    Returns
    -------
    Catalog
        One row per position (columns and formulas: see this module's docstring).
    """
    from photutils.aperture import CircularAnnulus, CircularAperture

    img = as_image(target_img)
    validate.egain(egain)
    validate.seeing(seeing)
    zeropoint = validate.zeropoint(zeropoint, img.header, img.path)  # a number or a keyword
    subpixels = validate.size(subpixels, "subpixels", maximum=100)
    sky_cache = _sky_cache_dir(sky_cache)
    px, py, usable = _positions(img, x, y, unit)
    seeing = seeing if seeing is not None else img.seeing
    diam_arcsec, diam_px = aperture_diameters(img, aperture_diameter_arcsec,
                                              aperture_diameter_seeing, seeing, img.pixelscale)
    validate.apertures_fit(diam_px, img.shape, "aperture_diameter_arcsec/_seeing", img.path)
    r_in = width = None
    if annulus_width_arcsec is not None:
        width = validate.number(annulus_width_arcsec, "annulus_width_arcsec", minimum=0)
        if not img.pixelscale:
            raise ArgumentError(f"annulus_width_arcsec needs a pixel scale, which {img.path} "
                                "does not have")
        width /= img.pixelscale
        # start clear of the star's wings: at 4 FWHM, or at the largest aperture if wider
        r_in = max(max(diam_px) / 2.0, 4 * seeing / img.pixelscale if seeing else 0.0)
        validate.apertures_fit([2 * (r_in + width)], img.shape,
                               "annulus_width_arcsec (outer diameter)", img.path)
    bkg, rms, mask = _prepare(img, target_bkg, target_bkgrms, target_mask)
    with_annulus = annulus_width_arcsec is not None and bkg is None
    areas = [np.pi * (d / 2.0) ** 2 for d in diam_px]

    def masks_at(xs, ys):
        def make_masks(idx):
            xy = np.column_stack([xs[idx], ys[idx]])
            masks = [CircularAperture(xy, r=d / 2.0).to_mask(method=method, subpixels=subpixels)
                     for d in diam_px]
            ann = CircularAnnulus(xy, r_in=r_in, r_out=r_in + width).to_mask(method="center") \
                if with_annulus else None
            return masks, [np.full(idx.size, a) for a in areas], ann
        return make_masks

    extent = (r_in + width) if with_annulus else max(diam_px) / 2.0
    sky = _sky_source(img, bkg, rms, mask, with_annulus, px, py, usable, extent, sky_cache)
    ann_fwhm = _seeing_fwhm(img, seeing) if with_annulus else None
    gain = _gain(img, egain)
    conf = None
    if confusion_error:
        # before the positions (its temporaries are gone when the output is allocated), with
        # the call's kind of sky: maps as given; tiles, the region's own estimate (made with
        # its deep mask in one pass; the positions never depend on it)
        from ..background import seeing_pixels
        from .depth import confusion_error as measure_confusion

        def measure_blank(bx, by, region):
            blank_sky = sky if region is None else _Sky(bkg, rms, _RegionEstimate(*region))
            return _chunked_measure(img, bx, by, np.ones(bx.size, bool), masks_at(bx, by),
                                    len(diam_px), extent, blank_sky, mask, "blank-aperture",
                                    gain, zeropoint, fwhm=ann_fwhm)

        fwhm = seeing / img.pixelscale if seeing and img.pixelscale else seeing_pixels(img)
        conf = measure_confusion(img, px[usable], py[usable], diam_px, mask, fwhm=ann_fwhm or fwhm,
                                 measure=measure_blank, region_sky=sky.estimate is not None)
    columns, flags = _chunked_measure(img, px, py, usable, masks_at(px, py), len(diam_px),
                                      extent, sky, mask, "circular", gain, zeropoint,
                                      fwhm=ann_fwhm)
    if conf is not None:
        for k, row in enumerate(conf["apertures"]):
            _add_error(columns[k], row["sigma_conf"])
    off = _off_image(img, px, py, usable, extent)
    if off == px.size:
        warnings.warn(f"{img.path}: none of the {px.size} positions is on the image",
                      PositionWarning, stacklevel=2)
    table = _position_table(img, px, py)
    for i, area in enumerate(areas):
        # the arrays become the columns and are dropped here: no second copy of the results
        _add_columns(table, "" if i == 0 else f"_{i}", columns[i],
                     np.full(px.size, area, np.float32), "APER")
        columns[i] = None
    table["FLAGS"] = flags
    table.meta.update(pixel_origin=0, aperture_method=method,
                      subpixels=subpixels if method == "subpixel" else None)
    meta = {"method": "circular", "aperture_method": method, "aperture_diameter_pixel": diam_px,
            "background": _bkg_label(bkg, True if with_annulus else None), "egain": gain,
            "n_off_image": off,
            # local-sky annulus (pixels: inner and outer radius), drawn by the pictures
            "annulus_pixel": [float(r_in), float(r_in + width)] if with_annulus else None,
            "background_details": _bkg_details(sky, bkg, True if with_annulus else None,
                                               ann_fwhm),
            "confusion_error": conf}
    info = catalog_info(img, "circular", seeing=seeing, aperture_diameter_arcsec=diam_arcsec,
                        path=None)
    return finish_catalog(Catalog(table, info=info, meta=meta), img, "circular", save,
                          targets=(x, y), unit=unit, zeropoint=zeropoint)


def _bkg_label(bkg, annulus) -> str:
    if isinstance(bkg, Background):
        return "map"
    if bkg is not None:
        return "constant"
    return "annulus" if annulus is not None else "estimated"


@renamed(x_arr="x", y_arr="y", sma_arr="a", smi_arr="b", theta_arr="theta")
def elliptical_photometry(target_img, x, y, a, b, theta, *,
                          unit: str = "pixel", annulus_ratio: float | None = None,
                          target_bkg=None, target_mask=None, target_bkgrms=None,
                          method: str = "exact", subpixels: int = 5, egain: float | None = None,
                          zeropoint: float | str = 0.0, save: bool = True,
                          sky_cache: str | os.PathLike | None = None) -> Catalog:
    """Forced photometry in elliptical apertures; see `AperturePhotometry.elliptical_photometry`.

    Positions are measured in chunks (bounded memory for any number of positions).

    Parameters
    ----------
    target_img : BaseImage or path
        The image.
    x, y : float, list or array
        Centres: 0-based pixels (``unit='pixel'``) or RA/Dec in degrees (``unit='coord'``).
        ``x_arr``/``y_arr``: deprecated aliases.
    a, b : float, list or array
        Semi-major and semi-minor axes: pixels, or arcsec with ``unit='coord'``.
        ``sma_arr``/``smi_arr``: deprecated aliases.
    theta : float, list or array
        Degrees: east of north (``unit='coord'``) or counter-clockwise from +x (``'pixel'``).
        ``theta_arr``: deprecated alias.
    unit : {'pixel', 'coord'}
        How positions, axes and angles are given.
    annulus_ratio : float, optional
        Local sky in an elliptical annulus from the aperture to this times its size.
    target_bkg, target_bkgrms, target_mask : optional
        Background map or value (ADU), background RMS map (ADU), mask (True = excluded).
    method : {'exact', 'center', 'subpixel'}
        photutils' aperture-pixel overlap method.
    subpixels : int
        Sub-pixels per pixel side for ``method='subpixel'``.
    egain : float, optional
        Gain in e-/ADU for the source Poisson noise (default: header / telescope profile).
    zeropoint : float or str
        Magnitude zero point, or the header keyword that holds it (``'ZP'``...; missing or
        not a number: `ImageError`). Recorded in ``meta['zeropoint']``; ``info.depth`` is
        measured with it.
    save : bool
        Write the catalogue beside the image (atomically).
    sky_cache : path-like, optional
        A directory keeping the whole-frame sky estimate, as for `circular_photometry`.

    Returns
    -------
    Catalog
        One row per position (columns and formulas: see this module's docstring).
    """
    from photutils.aperture import EllipticalAnnulus, EllipticalAperture

    img = as_image(target_img)
    validate.egain(egain)
    zeropoint = validate.zeropoint(zeropoint, img.header, img.path)  # a number or a keyword
    subpixels = validate.size(subpixels, "subpixels", maximum=100)
    sky_cache = _sky_cache_dir(sky_cache)
    targets = (x, y, a, b, theta)  # as given: they name the catalogue file
    px, py, usable = _positions(img, x, y, unit)
    n = px.size
    shapes = []
    for value, name in ((a, "a"), (b, "b"), (theta, "theta")):
        try:
            arr = np.broadcast_to(np.asarray(value, float), (n,)).copy()
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"{name} must be a number or one number per position ({n})") \
                from exc
        bad = ~np.isfinite(arr) if name == "theta" else ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            rule = "theta must be finite" if name == "theta" else \
                "semi-axes must be positive and finite"
            raise ArgumentError(f"{rule}: {name} has {int(bad.sum())} bad value(s), e.g. "
                                f"{arr[np.argmax(bad)]}")
        shapes.append(arr)
    a, b, theta = shapes
    if annulus_ratio is not None:
        annulus_ratio = validate.number(annulus_ratio, "annulus_ratio", minimum=1)
    if unit == "coord":
        a, b, theta_rad = sky_to_pixel_ellipse(img, np.where(usable, px, 0.0),
                                               np.where(usable, py, 0.0), a, b, theta)
        usable = usable & np.isfinite(a) & np.isfinite(b) & np.isfinite(theta_rad)
    else:
        theta_rad = np.radians(theta)
    swap = b > a  # "semi-major" given shorter than "semi-minor": the major axis is at +90 deg
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    theta_rad = np.where(swap, theta_rad + np.pi / 2, theta_rad)
    ratio = annulus_ratio or 1.0
    validate.apertures_fit(2 * a[usable] * ratio, img.shape,
                           "a (semi-major axis)" if annulus_ratio is None
                           else "a (semi-major axis) x annulus_ratio",
                           img.path)
    bkg, rms, mask = _prepare(img, target_bkg, target_bkgrms, target_mask)
    with_annulus = annulus_ratio is not None and bkg is None

    def make_masks(idx):
        masks, ann = [], [] if with_annulus else None
        for i in idx:
            aper = EllipticalAperture((px[i], py[i]), a=float(a[i]), b=float(b[i]),
                                      theta=float(theta_rad[i]))
            masks.append(aper.to_mask(method=method, subpixels=subpixels))
            if ann is not None:
                ann.append(EllipticalAnnulus((px[i], py[i]), a_in=float(a[i]),
                                             a_out=float(a[i]) * annulus_ratio,
                                             b_out=float(b[i]) * annulus_ratio,
                                             theta=float(theta_rad[i])).to_mask(method="center"))
        return [masks], [np.pi * a[idx] * b[idx]], ann

    area = np.pi * a * b
    extent = float(np.max(a[usable]) * ratio) if usable.any() else 0.0
    sky = _sky_source(img, bkg, rms, mask, with_annulus, px, py, usable, extent, sky_cache)
    ann_fwhm = _seeing_fwhm(img) if with_annulus else None
    columns, flags = _chunked_measure(img, px, py, usable, make_masks, 1, extent, sky, mask,
                                      "elliptical", _gain(img, egain), zeropoint, fwhm=ann_fwhm)
    table = _position_table(img, px, py)
    table["SMA_IMAGE"] = a * u.pix
    table["SMI_IMAGE"] = b * u.pix
    table["THETA_IMAGE"] = np.degrees(theta_rad) * u.deg
    _add_columns(table, "", columns[0], area, "ELIP")
    table["FLAGS"] = flags
    table.meta.update(pixel_origin=0, aperture_method=method,
                      subpixels=subpixels if method == "subpixel" else None)
    meta = {"method": "elliptical", "aperture_method": method,
            "background": _bkg_label(bkg, True if with_annulus else None),
            # the annulus runs from each ellipse out to annulus_ratio times it
            "annulus_ratio": float(annulus_ratio) if with_annulus else None,
            "background_details": _bkg_details(sky, bkg, True if with_annulus else None,
                                               ann_fwhm)}
    info = catalog_info(img, "elliptical", seeing=img.seeing, aperture_diameter_arcsec=None,
                        path=None)
    return finish_catalog(Catalog(table, info=info, meta=meta), img, "elliptical", save,
                          targets=targets, unit=unit, zeropoint=zeropoint)
