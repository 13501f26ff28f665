"""Background and background-RMS maps (CONTRACT §3).

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


def poisson_skew_correction(rms, egain: float, rdnoise_e: float = 0.0):
    """What SExtractor's mode estimator (2.5 median − 1.5 mean) misses of a Poisson sky, ADU.

    For weakly skewed noise, mean − median ≈ κ₃/(6σ²), so the mode estimate sits
    2.5 κ₃/(6σ²) below the mean. For sky photons through a gain g (e-/ADU) plus Gaussian read
    noise rn (e-), κ₃ = (σ² − (rn/g)²)/g in ADU³ — from the measured σ, so a bias pedestal does
    not matter. About +1.2 ADU for a 400 ADU sky at g = 0.2561, rn = 6.
    """
    var = np.square(np.asarray(rms, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa3 = np.maximum(var - (rdnoise_e / egain) ** 2, 0.0) / egain
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


def _mesh_to_map(mesh: np.ndarray, filter_size: int, shape: tuple[int, int],
                 box: int) -> np.ndarray:
    """Fill empty meshes, median-filter them, and interpolate with a bicubic spline."""
    from scipy import ndimage
    from scipy.interpolate import BSpline, RectBivariateSpline

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
    ny, nx = shape
    nby, nbx = mesh.shape
    yc = (np.arange(nby) + 0.5) * box - 0.5
    xc = (np.arange(nbx) + 0.5) * box - 0.5
    if nby == 1 and nbx == 1:
        return np.full(shape, mesh[0, 0], dtype=np.float32)
    ky, kx = min(3, nby - 1) or 1, min(3, nbx - 1) or 1
    if nby == 1 or nbx == 1:  # one row/column of meshes: interpolate along the other axis
        line = mesh.ravel()
        centres = xc if nby == 1 else yc
        along = np.interp(np.arange(nx if nby == 1 else ny), centres, line)
        return np.broadcast_to(along[None, :] if nby == 1 else along[:, None], shape).astype(
            np.float32)
    # RectBivariateSpline's first axis here is y: its "kx" is the degree along y
    spline = RectBivariateSpline(yc, xc, mesh, kx=ky, ky=kx,
                                 bbox=[min(-0.5, yc[0]), max(ny - 0.5, yc[-1]),
                                       min(-0.5, xc[0]), max(nx - 0.5, xc[-1])])
    # the spline is a tensor product: map = By C Bx^T with sparse B-spline design matrices,
    # evaluated as a matrix product by row blocks (5x faster than spline(y, x) on 7DT frames;
    # deviations from the mean level keep float32 exact to ~1e-6 ADU)
    (ty, tx, coef), (dy, dx) = spline.tck, spline.degrees
    coef = coef.reshape(len(ty) - dy - 1, len(tx) - dx - 1)
    level = float(np.mean(mesh))
    rows = BSpline.design_matrix(np.arange(ny, dtype=float), ty, dy) @ (coef - level)
    cols = BSpline.design_matrix(np.arange(nx, dtype=float), tx, dx).toarray().T
    rows, cols = rows.astype(np.float32), cols.astype(np.float32)
    out = np.empty(shape, dtype=np.float32)
    for y0 in range(0, ny, 256):  # by row blocks: no full-frame temporary
        np.matmul(rows[y0:y0 + 256], cols, out=out[y0:y0 + 256])
    out += np.float32(level)
    return out


class _ArrayRows:
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
# detects on a matched-filtered, 2x2-binned residual of a first-pass background and grows each
# source to where its own measured profile falls below DEEP_FLOOR x the pixel noise.
DEEP_NSIGMA = 4.0     # detection threshold on the smoothed residual (~ S/N 5 optimal)
DEEP_FLOOR = 1e-3     # mask each source out to where its profile is below 0.001 sigma/px
DEEP_RMAX = 320       # largest mask radius, pixels
DEFAULT_FWHM_PIX = 5.0


def _moffat_profile(r, fwhm: float, beta: float = 2.5) -> np.ndarray:
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (1.0 + (np.asarray(r, float) / alpha) ** 2) ** (-beta)


def _stacked_profile(sm: np.ndarray, pos: np.ndarray, peak: np.ndarray, sig: float,
                     rmax: int, fwhm_b: float) -> tuple[np.ndarray, str]:
    """Radial profile (peak-normalised, binned px 0..rmax) of the smoothed residual ``sm``,
    the median over up to 25 bright, unsaturated, isolated sources; a power law beyond where
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
        prof = np.bincount(rr.ravel(), weights=cut.ravel()) / nr
        profiles.append(prof[:w + 1] / peak[i])
        if len(profiles) >= 25:
            break
    if len(profiles) < 5:
        return _moffat_profile(r_grid, fwhm_b * 1.15), "moffat2.5"
    prof = np.median(np.array(profiles), axis=0)
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
    slope = float(np.clip(slope if np.isfinite(slope) else 5.0, 2.5, 8.0))
    out = np.empty(rmax + 1)
    n = min(r_good, rmax) + 1
    out[:n] = prof[:n]
    if rmax >= n:
        out[n:] = prof[r_good] * (r_grid[n:] / r_good) ** (-slope)
    return out, f"stacked({len(profiles)} stars, wing slope {slope:.2f})"


def _deep_mask(img, mesh: np.ndarray, spread: np.ndarray, masks, box: int, filter_size: int,
               fwhm: float | None) -> tuple[np.ndarray, dict]:
    """Deep source mask (full resolution, bool) from a first-pass mesh background.

    The frame minus the first-pass background is binned 2x2 (masked pixels left out),
    smoothed with a Gaussian of the seeing (a matched filter for stars), and thresholded at
    ``DEEP_NSIGMA`` times the smoothed noise. Each detection is masked out to the radius where
    its profile — the stacked profile of the frame's bright stars scaled to the detection's
    peak (or to its isophote, for saturated stars) — falls below ``DEEP_FLOOR`` x the pixel
    noise.
    """
    from scipy import ndimage

    from .masks import paint_disks

    b = 2
    ny, nx = img.shape
    nyb, nxb = -(-ny // b), -(-nx // b)
    total = np.zeros((nyb, nxb), np.float32)
    count = np.zeros((nyb, nxb), np.float32)
    try:
        for y0 in range(0, ny, 512):
            y1 = min(ny, y0 + 512)
            rows = np.array(img.read_rows(y0, y1), dtype=np.float32)
            bad = ~np.isfinite(rows)
            for m in masks:
                bad |= m[y0:y1]
            rows[bad] = 0.0
            good = (~bad).astype(np.float32)
            pad_y, pad_x = (-(y1 - y0)) % b, (-nx) % b
            if pad_y or pad_x:
                rows = np.pad(rows, ((0, pad_y), (0, pad_x)))
                good = np.pad(good, ((0, pad_y), (0, pad_x)))
            h = rows.shape[0] // b
            total[y0 // b:y0 // b + h] = rows.reshape(h, b, nxb, b).sum(axis=(1, 3))
            count[y0 // b:y0 // b + h] = good.reshape(h, b, nxb, b).sum(axis=(1, 3))
    finally:
        img.close()
    back_b = _mesh_to_map(mesh, filter_size, (nyb, nxb), box / b)
    valid = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        res = np.where(valid, total / np.maximum(count, 1) - back_b, 0.0).astype(np.float32)
    del total, back_b
    fwhm_pix = float(fwhm) if fwhm and fwhm > 0 else DEFAULT_FWHM_PIX
    fwhm_b = max(fwhm_pix / b, 1.0)
    sm = ndimage.gaussian_filter(res, fwhm_b / 2.3548, mode="constant", truncate=3.0)
    sub = sm[::3, ::3][valid[::3, ::3]]
    med = float(np.median(sub)) if sub.size else 0.0
    sig = float(1.4826 * np.median(np.abs(sub - med))) if sub.size else 0.0
    info = {"deep_mask": True, "deep_threshold_sigma": DEEP_NSIGMA, "deep_fwhm_pixel": fwhm_pix}
    full = np.zeros((ny, nx), bool)
    if not sig > 0:
        return full, info
    det = sm > med + DEEP_NSIGMA * sig
    det &= valid
    lab, n = ndimage.label(det)
    if n == 0:
        info["deep_sources"] = 0
        return full, info
    idx = np.arange(1, n + 1)
    peak = np.asarray(ndimage.maximum(sm, lab, idx), float) - med
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(float)
    pos = np.array(ndimage.maximum_position(sm, lab, idx), dtype=int).reshape(-1, 2)
    del lab, det
    pix_sigma = float(np.nanmedian(spread)) if np.isfinite(spread).any() else sig
    rmax_b = DEEP_RMAX // b
    prof, how = _stacked_profile(sm, pos, peak, sig, rmax_b, fwhm_b)
    # a saturated (flat-topped) source: its isophote tells its brightness better than its peak
    r_iso = np.sqrt(area / np.pi)
    p_iso = np.interp(r_iso, np.arange(rmax_b + 1), prof)
    thr = DEEP_NSIGMA * sig
    peak_eff = np.maximum(peak, thr / np.maximum(p_iso, 1e-12))
    floor = DEEP_FLOOR * pix_sigma
    # smallest radius where peak_eff x profile <= floor (profile decreasing)
    below = prof[None, :] * peak_eff[:, None] <= floor if n < 20000 else None
    if below is not None:
        radius_b = np.where(below.any(axis=1), below.argmax(axis=1), rmax_b).astype(float)
    else:
        rev = prof[::-1]
        radius_b = rmax_b - np.searchsorted(rev, floor / peak_eff, side="right") + 1.0
    radius_b = np.maximum(radius_b, r_iso + 1.0)
    radius = np.minimum(radius_b * b, DEEP_RMAX)
    cy, cx = pos[:, 0] * b + (b - 1) / 2, pos[:, 1] * b + (b - 1) / 2
    paint_disks(full, cx, cy, radius)
    info.update(deep_sources=int(n), deep_profile=how,
                deep_masked_fraction=float(full[::4, ::4].mean()))
    return full, info


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


def calculate_bkg(img, *, target_srcmask=None, target_ivpmask=None, is_2D_bkg: bool = True,
                  box_size: int = 64, filter_size: int = 3, estimator: str = "mean",
                  skew_correction: bool = False, deep_mask: bool = True,
                  fwhm: float | None = None) -> Background:
    """SExtractor-style mesh background of an image.

    Parameters
    ----------
    img : BaseImage
    target_srcmask, target_ivpmask : Mask or bool array, optional
        Source mask and invalid-pixel mask; their pixels (and non-finite ones) are ignored.
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

    Returns
    -------
    Background
        With BKGSIZE, BKGFILT, BKGGLOB, BKGRMS, BKGNMASK in its header.
    """
    if estimator not in ("sextractor", "mean"):
        raise ValueError(f"estimator must be 'sextractor' or 'mean', got {estimator!r}")
    if box_size < 1 or filter_size < 1:
        raise ValueError("box_size and filter_size must be positive")
    header = fits.Header()
    header["BKGESTIM"] = (estimator, "mesh level estimator")
    deep_mask = bool(deep_mask) and estimator == "mean"
    header["BKGDEEP"] = (deep_mask, "deep source mask added (issue 15)")
    header["BKGSIZE"] = (box_size, "mesh size [pixel]")
    header["BKGFILT"] = (filter_size, "median filter size [meshes]")
    shape = img.shape
    if estimator == "mean":
        masks = [m for m in (_mask_array(target_srcmask, shape, "target_srcmask"),
                             _mask_array(target_ivpmask, shape, "target_ivpmask")) if m is not None]
        mesh, spread, n_ignored = _clipped_mean_meshes(img, masks, box_size)
        if n_ignored == shape[0] * shape[1]:
            raise ImageError(f"{img.path}: every pixel is masked or non-finite; no background")
        if deep_mask:
            if fwhm is None:
                fwhm = _seeing_pixels(img)
            # detection looks through the user's source mask (sources behind it still have
            # wings outside it); only invalid pixels are left out
            invalid = [m for m in (_mask_array(target_ivpmask, shape, "target_ivpmask"),)
                       if m is not None]
            deep, info = _deep_mask(img, mesh, spread, invalid, box_size, filter_size, fwhm)
            header["BKGDEEP"] = (True, "deep source mask added (issue 15)")
            header["BKGDSRC"] = (info.get("deep_sources", 0), "sources in the deep mask")
            header["BKGDFRAC"] = (round(info.get("deep_masked_fraction", 0.0), 4),
                                  "fraction of pixels in the deep mask")
            header["BKGDPROF"] = (str(info.get("deep_profile", "-"))[:60], "mask growth profile")
            mesh2, spread2, _ = _clipped_mean_meshes(img, masks + [deep], box_size)
            mesh, spread = mesh2, np.where(np.isfinite(spread2), spread2, spread)
            del deep
        level, rms = float(np.nanmedian(mesh)), float(np.nanmedian(spread))
        back = _mesh_to_map(mesh, filter_size, shape, box_size) if is_2D_bkg else \
            np.full(shape, level, dtype=np.float32)
    else:
        bkg, data, ignore, n_ignored = sep_background(img, (target_srcmask, target_ivpmask),
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
    return Background(back, header=header, target_img=img.path)


def _master(frame, name: str):
    """(data or scalar, ncombine) of a master calibration frame given as image/array/number."""
    if frame is None:
        return None, None
    if hasattr(frame, "data") and hasattr(frame, "ncombine"):
        return np.asarray(frame.data, dtype=np.float64), frame.ncombine
    return np.asarray(frame, dtype=np.float64), None


def _seeing_pixels(img) -> float | None:
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
    as a warning and written to the map's header.

    Returns
    -------
    Errormap
    """
    bkg = target_bkg if isinstance(target_bkg, Background) else Background(
        np.broadcast_to(np.asarray(target_bkg, np.float32), img.shape).copy(), target_img=img.path)
    bkg.check_shape(img.shape, img.path)
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
    for text in assumptions:
        log.warning("%s: %s", img.path, text)
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
    return Errormap(rms, header=header, target_img=img.path)


def header_has_no(img, keys) -> bool:
    return not any(k in img.header for k in keys)
