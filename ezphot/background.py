"""Background and background-RMS maps (docs/background.md: estimators, measured bias).

`calculate_bkg` is SExtractor's mesh background (a level per mesh, median filter of the
meshes, bicubic-spline interpolation); the level is a sigma-clipped mean by default, or
SExtractor's clipped mode computed by sep (the C port of SExtractor's code), identical to the
binary's own map. Masked and non-finite pixels are ignored.
`calculate_bkgrms_from_propagation` predicts the background RMS from the noise model instead
of measuring it.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from astropy.io import fits

from . import _validate as validate
from ._aliases import renamed
from .exceptions import ImageError
from .imageobjects.maps import Background, Errormap, Mask

log = logging.getLogger(__name__)

__all__ = ["calculate_bkg", "calculate_bkgrms_from_propagation", "DEFAULT_NCOMBINE_MASTER"]

DEFAULT_NCOMBINE_MASTER = 9  # frames assumed in a master bias/dark/flat without NCOMBINE
FLAT_COUNTS_ASSUMED = 20000.0  # ADU per flat frame when the master flat is normalised


def _mask_array(mask, shape, name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = mask if isinstance(mask, Mask) else Mask(np.asarray(mask))
    m.check_shape(shape, "image")
    return m.data


@renamed(rdnoise_e="rdnoise")
def poisson_skew_correction(rms, egain: float, rdnoise: float = 0.0):
    """What SExtractor's mode estimator (2.5 median − 1.5 mean) misses of a Poisson sky, ADU.

    For weakly skewed noise, mean − median ≈ κ₃/(6σ²), so the mode estimate sits
    2.5 κ₃/(6σ²) below the mean. For sky photons through a gain g (e-/ADU) plus Gaussian read
    noise rn (e-), κ₃ = (σ² − (rn/g)²)/g in ADU³ — from the measured σ, so a bias pedestal does
    not matter. About +1.2 ADU for a 400 ADU sky at g = 0.2561, rn = 6.
    """
    var = np.square(np.asarray(rms, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa3 = np.maximum(var - (rdnoise / egain) ** 2, 0.0) / egain
        corr = np.where(var > 0, 2.5 * kappa3 / (6.0 * var), 0.0)
    return corr.astype(np.float32)


def _clip_pass(s3: np.ndarray, centre: np.ndarray, spread: np.ndarray, nsigma: float):
    """One clipping pass over a strip of meshes ``s3`` (rows, mesh, columns).

    Keeps pixels within ``nsigma`` x spread of each mesh's centre (NaN never kept) and
    returns the new (centre, spread, count). Sums run on deviations from the old centre
    (small numbers, float32 along rows, float64 across them).
    """
    dev = s3 - centre.astype(np.float32)[None, :, None]
    keep = np.abs(dev) <= (nsigma * spread).astype(np.float32)[None, :, None]
    n = keep.sum(axis=(0, 2))
    np.copyto(dev, 0.0, where=~keep)  # not dev *= keep: NaN (masked) x 0 is NaN
    m1 = dev.sum(axis=2).sum(axis=0, dtype=np.float64)
    np.square(dev, out=dev)
    m2 = dev.sum(axis=2).sum(axis=0, dtype=np.float64)
    with np.errstate(all="ignore"):
        m1 /= n
        m2 /= n
    return centre + m1, np.sqrt(np.maximum(m2 - m1**2, 0.0)), n


def _clipped_mean_meshes(img, masks: list[np.ndarray], box: int, nsigma: float = 4.0,
                         iterations: int = 3) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-mesh sigma-clipped mean and standard deviation, one strip of meshes at a time.

    Each mesh starts from the median and MAD of a subsample, is clipped ``iterations`` times
    on every fourth row, then once on all its pixels at ``nsigma``. Masked and non-finite
    pixels are left out; meshes with under 5 % usable pixels are NaN (filled later from their
    neighbours). Returns (centre, spread, number of pixels ignored).
    """
    ny, nx = img.shape
    nby, nbx = -(-ny // box), -(-nx // box)
    centre = np.full((nby, nbx), np.nan)
    spread = np.full((nby, nbx), np.nan)
    strip = np.empty((box, nbx * box), dtype=np.float32)
    strip[:, nx:] = np.nan  # the last mesh column may be partial
    n_ignored = 0
    try:
        for j in range(nby):
            y0, y1 = j * box, min(ny, (j + 1) * box)
            s = strip[: y1 - y0]
            s[:, :nx] = img.read_rows(y0, y1)
            for m in masks:
                s[:, :nx][m[y0:y1]] = np.nan
            n_ignored += int(np.count_nonzero(np.isnan(s[:, :nx])))
            s3 = s.reshape(y1 - y0, nbx, box)
            sub = s3[::8, :, ::2].transpose(1, 0, 2).reshape(nbx, -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # empty meshes: NaN on purpose
                c = np.nanmedian(sub, axis=1)
                sp = 1.4826 * np.nanmedian(np.abs(sub - c[:, None]), axis=1)
            for _ in range(iterations):
                c, sp, _n = _clip_pass(s3[::4], c, sp, nsigma)
            c, sp, n = _clip_pass(s3, c, sp, nsigma)
            c[n < 0.05 * (y1 - y0) * box] = np.nan
            centre[j], spread[j] = c, sp
    finally:
        img.close()  # the file handle read_rows opened
    return centre, spread, n_ignored


def _prepared_mesh(mesh: np.ndarray, filter_size: int) -> np.ndarray:
    """The mesh grid the spline goes through: empty meshes filled, then median-filtered."""
    from scipy import ndimage

    bad = ~np.isfinite(mesh)
    if bad.all():
        raise ImageError("no mesh has enough unmasked pixels for a background")
    if bad.any():  # each empty mesh takes its nearest valid neighbour's value
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        mesh = mesh[tuple(idx)]
    if filter_size > 1:
        # pad by odd reflection (2 edge - mirror image): a sky gradient stays a gradient at
        # the frame's edges, where a nearest-value pad bent it towards the interior (-0.4 to
        # +0.6 ADU on a 2048-px frame with 256-px meshes and a 5-mesh filter)
        h = filter_size // 2
        padded = np.pad(mesh, h, mode="reflect", reflect_type="odd") if min(mesh.shape) > h \
            else np.pad(mesh, h, mode="edge")
        mesh = ndimage.median_filter(padded, size=filter_size, mode="nearest")[h:-h or None,
                                                                             h:-h or None]
    return mesh


def _spline(mesh: np.ndarray, shape: tuple[int, int], box: float):
    """The bicubic spline through the (prepared) mesh levels at the meshes' centres:
    ((knots y, knots x, coefficients (ny, nx)), (degree y, degree x))."""
    from scipy.interpolate import RectBivariateSpline

    ny, nx = shape
    nby, nbx = mesh.shape
    yc = (np.arange(nby) + 0.5) * box - 0.5
    xc = (np.arange(nbx) + 0.5) * box - 0.5
    ky, kx = min(3, nby - 1) or 1, min(3, nbx - 1) or 1
    # RectBivariateSpline's first axis here is y: its "kx" is the degree along y
    spline = RectBivariateSpline(yc, xc, mesh, kx=ky, ky=kx,
                                 bbox=[min(-0.5, yc[0]), max(ny - 0.5, yc[-1]),
                                       min(-0.5, xc[0]), max(nx - 0.5, xc[-1])])
    (ty, tx, coef), (dy, dx) = spline.tck, spline.degrees
    return (ty, tx, coef.reshape(len(ty) - dy - 1, len(tx) - dx - 1)), (dy, dx)


def _line_map(mesh: np.ndarray, shape: tuple[int, int], box: float) -> np.ndarray:
    """The map of a grid of one mesh, one row or one column of meshes (no 2-D spline)."""
    ny, nx = shape
    nby, nbx = mesh.shape
    if nby == 1 and nbx == 1:
        return np.full(shape, mesh[0, 0], dtype=np.float32)
    centres = (np.arange(nbx if nby == 1 else nby) + 0.5) * box - 0.5
    along = np.interp(np.arange(nx if nby == 1 else ny), centres, mesh.ravel())
    return np.broadcast_to(along[None, :] if nby == 1 else along[:, None], shape).astype(
        np.float32)


def _mesh_to_map(mesh: np.ndarray, filter_size: int, shape: tuple[int, int],
                 box: int) -> np.ndarray:
    """Fill empty meshes, median-filter them, and interpolate with a bicubic spline."""
    from scipy.interpolate import BSpline

    mesh = _prepared_mesh(mesh, filter_size)
    if 1 in mesh.shape:  # one row/column of meshes: interpolate along the other axis
        return _line_map(mesh, shape, box)
    ny, nx = shape
    (ty, tx, coef), (dy, dx) = _spline(mesh, shape, box)
    # the spline is a tensor product: map = By C Bx^T with sparse B-spline design matrices,
    # evaluated as a matrix product by row blocks (5x faster than spline(y, x) on 7DT frames;
    # deviations from the mean level keep float32 exact to ~1e-6 ADU)
    level = float(np.mean(mesh))
    rows = BSpline.design_matrix(np.arange(ny, dtype=float), ty, dy) @ (coef - level)
    cols = BSpline.design_matrix(np.arange(nx, dtype=float), tx, dx).toarray().T
    rows, cols = rows.astype(np.float32), cols.astype(np.float32)
    out = np.empty(shape, dtype=np.float32)
    for y0 in range(0, ny, 256):  # by row blocks: no full-frame temporary
        np.matmul(rows[y0:y0 + 256], cols, out=out[y0:y0 + 256])
    out += np.float32(level)
    return out


class MeshSpline:
    """The map of `_mesh_to_map` evaluated on any box of pixels instead of the whole frame.

    Forced photometry needs the sky only in its apertures: cut-outs of a whole-frame
    estimate cost microseconds each, where the two float32 maps of a 7DT frame take 0.5 s
    and 490 MB. The spline is the same (the prepared mesh, the same knots and
    coefficients); a box is evaluated in float64 (``By[box] C Bx[box]^T``, only the
    coefficients whose B-splines reach it) and returned as float32 — the full map's values
    within its float32 rounding (~1e-6 of the level).

    Parameters
    ----------
    mesh : ndarray
        Mesh levels (NaN: empty meshes, filled from their neighbours).
    filter_size : int
        Median filter of the meshes.
    shape : (int, int)
        The frame's shape.
    box : int or float
        Mesh size in pixels.
    """

    def __init__(self, mesh: np.ndarray, filter_size: int, shape: tuple[int, int],
                 box: float):
        from scipy.interpolate import BSpline

        self.shape = tuple(shape)
        mesh = _prepared_mesh(mesh, filter_size)
        self._line = _line_map(mesh, self.shape, box) if 1 in mesh.shape else None
        if self._line is not None:
            return
        ny, nx = self.shape
        (ty, tx, self._coef), (dy, dx) = _spline(mesh, self.shape, box)
        # dense design matrices (one row per pixel row/column, a few MB) and, per row, the
        # first and last coefficient its B-splines reach
        self._by = BSpline.design_matrix(np.arange(ny, dtype=float), ty, dy).toarray()
        self._bx = BSpline.design_matrix(np.arange(nx, dtype=float), tx, dx).toarray()
        self._y_first, self._y_last = self._reach(self._by)
        self._x_first, self._x_last = self._reach(self._bx)

    @staticmethod
    def _reach(design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nz = design != 0
        first = nz.argmax(axis=1)
        last = design.shape[1] - 1 - nz[:, ::-1].argmax(axis=1)
        return first, last

    def box(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The map over rows ``y0:y1``, columns ``x0:x1`` (float32)."""
        if self._line is not None:
            return np.array(self._line[y0:y1, x0:x1])
        if y1 <= y0 or x1 <= x0:
            return np.empty((max(0, y1 - y0), max(0, x1 - x0)), np.float32)
        ka, kb = int(self._y_first[y0:y1].min()), int(self._y_last[y0:y1].max()) + 1
        la, lb = int(self._x_first[x0:x1].min()), int(self._x_last[x0:x1].max()) + 1
        out = (self._by[y0:y1, ka:kb] @ self._coef[ka:kb, la:lb]) @ self._bx[x0:x1, la:lb].T
        return out.astype(np.float32)


class ArrayRows:
    """An in-memory array with the ``read_rows``/``close``/``shape`` of an image."""

    def __init__(self, data: np.ndarray, path="array"):
        self.data, self.shape, self.path = data, data.shape, path

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        return self.data[y0:y1]

    def close(self) -> None:
        pass


# Deep source masking (issue 15). A sigma-clipped mean takes in every photon of the light that
# the mask leaves: faint sources below a 5-sigma isophote and the Moffat wings of bright stars
# (0.2-2 ADU/px over tens of pixels on 7DT frames) raised the sky by 0.3-1 ADU/px. The deep mask
# detects on a matched-filtered, binned (blocks of 1-4 px by the seeing) residual of a
# first-pass background and grows each source to where its own measured profile falls below
# DEEP_FLOOR x the pixel noise.
DEEP_NSIGMA = 4.0     # detection threshold on the smoothed residual (~ S/N 5 optimal)
DEEP_FLOOR = 1e-3     # mask each source out to where its profile is below 0.001 sigma/px
DEEP_RMAX = 320       # largest mask radius, pixels
DEFAULT_FWHM_PIX = 5.0


def _moffat_profile(r, fwhm: float, beta: float = 2.5) -> np.ndarray:
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (1.0 + (np.asarray(r, float) / alpha) ** 2) ** (-beta)


def _stacked_profile(sm: np.ndarray, lab: np.ndarray, pos: np.ndarray, peak: np.ndarray,
                     sig: float, rmax: int, fwhm_b: float) -> tuple[np.ndarray, str]:
    """Radial profile (peak-normalised, binned px 0..rmax) of the smoothed residual ``sm``,
    the median over up to 25 bright, unsaturated sources, each measured on the pixels that
    belong to no other detection (``lab``: labels, source i is i + 1); a power law beyond where
    it is measured. Falls back to a Moffat beta 2.5 of the seeing when too few stars."""
    ny, nx = sm.shape
    r_grid = np.arange(rmax + 1, dtype=float)
    order = np.argsort(peak)[::-1]
    top = peak[order[0]] if len(order) else 0.0
    cand = [i for i in order if 50 * sig < peak[i] < 0.5 * top]  # skip saturated plateaus
    w = min(rmax, 48)
    yy, xx = np.mgrid[-w:w + 1, -w:w + 1]
    rr = np.hypot(yy, xx).round().astype(int)
    nr = np.bincount(rr.ravel())
    profiles = []
    for i in cand:
        y, x = pos[i]
        if y < w or x < w or y >= ny - w or x >= nx - w:
            continue
        cut = sm[y - w:y + w + 1, x - w:x + w + 1]
        lc = lab[y - w:y + w + 1, x - w:x + w + 1]
        own = ((lc == 0) | (lc == i + 1)).ravel()
        n_own = np.bincount(rr.ravel()[own], minlength=w + 1)[:w + 1]
        if np.any(n_own[: int(2 * fwhm_b) + 1] == 0):
            continue
        prof = np.bincount(rr.ravel()[own], weights=cut.ravel()[own], minlength=w + 1)[:w + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = prof / n_own
        prof = np.where(n_own > 0, prof, np.nan)
        profiles.append(prof / peak[i])
        if len(profiles) >= 25:
            break
    if len(profiles) < 5:
        return _moffat_profile(r_grid, fwhm_b * 1.15), "moffat2.5"
    prof = np.nanmedian(np.array(profiles), axis=0)
    prof = np.where(np.isfinite(prof), prof, 0.0)
    prof = np.minimum.accumulate(np.maximum(prof, 0.0))  # monotonic: neighbours add, never cut
    # reliable out to where the median profile is above its own noise (~ sig / peak / sqrt(n))
    noise = 3 * sig / np.median(peak[cand[:len(profiles)]]) / np.sqrt(
        len(profiles) * np.maximum(nr[:w + 1], 1))
    good = np.nonzero(prof > noise)[0]
    r_good = int(good[-1]) if good.size else 2
    r_good = max(r_good, int(2 * fwhm_b) + 1)
    r_good = min(r_good, w)
    r_lo = max(1, r_good // 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = -np.polyfit(np.log(r_grid[r_lo:r_good + 1]),
                            np.log(np.maximum(prof[r_lo:r_good + 1], 1e-12)), 1)[0]
    slope = float(np.clip(slope if np.isfinite(slope) else 5.0, 3.0, 8.0))
    out = np.empty(rmax + 1)
    n = min(r_good, rmax) + 1
    out[:n] = prof[:n]
    if rmax >= n:
        out[n:] = prof[r_good] * (r_grid[n:] / r_good) ** (-slope)
    return out, f"stacked({len(profiles)} stars, wing slope {slope:.2f})"


def _bin_frame(img, invalid, hide, b: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The image averaged over b x b blocks in one read.

    Pixels in ``invalid`` masks and non-finite ones are left out (NaN where a block has
    none); ``hide`` masks (the user's source masks) are not: detection looks through them,
    since the sources behind them have wings outside. Returns (binned image, blocks with any
    ``hide`` pixel or None, number of pixels invalid or hidden). The last row/column of blocks
    may be partial.
    """
    ny, nx = img.shape
    nyb, nxb = -(-ny // b), -(-nx // b)
    total = np.zeros((nyb, nxb), np.float32)
    count = np.zeros((nyb, nxb), np.float32)
    hidden = np.zeros((nyb, nxb), bool) if hide else None
    n_bad = 0
    step = 512 - 512 % b
    pad_x = (-nx) % b
    try:
        for y0 in range(0, ny, step):
            y1 = min(ny, y0 + step)
            rows = np.array(img.read_rows(y0, y1), dtype=np.float32)
            bad = ~np.isfinite(rows)
            for m in invalid:
                bad |= m[y0:y1]
            hid = None
            if hide:
                hid = np.zeros(bad.shape, bool)
                for m in hide:
                    hid |= m[y0:y1]
                n_bad += int(np.count_nonzero(bad | hid))
            else:
                n_bad += int(np.count_nonzero(bad))
            any_bad = bool(bad.any())
            if any_bad:
                rows[bad] = 0.0
            pad_y = (-(y1 - y0)) % b
            good = None
            if any_bad or pad_y or pad_x:
                good = (~bad).astype(np.float32)
            if pad_y or pad_x:
                rows = np.pad(rows, ((0, pad_y), (0, pad_x)))
                good = np.pad(good, ((0, pad_y), (0, pad_x)))
                if hid is not None:
                    hid = np.pad(hid, ((0, pad_y), (0, pad_x)))
            h = rows.shape[0] // b
            sl = slice(y0 // b, y0 // b + h)
            t_out, c_out = total[sl], count[sl]
            if good is None:
                c_out += np.float32(b * b)  # every pixel usable: no count to add up
            for dy in range(b):  # strided adds: 5x faster than a 4-D reshape-sum
                for dx in range(b):
                    t_out += rows[dy::b, dx::b]
                    if good is not None:
                        c_out += good[dy::b, dx::b]
                    if hid is not None:
                        hidden[sl] |= hid[dy::b, dx::b]
    finally:
        img.close()
    with np.errstate(invalid="ignore", divide="ignore"):
        total /= count
    return total, hidden, n_bad  # 0/0 = NaN where a block has no usable pixel


def deep_background(img, invalid, hide, box: int, filter_size: int, fwhm: float | None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, dict]:
    """Mesh levels measured outside a deep source mask, all on the binned frame.

    One read bins the frame (`_bin_frame`: ``invalid`` masks and non-finite pixels left out;
    blocks touching the ``hide`` masks left out of the mesh levels, not of the detection); a
    first pass of 4-sigma-clipped means on the meshes gives a background; the binned frame minus
    it is smoothed with a Gaussian of the seeing (a matched filter for stars) and
    thresholded at ``DEEP_NSIGMA`` times the smoothed noise. Each detection is masked out to
    the radius where its profile — the stacked profile of the frame's bright stars scaled to
    the detection's peak (or to its isophote, for saturated stars) — falls below
    ``DEEP_FLOOR`` x the pixel noise; the meshes are then measured again. Binning keeps the
    mesh means (same pixels) and costs less than one full-resolution pass; the RMS is the
    binned spread times the block size (uncorrelated pixel noise).

    Returns (mesh, spread, deep mask of the binned frame, binning, info); ``info['ignored']``
    counts the pixels invalid or hidden.
    """
    from scipy import ndimage

    from .masks import paint_disks

    fwhm_pix = float(fwhm) if fwhm and fwhm > 0 else DEFAULT_FWHM_PIX
    # blocks of 4 px when the FWHM is >= 5 px (7DT: 5-7 px), 2 px down to 2.5 px, else 1:
    # measured on tests/test_background_accuracy.py's frames, 4-px blocks detect and mask as
    # well as 2-px ones (blank apertures within 0.05 ADU/px) at a third of the cost
    b = 4 if fwhm_pix >= 5 else 2 if fwhm_pix >= 2.5 else 1
    while b > 1 and (box % b or min(img.shape) < 32 * b):
        b -= 1
    ny, nx = img.shape
    binned, hidden, n_bad = _bin_frame(img, invalid, hide, b)
    rows = ArrayRows(binned)
    boxb = box // b
    user = [] if hidden is None else [hidden]
    mesh, spread, _ = _clipped_mean_meshes(rows, user, boxb)
    info: dict = {"deep_mask": True, "deep_threshold_sigma": DEEP_NSIGMA, "binning": b,
                  "ignored": n_bad}
    deep = np.zeros(binned.shape, bool)
    if not np.isfinite(mesh).any():
        return mesh, spread * b, deep, b, info
    # the first-pass map on a grid 4x coarser than the binned frame, repeated: the sky
    # changes over meshes, not pixels, and this is a quarter of the cost of the full map
    c = 4 if boxb >= 16 else 1
    nyb, nxb = binned.shape
    coarse = _mesh_to_map(mesh, filter_size, (-(-nyb // c), -(-nxb // c)), boxb / c)
    res = np.repeat(np.repeat(coarse, c, axis=0)[:nyb], c, axis=1)[:, :nxb]
    del coarse
    valid = np.isfinite(binned)
    np.subtract(binned, res, out=res)
    res[~valid] = 0.0
    info["deep_fwhm_pixel"] = fwhm_pix
    fwhm_b = max(fwhm_pix / b, 1.0)
    sm = ndimage.gaussian_filter(res, fwhm_b / 2.3548, mode="constant", truncate=3.0)
    del res
    sub = sm[::3, ::3][valid[::3, ::3]]
    med = float(np.median(sub)) if sub.size else 0.0
    sig = float(1.4826 * np.median(np.abs(sub - med))) if sub.size else 0.0
    if sig > 0:
        det = sm > med + DEEP_NSIGMA * sig
        det &= valid
        lab, n = ndimage.label(det)
    else:
        n = 0
    info["deep_sources"] = int(n)
    if n:
        # peak value and position of each source from its own pixels (ndimage.maximum sorts
        # the whole frame: 20 s on a 7DT frame)
        flat = np.flatnonzero(det)
        labs = lab.ravel()[flat]
        vals = sm.ravel()[flat]
        order = np.lexsort((vals, labs))
        last = np.r_[np.nonzero(np.diff(labs[order]))[0], order.size - 1]
        peak = vals[order[last]].astype(float) - med
        pos = np.column_stack(np.unravel_index(flat[order[last]], sm.shape)).astype(int)
        area = np.bincount(labs, minlength=n + 1)[1:].astype(float)
        del det, flat, labs, vals, order
        pix_sigma = float(np.nanmedian(spread)) * b if np.isfinite(spread).any() else sig
        rmax_b = DEEP_RMAX // b
        prof, how = _stacked_profile(sm, lab, pos, peak, sig, rmax_b, fwhm_b)
        del lab
        # a saturated (flat-topped) source: its isophote tells its brightness, not its peak
        r_iso = np.sqrt(area / np.pi)
        p_iso = np.interp(r_iso, np.arange(rmax_b + 1), prof)
        peak_eff = np.maximum(peak, DEEP_NSIGMA * sig / np.maximum(p_iso, 1e-12))
        floor = DEEP_FLOOR * pix_sigma
        # smallest radius where peak_eff x profile <= floor (the profile decreases)
        below = (prof[None, :] * peak_eff[:, None]) <= floor
        radius_b = np.where(below.any(axis=1), below.argmax(axis=1), rmax_b).astype(float)
        radius_b = np.minimum(np.maximum(radius_b, r_iso + 1.0), rmax_b)
        paint_disks(deep, pos[:, 1], pos[:, 0], radius_b)
        # a mask that leaves under 40 % of the frame leaves too few sky pixels per mesh:
        # shrink the growth (never below the isophotes) until it does not
        scale = 1.0
        while deep[::2, ::2].mean() > 0.6 and scale > 0.3:
            scale *= 0.7
            deep[:] = False
            paint_disks(deep, pos[:, 1], pos[:, 0], np.maximum(radius_b * scale, r_iso + 1.0))
        info["deep_growth_scale"] = round(scale, 3)
        info.update(deep_profile=how, deep_masked_fraction=float(deep[::2, ::2].mean()))
        del sm
        mesh2, spread2, _ = _clipped_mean_meshes(rows, user + [deep], boxb)
        if np.isfinite(mesh2).any():
            mesh = mesh2
            spread = np.where(np.isfinite(spread2), spread2, spread)
    return mesh, spread * b, deep, b, info


def tile_background(data, ignore: np.ndarray | None, *, box_size: int = 64,
                    filter_size: int = 3, fwhm: float | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Background and RMS maps of an in-memory array (a tile) or an image: the deep-masked
    clipped mean of `calculate_bkg`. ``ignore`` marks pixels to leave out (non-finite ones
    always are).

    Returns ``(back, rms, info)`` (float32 maps; NaN everywhere when no mesh has enough
    usable pixels).
    """
    arr = data if hasattr(data, "read_rows") else ArrayRows(np.asarray(data, np.float32))
    masks = [np.asarray(ignore, bool)] if ignore is not None and ignore.any() else []
    mesh, spread, _, _, info = deep_background(arr, masks, [], box_size, filter_size, fwhm)
    if not np.isfinite(mesh).any():
        nan = np.full(arr.shape, np.nan, np.float32)
        return nan, nan, info
    back = _mesh_to_map(mesh, filter_size, arr.shape, box_size)
    rms = _mesh_to_map(spread, filter_size, arr.shape, box_size)
    return back, rms, info


def sep_background(img, masks=(), box_size: int = 64, filter_size: int = 3):
    """One pass of SExtractor's mesh algorithm (sep) over the frame.

    Masked and non-finite pixels are ignored. Returns ``(sep.Background, data, ignore,
    n_ignored)``; the caller drops ``data``/``ignore`` as soon as it can (full-frame arrays).
    """
    import sep

    if box_size < 1 or filter_size < 1:
        raise ValueError("box_size and filter_size must be positive")
    data = img.read_native()  # sep wants a native, writeable float buffer
    ignore = ~np.isfinite(data)
    for m in masks:
        m = _mask_array(m, data.shape, "mask")
        if m is not None:
            ignore |= m
    n_ignored = int(ignore.sum())
    if n_ignored == data.size:
        raise ImageError(f"{img.path}: every pixel is masked or non-finite; no background")
    if n_ignored:
        data[~np.isfinite(data)] = 0.0  # sep must not see NaN (they are ignored anyway)
    bkg = sep.Background(data, mask=ignore if n_ignored else None, bw=box_size, bh=box_size,
                         fw=filter_size, fh=filter_size)
    return bkg, data, ignore, n_ignored


def _check_mesh(img, box_size, filter_size) -> tuple[int, int]:
    """Mesh size within the image; median filter at most the mesh grid's size (or 11)."""
    ny, nx = img.shape
    box = validate.size(box_size, "box_size", maximum=max(ny, nx),
                        what=f"the image ({nx}x{ny} pixels)")
    meshes = max(-(-ny // box), -(-nx // box))
    filt = validate.size(filter_size, "filter_size", maximum=max(11, 2 * meshes + 1),
                         what=f"the {max(11, 2 * meshes + 1)} meshes a filter can span here")
    return box, filt


@renamed(target_srcmask="target_mask")
def calculate_bkg(img, *, target_mask=None, target_ivpmask=None, is_2D_bkg: bool = True,
                  box_size: int = 64, filter_size: int = 3, estimator: str = "mean",
                  skew_correction: bool = False, deep_mask: bool = True,
                  fwhm: float | None = None) -> Background:
    """SExtractor-style mesh background of an image.

    Parameters
    ----------
    img : BaseImage
    target_mask, target_ivpmask : Mask or bool array, optional
        Source mask and invalid-pixel mask; their pixels (and non-finite ones) are ignored.
        ``target_srcmask``: deprecated alias of ``target_mask``.
    is_2D_bkg : bool
        False returns a constant map at the global background level.
    box_size, filter_size : int
        Mesh size (pixels) and median-filter size (meshes), as BACK_SIZE/BACK_FILTERSIZE.
    estimator : {'mean', 'sextractor'}
        Level of each mesh. 'mean' (default): 4-sigma-clipped mean, unbiased for the sky
        (within 0.01 ADU on a full 7DT-like blank frame), but it takes in the light of
        unmasked sources, so give a source mask (``calculate_sourcemask``, a low ``sigma``
        reaches the faint ones). 'sextractor': SExtractor's clipped mode
        (2.5 median − 1.5 mean) by sep, identical to SExtractor's own BACKGROUND map and
        more robust to unmasked sources, but biased low by the Poisson skew of a faint sky:
        −1.1 ADU at 400 ADU, gain 0.26 e-/ADU, read noise 6 e- (7DT).
    skew_correction : bool
        With 'sextractor': add `poisson_skew_correction` (from the image's gain and read
        noise), so that the map estimates the mean sky rather than its mode (+0.06 ADU left
        on the blank frame above).
    deep_mask : bool
        With 'mean' (default True): on top of the masks given, mask every source detected
        at about S/N 5 (a matched filter of the seeing on a binned residual of a first pass;
        4x4 blocks for 7DT) out to where its profile — the stacked profile of the frame's
        bright stars, scaled to the source — falls below 0.001 x the pixel noise, then
        measure the meshes again. Without it, faint sources and the wings of bright stars
        raised the map by 0.3-2 ADU/px on 7DT-like frames
        (tests/test_background_accuracy.py, README). False gives the single-pass map of
        earlier versions.
    fwhm : float, optional
        Seeing FWHM in pixels for the deep mask's detection filter (default: header SEEING
        over the pixel scale, else 5 pixels).

    Returns
    -------
    Background
        With BKGESTIM, BKGSIZE, BKGFILT, BKGGLOB, BKGRMS, BKGNMASK (pixels of the masks given
        or non-finite) and BKGDEEP (+ BKGDSRC, BKGDFRAC, BKGDPROF: the deep mask's sources,
        masked fraction and growth profile) in its header.
    """
    if estimator not in ("sextractor", "mean"):
        raise ValueError(f"estimator must be 'sextractor' or 'mean', got {estimator!r}")
    box_size, filter_size = _check_mesh(img, box_size, filter_size)
    header = fits.Header()
    header["BKGESTIM"] = (estimator, "mesh level estimator")
    deep_mask = bool(deep_mask) and estimator == "mean"
    header["BKGDEEP"] = (deep_mask, "deep source mask added (issue 15)")
    header["BKGSIZE"] = (box_size, "mesh size [pixel]")
    header["BKGFILT"] = (filter_size, "median filter size [meshes]")
    shape = img.shape
    if estimator == "mean":
        masks = [m for m in (_mask_array(target_mask, shape, "target_mask"),
                             _mask_array(target_ivpmask, shape, "target_ivpmask")) if m is not None]
        if deep_mask:
            if fwhm is None:
                fwhm = seeing_pixels(img)
            src = _mask_array(target_mask, shape, "target_mask")
            ivp = _mask_array(target_ivpmask, shape, "target_ivpmask")
            mesh, spread, _, _, info = deep_background(
                img, [] if ivp is None else [ivp], [] if src is None else [src], box_size,
                filter_size, fwhm)
            n_ignored = info["ignored"]
            if n_ignored == shape[0] * shape[1] or not np.isfinite(mesh).any():
                raise ImageError(f"{img.path}: every pixel is masked or non-finite; "
                                 "no background")
            header["BKGDSRC"] = (info.get("deep_sources", 0), "sources in the deep mask")
            header["BKGDFRAC"] = (round(info.get("deep_masked_fraction", 0.0), 4),
                                  "fraction of pixels in the deep mask")
            header["BKGDPROF"] = (str(info.get("deep_profile", "-"))[:60], "mask growth profile")
        else:
            mesh, spread, n_ignored = _clipped_mean_meshes(img, masks, box_size)
            if n_ignored == shape[0] * shape[1]:
                raise ImageError(f"{img.path}: every pixel is masked or non-finite; "
                                 "no background")
        level, rms = float(np.nanmedian(mesh)), float(np.nanmedian(spread))
        back = _mesh_to_map(mesh, filter_size, shape, box_size) if is_2D_bkg else \
            np.full(shape, level, dtype=np.float32)
    else:
        bkg, data, ignore, n_ignored = sep_background(img, (target_mask, target_ivpmask),
                                                      box_size, filter_size)
        del data, ignore  # sep keeps only its meshes: free the frame before making the map
        level, rms = float(bkg.globalback), float(bkg.globalrms)
        back = bkg.back(dtype=np.float32) if is_2D_bkg else \
            np.full(shape, level, dtype=np.float32)
        if skew_correction:
            if not img.egain:
                raise ImageError(f"{img.path}: skew_correction needs the gain (EGAIN)")
            corr = float(poisson_skew_correction(rms, img.egain, img.rdnoise or 0.0))
            back += np.float32(corr)
            level += corr
            header["BKGSKEW"] = (corr, "Poisson skew correction added [ADU]")
    header["BKGGLOB"] = (level, "global background [ADU]")
    header["BKGRMS"] = (rms, "global background RMS [ADU]")
    header["BKGNMASK"] = (n_ignored, "masked or non-finite pixels ignored")
    header["BKG2D"] = (bool(is_2D_bkg), "2-D map (else constant)")
    log.info("%s: background %.3f ADU (RMS %.3f, %s), mesh %d, filter %d, %d pixels ignored",
             img.path, level, rms, estimator, box_size, filter_size, n_ignored)
    return Background(back, header=header, target_img=img.path,
                      target_hdu=img.product_hdu)


def _master(frame, name: str):
    """(data or scalar, ncombine) of a master calibration frame given as image/array/number."""
    if frame is None:
        return None, None
    if hasattr(frame, "data") and hasattr(frame, "ncombine"):
        return np.asarray(frame.data, dtype=np.float64), frame.ncombine
    return np.asarray(frame, dtype=np.float64), None


def seeing_pixels(img) -> float | None:
    """The image's seeing FWHM in pixels (header SEEING / pixel scale), if known."""
    try:
        seeing, scale = img.seeing, img.pixelscale
    except Exception:  # noqa: BLE001 - a missing WCS or header only means "unknown"
        return None
    if seeing and scale:
        return float(seeing) / float(scale)
    return None


def calculate_bkgrms_from_propagation(img, target_bkg, *, mbias=None, mdark=None, mflat=None,
                                      ncombine: int | None = None, egain: float | None = None,
                                      rdnoise: float | None = None) -> Errormap:
    """Background RMS (ADU) predicted by the noise model.

    Per pixel, in ADU², for an image that is the mean of ``N`` frames::

        var = (max(B, 0) / g + (rn / g)²) / N          sky Poisson noise and read noise
            + (rn / g)² / N_bias                         master bias noise (if mbias)
            + max(D, 0) / g / N_dark                     master dark noise (if mdark)
            + B² / (g · N_flat · F)                        master flat noise (if mflat; F =
                                                           counts of one flat frame)

    with B the background, g the gain (e-/ADU), rn the read noise (e-), D the dark (ADU).
    Every assumption (a default frame count, a gain or read noise from the profile) is logged
    at INFO (shown with ``verbose=True``) and written to the map's header (``ASSUMEn``).

    Parameters
    ----------
    img : ScienceImage or path
        The image (its header gives N, the gain and read noise when not given).
    target_bkg : Background
        The background B.
    mbias, mdark, mflat : CalibrationImage or path, optional
        Master bias, dark and flat; their frame counts come from their headers.
    ncombine : int, optional
        N, frames averaged into the image.
    egain : float, optional
        Gain g in e-/ADU.
    rdnoise : float, optional
        Read noise rn in e-.

    Returns
    -------
    Errormap
        The predicted background RMS (ADU).
    """
    validate.egain(egain)
    validate.number(rdnoise, "rdnoise", minimum=0, strict=False, optional=True)
    if ncombine is not None:
        validate.size(ncombine, "ncombine")
    if not isinstance(target_bkg, Background):
        if np.ndim(target_bkg) == 0:
            validate.number(target_bkg, "target_bkg")
        elif np.shape(target_bkg) != tuple(img.shape):
            raise ImageError(f"target_bkg of shape {np.shape(target_bkg)} does not match "
                             f"{img.path} of shape {tuple(img.shape)}")
    bkg = target_bkg if isinstance(target_bkg, Background) else Background(
        np.broadcast_to(np.asarray(target_bkg, np.float32), img.shape).copy(),
        target_img=img.path, target_hdu=img.product_hdu)
    bkg.check_shape(img.shape, img.path)
    validate.background_map(bkg, None)
    assumptions: list[str] = []
    gain = egain if egain is not None else img.egain
    if not gain or gain <= 0:
        raise ImageError(f"{img.path}: the noise model needs the gain (EGAIN or a telescope "
                         "profile); pass egain=")
    if rdnoise is None:
        rdnoise = img.rdnoise
        if rdnoise is None:
            rdnoise = 0.0
            assumptions.append("read noise unknown: 0 e- assumed")
        elif header_has_no(img, ("RDNOISE", "READNOIS", "RDNOIS")):
            assumptions.append(f"read noise {rdnoise} e- from the telescope profile")
    n_img = ncombine if ncombine is not None else img.ncombine
    if n_img is None:
        n_img = 1
    # float32, in place: full-frame float64 temporaries would triple the memory
    rn_adu2 = np.float32((rdnoise / gain) ** 2)
    var = np.maximum(bkg.data, 0, dtype=np.float32)
    var /= np.float32(gain)
    var += rn_adu2
    var /= np.float32(n_img)
    back = bkg.data
    for name, frame in (("mbias", mbias), ("mdark", mdark), ("mflat", mflat)):
        data, n = _master(frame, name)
        if data is None:
            continue
        if n is None:
            n = DEFAULT_NCOMBINE_MASTER
            assumptions.append(f"{name}.ncombine is None: {n} frames assumed")
        if name == "mbias":
            var += rn_adu2 / np.float32(n)
        elif name == "mdark":
            var += (np.maximum(data, 0) / (gain * n)).astype(np.float32)
        else:
            # relative Poisson noise of the master flat: 1 / (g · N · counts per flat frame)
            counts = float(np.nanmedian(data))
            if counts <= 100:  # a normalised flat does not tell its counts
                counts = FLAT_COUNTS_ASSUMED
                assumptions.append(f"mflat is normalised: {counts:.0f} ADU per flat assumed")
            var += (back.astype(np.float32) ** 2 / np.float32(gain * n * counts))
    for text in assumptions:  # documented choices, not problems: INFO (verbose=True)
        log.info("%s: %s", img.path, text)
    rms = np.sqrt(var, out=var)
    header = fits.Header()
    header["RMSMODEL"] = ("propagation", "background RMS from the noise model")
    header["EGAIN"] = (gain, "gain used [e-/ADU]")
    header["RDNOISE"] = (rdnoise, "read noise used [e-]")
    header["NCOMBINE"] = (n_img, "frames in the image")
    for i, text in enumerate(assumptions, 1):
        header[f"ASSUME{i}"] = text[:68]
    if not math.isfinite(float(np.nanmedian(rms[::8, ::8]))):
        raise ImageError(f"{img.path}: the propagated RMS map is not finite")
    return Errormap(rms, header=header, target_img=img.path,
                    target_hdu=img.product_hdu)


def header_has_no(img, keys) -> bool:
    return not any(k in img.header for k in keys)
