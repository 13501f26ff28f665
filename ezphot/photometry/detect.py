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
from contextlib import ExitStack, contextmanager
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
    processes in groups of about equal deblending cost, each group deblended and measured by
    one worker against the full frame; photutils' own ``n_processes`` sends one task per
    source and is slower than one process here), and threads of the subtraction, filtering
    and error map (row strips). The processes start at the beginning of the call, so that
    their start-up overlaps the detection, and read the frame's arrays from a run directory
    in ``/dev/shm`` when it has room (else the usual one). The catalogue does not depend on
    ``nproc``, bit for bit.
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
    from .._io import run_directory

    with ExitStack() as stack:
        run = None
        if pool is not None:
            # the workers' arrays (filtered image, data, error: float32; segmentation: int32;
            # mask) are made in place, in files of a run directory that they memory-map
            ny, nx = img.shape
            run = stack.enter_context(run_directory(
                "ezphot-detect-", parent=_shared_parent(ny * nx * (3 * 4 + 4 + 1))))
        return _detect_into(_Arrays(run), img, target_bkg, target_bkgrms, target_mask,
                            detection_sigma, minarea_pixels, deblend_contrast,
                            deblend_nlevels, kron_factor, diam_px, zeropoint, egain, nproc,
                            pool)


def _detect_into(arrays, img, target_bkg, target_bkgrms, target_mask, detection_sigma,
                 minarea_pixels, deblend_contrast, deblend_nlevels, kron_factor, diam_px,
                 zeropoint, egain, nproc, pool) -> Table:
    from photutils.segmentation import deblend_sources, detect_sources

    back, rms, mask = _background(img, target_bkg, target_bkgrms, target_mask)
    # with nproc > 1 the full-frame steps before the detection run in nproc threads, in row
    # strips (numpy and scipy.ndimage release the GIL): the same pixels as one pass
    threads = nproc if pool is not None else 1
    data, bad = _subtracted(arrays, img, back, mask, threads)
    del back
    # SExtractor's default detection filter (3x3 pyramid, FWHM 2 px): isophotes, and so Kron
    # apertures, then match SExtractor's
    convolved = _filtered(arrays, data, threads)
    threshold = _threshold(rms, detection_sigma, threads)
    segm = detect_sources(convolved, threshold, n_pixels=minarea_pixels, mask=bad)
    del threshold
    gain = egain if egain is not None else img.egain
    columns = _empty_columns(len(diam_px))
    if segm is None:
        table = Table(names=columns, dtype=[float] * len(columns))
        log.info("%s: no source above %g sigma", img.path, detection_sigma)
    else:
        deblend = {"n_pixels": minarea_pixels, "n_levels": deblend_nlevels,
                   "contrast": deblend_contrast}
        options = {"kron_factor": kron_factor, "diam_px": diam_px, "zeropoint": zeropoint}
        if pool is None or segm.n_labels < 2 * nproc:
            segm = deblend_sources(convolved, segm, **deblend, progress_bar=False)
            error = _total_error(data, rms, gain if gain else np.inf)
            table = _measure(data, segm, error, bad, img.wcs, options)
            sky = _median(rms) if np.ndim(rms) == 2 else None
        else:
            table, sky = _parallel(arrays, data, convolved, segm, rms, gain, bad, img.wcs,
                                   deblend, options, pool, nproc, img.path)
        _add_sky_columns(table, rms, detection_sigma, sky)
    return table


class _Arrays:
    """Where the frame's full-size arrays are made: private arrays (one process), or ``.npy``
    files of the run directory ``run``, which the workers memory-map (made there in place,
    they need no copy)."""

    def __init__(self, run: Path | None) -> None:
        self.run = run
        self.files: dict[str, str] = {}

    def empty(self, name: str, shape, dtype) -> np.ndarray:
        if self.run is None:
            return np.empty(shape, dtype)
        self.files[name] = str(self.run / f"{name}.npy")
        # a plain ndarray view of the mapping: photutils sees the same type as without it
        return _shared_empty(self.files[name], shape, dtype).view(np.ndarray)

    def share(self, name: str, arr: np.ndarray) -> None:
        """``arr`` in the run directory (a copy, unless it was made there)."""
        if name not in self.files:
            self.files[name] = str(self.run / f"{name}.npy")
            _write_shared(self.files[name], arr)


def _in_strips(function, n_rows: int, threads: int) -> None:
    """``function(y0, y1)`` over ``threads`` row strips covering ``n_rows``, in threads."""
    edges = np.linspace(0, n_rows, max(1, min(threads, n_rows)) + 1).astype(int)
    strips = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    if len(strips) == 1:
        function(*strips[0])
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(strips), thread_name_prefix="ezphot-strip") as ex:
        for future in [ex.submit(function, y0, y1) for y0, y1 in strips]:
            future.result()


def _subtracted(arrays, img, back, mask, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """The background-subtracted frame (float32) with its masked and non-finite pixels set to
    0, and those pixels (True), so that they are neither detected nor smeared into their
    neighbours."""
    src = img.data
    data = arrays.empty("data", src.shape, np.float32)
    bad = arrays.empty("mask", src.shape, bool)
    back2d = np.ndim(back) == 2

    def strip(y0: int, y1: int) -> None:
        d = data[y0:y1]
        np.subtract(np.asarray(src[y0:y1], dtype=np.float32), back[y0:y1] if back2d else back,
                    out=d)
        b = bad[y0:y1]
        np.isfinite(d, out=b)
        np.logical_not(b, out=b)
        if mask is not None:
            np.logical_or(b, mask[y0:y1], out=b)
        d[b] = 0.0

    _in_strips(strip, src.shape[0], threads)
    return data, bad


def _filtered(arrays, data: np.ndarray, threads: int) -> np.ndarray:
    """``scipy.ndimage.convolve(data, _DEFAULT_CONV, mode='nearest')``, bit for bit: each row
    strip is filtered with one row more on each side, which its 3x3 kernel reaches."""
    from scipy.ndimage import convolve

    out = arrays.empty("convolved", data.shape, np.float32)
    ny = data.shape[0]

    def strip(y0: int, y1: int) -> None:
        lo, hi = max(0, y0 - 1), min(ny, y1 + 1)
        if (lo, hi) == (y0, y1):
            convolve(data[y0:y1], _DEFAULT_CONV, output=out[y0:y1], mode="nearest")
        else:
            out[y0:y1] = convolve(data[lo:hi], _DEFAULT_CONV, mode="nearest")[y0 - lo:y1 - lo]

    _in_strips(strip, ny, threads)
    return out


def _threshold(rms, detection_sigma: float, threads: int):
    """``detection_sigma × rms`` in float32 (a map or a value)."""
    rms = np.asarray(rms, dtype=np.float32)
    if rms.ndim != 2:
        return detection_sigma * rms
    out = np.empty(rms.shape, np.float32)

    def strip(y0: int, y1: int) -> None:
        out[y0:y1] = detection_sigma * rms[y0:y1]

    _in_strips(strip, rms.shape[0], threads)
    return out


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
    for all. Returns the segmentation image with these sources deblended (their pieces
    numbered from ``segm.max_label + 1``, in the order of their parents' labels), the pieces
    of each deblended source, and the warnings raised."""
    import warnings

    from photutils.segmentation import deblend_sources

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deblend_sources(convolved, segm, labels=labels, relabel=False, n_processes=1,
                              progress_bar=False, **deblend)
    return (out.data, {int(k): np.asarray(v) for k, v in out.parent_to_deblended_labels.items()},
            [w.message for w in caught])


def _with_pieces(segm, pixels: np.ndarray, pieces: dict):
    """The segmentation image ``pixels``: ``segm`` with the sources ``pieces`` (parent label ->
    labels of its pieces, all above ``segm.max_label``) deblended, its labels and slices
    derived from ``segm``'s (the pieces' boxes found within their parents' boxes) instead of
    searched for in the full frame."""
    from photutils.segmentation import SegmentationImage
    from scipy.ndimage import find_objects

    parents = np.array(sorted(pieces), dtype=segm.labels.dtype)
    keep = np.isin(segm.labels, parents, invert=True)
    labels = [segm.labels[keep]]
    slices = [sl for sl, k in zip(segm.slices, keep, strict=True) if k]
    for parent in parents:
        box = segm.slices[segm.get_index(parent)]
        new = np.asarray(pieces[int(parent)])
        first, last = int(new.min()), int(new.max())
        cut = pixels[box]
        inside = (cut >= first) & (cut <= last)
        rel = np.where(inside, cut - (first - 1), 0)
        for k, sl in enumerate(find_objects(rel, max_label=last - first + 1)):
            if first + k in new:
                slices.append(tuple(slice(s.start + o.start, s.stop + o.start)
                                    for s, o in zip(sl, box, strict=True)))
        labels.append(np.sort(new).astype(segm.labels.dtype))
    out = SegmentationImage.__new__(SegmentationImage)
    out.__dict__.update(_data=pixels, labels=np.concatenate(labels), slices=slices,
                        _deblend_label_map={})
    return out


def _group_worker(origin: dict, files: dict, state: dict, deblend: dict, labels, wcs,
                  options: dict) -> tuple:
    """In a worker process: deblend the sources ``labels`` and measure them (the kept ones and
    the pieces), on memory-mapped copies of the parent's arrays. A piece is measured against
    the segmentation image in which only this group's sources are deblended: that differs
    from the full one only inside other groups' deblended sources, where a label is replaced
    by other non-zero labels, and a measurement only tells its own label from any other.
    Returns the rows (NUMBER: labels of that segmentation image), the pieces of each
    deblended source and photutils' warnings."""
    _check_origin(origin)
    arrays = {k: np.load(files[k], mmap_mode="r", allow_pickle=False)
              for k in ("segm", "convolved", "data", "error", "mask")}
    segm = _segm_from(state, arrays["segm"])
    pixels, pieces, caught = _deblend_group(arrays["convolved"], segm, deblend, labels)
    parents = np.array(sorted(pieces), dtype=segm.labels.dtype)
    own = np.concatenate([np.setdiff1d(labels, parents)] + [pieces[p] for p in parents])
    local = _with_pieces(segm, pixels, pieces)
    index = np.flatnonzero(np.isin(local.labels, own))
    table = _measure(arrays["data"], local, arrays["error"], arrays["mask"], wcs, options,
                     index)
    return table, pieces, caught


def _write_shared(file: str, arr: np.ndarray) -> None:
    """A copy of ``arr`` for the workers (a ``.npy`` file they memory-map)."""
    np.save(file, arr, allow_pickle=False)


def _shared_empty(file: str, shape, dtype) -> np.ndarray:
    """A new ``.npy`` file for the workers, memory-mapped to be filled in place."""
    return np.lib.format.open_memmap(file, mode="w+", dtype=dtype, shape=shape)


def _final_labels(segm, parts) -> list[np.ndarray]:
    """The labels that one serial ``deblend_sources`` call (relabelled consecutively) gives
    the rows of each group's table: the sources kept whole in label order, then the pieces
    of the deblended ones, in the order of their parents' labels."""
    owner = {parent: g for g, (_, pieces, _) in enumerate(parts) for parent in pieces}
    kept = np.setdiff1d(segm.labels, np.fromiter(owner, dtype=np.int64, count=len(owner)))
    of_piece = [{} for _ in parts]
    label = len(kept)
    for parent in sorted(owner):
        g = owner[parent]
        for old in parts[g][1][parent]:
            label += 1
            of_piece[g][int(old)] = label
    max0 = segm.max_label
    out = []
    for g, (table, _, _) in enumerate(parts):
        number = np.asarray(table["NUMBER"], dtype=np.int64)
        final = np.searchsorted(kept, number) + 1
        pieces = number > max0
        final[pieces] = [of_piece[g][int(n)] for n in number[pieces]]
        out.append(final)
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


def _watch_caller(alive) -> None:
    """Initializer of the workers: exit when the calling process is gone. Killed (SIGKILL),
    it cannot shut its pool down, and the workers, children of the fork server rather than
    of the caller, would wait for work forever. ``alive``: the reading end of a pipe whose
    writing end only the caller holds; the system closes it when the caller dies (before it
    is reaped, whatever its pid becomes), and the read then ends."""
    import threading
    import time

    def watch() -> None:
        try:
            alive.recv()  # the caller never sends: returns only at its end
        except (EOFError, OSError):
            pass
        # the pool's own shutdown closes the pipe too: a worker that is leaving anyway gets
        # the time to do so
        time.sleep(1.0)
        os._exit(1)

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

    ctx = _context()
    watched, alive = ctx.Pipe(duplex=False)  # the workers hold the first end, we the second
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_watch_caller,
                               initargs=(watched,))
    try:
        for _ in range(n):
            pool.submit(_warm_up)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        watched.close()
        alive.close()
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


def _parallel(arrays, data, convolved, segm, rms, gain, mask, wcs, deblend: dict,
              options: dict, pool, nproc: int, path) -> tuple[Table, float | None]:
    """Deblending and `_measure` split over the ``nproc`` processes of ``pool`` (started
    before the detection). Returns the table and SKYSIG (the median of ``rms``, found while
    the workers work).

    The sources are dealt out to ``nproc`` groups of about equal deblending cost; each worker
    deblends its group and measures it at once, reading the arrays from ``.npy`` files of the
    run directory of ``arrays`` (memory-mapped). The pieces get the labels one serial call
    gives, and the rows are put in label order: the catalogue is that of ``nproc=1``, bit for
    bit.
    """
    import warnings

    from ..exceptions import MeasurementWarning

    try:
        origin = _code_origin()
        state = _segm_state(segm)
        # a source's deblending costs about its box's area (32 detections in the box)
        boxes = np.array([(sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start)
                          for sl in segm.slices], dtype=float)
        groups = [segm.labels[k] for k in _deal(boxes, nproc)]
        arrays.share("segm", segm.data)
        _total_error(data, rms, gain if gain else np.inf,
                     out=arrays.empty("error", data.shape, np.float32), threads=nproc)
        for name, arr in (("convolved", convolved), ("data", data), ("mask", mask)):
            arrays.share(name, arr)
        futures = [pool.submit(_group_worker, origin, dict(arrays.files), state, deblend, g,
                               wcs, options)
                   for g in groups]
        # while they work
        sky = _median(rms) if np.ndim(rms) == 2 else None
        parts = [_result(f, path) for f in futures]
    except BaseException:
        # workers are waited for (not left running) before the run directory goes
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    for _, _, caught in parts:
        # photutils' deblending warnings (AstropyUserWarning), raised in the workers
        for message in caught:
            warnings.warn(str(message), MeasurementWarning, stacklevel=4)
    final = _final_labels(segm, parts)
    order = np.argsort(np.concatenate(final), kind="stable")
    tables = [t for t, _, _ in parts]
    table = Table()
    for name in tables[0].colnames:
        col = np.concatenate([np.asarray(t[name]) for t in tables])[order]
        table[name] = col if tables[0][name].unit is None else col * tables[0][name].unit
    table["NUMBER"] = np.concatenate(final)[order]
    return table, sky


def _deal(weights: np.ndarray, n: int) -> list[np.ndarray]:
    """Indices of ``weights`` dealt out to ``n`` groups of about equal sums: heaviest first,
    in snake order (0, 1, ..., n-1, n-1, ..., 0, 0, ...); each group's indices sorted."""
    order = np.argsort(-np.asarray(weights, dtype=float), kind="stable")
    turn = np.arange(order.size) % (2 * n)
    group = np.where(turn < n, turn, 2 * n - 1 - turn)
    return [np.sort(order[group == k]) for k in range(n)]


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


def _total_error(data: np.ndarray, rms, gain: float, out: np.ndarray | None = None,
                 threads: int = 1) -> np.ndarray:
    """``photutils.utils.calc_total_error(data, rms, effective_gain=gain)``, bit for bit, in
    row strips (``threads`` at once): ``sqrt(rms² + max(data / gain, 0))``, into ``out`` when
    given. photutils broadcasts the gain to a full-frame float64 array and masks it; for a
    scalar gain that is most of its time."""
    rms = np.broadcast_to(np.asarray(rms, dtype=np.float32), data.shape)
    if out is None:
        out = np.empty(data.shape, dtype=np.result_type(data.dtype, rms.dtype))
    rows = max(1, (1 << 22) // max(1, data.shape[1]))

    def strip(y_start: int, y_stop: int) -> None:
        for y0 in range(y_start, y_stop, rows):
            sl = slice(y0, min(y0 + rows, y_stop))
            # the quotient in float64 then stored, as photutils' in-place division by its
            # float64 gain array does
            var = np.divide(data[sl], np.float64(gain), dtype=np.float64).astype(data.dtype)
            np.maximum(var, 0, out=var)
            err = rms[sl] ** 2
            err += var
            np.sqrt(err, out=out[sl])

    _in_strips(strip, data.shape[0], threads)
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


def _median(arr: np.ndarray) -> float:
    """``np.median(arr.astype(float))`` without the full-frame float64 copy (a second on a
    7DT frame): the middle values are found in the array's own dtype, which orders its values
    as float64 does, then averaged in float64."""
    flat = np.ravel(arr)
    n = flat.size
    k = n // 2
    if np.isnan(flat).any():  # as np.median
        return math.nan
    if n % 2:
        return float(np.partition(flat, k)[k])
    part = np.partition(flat, k)
    # the (k-1)-th value is the largest of those before the k-th
    return float((float(part[:k].max()) + float(part[k])) / 2)


def _add_sky_columns(t: Table, rms, detection_sigma: float, sky: float | None = None) -> None:
    """SKYSIG (median background RMS; ``sky`` when already found) and THRESHOLD (detection
    level at each centroid)."""
    if not len(t):
        return
    x, y = _value(t["X_IMAGE"]), _value(t["Y_IMAGE"])
    rms_at = np.asarray(rms)
    if rms_at.ndim == 2:
        iy = np.clip(np.round(y).astype(int), 0, rms_at.shape[0] - 1)
        ix = np.clip(np.round(x).astype(int), 0, rms_at.shape[1] - 1)
        local = rms_at[iy, ix].astype(float)
        sky = _median(rms_at) if sky is None else sky
    else:
        local = np.full(len(t), float(rms_at))
        sky = float(rms_at)
    t["SKYSIG"] = np.full(len(t), sky) * u.ct
    t["THRESHOLD"] = detection_sigma * local * u.ct
