"""`photutils_photometry`: detection photometry with photutils (docs/catalogue.md).

Segmentation on the background-subtracted image smoothed by SExtractor's default 3×3 filter
(threshold = detection_sigma × background RMS), multi-threshold deblending, then Kron and
circular-aperture photometry from `photutils.segmentation.SourceCatalog`, with columns named
as SExtractor's wherever the meaning is the same.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from .. import _validate as validate
from ..dataobjects.catalog import Catalog
from ..imageobjects import Background
from .common import aperture_diameters, as_image, catalog_info, finish_catalog

log = logging.getLogger(__name__)

__all__ = ["photutils_photometry"]

_KRON_MIN = 3.5  # SExtractor's PHOT_AUTOPARAMS minimum radius (units of A, B)
_DEFAULT_CONV = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16.0


def _background(img, target_bkg, target_bkgrms, mask):
    """Full-frame background and RMS (detection needs the whole frame anyway)."""
    bkg, rms, m = validate.resolved_maps(img, target_bkg, target_bkgrms, mask)
    m = None if m is None else m.data
    back_arr = rms_arr = None
    if bkg is None or rms is None:  # one mesh pass gives both maps
        from ..background import sep_background

        est, data, ignore, _ = sep_background(img, (m,), 64, 3)
        del data, ignore
        back_arr = est.back(dtype=np.float32) if bkg is None else None
        rms_arr = est.rms(dtype=np.float32) if rms is None else None
    if isinstance(bkg, Background):
        back_arr = bkg.data
    elif bkg is not None:
        back_arr = np.float32(bkg)
    if rms is not None:
        rms_arr = rms.data
    return back_arr, rms_arr, m


def photutils_photometry(target_img, *, target_bkg=None, target_bkgrms=None, target_mask=None,
                         detection_sigma: float = 1.5, aperture_diameter_arcsec=(5, 7, 10),
                         kron_factor: float = 2.5, minarea_pixels: int = 5,
                         deblend_contrast: float = 0.005, deblend_nlevels: int = 32,
                         egain: float | None = None, seeing: float | None = None,
                         zeropoint: float | str = 0.0, nproc: int = 1,
                         save: bool = True) -> Catalog:
    """Detect with photutils and measure Kron and circular-aperture fluxes.

    See `AperturePhotometry.photutils_photometry`. ``nproc``: processes of the deblending
    and of the `SourceCatalog` measurements (sources dealt out to ``nproc`` worker
    processes, each deblended and measured against the full frame and segmentation image;
    photutils' own ``n_processes`` sends one task per source and is slower than one process
    here). The processes start at the beginning of the call, so that their start-up overlaps
    the detection, and read the frame's arrays from a run directory in ``/dev/shm`` when it
    has room (else the usual one). The catalogue does not depend on ``nproc``, bit for bit.
    The processes come from Python's fork server (``spawn`` where there is none): a script
    calling this with ``nproc > 1`` needs the usual ``if __name__ == '__main__':`` guard.

    Parameters
    ----------
    target_img : BaseImage or path
        The image.
    target_bkg, target_bkgrms, target_mask : optional
        Background map or value (ADU), background RMS map (ADU), mask (True = excluded).
    detection_sigma : float
        Detection threshold in units of the background RMS.
    aperture_diameter_arcsec : float or list
        Circular aperture diameters in arcsec.
    kron_factor : float
        Kron radius factor.
    minarea_pixels : int
        Minimum connected pixels of a detection.
    deblend_contrast : float
        photutils' deblending contrast (0-1).
    deblend_nlevels : int
        photutils' deblending levels.
    egain : float, optional
        Gain in e-/ADU (default: header / telescope profile).
    seeing : float, optional
        Seeing FWHM in arcsec (default: the image's).
    zeropoint : float or str
        Magnitude zero point, or the header keyword that holds it (``'ZP'``...; missing or
        not a number: `ImageError`). Recorded in ``meta['zeropoint']``; ``info.depth`` is
        measured with it.
    nproc : int
        Processes of the deblending and of the measurements.
    save : bool
        Write the catalogue beside the image (atomically).

    Returns
    -------
    Catalog
        The detections, columns named as SExtractor's.

    Raises
    ------
    PhotometryWorkerError
        A measurement process failed or died (``nproc > 1``).
    """
    img = as_image(target_img)
    zeropoint = validate.zeropoint(zeropoint, img.header, img.path)  # a number or a keyword
    validate.photometry_args(egain=egain, seeing=seeing, kron_factor=kron_factor,
                             detection_sigma=detection_sigma, zeropoint=zeropoint)
    minarea_pixels = validate.size(minarea_pixels, "minarea_pixels",
                                   maximum=img.shape[0] * img.shape[1], what="the image")
    deblend_nlevels = validate.size(deblend_nlevels, "deblend_nlevels", maximum=1000)
    nproc = validate.size(nproc, "nproc", maximum=4096)
    validate.number(deblend_contrast, "deblend_contrast", minimum=0, strict=False, maximum=1)
    pixelscale = img.pixelscale
    seeing = seeing if seeing is not None else img.seeing
    diam_arcsec, diam_px = aperture_diameters(img, aperture_diameter_arcsec, None, seeing,
                                              pixelscale)
    validate.apertures_fit(diam_px, img.shape, "aperture_diameter_arcsec", img.path)
    # the other processes start now: their start-up (an interpreter and photutils' imports,
    # seconds) overlaps the serial background, filtering and detection below
    with _worker_pool(0 if nproc == 1 else nproc) as pool:
        table = _detect_and_measure(img, target_bkg, target_bkgrms, target_mask,
                                    detection_sigma, minarea_pixels, deblend_contrast,
                                    deblend_nlevels, kron_factor, diam_px, zeropoint,
                                    egain, nproc, pool)
    table.meta.update(pixel_origin=0, detection_sigma=detection_sigma)
    info = catalog_info(img, "all", seeing=seeing, aperture_diameter_arcsec=diam_arcsec, path=None)
    meta = {"method": "photutils", "aperture_diameter_pixel": diam_px,
            "kron_params": [kron_factor, _KRON_MIN], "minarea_pixels": minarea_pixels}
    return finish_catalog(Catalog(table, info=info, meta=meta), img, "photutils", save,
                          zeropoint=zeropoint)


def _detect_and_measure(img, target_bkg, target_bkgrms, target_mask, detection_sigma,
                        minarea_pixels, deblend_contrast, deblend_nlevels, kron_factor,
                        diam_px, zeropoint, egain, nproc, pool) -> Table:
    """The catalogue table of `photutils_photometry` (``pool``: its other processes)."""
    from photutils.segmentation import deblend_sources, detect_sources
    from scipy.ndimage import convolve

    back, rms, mask = _background(img, target_bkg, target_bkgrms, target_mask)
    data = np.asarray(img.data, dtype=np.float32) - back
    finite = np.isfinite(data)
    bad = ~finite if mask is None else (~finite | mask)
    data[~finite] = 0.0
    data[bad] = 0.0  # masked pixels neither detected nor smeared into their neighbours
    # SExtractor's default detection filter (3x3 pyramid, FWHM 2 px): isophotes, and so Kron
    # apertures, then match SExtractor's
    convolved = convolve(data, _DEFAULT_CONV, mode="nearest")
    threshold = detection_sigma * np.asarray(rms, dtype=np.float32)
    segm = detect_sources(convolved, threshold, n_pixels=minarea_pixels, mask=bad)
    gain = egain if egain is not None else img.egain
    columns = _empty_columns(len(diam_px))
    if segm is None:
        table = Table(names=columns, dtype=[float] * len(columns))
        log.info("%s: no source above %g sigma", img.path, detection_sigma)
    else:
        deblend = {"n_pixels": minarea_pixels, "n_levels": deblend_nlevels,
                   "contrast": deblend_contrast}
        options = {"kron_factor": kron_factor, "diam_px": diam_px, "zeropoint": zeropoint}
        if nproc == 1 or segm.n_labels < 2 * nproc:
            segm = deblend_sources(convolved, segm, **deblend, progress_bar=False)
            error = _total_error(data, rms, gain if gain else np.inf)
            table = _measure(data, segm, error, bad, img.wcs, options)
        else:
            table = _parallel(data, convolved, segm, rms, gain, bad, img.wcs, deblend,
                              options, pool, nproc, img.path)
        _add_sky_columns(table, rms, detection_sigma)
    return table


def _measure(data, segm, error, mask, wcs, options, index=None) -> Table:
    """The catalogue columns of the sources ``index`` (all by default) of ``segm``.

    Each source is measured in its own cutouts of the full frame and full segmentation image
    (neighbours masked from Kron apertures as in one catalogue of all sources), so any
    subset gives the same rows as the whole catalogue. Shapes and centroids come from the
    unfiltered pixels, as SExtractor measures them."""
    from photutils.segmentation import SourceCatalog

    kron_factor = options["kron_factor"]
    cat = SourceCatalog(data, segm, error=error, mask=mask, wcs=wcs,
                        # SExtractor's minimum (3.5) bounds the *scaled* Kron radius
                        kron_params=(kron_factor, _KRON_MIN / kron_factor, 0.0))
    if index is not None:
        cat = cat[index]
    return _to_table(cat, options["diam_px"], options["zeropoint"], kron_factor)


def _segm_state(segm) -> dict:
    """A segmentation image without its pixels, labels and slices found (small to send)."""
    segm.slices, segm.areas  # noqa: B018 -- computed once here, not in every worker
    return {k: v for k, v in segm.__dict__.items() if k != "_data"}


def _segm_from(state: dict, pixels: np.ndarray):
    from photutils.segmentation import SegmentationImage

    # the parent's segmentation image with its labels and slices already found (a new one
    # would search the full frame again); only the pixel array is the mapped copy
    segm = SegmentationImage.__new__(SegmentationImage)
    segm.__dict__.update(state)
    segm.__dict__["_data"] = pixels
    return segm


def _deblend_group(convolved, segm, deblend: dict, labels) -> tuple:
    """photutils' deblending of the sources ``labels`` only: each source is deblended in its
    own cutout of the filtered image and of the *input* segmentation image, as in one call
    for all. Returns the flat indices and (not yet renumbered) labels of the new pixels, the
    new labels of each deblended source, and the warnings raised."""
    import warnings

    from photutils.segmentation import deblend_sources

    max0 = segm.max_label
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deblend_sources(convolved, segm, labels=labels, relabel=False, n_processes=1,
                              progress_bar=False, **deblend)
    flat = np.flatnonzero(out.data > max0)
    return (flat, out.data.ravel()[flat], dict(out.parent_to_deblended_labels),
            [w.message for w in caught])


def _deblend_worker(origin: dict, files: dict, state: dict, deblend: dict, labels) -> tuple:
    _check_origin(origin)
    segm = _segm_from(state, np.load(files["segm"], mmap_mode="r", allow_pickle=False))
    conv = np.load(files["convolved"], mmap_mode="r", allow_pickle=False)
    return _deblend_group(conv, segm, deblend, labels)


def _measure_worker(origin: dict, files: dict, segm_state: dict, wcs, options, index) -> Table:
    """`_measure` in a worker process, on memory-mapped copies of the parent's arrays."""
    _check_origin(origin)
    arrays = {k: np.load(files[k], mmap_mode="r", allow_pickle=False)
              for k in ("data", "deblended", "error", "mask")}
    segm = _segm_from(segm_state, arrays["deblended"])
    return _measure(arrays["data"], segm, arrays["error"], arrays["mask"], wcs, options, index)


def _write_shared(file: str, arr: np.ndarray) -> None:
    """One array for the workers (a ``.npy`` file they memory-map)."""
    np.save(file, arr, allow_pickle=False)


def _merge_deblended(segm, parts):
    """The deblended segmentation image one serial ``deblend_sources`` call gives: new
    labels numbered in the order of their parents' labels, then made consecutive."""
    from photutils.segmentation import SegmentationImage

    children = {}
    for _, _, label_map, _ in parts:
        children.update(label_map)
    new_of = {}
    next_label = segm.max_label
    for parent in sorted(children):
        for old in children[parent]:
            next_label += 1
            new_of[(parent, int(old))] = next_label
    merged = segm.data.copy()
    flat_view = merged.reshape(-1)
    for flat, values, label_map, _ in parts:
        if not len(flat):
            continue
        lut = np.zeros(int(values.max()) + 1, dtype=merged.dtype)
        for parent, olds in label_map.items():
            for old in olds:
                lut[int(old)] = new_of[(parent, int(old))]
        flat_view[flat] = lut[values]
    out = SegmentationImage(merged)
    out.relabel_consecutive(start_label=1)
    return out


# What the fork server imports once, before forking the workers: the third-party modules
# that take the seconds. Not ezphot: Python's fork server starts with the sys.path of a
# fresh interpreter, not this process's, while each forked worker takes this process's
# sys.path before its first task and so imports the ezphot that this process runs.
_PRELOAD = ("photutils.segmentation", "astropy.wcs", "astropy.table", "scipy.ndimage")
# modules whose files must be the same in the workers as here
_SAME_CODE = ("ezphot", "photutils", "astropy", "scipy", "numpy")


def _warm_up() -> None:
    """Run first in each worker: the imports its tasks need, done while the parent works
    (nothing left to do in a worker forked from a server that has them)."""
    for name in _PRELOAD:
        importlib.import_module(name)


def _watch_caller(pid: int) -> None:
    """Initializer of the workers: exit when the calling process is gone. Killed (SIGKILL),
    it cannot shut its pool down, and the workers, children of the fork server rather than
    of the caller, would wait for work forever."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:  # exists (another user's pid, permission refused): keep on
                pass

    threading.Thread(target=watch, daemon=True, name="ezphot-caller-watchdog").start()


def _code_origin() -> dict:
    """The files of the modules that compute the catalogue, as imported by this process."""
    return {name: importlib.import_module(name).__file__ for name in _SAME_CODE}


def _check_origin(expected: dict) -> None:
    """In a worker: raise unless it runs the same files as the calling process. A fork
    server started with another sys.path (say, an installed copy next to the checkout the
    caller put first on sys.path) would otherwise measure with other code, silently."""
    from ..exceptions import PhotometryWorkerError

    here = _code_origin()
    for name, file in expected.items():
        if here.get(name) != file:
            raise PhotometryWorkerError(
                f"a worker process imported {name} from {here.get(name)}, the calling "
                f"process from {file}: start Python with that module on its path "
                "(PYTHONPATH, or install it) instead of changing sys.path at run time")


def _context():
    """Python's fork server where there is one, else ``spawn``: both safe whatever threads
    this process runs. The server imports photutils once (the first call pays its seconds,
    overlapping the detection) and forks each worker ready, where a spawned worker imports
    everything anew. The server's list of modules to import is set here (Python has one
    server per process: a list set elsewhere is replaced); once it runs, the list it
    started with stays."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(_PRELOAD))
    return ctx


@contextmanager
def _worker_pool(n: int) -> Iterator:
    """``n`` worker processes (None for 0), started and importing at once; shut down on
    leaving: waited for on failure (none is left running); after success they finish
    exiting on their own."""
    if n == 0:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=n, mp_context=_context(),
                               initializer=_watch_caller, initargs=(os.getpid(),))
    try:
        for _ in range(n):
            pool.submit(_warm_up)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=False, cancel_futures=True)


def _shared_parent(nbytes: int) -> Path | None:
    """Where the workers' arrays go: ``/dev/shm`` (memory: no disk writes) when it has room
    for them twice over and ``$EZPHOT_TMPDIR`` is not set; else None (the run directories'
    usual place). Containers often give ``/dev/shm`` only 64 MB."""
    shm = Path("/dev/shm")
    if os.environ.get("EZPHOT_TMPDIR") or not os.access(shm, os.W_OK | os.X_OK):
        return None
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    return shm if stat.f_bavail * stat.f_frsize > 2 * nbytes else None


def _parallel(data, convolved, segm, rms, gain, mask, wcs, deblend: dict, options: dict,
              pool, nproc: int, path) -> Table:
    """Deblending and `_measure` split over the ``nproc`` processes of ``pool`` (started
    before the detection, used for both).

    Sources are dealt out in turn (source i to group i mod nproc: crowded and sparse regions
    shared alike) to ``nproc`` workers, which read the arrays from ``.npy`` files of a run
    directory (memory-mapped); this process prepares the next step's arrays meanwhile. The
    deblended pieces get the labels one serial call gives, and the rows are put back in label
    order: the catalogue is that of ``nproc=1``, bit for bit.
    """
    import warnings

    from .._io import run_directory
    from ..exceptions import MeasurementWarning

    # the arrays shared: filtered image, segmentation (twice), data, error, mask
    nbytes = data.size * (3 * data.itemsize + 2 * segm.data.itemsize + 1)
    with run_directory("ezphot-detect-", parent=_shared_parent(nbytes)) as run:
        files = {}

        def share(name, arr):
            files[name] = str(run / f"{name}.npy")
            _write_shared(files[name], arr)

        try:
            origin = _code_origin()
            labels = segm.labels
            groups = [labels[k::nproc] for k in range(nproc)]
            state = _segm_state(segm)
            share("convolved", convolved)
            share("segm", segm.data)
            futures = [pool.submit(_deblend_worker, origin, dict(files), state, deblend, g)
                       for g in groups]
            # while they deblend: the measurements' arrays that do not depend on it
            error = _total_error(data, rms, gain if gain else np.inf)
            for name, arr in (("data", data), ("error", error), ("mask", mask)):
                share(name, arr)
            del error
            parts = [_result(f, path) for f in futures]
            for _, _, _, caught in parts:
                # photutils' deblending warnings (AstropyUserWarning), raised in the workers
                for message in caught:
                    warnings.warn(str(message), MeasurementWarning, stacklevel=3)
            segm = _merge_deblended(segm, parts)
            del parts
            share("deblended", segm.data)
            n = segm.n_labels
            index = [np.arange(k, n, nproc) for k in range(nproc)]
            state = _segm_state(segm)
            futures = [pool.submit(_measure_worker, origin, dict(files), state, wcs, options,
                                   g)
                       for g in index]
            tables = [_result(f, path) for f in futures]
        except BaseException:
            # workers are waited for (not left running) before the run directory goes
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    order = np.argsort(np.concatenate(index), kind="stable")
    table = Table()
    for name in tables[0].colnames:
        col = np.concatenate([np.asarray(t[name]) for t in tables])[order]
        table[name] = col if tables[0][name].unit is None else col * tables[0][name].unit
    return table


def _result(future, path):
    """A worker's result; its failure (raised there, or the process died) as an ezphot
    error naming the image."""
    from ..exceptions import EzphotError, PhotometryWorkerError

    try:
        return future.result()
    except EzphotError:
        raise
    except Exception as exc:  # raised in the worker, or the worker died
        raise PhotometryWorkerError(
            f"{path}: a photutils measurement process failed: {exc!r}") from exc


def _total_error(data: np.ndarray, rms, gain: float) -> np.ndarray:
    """``photutils.utils.calc_total_error(data, rms, effective_gain=gain)``, bit for bit, in
    row strips: ``sqrt(rms² + max(data / gain, 0))``. photutils broadcasts the gain to a
    full-frame float64 array and masks it; for a scalar gain that is most of its time."""
    rms = np.broadcast_to(np.asarray(rms, dtype=np.float32), data.shape)
    out = np.empty(data.shape, dtype=np.result_type(data.dtype, rms.dtype))
    rows = max(1, (1 << 22) // max(1, data.shape[1]))
    for y0 in range(0, data.shape[0], rows):
        sl = slice(y0, y0 + rows)
        # the quotient in float64 then stored, as photutils' in-place division by its
        # float64 gain array does
        var = np.divide(data[sl], np.float64(gain), dtype=np.float64).astype(data.dtype)
        np.maximum(var, 0, out=var)
        err = rms[sl] ** 2
        err += var
        out[sl] = np.sqrt(err)
    return out


def _empty_columns(n_aper: int) -> list[str]:
    names = ["NUMBER", "X_IMAGE", "Y_IMAGE", "X_WORLD", "Y_WORLD", "FLUX_AUTO", "FLUXERR_AUTO",
             "MAG_AUTO", "MAGERR_AUTO"]
    for kind in ("FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"):
        names += [kind if i == 0 else f"{kind}_{i}" for i in range(n_aper)]
    names += ["A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELONGATION", "ELLIPTICITY", "KRON_RADIUS",
              "FLUX_RADIUS", "FWHM_IMAGE", "ISOAREA_IMAGE", "FLUX_MAX", "SKYSIG", "THRESHOLD"]
    return names


def _mag(flux, err, zp):
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(flux > 0, -2.5 * np.log10(flux) + zp, np.nan)
        magerr = np.where(flux > 0, 2.5 / math.log(10) * err / flux, np.nan)
    return mag * u.mag, magerr * u.mag


def _value(q):
    return np.asarray(getattr(q, "value", q), dtype=float)


def _to_table(cat, diam_px, zp, kron_factor) -> Table:
    t = Table()
    t["NUMBER"] = np.asarray(cat.label, dtype=np.int64)
    x, y = _value(cat.x_centroid), _value(cat.y_centroid)
    t["X_IMAGE"] = x * u.pix
    t["Y_IMAGE"] = y * u.pix
    if cat.wcs is not None:
        sky = cat.sky_centroid_icrs
        t["X_WORLD"] = sky.ra.deg * u.deg
        t["Y_WORLD"] = sky.dec.deg * u.deg
    else:
        t["X_WORLD"] = np.full(len(t), np.nan) * u.deg
        t["Y_WORLD"] = np.full(len(t), np.nan) * u.deg
    flux, err = _value(cat.kron_flux), _value(cat.kron_flux_err)
    t["FLUX_AUTO"], t["FLUXERR_AUTO"] = flux * u.ct, err * u.ct
    t["MAG_AUTO"], t["MAGERR_AUTO"] = _mag(flux, err, zp)
    fluxes = [cat.circular_photometry(d / 2.0) for d in diam_px]
    for kind, idx in (("FLUX_APER", 0), ("FLUXERR_APER", 1)):
        for i, f in enumerate(fluxes):
            t[kind if i == 0 else f"{kind}_{i}"] = _value(f[idx]) * u.ct
    for i, f in enumerate(fluxes):
        mag, magerr = _mag(_value(f[0]), _value(f[1]), zp)
        t["MAG_APER" if i == 0 else f"MAG_APER_{i}"] = mag
        t["MAGERR_APER" if i == 0 else f"MAGERR_APER_{i}"] = magerr
    t["A_IMAGE"] = _value(cat.semimajor_axis) * u.pix
    t["B_IMAGE"] = _value(cat.semiminor_axis) * u.pix
    t["THETA_IMAGE"] = _value(cat.orientation) * u.deg
    t["ELONGATION"] = _value(cat.elongation)
    t["ELLIPTICITY"] = _value(cat.ellipticity)
    # photutils' kron_radius is the unscaled first moment (units of A, B); SExtractor's
    # KRON_RADIUS is the scaled one
    t["KRON_RADIUS"] = np.maximum(kron_factor * _value(cat.kron_radius), _KRON_MIN)
    t["FLUX_RADIUS"] = _value(cat.flux_radius(0.5)) * u.pix
    t["FWHM_IMAGE"] = _value(cat.fwhm) * u.pix
    t["ISOAREA_IMAGE"] = _value(cat.area) * u.pix**2
    t["FLUX_MAX"] = _value(cat.max_value) * u.ct
    return t


def _add_sky_columns(t: Table, rms, detection_sigma: float) -> None:
    """SKYSIG (median background RMS) and THRESHOLD (detection level at each centroid)."""
    if not len(t):
        return
    x, y = _value(t["X_IMAGE"]), _value(t["Y_IMAGE"])
    rms_at = np.asarray(rms, dtype=float)
    if rms_at.ndim == 2:
        iy = np.clip(np.round(y).astype(int), 0, rms_at.shape[0] - 1)
        ix = np.clip(np.round(x).astype(int), 0, rms_at.shape[1] - 1)
        local = rms_at[iy, ix]
        sky = float(np.median(rms_at))
    else:
        local = np.full(len(t), float(rms_at))
        sky = float(rms_at)
    t["SKYSIG"] = np.full(len(t), sky) * u.ct
    t["THRESHOLD"] = detection_sigma * local * u.ct
