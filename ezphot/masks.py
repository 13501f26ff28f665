"""Masks: a circle at a position, and the detected sources (docs: Background and noise maps).

Both return a new `Mask` OR-combined with the mask given; nothing is written unless the
caller saves it.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.io import fits

from . import _validate as validate
from ._aliases import renamed
from .imageobjects.maps import Mask

log = logging.getLogger(__name__)

__all__ = ["calculate_circularmask", "calculate_sourcemask", "paint_disks"]


def _start(img, target_mask) -> np.ndarray:
    if target_mask is None:
        return np.zeros(img.shape, dtype=bool)
    m = target_mask if isinstance(target_mask, Mask) else Mask(np.asarray(target_mask))
    m.check_shape(img.shape, img.path)
    log.info("External mask is loaded.")
    return m.data.copy()


@renamed(x_position="x", y_position="y", target_srcmask="target_mask")
def calculate_circularmask(img, *, x: float, y: float, radius_arcsec: float,
                           unit: str = "coord", target_mask=None) -> Mask:
    """Mask the pixels whose centres lie within ``radius_arcsec`` of a position.

    ``unit='coord'``: RA/Dec in degrees; the distance of each pixel centre is measured on the
    sky through the full WCS (SIP/TPV included). ``unit='pixel'``: 0-based pixels and a radius
    converted with the pixel scale.

    Parameters
    ----------
    img : ScienceImage or path
        The image.
    x, y : float
        The centre: RA, Dec (deg) or 0-based pixels. ``x_position``/``y_position``:
        deprecated aliases.
    radius_arcsec : float
        Radius in arcsec.
    unit : {'coord', 'pixel'}
        How the centre is given.
    target_mask : Mask, optional
        A mask to add to (not modified: the result is a new mask). ``target_srcmask``:
        deprecated alias.

    Returns
    -------
    Mask
        True inside the circle (and where ``target_mask`` is True).
    """
    from .photometry.geometry import to_pixel

    radius_arcsec = validate.number(radius_arcsec, "radius_arcsec", minimum=0, maximum=180 * 3600)
    validate.positions(x, y, unit, ("x", "y"))
    mask = _start(img, target_mask)
    ny, nx = img.shape
    px, py = to_pixel(img, x, y, unit)
    px, py = float(px[0]), float(py[0])
    scale = img.pixelscale
    if not scale:
        raise ValueError(f"{img.path}: radius_arcsec needs a pixel scale (no WCS)")
    if unit == "coord":
        # the window must hold the disk along the pixels' shortest extent on the sky (oblong
        # or sheared pixels): the smallest singular value of the WCS's pixel scale matrix
        cd = img.require_wcs().celestial.pixel_scale_matrix
        scale = min(scale, float(np.linalg.svd(cd, compute_uv=False).min()) * 3600.0)
    # bounding box with a margin for distortion, then the exact test inside it
    r_pix = radius_arcsec / scale * 1.2 + 2
    x0, x1 = max(0, int(np.floor(px - r_pix))), min(nx, int(np.ceil(px + r_pix)) + 1)
    y0, y1 = max(0, int(np.floor(py - r_pix))), min(ny, int(np.ceil(py + r_pix)) + 1)
    if x0 < x1 and y0 < y1:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        if unit == "coord":
            wcs = img.require_wcs()
            centre = wcs.pixel_to_world(px, py)
            sky = wcs.pixel_to_world(xx.ravel(), yy.ravel())
            inside = (sky.separation(centre).arcsec <= radius_arcsec).reshape(xx.shape)
        else:
            inside = (xx - px) ** 2 + (yy - py) ** 2 <= (radius_arcsec / scale) ** 2
        mask[y0:y1, x0:x1] |= inside
    log.info("Added circular mask at (%.6g, %.6g) with radius %garcsec (%d pixels)",
             x, y, radius_arcsec, int(mask.sum()))
    header = fits.Header({"MASKTYPE": "circle", "MASKX": x, "MASKY": y,
                          "MASKUNIT": unit})
    header["MASKR"] = (radius_arcsec, "radius [arcsec]")
    return Mask(mask, header=header, target_img=img.path,
                target_hdu=img.product_hdu)


def _paint_integer_disks(mask: np.ndarray, x, y, r) -> None:
    """`paint_disks` for integer centres: one stencil per radius, reused (4x faster)."""
    ny, nx = mask.shape
    stencils: dict[float, np.ndarray] = {}
    for xc, yc, rc in zip(x, y, r, strict=False):
        st = stencils.get(rc)
        if st is None:
            k = int(np.floor(rc))
            yy, xx = np.ogrid[-k:k + 1, -k:k + 1]
            st = stencils[rc] = xx * xx + yy * yy <= rc * rc
        k = st.shape[0] // 2
        y0, y1, x0, x1 = yc - k, yc + k + 1, xc - k, xc + k + 1
        if y1 <= 0 or x1 <= 0 or y0 >= ny or x0 >= nx:
            continue
        cy0, cx0 = max(0, -y0), max(0, -x0)
        cy1, cx1 = st.shape[0] - max(0, y1 - ny), st.shape[1] - max(0, x1 - nx)
        mask[max(0, y0):min(ny, y1), max(0, x0):min(nx, x1)] |= st[cy0:cy1, cx0:cx1]


def paint_disks(mask: np.ndarray, x, y, r) -> None:
    """Set to True the pixels whose centres are within r of (x, y), in place (0-based).

    Parameters
    ----------
    mask : 2-D bool numpy.ndarray
        Modified in place.
    x, y : array_like
        Centres in 0-based pixels.
    r : array_like
        Radii in pixels.
    """
    ny, nx = mask.shape
    x, y, r = np.asarray(x), np.asarray(y), np.asarray(r, float)
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        _paint_integer_disks(mask, x.tolist(), y.tolist(), r.tolist())
        return
    for xc, yc, rc in zip(np.asarray(x, float), np.asarray(y, float), r, strict=False):
        x0, x1 = max(0, int(np.floor(xc - rc))), min(nx, int(np.ceil(xc + rc)) + 1)
        y0, y1 = max(0, int(np.floor(yc - rc))), min(ny, int(np.ceil(yc + rc)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (xx - xc) ** 2 + (yy - yc) ** 2 <= rc * rc


def _seeing_pixel(img) -> float | None:
    """Header seeing in pixels (None when unknown)."""
    seeing, scale = getattr(img, "seeing", None), getattr(img, "pixelscale", None)
    return seeing / scale if seeing and scale else None


@renamed(target_srcmask="target_mask")
def calculate_sourcemask(img, *, target_mask=None, sigma: float = 5,
                         mask_radius_factor: float = 3, saturation_level: float | None = None,
                         binary=None, detection_filter="gauss",
                         detection_filter_fwhm: float | None = None,
                         timeout: float | None = None) -> Mask:
    """Mask the sources SExtractor detects at ``sigma``.

    Each source is covered by a disk of ``mask_radius_factor`` × its isophotal radius
    (sqrt(ISOAREA/π), at least its FWHM); sources with pixels at or above
    ``saturation_level`` get twice that radius, since their wings reach further (default:
    the telescope profile's ``mask_saturation``, 50000 ADU for 7DT).

    For a background map, a low ``sigma`` (1.5-2) also covers the faint sources whose light
    would otherwise raise it: on a full 7DT-like frame, sigma 1.5 brought the masked map to
    +0.04 ADU of the true sky, sigma 5 to +0.10 (tests/test_maps.py, README).

    Parameters
    ----------
    img : ScienceImage or path
        The image.
    target_mask : Mask, optional
        A mask to add to (not modified: the result is a new mask). ``target_srcmask``:
        deprecated alias.
    sigma : float
        Detection threshold in units of the background RMS.
    mask_radius_factor : float
        Disk radius in units of each source's isophotal radius.
    saturation_level : float
        SATUR_LEVEL (ADU): sources with pixels at or above it count as saturated.
    binary : str or SExtractorBinary, optional
        The SExtractor binary (default: found as for `sex_photometry`).
    detection_filter : str or 2-D array
        Detection filter, as in `sex_photometry`.
    detection_filter_fwhm : float, optional
        FWHM (px) of the 'gauss' filter (default: the seeing).
    timeout : float, optional
        Seconds allowed to the binary (default ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else one that
        grows with the image size).

    Returns
    -------
    Mask
        True on the detected sources (and where ``target_mask`` is True).
    """
    from .sextractor.convfilter import resolve_detection_filter
    from .sextractor.imagerun import image_config, run_on_image

    validate.number(sigma, "sigma", minimum=0)
    validate.number(mask_radius_factor, "mask_radius_factor", minimum=0)
    if saturation_level is None:  # a telescope fact: the profile's
        saturation_level = img.profile.mask_saturation
    validate.saturation_level(saturation_level)
    mask = _start(img, target_mask)
    log.info("Masking source... [sigma = %g, mask_radius_factor = %g]", sigma, mask_radius_factor)
    config = image_config(img, saturation_level=saturation_level, DETECT_THRESH=sigma,
                          ANALYSIS_THRESH=sigma, PHOT_APERTURES=5,
                          PIXEL_SCALE=img.pixelscale or 1.0)
    params = ["X_IMAGE", "Y_IMAGE", "ISOAREA_IMAGE", "FWHM_IMAGE", "FLAGS"]
    # detection filter (sextractor/convfilter.py): header seeing, else the shipped 3x3
    dfilter = resolve_detection_filter(detection_filter, fwhm=detection_filter_fwhm,
                                       seeing_pixel=_seeing_pixel(img))
    run = run_on_image(img, config=config, parameters=params, prefix="ezphot-srcmask-",
                       detection_filter=dfilter, detection_sigma=sigma, binary=binary,
                       timeout=timeout)
    t = run.catalogs[0].table
    radius = np.maximum(np.sqrt(np.asarray(t["ISOAREA_IMAGE"], float) / np.pi),
                        np.asarray(t["FWHM_IMAGE"], float).clip(0, 50))
    saturated = (np.asarray(t["FLAGS"]) & 4) != 0
    radius = mask_radius_factor * radius * np.where(saturated, 2.0, 1.0)
    paint_disks(mask, np.asarray(t["X_IMAGE"], float) - 1, np.asarray(t["Y_IMAGE"], float) - 1,
                radius)
    log.info("%d non-saturated, %d saturated sources", int((~saturated).sum()),
             int(saturated.sum()))
    log.info("%d sources masked.", len(t))
    header = fits.Header({"MASKTYPE": "sources", "MASKSIG": sigma, "MASKFAC": mask_radius_factor,
                          "MASKSAT": saturation_level, "MASKNSRC": len(t),
                          "MASKFILT": dfilter.kind, "MASKFFWH": dfilter.fwhm or 0.0})
    return Mask(mask, header=header, target_img=img.path,
                target_hdu=img.product_hdu)
