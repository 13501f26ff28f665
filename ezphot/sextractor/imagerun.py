"""Running the SExtractor binary on an image: the one layer every caller goes through.

`ezphot.sextractor.runner` runs the binary on files in a run directory and knows nothing of
images. This module adds what running it on an *image* needs, once for every caller
(detection photometry, the seeing measurement, the source mask, the detections of the
injection tests and of the blank apertures):

- the telescope profile's configuration, with the header keywords that must not override the
  arguments switched off (`image_config`: SATUR_KEY/GAIN_KEY point to a keyword no header has);
- a run directory of its own (`ezphot._io.run_directory`), removed afterwards;
- a file the binary can read (`readable_input`: the file itself, or a plain float32 copy of a
  tile-compressed image);
- the background, RMS and mask maps turned into what the binary takes (`prepare_maps`);
- the detection filter written into the run directory, and the run (`run_on_image`).

`ezphot.photometry.sexphot` keeps the column contract (0-based positions, world-coordinate
check, extra columns) of the catalogue the binary returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._io import run_directory, write_float_image
from ..imageobjects import Background, BaseImage
from .binary import SExtractorBinary, find_sextractor
from .convfilter import DetectionFilter, detection_filter_config
from .runner import SExtractorRun, run_sextractor

log = logging.getLogger(__name__)

__all__ = ["NO_KEY", "MASKED_RMS", "image_config", "readable_input", "prepare_maps",
           "plain_primary_image", "run_on_image", "detect_sources"]

# Keywords ezphot sets so that header values (SATURATE, GAIN) never override the arguments:
# SExtractor reads SATUR_KEY/GAIN_KEY from the image header when present.
NO_KEY = "EZNOKEY"
# Weight threshold above which MAP_RMS pixels are treated as bad (masked).
MASKED_RMS = 1.0e30


def image_config(img: BaseImage, *, saturation_level: float | None = None, gain: float = 0.0,
                 **keywords) -> dict:
    """The configuration of a run on ``img``: its profile's, then ezphot's keywords.

    SATUR_LEVEL is ``saturation_level`` (default: the image's, header SATURATE else the
    profile's) and GAIN ``gain``; the header never overrides them (SATUR_KEY/GAIN_KEY name a
    keyword no header has). ``keywords`` (SExtractor keywords) are set last.

    Parameters
    ----------
    img : BaseImage
        The image (its telescope profile gives the base configuration).
    saturation_level : float, optional
        SATUR_LEVEL in ADU (default: ``img.saturation``).
    gain : float
        GAIN in e-/ADU (0: SExtractor's infinite gain, no source Poisson noise).
    **keywords
        SExtractor keywords, set last.

    Returns
    -------
    dict
        SExtractor keyword -> value (a new dict; the profile is not modified).
    """
    config = dict(img.profile.sextractor)
    config.update(SATUR_LEVEL=img.saturation if saturation_level is None else saturation_level,
                  SATUR_KEY=NO_KEY, GAIN=gain, GAIN_KEY=NO_KEY)
    config.update(keywords)
    return config


def readable_input(img: BaseImage, workdir: Path) -> str:
    """A path the binary can read: the file itself, or a plain copy (tile-compressed input).

    Parameters
    ----------
    img : BaseImage
        The image.
    workdir : Path
        The run directory, where a plain copy is written when one is needed.

    Returns
    -------
    str
        The path (``'file.fits[N]'`` for an extension), or that of the copy.
    """
    path = img.sextractor_path
    if path is not None:
        return path
    log.debug("%s is tile-compressed: measuring a plain copy", img.path)
    try:
        return write_float_image(workdir / "image.fits", img.shape, img.read_rows, img.header)
    finally:
        img.close()


def prepare_maps(img: BaseImage, workdir: Path, image_path: str, config: dict, bkg, rms, mask,
                  saturation_level: float) -> str:
    """Write the background-subtracted image and the weight map the binary needs.

    SExtractor takes no background map: a map is subtracted into a copy and the binary told
    BACK_TYPE MANUAL 0, with the saturation level lowered by the background removed. RMS map
    and mask become one weight image in which masked pixels are bad, hence neither detected
    nor measured (SExtractor's own way: in apertures they are replaced by their mirror pixel
    about the centre). An RMS map loaded from a file, unmodified and without a mask is
    linked instead of copied. Files are written concurrently (file writes release the GIL).

    Marking masked pixels as -1e30 in the subtracted copy instead would spare the weight file,
    but SExtractor 2.25 treats such pixels differently in apertures (zero, not the mirror
    pixel: a star half under a mask lost half its FLUX_AUTO) and in its noise estimate, so
    the mask stays in the weight map.

    Parameters
    ----------
    img : BaseImage
        The image.
    workdir : Path
        The run directory the files are written to.
    image_path : str
        The path the binary reads the image from (`readable_input`).
    config : dict
        The run's configuration: updated in place with the background, weight, saturation
        and interpolation keywords these maps need.
    bkg : Background, float or None
        A map (subtracted into a copy) or a constant (BACK_VALUE); None: SExtractor's own.
    rms : Errormap or None
        Background RMS map (MAP_RMS weight).
    mask : Mask or None
        Pixels excluded from detection and measurement (True = excluded).
    saturation_level : float
        SATUR_LEVEL of the image as given (lowered by the subtracted background map).

    Returns
    -------
    str
        The image path the binary should measure: the background-subtracted copy when
        ``bkg`` is a map, else ``image_path``.
    """
    from concurrent.futures import ThreadPoolExecutor

    jobs = {}
    if isinstance(bkg, Background):
        jobs["image"] = (workdir / "image_subbkg.fits",
                         lambda a, b: img.read_rows(a, b) - bkg.data[a:b], img.header)
        # a smooth map: its median from a sparse grid of pixels is the median
        config["SATUR_LEVEL"] = saturation_level - float(np.nanmedian(bkg.data[::8, ::8]))
        config.update(BACK_TYPE="MANUAL", BACK_VALUE=0.0)
    elif bkg is not None:
        config.update(BACK_TYPE="MANUAL", BACK_VALUE=float(bkg))
    linked = None
    if rms is not None:
        # absolute RMS map; masked pixels beyond WEIGHT_THRESH are bad
        config.update(WEIGHT_TYPE="MAP_RMS", WEIGHT_THRESH=MASKED_RMS / 10, RESCALE_WEIGHTS="N")
        source = rms.unmodified_file() if mask is None else None
        if source is not None and plain_primary_image(source):
            # loaded from a file and unmodified: handed over as it is, not copied
            linked = workdir / "weight.fits"
            os.symlink(source.resolve(), linked)  # a plain name for the configuration file
        else:
            def weight_rows(a: int, b: int) -> np.ndarray:
                rows = np.array(rms.data[a:b], dtype=np.float32)
                if mask is not None:
                    rows[mask.data[a:b]] = MASKED_RMS
                return rows

            jobs["weight"] = (workdir / "weight.fits", weight_rows, None)
    elif mask is not None:
        # mask only: relative weights 1/0, rescaled by SExtractor to the measured noise
        def weight_rows(a: int, b: int) -> np.ndarray:
            return (~mask.data[a:b]).astype(np.float32)

        config.update(WEIGHT_TYPE="MAP_WEIGHT", WEIGHT_THRESH=0.5, RESCALE_WEIGHTS="Y")
        jobs["weight"] = (workdir / "weight.fits", weight_rows, None)
    if rms is not None or mask is not None:
        config["WEIGHT_GAIN"] = "N"
    if mask is not None:
        config["INTERP_TYPE"] = "NONE"  # masked pixels stay excluded, not filled in
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            written = {k: pool.submit(write_float_image, path, img.shape, rows, header)
                       for k, (path, rows, header) in jobs.items()}
            written = {k: f.result() for k, f in written.items()}
    finally:
        img.close()  # the file handle read_rows opened
    if "weight" in written or linked is not None:
        config["WEIGHT_IMAGE"] = written.get("weight", str(linked))
    log.debug("%s: written for the binary: %s%s", img.path, sorted(written) or "nothing",
              "; RMS map linked" if linked is not None else "")
    return written.get("image", image_path)


def plain_primary_image(path: Path) -> bool:
    """True when the primary HDU of ``path`` is a 2-D image SExtractor can read.

    Parameters
    ----------
    path : Path
        A FITS file.

    Returns
    -------
    bool
        False too when the file cannot be read.
    """
    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError):
        return False
    return header.get("NAXIS") == 2 and header.get("BITPIX") in (8, 16, 32, -32, -64)


def run_on_image(img: BaseImage, *, config: Mapping[str, object], parameters: Sequence[str],
                 n_apertures: int = 1, prefix: str = "ezphot-sex-", bkg=None, rms=None,
                 mask=None, detection_filter: DetectionFilter | None = None,
                 detection_sigma: float | None = None,
                 overrides: Mapping[str, object] | None = None,
                 binary: SExtractorBinary | str | None = None, timeout: float | None = None,
                 checkimages: Sequence[str] | None = None) -> SExtractorRun:
    """Run the binary on ``img`` in a run directory of its own (removed afterwards).

    Parameters
    ----------
    img : BaseImage
        The image.
    config : mapping
        The run's configuration (usually from `image_config`); not modified.
    parameters : sequence of str
        Output parameters.
    n_apertures : int
        Number of PHOT_APERTURES.
    prefix : str
        Prefix of the run directory's name.
    bkg, rms, mask : Background or float, Errormap, Mask, optional
        Maps, checked against the image beforehand; see `prepare_maps`.
    detection_filter : DetectionFilter, optional
        Written into the run directory (FILTER/FILTER_NAME).
    detection_sigma : float, optional
        With ``detection_filter``: DETECT_THRESH becomes ``detection_sigma`` times the
        filter's threshold scale (ignored without a filter).
    overrides : mapping, optional
        Keywords set last (the user's ``sex_params``: they win over everything).
    binary, timeout, checkimages
        As `run_sextractor`.

    Returns
    -------
    SExtractorRun
        Its check images are read before the run directory goes.
    """
    config = dict(config)
    binary = binary if isinstance(binary, SExtractorBinary) else find_sextractor(
        binary, timeout=timeout)
    with run_directory(prefix) as workdir:
        image_path = readable_input(img, workdir)
        if bkg is not None or rms is not None or mask is not None:
            image_path = prepare_maps(img, workdir, image_path, config, bkg, rms, mask,
                                      float(config["SATUR_LEVEL"]))
        if detection_filter is not None:
            config.update(detection_filter_config(detection_filter, workdir))
            if detection_sigma is not None:
                config["DETECT_THRESH"] = detection_sigma * detection_filter.threshold_scale
        config.update(overrides or {})
        return run_sextractor(image_path, workdir=workdir, config=config, parameters=parameters,
                              n_apertures=n_apertures, binary=binary, timeout=timeout,
                              checkimages=checkimages)


def detect_sources(img: BaseImage, *, sigma: float = 3.0, binary=None,
                   timeout: float | None = None) -> Table:
    """The binary's sources on the image at ``sigma`` (0-based X/Y_IMAGE), for the PSF of the
    injection tests and to keep blank apertures and injected stars off sources.

    Parameters
    ----------
    img : BaseImage
        The image.
    sigma : float
        DETECT_THRESH and ANALYSIS_THRESH in sigmas.
    binary : SExtractorBinary or str, optional
        The SExtractor binary (default: found as `find_sextractor` does).
    timeout : float, optional
        Seconds allowed to the binary.

    Returns
    -------
    astropy.table.Table
        X_IMAGE, Y_IMAGE (0-based), FLUX_AUTO, FLUXERR_AUTO, FLUX_MAX, BACKGROUND,
        ISOAREA_IMAGE, FWHM_IMAGE, ELONGATION and FLAGS of every source.
    """
    config = image_config(img, DETECT_THRESH=sigma, ANALYSIS_THRESH=sigma, PHOT_APERTURES=5,
                          PIXEL_SCALE=img.pixelscale or 1.0, CLEAN="Y")
    params = ["X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLUX_MAX", "BACKGROUND",
              "ISOAREA_IMAGE", "FWHM_IMAGE", "ELONGATION", "FLAGS"]
    run = run_on_image(img, config=config, parameters=params, prefix="ezphot-detect-",
                       binary=binary, timeout=timeout)
    t = run.catalogs[0].table
    t["X_IMAGE"] = np.asarray(t["X_IMAGE"], float) - 1.0
    t["Y_IMAGE"] = np.asarray(t["Y_IMAGE"], float) - 1.0
    return t
