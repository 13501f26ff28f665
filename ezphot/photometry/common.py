"""Helpers shared by the photometry methods: inputs, apertures, catalogue info and saving."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import astropy.units as u
import numpy as np

from .._io import hdu_suffix, product_path
from ..dataobjects.catalog import Catalog, CatalogInfo
from ..exceptions import ImageError
from ..imageobjects import Background, BaseImage, Errormap, Mask, ScienceImage
from ..imageobjects.maps import ImageMap
from .registry import get_method

log = logging.getLogger(__name__)

__all__ = ["as_image", "as_list", "as_map", "resolve_maps", "aperture_diameters",
           "catalog_info", "catalog_path", "finish_catalog", "provenance", "forced_suffix",
           "expected_suffix", "expect_provenance", "call_options"]


def as_image(target_img: BaseImage | str | os.PathLike) -> BaseImage:
    """Accept an image object or a path.

    Parameters
    ----------
    target_img : BaseImage or path-like
        An image, or a FITS file to open as a `ScienceImage`.

    Returns
    -------
    BaseImage
        The image.
    """
    if isinstance(target_img, BaseImage):
        return target_img
    if isinstance(target_img, str | os.PathLike):
        return ScienceImage(target_img)
    raise TypeError(f"target_img must be an image or a path, got {type(target_img).__name__}")


def as_list(value, name: str) -> list[float]:
    """A number, a sequence of numbers or None -> list of positive finite floats.

    Parameters
    ----------
    value : float, sequence of float or None
        The argument.
    name : str
        Its name, for the error message.

    Returns
    -------
    list of float
        The values ([] for None).
    """
    if value is None:
        return []
    if isinstance(value, str):
        raise TypeError(f"{name} must be a number or a list of numbers, got {value!r}")
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a number or a 1-D list, got shape {arr.shape}")
    bad = arr[~np.isfinite(arr) | (arr <= 0)]
    if bad.size:
        raise ValueError(f"{name} must be positive and finite, got {bad.tolist()}")
    return arr.tolist()


def aperture_diameters(img: BaseImage, arcsec, seeing_multiples, seeing: float | None,
                       pixelscale: float | None) -> tuple[list[float] | None, list[float]]:
    """Aperture diameters: fixed ones first, then multiples of the seeing.

    ``arcsec`` holds numbers in arcsec, or an astropy Quantity in angle units or in pixels
    (pixels need no pixel scale).

    Parameters
    ----------
    img : BaseImage
        The measured image.
    arcsec : float, list, Quantity or None
        Fixed diameters.
    seeing_multiples : float, list or None
        Diameters in units of the seeing FWHM.
    seeing : float or None
        Seeing FWHM in arcsec (needed for ``seeing_multiples``).
    pixelscale : float or None
        arcsec/pixel.

    Returns
    -------
    (diameters_arcsec, diameters_pixel)
        ``diameters_arcsec`` is None when the image has no pixel scale.
    """
    in_pixels = isinstance(arcsec, u.Quantity) and arcsec.unit == u.pix
    if isinstance(arcsec, u.Quantity) and not in_pixels:
        if arcsec.unit.physical_type != "angle":
            raise u.UnitsError(f"aperture_diameter_arcsec must be an angle or in pixels, got "
                               f"unit {arcsec.unit}")
        arcsec = arcsec.to_value(u.arcsec)
    fixed = as_list(arcsec.value if in_pixels else arcsec, "aperture_diameter_arcsec")
    multiples = as_list(seeing_multiples, "aperture_diameter_seeing")
    if multiples and seeing is None:
        raise ImageError(f"{img.path}: aperture_diameter_seeing needs the seeing, which is not "
                         "in the header (SEEING); pass seeing=")
    if not fixed and not multiples:
        raise ValueError("no aperture given (aperture_diameter_arcsec and "
                         "aperture_diameter_seeing are both empty)")
    has_scale = pixelscale is not None and pixelscale > 0
    if not has_scale and (multiples or not in_pixels):
        raise ImageError(f"{img.path}: apertures in arcsec need the pixel scale, but the image "
                         "has no WCS and its telescope profile none")
    if in_pixels:
        diam_px = fixed + [m * seeing / pixelscale for m in multiples]
    else:
        diam_px = [d / pixelscale for d in fixed + [m * seeing for m in multiples]]
    diam_arcsec = [d * pixelscale for d in diam_px] if has_scale else None
    return diam_arcsec, diam_px


def as_map(value, cls, img: BaseImage, name: str):
    """Accept a map object, an array, or a saved file for a Background/Errormap/Mask.

    Parameters
    ----------
    value : ImageMap, numpy.ndarray, path or None
        The argument.
    cls : type
        `Background`, `Errormap` or `Mask`.
    img : BaseImage
        The measured image.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    ImageMap or None
        The map, checked to match the image (None for None).
    """
    if value is None or isinstance(value, cls):
        obj = value
    elif isinstance(value, str | Path):
        obj = cls(value)
    elif isinstance(value, np.ndarray):
        obj = cls(value, target_img=img.path, target_hdu=img.product_hdu)
    else:
        raise TypeError(f"{name} must be a {cls.__name__}, an array or a path, "
                        f"got {type(value).__name__}")
    if obj is not None:
        obj.check_shape(img.shape, img.path)
        if obj.target_img and Path(obj.target_img).absolute() != img.path:
            raise ImageError(f"{name} belongs to {obj.target_img}, not to {img.path}")
        if obj.target_img and obj.target_hdu != img.product_hdu:
            # a map of another extension of the same file (same shape) must not pass
            def label(path, hdu):
                return str(path) if hdu is None else f"{path}[{hdu}]"
            raise ImageError(f"{name} belongs to {label(obj.target_img, obj.target_hdu)}, not "
                             f"to {label(img.path, img.product_hdu)}")
    return obj


def resolve_maps(img: BaseImage, target_bkg, target_bkgrms, target_mask):
    """The three optional maps of a photometry call, checked against the image.

    ``target_bkg`` may also be a number (a constant background).

    Parameters
    ----------
    img : BaseImage
        The measured image.
    target_bkg : Background, array, path, number or None
        Background.
    target_bkgrms : Errormap, array, path or None
        Background RMS.
    target_mask : Mask, array, path or None
        Mask.

    Returns
    -------
    tuple
        (background or number or None, Errormap or None, Mask or None).
    """
    bkg = target_bkg if isinstance(target_bkg, int | float) else as_map(
        target_bkg, Background, img, "target_bkg")
    return (bkg, as_map(target_bkgrms, Errormap, img, "target_bkgrms"),
            as_map(target_mask, Mask, img, "target_mask"))


def catalog_info(img: BaseImage, catalog_type: str, *, seeing: float | None,
                 aperture_diameter_arcsec: list[float] | None, path: Path | None) -> CatalogInfo:
    """The ``Catalog.info`` of a measurement on ``img``.

    Parameters
    ----------
    img : BaseImage
        The measured image.
    catalog_type : str
        How the catalogue was made.
    seeing : float or None
        Seeing FWHM in arcsec.
    aperture_diameter_arcsec : list of float or None
        The aperture diameters.
    path : pathlib.Path or None
        Where the catalogue is saved.

    Returns
    -------
    CatalogInfo
        The info (header values of the image).
    """
    center = img.center
    return CatalogInfo(
        path=None if path is None else str(path),
        target_img=str(img.path),
        obsdate=img.obsdate,
        filter=img.filter,
        exptime=img.exptime,
        depth=img.depth,
        seeing=seeing,
        catalog_type=catalog_type,
        ra=None if center is None else float(center.icrs.ra.deg),
        dec=None if center is None else float(center.icrs.dec.deg),
        fov_ra=None if img.fovx is None else round(img.fovx, 3),
        fov_dec=None if img.fovy is None else round(img.fovy, 3),
        objname=img.objname,
        observatory=img.observatory,
        telname=img.telname,
        aperture_diameter_arcsec=None if aperture_diameter_arcsec is None
        else [round(d, 6) for d in aperture_diameter_arcsec],
    )


def catalog_path(img: BaseImage, suffix: str) -> Path:
    """Where a catalogue of ``img`` is saved: beside it, else under ``$EZPHOT_OUTPUT_DIR``.

    An image of a file that holds several images names its HDU (``mef.fits.hdu2.cat``): the
    catalogues of two extensions never replace each other.
    Raises `OutputError` when the image's folder is read-only and no output root is set.

    Parameters
    ----------
    img : BaseImage
        The measured image.
    suffix : str
        The catalogue's suffix (e.g. ``'.cat'``).

    Returns
    -------
    pathlib.Path
        The catalogue's path.
    """
    return product_path(img.path, hdu_suffix(suffix, img.product_hdu))


# -- provenance ---------------------------------------------------------------------------------
_KEY_VERSION = 1
# what each method is (function, suffix, targets, options outside the key): registry.py
_MAP_ARGS = {"target_bkg": Background, "target_bkgrms": Errormap, "target_mask": Mask}
_SMALL = 64  # sequences longer than this are recorded by their sha256

_EXPECTED: contextvars.ContextVar[tuple[str, dict] | None] = contextvars.ContextVar(
    "ezphot_expected_provenance", default=None)


def call_options(method: str, options: Mapping) -> dict:
    """The options of a photometry call with every default filled in.

    The defaults are those of the method's core function (the registry's), the one place
    where they are written.

    Parameters
    ----------
    method : str
        'sextractor', 'photutils', 'circular' or 'elliptical'.
    options : mapping
        The options given.

    Returns
    -------
    dict
        Every option of the call.
    """
    import inspect

    out: dict = {}
    for p in inspect.signature(get_method(method).func).parameters.values():
        if p.default is not p.empty:
            out[p.name] = p.default
    out.update(options)
    return out


def forced_suffix(method: str, *targets, unit: str = "pixel") -> str:
    """Catalogue suffix of forced photometry: one file per target list.

    ``'.circ.<hash>.cat'`` / ``'.ellip.<hash>.cat'`` where ``<hash>`` is a short sha256 of
    the positions (and shapes) as given and their unit, so that measuring other targets on
    the same frame never replaces an earlier result.

    Parameters
    ----------
    method : {'circular', 'elliptical'}
        The forced-photometry method.
    *targets : array_like
        Positions (and shapes) as given.
    unit : str
        Their unit.

    Returns
    -------
    str
        The suffix.
    """
    return _with_digest(get_method(method).suffix, targets_digest(*targets, unit=unit))


def _with_digest(suffix: str, digest: str) -> str:
    return f"{suffix.removesuffix('.cat')}.{digest[:12]}.cat"


def targets_digest(*arrays, unit: str = "pixel") -> str:
    """sha256 of target arrays (as float64, scalars as 1-element arrays) and their unit."""
    h = hashlib.sha256(f"unit={unit}".encode())
    for a in arrays:
        arr = np.atleast_1d(np.asarray(getattr(a, "value", a), dtype=np.float64)).ravel()
        h.update(f"|{arr.size}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def input_identity(img: BaseImage) -> dict:
    """Path, HDU, size and modification time of an image's file."""
    st = os.stat(img.path)
    return {"path": str(img.path), "hdu": img.hdu, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


def _file_identity(path: Path) -> dict:
    path = Path(path).absolute()
    try:
        st = os.stat(path)
    except OSError:
        return {"file": str(path), "missing": True}
    return {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _array_digest(arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr.reshape(-1).view(np.uint8)))
    return {"shape": list(arr.shape), "sha256": h.hexdigest()}


def _normalise(value, name: str = ""):
    """A JSON-able, canonical form of an option (numbers as floats, arrays by digest)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, u.Quantity):
        return {"value": _normalise(value.value), "unit": str(value.unit)}
    if isinstance(value, ImageMap):
        file = value.unmodified_file()
        return _file_identity(file) if file is not None else _array_digest(value.data)
    if isinstance(value, Path) or (isinstance(value, str) and name in _MAP_ARGS):
        return _file_identity(value)
    if isinstance(value, Mapping):
        upper = name == "sex_params"  # SExtractor keywords are case-insensitive
        return {(str(k).upper() if upper else str(k)): _normalise(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.size > _SMALL:
            return _array_digest(value)
        return [_normalise(v) for v in value.ravel().tolist()]
    if isinstance(value, list | tuple):
        if len(value) > _SMALL:
            with contextlib.suppress(TypeError, ValueError):
                return _array_digest(np.asarray(value, dtype=np.float64))
        return [_normalise(v) for v in value]
    return {"type": type(value).__qualname__, "repr": repr(value)[:200]}


def _versions(method: str, binary) -> dict:
    from .. import __version__

    out = {"ezphot": __version__}
    for software in get_method(method).versions:
        if software == "sextractor":
            from ..sextractor import find_sextractor
            from ..sextractor.binary import SExtractorBinary

            out["sextractor"] = (binary if isinstance(binary, SExtractorBinary)
                                 else find_sextractor(binary)).version
        else:
            out[software] = importlib.import_module(software).__version__
    return out


def provenance(method: str, img: BaseImage, options: Mapping) -> dict:
    """The provenance key of a catalogue: what made it, to tell whether it can be reused.

    Method; every option that changes the result (defaults filled in, normalised; maps by
    their file's identity or their pixels' sha256; ``use_saved_maps`` by the identity of the
    saved maps); the targets of forced photometry (sha256); the input's identity (path, HDU,
    size, modification time); the ezphot and SExtractor (or photutils) versions. A
    zero point given as a header keyword enters by its name and the value it names.

    Parameters
    ----------
    method : str
        The photometry method.
    img : BaseImage
        The measured image.
    options : mapping
        The call's options.

    Returns
    -------
    dict
        The provenance key (JSON-able).
    """
    opts = call_options(method, options)
    if opts.pop("use_saved_maps", False):
        for name, cls in (("target_bkg", Background), ("target_bkgrms", Errormap)):
            if opts.get(name) is None:
                saved = cls.default_path(img.path, hdu=img.product_hdu)
                opts[name] = saved if saved.is_file() else None
    binary = opts.get("binary")
    spec = get_method(method)
    targets = None
    if spec.targets:
        targets = targets_digest(*(opts.pop(k, None) for k in spec.targets),
                                 unit=str(opts.get("unit")))
    if isinstance(opts.get("zeropoint"), str):
        # a header keyword: the key holds the value it names too (a header edited under a
        # kept modification time still changes the key)
        from .._validate import zeropoint as resolve_zeropoint

        value = resolve_zeropoint(opts["zeropoint"], img.header, img.path)
        opts["zeropoint"] = {"keyword": opts["zeropoint"].strip(), "value": float(value)}
    excluded = spec.excluded()
    key = {"key": _KEY_VERSION, "method": method, "targets": targets,
           "options": {k: _normalise(v, k) for k, v in sorted(opts.items())
                       if k not in excluded},
           "input": input_identity(img)}
    key.update(_versions(method, binary))
    return key


def expected_suffix(method: str, options: Mapping) -> str:
    """The catalogue suffix of a photometry call (forced photometry: per target list).

    Parameters
    ----------
    method : str
        The photometry method.
    options : mapping
        The call's options (forced photometry: with the targets).

    Returns
    -------
    str
        The suffix.
    """
    spec = get_method(method)
    if spec.targets:
        opts = call_options(method, options)
        return forced_suffix(method, *(opts.get(k) for k in spec.targets),
                             unit=str(opts.get("unit")))
    return spec.suffix


@contextlib.contextmanager
def expect_provenance(path: str | os.PathLike, key: Mapping) -> Iterator[None]:
    """Within this block, a catalogue saved at ``path`` carries the provenance ``key``.

    Parameters
    ----------
    path : path-like
        The catalogue's path.
    key : mapping
        Its provenance key (`provenance`).

    Yields
    ------
    None
        Nothing: a context manager.
    """
    token = _EXPECTED.set((str(path), dict(key)))
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def finish_catalog(catalog: Catalog, img: BaseImage, method: str, save: bool, *,
                   targets: tuple | None = None, unit: str = "pixel",
                   zeropoint: float | None = None) -> Catalog:
    """Save the catalogue of ``method`` (registry) when asked (``save=False`` writes and
    deletes nothing); its file name ends with the method's suffix.

    Forced photometry gives its ``targets`` (positions, shapes) and their ``unit``: the
    file name then carries their digest (`forced_suffix`), one file per target list.

    The saved file carries a provenance key: the full one set by `expect_provenance` (the
    batch), else one without the options (method, input, versions), which a batch never
    mistakes for its own.

    Parameters
    ----------
    catalog : Catalog
        The measured catalogue.
    img : BaseImage
        The measured image.
    method : str
        The registered method (its suffix names the file).
    save : bool
        Save it.
    targets : tuple, optional
        Forced photometry: the positions (and shapes) as given.
    unit : str
        Their unit.
    zeropoint : float, optional
        With a zero point (not None or 0; else one in the image's header, ZP, ZP_AUTO...),
        ``info.depth`` is measured on the data (the 5-sigma point-source limit,
        `ezphot.calibration.fill_depth`); otherwise the header's value stays.
        Recorded in ``meta['zeropoint']`` with where it came from (its ``source`` when it is
        a `ezphot._validate.ZeroPoint`: ``'header <KEY>'`` for a keyword named by
        ``zeropoint=``; else ``'zeropoint'``), also ``meta['depth']['source']``.

    Returns
    -------
    Catalog
        The catalogue (``info.path`` set when saved).
    """
    from ..calibration import fill_depth

    source = getattr(zeropoint, "source", "zeropoint")
    if zeropoint is not None:  # what the magnitudes carry (0: instrumental)
        catalog.meta["zeropoint"] = {"value": float(zeropoint), "source": source}
    fill_depth(catalog, zeropoint, header=img.header, source=source)
    if save:
        suffix = get_method(method).suffix
        if targets is not None:
            suffix = _with_digest(suffix, targets_digest(*targets, unit=unit))
        path = catalog_path(img, suffix)
        expected = _EXPECTED.get()
        if expected is not None and expected[0] == str(path):
            key = expected[1]
        else:
            key = {"key": _KEY_VERSION, "method": method, "targets": None, "options": None,
                   "input": input_identity(img)}
            with contextlib.suppress(Exception):  # versions are informative here
                key.update(_versions(method, None))
        catalog.meta["provenance"] = key
        catalog.seal()  # the measured table: edited later, a save drops the key
        catalog.save(path)
    return catalog
