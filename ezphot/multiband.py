"""Multi-band catalogues: detect once, measure every filter at the same sky positions.

`multiband_catalog` detects the sources on one image (the deepest by default) with
`sex_photometry`, then measures every image of the set at the detections' sky positions
with forced circular photometry in the same apertures (in arcsec) — and, on request, in each
detection's Kron ellipse. Positions and ellipses go through each image's own WCS, so frames
on other grids, rotations or telescopes are fine. Both steps run on the batch engine
(`ezphot.batch.run_batch`: a local process pool or a Dask cluster; resumable). The result is
one row per detection with, per filter, ``FLUX_APER_<filter>``, ``FLUXERR_APER_<filter>``,
``MAG_APER_<filter>``, ``MAGERR_APER_<filter>``, ``FLAGS_<filter>`` and ``NFRAMES_<filter>``.

Fluxes are flux densities in µJy (AB: ``MAG = -2.5 log10(FLUX / µJy) + 23.9``) in a filter
whose frames all have a zero point, instrumental ADU (``MAG = -2.5 log10(FLUX)``) in a filter
whose frames have none. Several frames in one filter are combined by inverse-variance
weighting: ``F = Σ w_i F_i / Σ w_i``, ``σ = (Σ w_i)^-1/2``, ``w_i = σ_i^-2``, over the
frames where the source's flux and error are finite and its aperture wholly on the frame
(`usable_measurements`; ``NFRAMES_<filter>`` of them; ``FLAGS_<filter>``: the forced FLAGS
of those frames, OR-ed). The
weights come from each frame's measured errors, whose Poisson term grows with the measured
flux: for sources dominated by their own photon noise the weighted mean leans low by a
fraction of the per-frame error (the usual price of inverse-variance weighting).

`plot_sed` draws one source's flux density against the filters' central wavelengths
(`ezphot.filters`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import wait
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from .dataobjects import Catalog, CatalogInfo
from .exceptions import (
    ArgumentError,
    EzphotError,
    ForeignFileError,
    ImageError,
    MeasurementWarning,
    MissingDependencyError,
)

log = logging.getLogger(__name__)

__all__ = ["multiband_catalog", "save_multiband", "combine_inverse_variance",
           "usable_measurements", "image_depth", "image_zeropoint", "plot_sed",
           "ZEROPOINT_KEYS", "AB_UJY_ZEROPOINT", "MultibandError"]

#: header keywords read for a frame's zero point when none is given (first present wins)
ZEROPOINT_KEYS = ("ZP", "ZP_AUTO", "MAGZERO", "MAGZP", "PHOTZP")
#: AB magnitude of 1 µJy
AB_UJY_ZEROPOINT = 23.9
_KRON_MIN_RADIUS = 3.5  # SExtractor's PHOT_AUTOPARAMS minimum (in units of A, B)
# what a local worker imports when it starts (before the detection ends): forced photometry
_WARM_UP = ("ezphot.photometry.forced", "ezphot.photometry.depth", "ezphot.background",
            "photutils.aperture", "scipy.interpolate", "scipy.ndimage", "astropy.wcs")


class MultibandError(EzphotError, RuntimeError):
    """A multi-band run could not produce its catalogue (e.g. the detection failed)."""


# -- inputs ----------------------------------------------------------------------------------

def image_zeropoint(img, zeropoint=None) -> tuple[float | None, str]:
    """A frame's zero point and where it came from.

    Parameters
    ----------
    img : BaseImage
    zeropoint : float, str or None
        A number; a header keyword (``'EZZP'``...); None: the image's ``zp`` attribute when
        set (a calibrated image), else the first of `ZEROPOINT_KEYS` in its header.

    Returns
    -------
    (float or None, str)
        The zero point (None when unknown) and its source ('given', 'header ZP', 'image').
    """
    if zeropoint is not None and not isinstance(zeropoint, str):
        value = float(zeropoint)
        if not math.isfinite(value):
            raise ArgumentError(f"{img.path}: zero point must be finite, got {zeropoint!r}")
        return value, "given"
    header = img.header
    if isinstance(zeropoint, str):
        from ._validate import zeropoint as resolve

        value = resolve(zeropoint, header, img.path)
        return float(value), value.source
    attr = getattr(img, "zp", None)
    if isinstance(attr, int | float) and math.isfinite(attr):
        return float(attr), "image"
    from .calibration import header_zeropoint

    return header_zeropoint(header, ZEROPOINT_KEYS)


def _zeropoint_for(img, index: int, zeropoints) -> tuple[float | None, str]:
    """Resolve the ``zeropoints`` argument of `multiband_catalog` for one image."""
    if zeropoints is None or isinstance(zeropoints, str | int | float):
        return image_zeropoint(img, zeropoints)
    if isinstance(zeropoints, Mapping):
        for key in (str(img.path), img.path.name, img.filter):
            if key is not None and key in zeropoints:
                return image_zeropoint(img, zeropoints[key])
        return image_zeropoint(img, None)
    return image_zeropoint(img, zeropoints[index])


def image_depth(img, zeropoint: float | None, aperture_diameter_arcsec: float, *,
                step: int = 8) -> float:
    """5σ point-source depth of a frame in one aperture, from its pixel noise.

    ``ZP - 2.5 log10(5 σ_pix √N_pix)``: σ_pix the robust standard deviation (1.4826 × MAD,
    insensitive to sources) of every ``step``-th row and column, N_pix the aperture's area in
    pixels. Without a zero point, ZP = 0 (a depth in instrumental magnitudes, comparable
    between frames only through their noise per aperture).

    Parameters
    ----------
    img : ScienceImage
        The frame.
    zeropoint : float or None
        Its zero point (None: instrumental, 0).
    aperture_diameter_arcsec : float
        The aperture's diameter.
    step : int
        Sample every ``step``-th row and column for the noise.

    Returns
    -------
    float
        The 5σ limit in magnitudes.
    """
    sample = np.array(img.data[::step, ::step], dtype=np.float64)
    img.clear()  # drop the memory map: the frame is measured later in a worker
    sample = sample[np.isfinite(sample)]
    if sample.size < 100:
        raise ImageError(f"{img.path}: too few finite pixels to measure the noise")
    med = np.median(sample)
    sigma = 1.4826 * np.median(np.abs(sample - med))
    if not sigma > 0:
        raise ImageError(f"{img.path}: the pixel noise is zero (a blank or constant frame)")
    npix = math.pi * (aperture_diameter_arcsec / img.pixelscale / 2.0) ** 2
    return float((zeropoint or 0.0) - 2.5 * math.log10(5.0 * sigma * math.sqrt(npix)))


def _load(images) -> list:
    from .photometry.common import as_image

    out, seen = [], {}
    for item in images:
        img = as_image(item)
        try:  # one file under two names (a link) is one image too: measured once
            st = os.stat(img.path)
            key = (st.st_dev, st.st_ino, img.hdu)
        except OSError:
            key = (os.path.realpath(img.path), img.hdu)
        if key in seen:
            raise ArgumentError(f"{_label(img)}: given twice (as {seen[key]})")
        seen[key] = _label(img)
        out.append(img)
    if not out:
        raise ArgumentError("multiband_catalog needs at least one image")
    return out


def _label(img) -> str:
    """The image as `run_batch` and the workers take it: its path, with ``[HDU]`` when the
    file holds several images (the path alone is the first image HDU)."""
    return img.descriptor().label


def _check_image(img) -> str:
    """The image's filter; a WCS and a pixel scale are required (names the file otherwise)."""
    img.require_wcs()
    band = img.filter
    if not band:
        raise ImageError(f"{img.path}: no filter in the header (FILTER, FILTNAME or BAND)")
    band = str(band).strip()
    if not band.replace("_", "").replace("-", "").isalnum():
        raise ImageError(f"{img.path}: filter {band!r} cannot be part of a column name")
    return band


# -- combination -----------------------------------------------------------------------------

def combine_inverse_variance(fluxes, errors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean over frames (axis 0), ignoring non-finite entries.

    Parameters
    ----------
    fluxes, errors : array (n_frames, n_sources)
        Fluxes and their 1σ errors in one unit. An entry counts when both are finite and the
        error is positive.

    Returns
    -------
    (flux, error, n_frames)
        NaN flux and error where no frame counts.
    """
    f = np.atleast_2d(np.asarray(fluxes, float))
    e = np.atleast_2d(np.asarray(errors, float))
    ok = np.isfinite(f) & np.isfinite(e) & (e > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ok, 1.0 / np.where(ok, e, 1.0) ** 2, 0.0)
        wsum = w.sum(axis=0)
        flux = np.where(wsum > 0, (w * np.where(ok, f, 0.0)).sum(axis=0) / wsum, np.nan)
        err = np.where(wsum > 0, 1.0 / np.sqrt(wsum), np.nan)
    return flux, err, ok.sum(axis=0)


def usable_measurements(fluxes, errors, flags) -> np.ndarray:
    """Which per-frame measurements (n_frames, n_sources) enter the combination.

    Those with a finite flux, a finite positive error and an aperture wholly on the frame
    with a finite sky (FLAGS without 1, 2, 8, 16); for a source that has none of those, every
    finite one (its FLAGS then say why).

    Parameters
    ----------
    fluxes, errors, flags : array_like
        Per-frame fluxes, their errors and forced-photometry FLAGS, shape (n_frames,
        n_sources).

    Returns
    -------
    numpy.ndarray of bool
        Shape (n_frames, n_sources): True where the measurement enters the combination.
    """
    from .photometry.forced import FLAG_BADSKY, FLAG_NONFINITE, FLAG_OFF, FLAG_PARTIAL

    f = np.asarray(fluxes, float)
    e = np.asarray(errors, float)
    finite = np.isfinite(f) & np.isfinite(e) & (e > 0)
    bad = FLAG_PARTIAL | FLAG_OFF | FLAG_NONFINITE | FLAG_BADSKY
    clean = finite & ((np.asarray(flags) & bad) == 0)
    return np.where(clean.any(axis=0), clean, finite)


# -- the catalogue ---------------------------------------------------------------------------

class _SkyPreparation:
    """The frames' whole-frame sky meshes, made by the local workers while this process
    detects (`ezphot.photometry.forced.prepare_sky_cache` into ``directory``).

    At most ``limit`` are submitted at a time, and none after `stop` (the detection's end):
    the forced photometry's tasks then come next in the workers' queue, and a frame not
    prepared makes its own sky as it always does.
    """

    def __init__(self, submit, paths: list[str], directory: Path, limit: int):
        self._submit, self._todo, self._directory = submit, list(paths), str(directory)
        self._slots = threading.Semaphore(limit)
        self._stopped = threading.Event()
        self.futures: list = []
        self._thread = threading.Thread(target=self._feed, daemon=True,
                                        name="ezphot-sky-preparation")
        self._thread.start()

    def _feed(self) -> None:
        from .photometry.forced import prepare_sky_cache

        while self._todo:
            self._slots.acquire()
            if self._stopped.is_set():
                return
            try:
                future = self._submit(prepare_sky_cache, self._todo.pop(0), self._directory)
            except Exception as exc:  # noqa: BLE001 - a preparation only saves time
                log.warning("Multi-band: sky preparation not submitted (%s: %s)",
                            type(exc).__name__, exc)
                return
            if future is None:  # the pool broke or is shut down
                return
            self.futures.append(future)
            future.add_done_callback(lambda _: self._slots.release())

    def stop(self) -> None:
        """Submit no more (the running ones finish in the pool)."""
        self._stopped.set()
        self._slots.release()  # wake the feeder if it waits for a slot
        self._thread.join()

    def prepared(self) -> int:
        """How many frames' sky was made; waits for the ones submitted (they came before
        the forced photometry in the workers' queue: done by now)."""
        wait(self.futures)
        return sum(1 for f in self.futures if not f.cancelled() and f.exception() is None
                   and f.result())


def _run(paths, method, batch, options) -> list[dict]:
    """`run_batch` over paths; the summary rows as dicts."""
    from .batch import run_batch

    summary = run_batch(paths, method, **batch, **options)
    return [{k: (v.item() if isinstance(v, np.generic) else v)
             for k, v in zip(summary.colnames, row, strict=True)} for row in summary]


def multiband_catalog(images: Iterable, *, detection_image=None,
                      aperture_diameter_arcsec: float | Sequence[float] = (5.0,),
                      zeropoints=None, detection_sigma: float = 3.0,
                      detection_options: Mapping | None = None,
                      elliptical: bool = False,
                      forced_options: Mapping | None = None, workers: int | None = None,
                      client=None, scheduler: str | None = None, on_error: str = "raise",
                      resume: bool = True, progress: bool | None = None,
                      output: str | os.PathLike | None = None, overwrite: bool = False) -> Catalog:
    """One catalogue of a field observed in several filters.

    Parameters
    ----------
    images : ImageSet or iterable of images/paths
        The frames (each with a WCS and a FILTER); any number per filter. An image of a
        file of several images is measured in its own HDU (``meta['frames']`` names it
        ``path[HDU]``); one file under two names (a link) is refused as given twice.
    detection_image : image or path, optional
        Where to detect. Default: the deepest of ``images`` — the highest 5σ point-source
        depth in the first aperture, ``ZP − 2.5 log10(5 σ_pix √N_pix)`` (`image_depth`;
        σ_pix a robust pixel standard deviation, ZP the frame's zero point, 0 when unknown).
        ``meta['detection']`` records every frame's depth and the choice. A detection image
        outside ``images`` is only used to detect.
    aperture_diameter_arcsec : float or sequence
        Circular aperture diameters (arcsec), the same on every frame. The first gives
        ``FLUX_APER_<filter>``, the next ``FLUX_APER_1_<filter>``...
    zeropoints : float, str, mapping or sequence, optional
        Zero points (AB magnitude of 1 ADU): one number for all frames; a header keyword; a
        mapping from path, file name or filter to a number or keyword; or one entry per
        image. Default: each image's ``zp`` attribute if set, else its header's ZP (or
        ZP_AUTO, MAGZERO, MAGZP, PHOTZP); frames without any stay instrumental. A filter
        mixing frames with and without a zero point is refused (they cannot be combined).
    detection_sigma : float
        Detection threshold of `sex_photometry` (per pixel of the filtered image, as there;
        the tutorial's 3 by default).
    detection_options : mapping, optional
        More `sex_photometry` options (``target_bkg``..., ``detection_filter``...).
    elliptical : bool
        Also measure each detection's Kron ellipse on every frame — SExtractor's FLUX_AUTO
        aperture on the detection image: KRON_RADIUS × A_IMAGE, × B_IMAGE (set the factor
        with ``detection_options={'kron_factor': ...}``): ``FLUX_ELIP_<filter>``,
        ``NFRAMES_ELIP_<filter>``, ``FLAGS_ELIP_<filter>``... The ellipse's sky shape
        (arcsec, position angle east of north: THETA_J2000) goes through each frame's WCS.
    forced_options : mapping, optional
        More options of the forced photometry (``annulus_width_arcsec``, ``method``...).
    workers, client, scheduler, on_error, resume, progress
        As `ezphot.batch.run_batch` (default: one worker process per core, each measuring
        one frame at a time; ``workers=1`` runs in this process). Local workers start with
        the call (`ezphot.batch.local_pool`) and, while the detection runs, make the frames'
        whole-frame sky estimates, which the forced photometry reads (the same numbers). With
        ``on_error='skip'`` a failed frame is left out and listed in ``meta['failed']`` (the
        detection must succeed).
    output : path-like, optional
        Save the catalogue: ``.fits`` (a `Catalog`, with checksums) or ``.parquet``
        (pyarrow). Written atomically; an existing file is replaced only with
        ``overwrite=True`` and only when ezphot wrote it (`ForeignFileError` otherwise).
    overwrite : bool
        Replace an existing ``output`` that ezphot wrote.

    Returns
    -------
    Catalog
        ``data``: NUMBER, ALPHA_J2000, DELTA_J2000, the detection's X/Y_IMAGE, FLAGS,
        CLASS_STAR (prefixed ``DET_``), then per filter (in the order of increasing central
        wavelength, unknown filters last) the columns above. ``meta``: 'filters' (name,
        central wavelength, calibrated, frames, depth), 'frames' (per frame: image, filter,
        zero point and its source, catalogue, depth), 'detection', 'failed',
        'apertures_arcsec',
        'timing' (wall seconds of the phases: choice_s, detection_s, forced_s, combine_s),
        'sky_prepared' (frames whose whole-frame sky the local workers made while the
        detection ran).

    Notes
    -----
    Depth: in a filter whose frames have zero points, each frame's ``depth`` is its 5σ
    point-source limit in the first aperture from its own noise
    (`ezphot.calibration.point_source_depth`), and the filter's ``depth`` that of the
    combined flux (from the combined errors of its faint sources); None in instrumental
    filters.

    Per-frame catalogues are written beside the frames by the batch engine (``<frame>.cat``
    for the detection, ``<frame>.circ.<hash>.cat``...): a second run with ``resume=True``
    reuses those that verify.
    """
    from ._io import run_directory
    from .batch import local_pool, local_submitter
    from .calibration import point_source_depth
    from .filters import central_wavelength

    if on_error not in ("skip", "raise"):
        raise ArgumentError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    diam = np.atleast_1d(np.asarray(aperture_diameter_arcsec, float))
    if diam.ndim != 1 or diam.size == 0 or not np.all(np.isfinite(diam) & (diam > 0)):
        raise ArgumentError(f"aperture_diameter_arcsec must be positive numbers, got "
                            f"{aperture_diameter_arcsec!r}")
    output = Path(output) if output is not None else None
    if output is not None:
        if output.suffix.lower() not in (".fits", ".parquet"):
            raise ArgumentError(f"{output}: the output must end in .fits or .parquet")
        if os.path.lexists(output):
            _check_output(output, overwrite)
    imgs = _load(images)
    if not isinstance(zeropoints, str | int | float | Mapping | type(None)):
        zeropoints = list(zeropoints)
        if len(zeropoints) != len(imgs):
            raise ArgumentError(f"zeropoints has {len(zeropoints)} entries for {len(imgs)} "
                                "images")
    bands = [_check_image(img) for img in imgs]
    zps = [_zeropoint_for(img, i, zeropoints) for i, img in enumerate(imgs)]
    for band in sorted(set(bands)):
        known = {zps[i][0] is not None for i in range(len(imgs)) if bands[i] == band}
        if len(known) > 1:
            names = [imgs[i].path.name for i in range(len(imgs))
                     if bands[i] == band and zps[i][0] is None]
            raise ArgumentError(f"filter {band}: frames without a zero point ({names}) "
                                "cannot be combined with calibrated ones")

    # Local workers start now: while this process measures the frames' depths and runs
    # the (serial) detection, they import what the forced photometry needs; the forced
    # photometry of every frame then goes to them at once (`ezphot.batch.local_pool`).
    local = client is None and scheduler is None and len(imgs) > 1
    # The frames' whole-frame sky (most of a forced call's time on a full frame) does not
    # depend on the positions: local workers make it while this process detects, into a
    # run directory of this call that the forced calls read (``sky_cache``: the same
    # numbers). With workers=1 the circular pass stores it and the elliptical pass reads it.
    fo = forced_options or {}
    own_sky = (client is None and scheduler is None
               and not any(fo.get(k) is not None
                           for k in ("target_bkg", "target_bkgrms", "target_mask", "sky_cache"))
               and (fo.get("annulus_width_arcsec") is None or elliptical))
    timing = {}
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(run_directory("ezphot-multiband-")) if own_sky else None
        n_workers = stack.enter_context(local_pool(workers if local else 1, warm_up=_WARM_UP))
        submit = local_submitter() if n_workers and run is not None else None
        preparation = _SkyPreparation(submit, [_label(img) for img in imgs], run,
                                      limit=max(1, n_workers - 1)) if submit is not None \
            else None
        if preparation is not None:
            stack.callback(preparation.stop)  # on failure too, before the pool shuts down
        sky = {"sky_cache": str(run)} if run is not None else {}
        # the detection image
        if detection_image is not None:
            det_img = _load([detection_image])[0]
            _check_image(det_img)
            depths = None
            why = "given"
        else:
            use_zp = all(z[0] is not None for z in zps)
            depths = [image_depth(img, zps[i][0] if use_zp else None, float(diam[0]))
                      for i, img in enumerate(imgs)]
            det_img = imgs[int(np.argmax(depths))]
            why = ("deepest (calibrated 5-sigma depth)" if use_zp
                   else "deepest (instrumental: lowest noise per aperture)")
        log.info("Detection on %s (%s)", det_img.path, why)
        timing["choice_s"] = time.perf_counter() - t_start

        batch = dict(workers=workers, client=client, scheduler=scheduler, on_error=on_error,
                     resume=resume, progress=progress)
        det_opts = dict(detection_options or {})
        det_opts.setdefault("aperture_diameter_arcsec", diam.tolist())
        det_opts.setdefault("aperture_diameter_seeing", [])
        det_opts.setdefault("detection_sigma", detection_sigma)
        row = _run([_label(det_img)], "sextractor", {**batch, "workers": 1}, det_opts)[0]
        if row["status"] == "failed":
            raise MultibandError(f"{det_img.path}: detection failed: {row['error']}")
        detcat = Catalog(row["catalog"])
        dt = detcat.data
        n = len(dt)
        if n == 0:
            raise MultibandError(f"{det_img.path}: no source detected at {detection_sigma} sigma")
        ra = np.asarray(dt["ALPHA_J2000"], float)
        dec = np.asarray(dt["DELTA_J2000"], float)

        timing["detection_s"] = time.perf_counter() - t_start - timing["choice_s"]
        if preparation is not None:
            preparation.stop()
        paths = [_label(img) for img in imgs]
        fopts = dict(forced_options or {})
        fopts.update(x=ra, y=dec, unit="coord", aperture_diameter_arcsec=diam.tolist(),
                     aperture_diameter_seeing=[], **sky)
        circ_rows = _run(paths, "circular", batch, fopts)
        ell_rows = None
        if elliptical:
            a_as, b_as, pa = _kron_ellipse(dt, det_img)
            eopts = {k: v for k, v in (forced_options or {}).items()
                     if k not in ("aperture_diameter_arcsec", "aperture_diameter_seeing",
                                  "annulus_width_arcsec")}
            eopts.update(x=ra, y=dec, a=a_as, b=b_as, theta=pa,
                         unit="coord", **sky)
            ell_rows = _run(paths, "elliptical", batch, eopts)
        timing["forced_s"] = (time.perf_counter() - t_start - timing["choice_s"]
                              - timing["detection_s"])
        n_prepared = preparation.prepared() if preparation is not None else 0

    failed = [(r["image"], r["error"]) for r in circ_rows + (ell_rows or [])
              if r["status"] == "failed"]
    bad = {p for p, _ in failed}
    for p, err in failed:
        log.warning("Multi-band: %s left out: %s", p, err)

    table = Table()
    table["NUMBER"] = np.arange(1, n + 1, dtype=np.int32)
    table["ALPHA_J2000"] = ra * u.deg
    table["DELTA_J2000"] = dec * u.deg
    for name in ("X_IMAGE", "Y_IMAGE", "FLAGS", "CLASS_STAR"):
        if name in dt.colnames:
            table[f"DET_{name}"] = dt[name]
    band_order = sorted(set(bands), key=lambda b: (central_wavelength(b, default=None) is None,
                                                    central_wavelength(b, default=0.0) or 0.0,
                                                    b))
    frames_meta, filters_meta = [], []
    kinds = [("APER" if i == 0 else f"APER_{i}", circ_rows) for i in range(diam.size)]
    if elliptical:
        kinds.append(("ELIP", ell_rows))
    for band in band_order:
        idx = [i for i in range(len(imgs)) if bands[i] == band and paths[i] not in bad]
        calibrated = all(zps[i][0] is not None for i in range(len(imgs)) if bands[i] == band)
        for i in (i for i in range(len(imgs)) if bands[i] == band):
            frames_meta.append({"image": paths[i], "filter": band, "zeropoint": zps[i][0],
                                "zeropoint_source": zps[i][1],
                                "catalog": circ_rows[i]["catalog"],
                                "catalog_elliptical": ell_rows[i]["catalog"] if ell_rows else None,
                                "used": paths[i] not in bad, "depth": None,
                                # wall time of the frame's measurement(s) in its worker
                                "seconds": circ_rows[i]["seconds"]
                                + (ell_rows[i]["seconds"] if ell_rows else 0.0)})
        filters_meta.append({"filter": band, "wavelength_nm": central_wavelength(band, None),
                             "calibrated": calibrated, "frames": len(idx), "depth": None})
        frame_at = {f["image"]: k for k, f in enumerate(frames_meta)}
        loaded = {}
        for kind, rows in kinds:
            if id(rows) not in loaded:  # the circular catalogues hold every aperture
                loaded[id(rows)] = [Catalog(rows[i]["catalog"]) for i in idx]
                if rows is circ_rows and calibrated:
                    # each frame's 5-sigma point-source depth in the first aperture, from
                    # its own noise (the zero point is known: `point_source_depth`)
                    for i, cat in zip(idx, loaded[id(rows)], strict=True):
                        d = point_source_depth(cat, zps[i][0], column="APER")
                        frames_meta[frame_at[paths[i]]]["depth"] = \
                            None if d is None else round(d, 4)
            ft = [c.data for c in loaded[id(rows)]]
            # each frame's ADU to µJy (calibrated) or kept in ADU
            scale = [10 ** (-0.4 * (zps[i][0] - AB_UJY_ZEROPOINT)) if calibrated else 1.0
                     for i in idx]
            shape = (len(idx), n)
            fl = np.array([np.asarray(t[f"FLUX_{kind}"], float) * s
                           for t, s in zip(ft, scale, strict=True)]).reshape(shape)
            fe = np.array([np.asarray(t[f"FLUXERR_{kind}"], float) * s
                           for t, s in zip(ft, scale, strict=True)]).reshape(shape)
            # int32 also when every frame of the band failed (an empty list is float64)
            fg = np.array([np.asarray(t["FLAGS"], np.int32) for t in ft],
                          np.int32).reshape(shape)
            use = usable_measurements(fl, fe, fg)
            flux, err, nfr = combine_inverse_variance(np.where(use, fl, np.nan), fe)
            unit = u.uJy if calibrated else u.ct
            zp = AB_UJY_ZEROPOINT if calibrated else 0.0
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = np.where(flux > 0, -2.5 * np.log10(flux) + zp, np.nan)
                magerr = np.where(flux > 0, 2.5 / math.log(10) * err / flux, np.nan)
            table[f"FLUX_{kind}_{band}"] = flux * unit
            table[f"FLUXERR_{kind}_{band}"] = err * unit
            table[f"MAG_{kind}_{band}"] = mag * u.mag
            table[f"MAGERR_{kind}_{band}"] = magerr * u.mag
            if kind in ("APER", "ELIP"):
                suffix = "" if kind == "APER" else "_ELIP"
                table[f"NFRAMES{suffix}_{band}"] = nfr.astype(np.int16)
                # the flags of the measurements combined (all frames' when none is)
                shown = np.where(use.any(axis=0), use, True) if len(idx) else use
                table[f"FLAGS{suffix}_{band}"] = np.bitwise_or.reduce(
                    np.where(shown, fg, 0), axis=0).astype(np.int32) if len(idx) else \
                    np.zeros(n, np.int32)
            if kind == "APER" and calibrated:
                # the filter's depth: S/N 5 in the combined flux (µJy, AB), from the
                # combined errors of its faint sources (no Poisson term removed)
                comb = Catalog(Table({"FLUX_APER": flux, "FLUXERR_APER": err}))
                d = point_source_depth(comb, AB_UJY_ZEROPOINT, column="APER")
                filters_meta[-1]["depth"] = None if d is None else round(d, 4)

    info = CatalogInfo(target_img=str(det_img.path), obsdate=det_img.obsdate,
                       filter=",".join(band_order), catalog_type="multiband",
                       objname=det_img.objname, telname=det_img.telname,
                       observatory=det_img.observatory,
                       aperture_diameter_arcsec=diam.tolist(), seeing=detcat.info.seeing)
    meta = {"method": "multiband", "filters": filters_meta, "frames": frames_meta,
            "detection": {"image": str(det_img.path), "catalog": row["catalog"], "why": why,
                          "seconds": row["seconds"],
                          "detection_sigma": det_opts["detection_sigma"],
                          "depths": None if depths is None
                          else dict(zip(paths, depths, strict=False))},
            "failed": failed, "apertures_arcsec": diam.tolist(),
            # wall time of the phases (s): choice of the detection frame, detection, forced
            # photometry of every frame, combination
            "timing": {**{k: round(v, 3) for k, v in timing.items()},
                       "combine_s": round(time.perf_counter() - t_start
                                          - sum(timing.values()), 3)},
            "flux_unit": {b["filter"]: ("uJy" if b["calibrated"] else "adu")
                          for b in filters_meta},
            "elliptical": {"aperture": "detection's KRON_RADIUS x A_IMAGE, B_IMAGE"}
            if elliptical else None,
            # frames whose whole-frame sky the local workers made during the detection
            "sky_prepared": n_prepared}
    catalog = Catalog(table, info=info, meta=meta)
    if output is not None:
        save_multiband(catalog, output, overwrite=overwrite)
    return catalog


def _kron_ellipse(dt: Table, img):
    """Sky ellipses (semi-axes in arcsec, position angle east of north in deg) of the
    detections' Kron apertures, as SExtractor's FLUX_AUTO: KRON_RADIUS (which already holds
    the Kron factor and SExtractor's minimum) times A_IMAGE and B_IMAGE."""
    need = {"A_IMAGE", "B_IMAGE", "KRON_RADIUS", "THETA_J2000"}
    if not need <= set(dt.colnames):
        raise MultibandError(f"the detection catalogue lacks {sorted(need - set(dt.colnames))}"
                             " for elliptical photometry")
    kron = np.asarray(dt["KRON_RADIUS"], float)
    a = kron * np.asarray(dt["A_IMAGE"], float) * img.pixelscale
    b = kron * np.asarray(dt["B_IMAGE"], float) * img.pixelscale
    pa = np.asarray(dt["THETA_J2000"], float)
    # a degenerate detection (zero axes, no Kron radius) gets a circle of 3.5 pixels
    floor = _KRON_MIN_RADIUS * img.pixelscale
    a = np.where(np.isfinite(a) & (a > 0), a, floor)
    b = np.where(np.isfinite(b) & (b > 0), b, floor)
    pa = np.where(np.isfinite(pa), pa, 0.0)
    return a, b, pa


# -- saving ----------------------------------------------------------------------------------

_PARQUET_TAG = "ezphot_multiband"


def _check_output(path: Path, overwrite: bool) -> None:
    """Raise unless ``path`` may be replaced: ``overwrite`` and a file ezphot wrote."""
    if not overwrite:
        raise FileExistsError(f"{path} exists and overwrite=False")
    if path.suffix.lower() == ".parquet":
        if os.path.islink(path) or not path.is_file() or not _is_ezphot_parquet(path):
            raise ForeignFileError(f"{path}: exists and is not an ezphot multi-band catalogue;"
                                   " ezphot leaves it untouched (move it away to write there)")
    else:
        from .dataobjects.catalog import check_replaceable

        check_replaceable(path)


def _is_ezphot_parquet(path: Path) -> bool:
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
    except Exception:  # not a Parquet file, or unreadable: not ours
        return False
    return any(_PARQUET_TAG.encode() in v for v in meta.values())


def save_multiband(catalog: Catalog, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save a multi-band catalogue: ``.fits`` (`Catalog.save`) or ``.parquet``; atomic, never
    over a file ezphot did not write.

    Parameters
    ----------
    catalog : Catalog
        From `multiband_catalog`.
    path : path-like
        Ends in ``.fits`` or ``.parquet``.
    overwrite : bool
        Replace an existing multi-band catalogue that ezphot wrote (``FileExistsError``
        otherwise; a file ezphot did not write is never replaced: `ForeignFileError`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from ._io import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    if os.path.lexists(path):
        _check_output(path, overwrite)
    if suffix == ".fits":
        return catalog.save(path)
    if suffix != ".parquet":
        raise ArgumentError(f"{path}: the output must end in .fits or .parquet")
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"{path}: Parquet needs pyarrow "
                                     "(pip install 'ezphot[parquet]')") from exc
    import json

    from .dataobjects.catalog import jsonable

    table = catalog.data.copy(copy_data=False)
    table.meta.clear()
    table.meta[_PARQUET_TAG] = json.dumps(jsonable({"info": catalog.info.to_dict(),
                                                     "meta": catalog.meta}), default=str)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table.write(tmp, format="parquet")

    atomic_write(path, write, may_replace=lambda p: _check_output(p, True))
    catalog.info.path = str(path)
    log.info("Multi-band catalogue saved: %s (%d rows)", path, len(table))
    return path


# -- picture ---------------------------------------------------------------------------------

def plot_sed(catalog: Catalog, source: int = 0, *, aperture: int | str = 0, ax=None):
    """A source's flux density against the filters' central wavelengths.

    Parameters
    ----------
    catalog : Catalog
        From `multiband_catalog`.
    source : int
        Row index.
    aperture : int or 'ELIP'
        Which aperture (index into ``aperture_diameter_arcsec``) or the Kron ellipse.
    ax : matplotlib Axes, optional
        Draw into these axes; otherwise a new figure, shown inline in Jupyter.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .filters import BROAD_BANDS_NM, central_wavelength
    from .visualization import new_figure, present

    kind = "ELIP" if aperture == "ELIP" else ("APER" if aperture == 0 else f"APER_{aperture}")
    t = catalog.data
    if not 0 <= source < len(t):
        raise ArgumentError(f"source must be a row index in [0, {len(t)}), got {source}")
    filters = [f["filter"] for f in catalog.meta.get("filters", [])]
    if not filters:
        filters = [c[len(f"FLUX_{kind}_"):] for c in t.colnames
                   if c.startswith(f"FLUX_{kind}_") and not c[len(f"FLUX_{kind}_"):].isdigit()]
    points = []
    for band in filters:
        col = f"FLUX_{kind}_{band}"
        lam = central_wavelength(band, default=None)
        if col not in t.colnames:
            continue
        if lam is None:
            warnings.warn(f"filter {band}: central wavelength unknown, not drawn",
                          MeasurementWarning, stacklevel=2)
            continue
        points.append((lam, float(t[col][source]), float(t[f"FLUXERR_{kind}_{band}"][source]),
                       band, str(t[col].unit or "")))
    owned = ax is None
    if owned:
        fig = new_figure((8, 5))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    units = {p[4] for p in points}
    for broad in (False, True):
        sel = [p for p in points if (p[3] in BROAD_BANDS_NM) == broad]
        if sel:
            ax.errorbar([p[0] for p in sel], [p[1] for p in sel], yerr=[p[2] for p in sel],
                        fmt="s" if broad else "o", ms=7 if broad else 5,
                        mfc="none" if broad else None,
                        label="broad band" if broad else "medium band")
    for lam, flux, _, band, _ in points:
        if np.isfinite(flux):
            ax.annotate(band, (lam, flux), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize="x-small")
    ax.set_xlabel("central wavelength [nm]")
    unit = units.pop() if len(units) == 1 else "mixed units"
    ax.set_ylabel(f"flux density [{'µJy' if unit == 'uJy' else unit}]" if unit != "ct"
                  else "flux [ADU, instrumental]")
    ax.axhline(0.0, color="0.7", lw=0.8)
    row = t[source]
    label = "Kron ellipse" if kind == "ELIP" else \
        f'{catalog.meta.get("apertures_arcsec", ["?"] * 10)[int(aperture)]:g}" aperture'
    ax.set_title(f"source {int(row['NUMBER'])}: RA {float(row['ALPHA_J2000']):.5f}, "
                 f"Dec {float(row['DELTA_J2000']):.5f} ({label})", fontsize="medium")
    if points:
        ax.legend(loc="best", fontsize="small")
    if owned:
        present(fig)
    return fig
