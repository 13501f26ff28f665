"""Checks of the numbers and maps given to the public functions, naming the argument.

Each check raises a ValueError-compatible ezphot exception (`ArgumentError`, or `ImageError`
for a map that cannot be used) whose message names the argument and the problem, before any
work is done.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .exceptions import ArgumentError, ImageError

__all__ = ["number", "size", "egain", "saturation_level", "seeing", "apertures_fit",
           "positions", "background_map", "rms_map", "maps", "photometry_args",
           "header_number", "ZeroPoint", "zeropoint"]

# Map checks run by row blocks: no full-frame temporary arrays.
_BLOCK_ROWS = 512


def number(value, name: str, *, minimum: float | None = None, strict: bool = True,
           maximum: float | None = None, optional: bool = False) -> float | None:
    """``value`` as a finite float (``> minimum`` if ``strict`` else ``>= minimum``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.generic):
        raise ArgumentError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ArgumentError(f"{name} must be a finite number, got {v}")
    if minimum is not None and (v <= minimum if strict else v < minimum):
        raise ArgumentError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {v:g}")
    if maximum is not None and v > maximum:
        raise ArgumentError(f"{name} must be <= {maximum:g}, got {v:g}")
    return v


def size(value, name: str, *, maximum: int | None = None, what: str = "") -> int:
    """A positive whole number (pixels, meshes...) up to ``maximum``."""
    v = number(value, name, minimum=1, strict=False)
    if v != int(v):
        raise ArgumentError(f"{name} must be a whole number, got {v:g}")
    if maximum is not None and v > maximum:
        raise ArgumentError(f"{name} = {int(v)} is larger than {what or maximum}")
    return int(v)


def egain(value) -> float | None:
    """Gain in e-/ADU: None (from the header), 0 (unknown: no Poisson term) or positive."""
    return number(value, "egain", minimum=0, strict=False, optional=True)


def saturation_level(value) -> float:
    """Saturation level in ADU: positive."""
    return number(value, "saturation_level", minimum=0)


def seeing(value) -> float | None:
    """Seeing FWHM in arcsec: None (from the header) or positive."""
    return number(value, "seeing", minimum=0, optional=True)


def header_number(header, key: str, path=None, *, what: str = "") -> float:
    """Header keyword ``key`` as a finite float.

    The one reading of a number from a header (zero points: `zeropoint`,
    `ezphot.calibration.header_zeropoint`). A missing keyword, a value that is not a number
    (text, a FITS logical) or is not finite raises `ImageError` naming ``path`` and ``key``.

    Parameters
    ----------
    header : astropy.io.fits.Header, mapping or None
        The image's header.
    key : str
        The keyword.
    path : path-like, optional
        The image's file (named in the error).
    what : str
        What the keyword holds, for the error (``'zero-point'``).

    Returns
    -------
    float
        Its value.
    """
    where = f"{path}: " if path is not None else ""
    if header is None or key not in header:
        raise ImageError(f"{where}no {what + ' ' if what else ''}keyword {key!r} in the header")
    raw = header[key]
    try:
        if isinstance(raw, bool | np.bool_):  # FITS T/F: float() would make it 1 or 0
            raise TypeError(raw)
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"{where}header {key} = {raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise ImageError(f"{where}header {key} = {value} is not finite")
    return value


class ZeroPoint(float):
    """A zero point (a float) that carries where it came from.

    Parameters
    ----------
    value : float
        The zero point (mag of 1 ADU).
    source : str
        ``'zeropoint'`` (a number given), ``'header <KEY>'`` (the keyword named), ...: what
        ``meta['zeropoint']`` and ``meta['depth']['source']`` of the catalogue say.
    """

    __slots__ = ("source",)

    def __new__(cls, value, source: str = "zeropoint"):
        self = super().__new__(cls, value)
        self.source = source
        return self

    def __reduce__(self):
        return (type(self), (float(self), self.source))


def zeropoint(value, header=None, path=None) -> ZeroPoint:
    """The ``zeropoint`` argument of a photometry function, resolved once.

    A number (None: 0, instrumental magnitudes), or the name of the header keyword that
    holds the image's zero point (read by `header_number`: a missing keyword or a value that
    is not a finite number is an `ImageError` naming the file and the keyword).

    Parameters
    ----------
    value : float, str or None
        The argument.
    header : astropy.io.fits.Header or mapping, optional
        The image's header (read for a keyword).
    path : path-like, optional
        The image's file (named in the errors).

    Returns
    -------
    ZeroPoint
        The zero point; its ``source`` is ``'zeropoint'`` (a number) or ``'header <KEY>'``,
        as `ezphot.calibration.fill_depth` records it.
    """
    if isinstance(value, str):
        key = value.strip()
        if not key:
            raise ArgumentError("zeropoint must be a number or a header keyword, got ''")
        return ZeroPoint(header_number(header, key, path, what="zero-point"), f"header {key}")
    if isinstance(value, ZeroPoint):
        return value
    v = number(value, "zeropoint", optional=True)
    return ZeroPoint(0.0 if v is None else v)


def apertures_fit(diameters_px, shape: tuple[int, int], name: str, path) -> None:
    """Refuse apertures wider than the image (their masks alone could exhaust memory)."""
    largest = max(shape)
    too_big = [float(d) for d in np.atleast_1d(diameters_px) if not d <= largest]
    if too_big:
        raise ArgumentError(f"{name}: aperture diameter(s) {[round(d, 3) for d in too_big]} "
                            f"pixels larger than the image {path} ({shape[1]}x{shape[0]} pixels)")


# |pixel| beyond this is not a position on any detector: refused (pixel input) or treated as
# off the image (positions projected from the sky far from the frame).
MAX_PIXEL = 1.0e7


def positions(x, y, unit: str, names: tuple[str, str] = ("x", "y")
              ) -> tuple[np.ndarray, np.ndarray]:
    """Positions as given (pixels or RA/Dec in degrees), checked: finite, Dec within ±90,
    pixels within ±1e7."""
    if unit not in ("pixel", "coord"):
        raise ArgumentError(f"unit must be 'pixel' or 'coord', got {unit!r}")
    out = []
    for arr, name in ((x, names[0]), (y, names[1])):
        try:
            a = np.atleast_1d(np.asarray(arr, dtype=float))
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"{name} must be numbers, got {arr!r:.80}") from exc
        bad = ~np.isfinite(a)
        if bad.any():
            raise ArgumentError(f"{name} has {int(bad.sum())} non-finite value(s) (first at "
                                f"index {int(np.argmax(bad))}: {a[np.argmax(bad)]})")
        out.append(a)
    px, py = out
    if unit == "coord":
        bad = np.abs(py) > 90
        if bad.any():
            raise ArgumentError(f"{names[1]} (Dec, degrees) must be within [-90, 90]: "
                                f"{int(bad.sum())} value(s) outside, e.g. {py[np.argmax(bad)]}")
    else:
        for a, name in ((px, names[0]), (py, names[1])):
            bad = np.abs(a) > MAX_PIXEL
            if bad.any():
                raise ArgumentError(f"{name} (pixels) has {int(bad.sum())} absurd value(s) "
                                    f"beyond ±{MAX_PIXEL:.0e}, e.g. {a[np.argmax(bad)]}")
    return px, py


def _bad_count(data: np.ndarray, mask: np.ndarray | None, bad_of, fine) -> int:
    """Pixels where ``bad_of`` holds, outside ``mask``; ``fine(block)`` is a one-reduction
    test that a block has none (the usual case: one fast pass over the map)."""
    n = 0
    for y0 in range(0, data.shape[0], _BLOCK_ROWS):
        block = data[y0:y0 + _BLOCK_ROWS]
        with np.errstate(all="ignore"):
            if fine(block):
                continue
        bad = bad_of(block)
        if not bad.any():
            continue
        if mask is not None:
            bad &= ~mask[y0:y0 + _BLOCK_ROWS]
        n += int(np.count_nonzero(bad))
    return n


def background_map(bkg, mask, name: str = "target_bkg", *, masked_ok: bool = True) -> None:
    """Non-finite background pixels must be masked (``masked_ok``) or absent: each would
    silently drop or distort the sources on it."""
    data = getattr(bkg, "data", None)
    if data is None or np.ndim(data) != 2:
        return
    # a finite sum means no NaN or infinity in the block
    n = _bad_count(data, mask if masked_ok else None, lambda b: ~np.isfinite(b),
                   lambda b: np.isfinite(np.add.reduce(b, axis=None, dtype=np.float64)))
    if n and masked_ok:
        raise ImageError(f"{name} has {n} non-finite (NaN or infinite) pixel(s) outside the "
                         "mask: fill them, or mask them with target_mask")
    if n:
        raise ImageError(f"{name} has {n} non-finite (NaN or infinite) pixel(s): fill them "
                         "(SExtractor sees them even under target_mask: its sky statistics "
                         "change)")


def rms_map(rms, mask, name: str = "target_bkgrms") -> None:
    """An RMS map must be positive and finite wherever the pixels are used (not masked)."""
    data = getattr(rms, "data", None)
    if data is None or np.ndim(data) != 2:
        return
    # min > 0 fails on NaN too; infinite values were refused when the Errormap was made
    n = _bad_count(data, None if mask is None else mask, lambda b: ~(b > 0) | np.isinf(b),
                   lambda b: b.min() > 0)
    if n:
        raise ImageError(f"{name} has {n} zero, negative or non-finite pixel(s) outside the "
                         "mask: an RMS must be positive (mask those pixels with target_mask)")


def maps(bkg, rms, mask, *, masked_nan_ok: bool = True) -> None:
    """The resolved maps of a photometry call (`resolve_maps`): a constant background must be
    finite, map pixels outside the mask finite (background) and positive (RMS).
    ``masked_nan_ok=False``: no non-finite background pixel at all, even masked."""
    m = getattr(mask, "data", mask)
    if isinstance(bkg, numbers.Real) and not isinstance(bkg, bool):
        number(bkg, "target_bkg")
    background_map(bkg, m, masked_ok=masked_nan_ok)
    rms_map(rms, m)


_check_egain, _check_saturation, _check_seeing = egain, saturation_level, seeing


def resolved_maps(img, target_bkg, target_bkgrms, target_mask, *,
                  masked_nan_ok: bool = True, check_pixels: bool = True):
    """As `ezphot.photometry.common.resolve_maps`, but each argument is named in its error;
    then `maps` (``check_pixels=False``: the constant background only, for callers that
    check the map pixels they use)."""
    from .imageobjects import Background, Errormap, Mask
    from .photometry.common import as_map

    out = []
    for value, cls, name in ((target_bkg, Background, "target_bkg"),
                             (target_bkgrms, Errormap, "target_bkgrms"),
                             (target_mask, Mask, "target_mask")):
        if cls is Background and isinstance(value, int | float):
            out.append(value)  # a constant background
            continue
        try:
            out.append(as_map(value, cls, img, name))
        except ImageError as exc:
            if name in str(exc):
                raise
            raise ImageError(f"{name}: {exc}") from exc
    if check_pixels:
        maps(*out, masked_nan_ok=masked_nan_ok)
    elif isinstance(out[0], numbers.Real):
        number(out[0], "target_bkg")
    return tuple(out)


def photometry_args(*, egain=None, saturation_level=None, seeing=None, kron_factor=None,
                    detection_sigma=None, zeropoint=None) -> None:
    """The numeric options shared by the photometry entry points (None: not given)."""
    _check_egain(egain)
    if saturation_level is not None:
        _check_saturation(saturation_level)
    _check_seeing(seeing)
    if kron_factor is not None:
        number(kron_factor, "kron_factor", minimum=0)
    if detection_sigma is not None:
        number(detection_sigma, "detection_sigma", minimum=0)
    number(zeropoint, "zeropoint", optional=True)
