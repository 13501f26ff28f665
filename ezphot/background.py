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

from . import _validate as validate
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
        mesh = ndimage.median_filter(mesh, size=filter_size, mode="nearest")
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


def calculate_bkg(img, *, target_srcmask=None, target_ivpmask=None, is_2D_bkg: bool = True,
                  box_size: int = 64, filter_size: int = 3, estimator: str = "mean",
                  skew_correction: bool = False) -> Background:
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
    box_size, filter_size = _check_mesh(img, box_size, filter_size)
    header = fits.Header()
    header["BKGESTIM"] = (estimator, "mesh level estimator")
    header["BKGSIZE"] = (box_size, "mesh size [pixel]")
    header["BKGFILT"] = (filter_size, "median filter size [meshes]")
    shape = img.shape
    if estimator == "mean":
        masks = [m for m in (_mask_array(target_srcmask, shape, "target_srcmask"),
                             _mask_array(target_ivpmask, shape, "target_ivpmask")) if m is not None]
        mesh, spread, n_ignored = _clipped_mean_meshes(img, masks, box_size)
        if n_ignored == shape[0] * shape[1]:
            raise ImageError(f"{img.path}: every pixel is masked or non-finite; no background")
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
        np.broadcast_to(np.asarray(target_bkg, np.float32), img.shape).copy(), target_img=img.path)
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
