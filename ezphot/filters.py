"""Filters' central wavelengths: 7DT medium bands (``m400`` ... ``m875``) and broad bands.

A 7DT medium-band name is ``m`` followed by its central wavelength in nm (25 nm steps, FWHM
~25 nm). Broad bands take the central (pivot) wavelengths of the SDSS system (Fukugita et
al. 1996; Doi et al. 2010), which 7DT's broad ``u g r i z`` follow.
"""

from __future__ import annotations

import re

__all__ = ["BROAD_BANDS_NM", "MEDIUM_BANDS", "central_wavelength", "is_known_filter"]

# pivot wavelengths in nm (SDSS u g r i z)
BROAD_BANDS_NM: dict[str, float] = {"u": 355.1, "g": 468.6, "r": 616.5, "i": 748.1,
                                    "z": 893.1}
#: the 7DT medium-band set, 400 to 875 nm in 25 nm steps
MEDIUM_BANDS: tuple[str, ...] = tuple(f"m{w}" for w in range(400, 900, 25))

_MEDIUM = re.compile(r"^m(\d{3,4})$")


def is_known_filter(name: str) -> bool:
    """True when `central_wavelength` knows ``name``.

    Parameters
    ----------
    name : str
        A filter name.

    Returns
    -------
    bool
        Whether its central wavelength is known.
    """
    return central_wavelength(name, default=None) is not None


def central_wavelength(name: str, default: float | None | type = KeyError) -> float | None:
    """Central wavelength of a filter in nm.

    Parameters
    ----------
    name : str
        ``'m400'`` ... (medium band: the number is the wavelength in nm), or ``'u'``, ``'g'``,
        ``'r'``, ``'i'``, ``'z'`` (case-sensitive: ``'U'`` is not SDSS ``u``).
    default : float or None, optional
        Returned for an unknown name; without it an unknown name raises ``KeyError``.

    Returns
    -------
    float or None
        The central wavelength in nm, or ``default`` for an unknown name.

    Raises
    ------
    KeyError
        For an unknown name when no ``default`` is given.
    """
    text = str(name).strip()
    match = _MEDIUM.match(text)
    if match:
        return float(match.group(1))
    if text in BROAD_BANDS_NM:
        return BROAD_BANDS_NM[text]
    if default is KeyError:
        raise KeyError(f"unknown filter {name!r}: its central wavelength is not known (7DT "
                       "medium bands 'm<nm>' and broad u g r i z are)")
    return default
