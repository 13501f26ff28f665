"""Positions and aperture shapes: sky <-> pixel (full WCS, SIP/TPV included)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

__all__ = ["to_pixel", "sky_to_pixel_ellipse"]


def to_pixel(img, x, y=None, unit: str = "pixel") -> tuple[np.ndarray, np.ndarray]:
    """Positions as 0-based pixel arrays.

    Parameters
    ----------
    img : BaseImage
    x, y : float, list, array, or a SkyCoord as ``x`` (``y`` None)
        Pixels (0-based) for ``unit='pixel'``; RA, Dec in degrees (ICRS) for ``'coord'``.
    unit : {'pixel', 'coord'}
        How ``x``, ``y`` are given.

    Returns
    -------
    x, y : numpy.ndarray
        0-based pixel positions.
    """
    if isinstance(x, SkyCoord):
        sky = x
    elif unit == "coord":
        ra = np.atleast_1d(np.asarray(x, dtype=float))
        dec = np.atleast_1d(np.asarray(y, dtype=float))
        if ra.shape != dec.shape:
            raise ValueError(f"RA and Dec have different lengths ({ra.size} and {dec.size})")
        sky = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    elif unit == "pixel":
        px = np.atleast_1d(np.asarray(x, dtype=float))
        py = np.atleast_1d(np.asarray(y, dtype=float))
        if px.shape != py.shape:
            raise ValueError(f"x and y have different lengths ({px.size} and {py.size})")
        return px, py
    else:
        raise ValueError(f"unit must be 'pixel' or 'coord', got {unit!r}")
    wcs = img.require_wcs()
    px, py = wcs.world_to_pixel(np.atleast_1d(sky))
    return np.atleast_1d(np.asarray(px, float)), np.atleast_1d(np.asarray(py, float))


def sky_to_pixel_ellipse(img, px, py, a_arcsec, b_arcsec, pa_deg):
    """Semi-axes (arcsec) and position angle (deg east of north) -> pixels and radians.

    The local WCS at each position maps the directions of the two axes, so rotated, flipped
    and distorted WCSs give the right pixel ellipse.

    Parameters
    ----------
    img : BaseImage
        The image (with a celestial WCS).
    px, py : float or array
        Centres in 0-based pixels.
    a_arcsec, b_arcsec : float or array
        Semi-major and semi-minor axes in arcsec.
    pa_deg : float or array
        Position angle of the major axis, degrees east of north.

    Returns
    -------
    (a_pix, b_pix, theta_rad)
        theta counter-clockwise from +x, as photutils and SExtractor's THETA_IMAGE.
    """
    wcs = img.require_wcs()
    px, py = np.atleast_1d(px).astype(float), np.atleast_1d(py).astype(float)
    a = np.broadcast_to(np.asarray(a_arcsec, float), px.shape)
    b = np.broadcast_to(np.asarray(b_arcsec, float), px.shape)
    pa = np.broadcast_to(np.asarray(pa_deg, float), px.shape)
    center = wcs.pixel_to_world(px, py)
    step = 1.0 * u.arcsec

    def pixel_vector(angle_deg):
        moved = center.directional_offset_by(angle_deg * u.deg, step)
        mx, my = wcs.world_to_pixel(moved)
        return np.asarray(mx) - px, np.asarray(my) - py

    ax_, ay_ = pixel_vector(pa)
    bx_, by_ = pixel_vector(pa + 90.0)
    a_pix = a * np.hypot(ax_, ay_)
    b_pix = b * np.hypot(bx_, by_)
    theta = np.arctan2(ay_, ax_)
    return a_pix, b_pix, theta
