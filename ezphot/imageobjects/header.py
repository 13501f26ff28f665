"""Reading image metadata the same way across telescopes: the first header key present wins."""

from __future__ import annotations

import math
import warnings

from astropy.io import fits
from astropy.time import Time

__all__ = ["HEADER_KEYS", "first_value", "header_float", "header_obsdate"]

# property -> header keys, in order of preference (documented in docs/images.md)
HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "exptime": ("EXPTIME", "EXPOSURE"),
    "filter": ("FILTER", "FILTNAME", "BAND"),
    "telname": ("TELESCOP", "TELNAME"),
    "objname": ("OBJECT", "OBJNAME", "TARGET"),
    "observatory": ("OBSERVAT", "OBSERVATORY"),
    "egain": ("EGAIN",),
    "rdnoise": ("RDNOISE", "READNOIS", "RDNOIS"),
    "saturation": ("SATURATE", "SATLEVEL"),
    "seeing": ("SEEING",),
    "depth": ("UL5", "UL5_APER", "DEPTH", "UL5_1"),
    "ncombine": ("NCOMBINE", "NCOMB"),
}


def first_value(header: fits.Header, keys: tuple[str, ...]):
    """Value of the first key of ``keys`` present (and not blank) in ``header``, else None.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header.
    keys : tuple of str
        Keywords in order of preference.

    Returns
    -------
    object or None
        The value (strings stripped), or None.
    """
    for key in keys:
        if key in header:
            value = header[key]
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            return value.strip() if isinstance(value, str) else value
    return None


def header_float(header: fits.Header, keys: tuple[str, ...]) -> float | None:
    """First present key as a finite float, else None (non-numeric values are ignored).

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header.
    keys : tuple of str
        Keywords in order of preference.

    Returns
    -------
    float or None
        The value, or None.
    """
    value = first_value(header, keys)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def header_obsdate(header: fits.Header) -> str | None:
    """Observation start as an ISO string: DATE-OBS (+TIME-OBS), else JD, else MJD.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header.

    Returns
    -------
    str or None
        ISO date-time (UTC), or None when the header has no usable date.
    """
    date = first_value(header, ("DATE-OBS", "DATEOBS"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA 'dubious year' for far-future/past dates
        if date is not None:
            date = str(date)
            time_obs = first_value(header, ("TIME-OBS",))
            if "T" not in date and time_obs:
                date = f"{date}T{time_obs}"
            try:
                return Time(date, format="isot" if "T" in date else None, scale="utc").isot
            except ValueError:
                try:
                    return Time(date, scale="utc").isot
                except ValueError:
                    return date
        for key, fmt in (("JD", "jd"), ("MJD-OBS", "mjd"), ("MJD", "mjd")):
            value = header_float(header, (key,))
            if value is not None:
                return Time(value, format=fmt, scale="utc").isot
    return None
