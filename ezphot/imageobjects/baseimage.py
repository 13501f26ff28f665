"""Lazy FITS images: header first, pixels on first use (memory-mapped), metadata normalised."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from ..exceptions import HeaderWarning, ImageError, MissingWCSError
from ..profiles import TelescopeProfile, select_profile
from .header import HEADER_KEYS, first_value, header_float, header_obsdate

log = logging.getLogger(__name__)

__all__ = ["BaseImage", "ImageDescriptor", "open_image_hdu"]

_EXT_SUFFIX = re.compile(r"^(.*)\[(\d+)\]$")


@contextlib.contextmanager
def _quiet_fits():
    """Real headers carry non-standard cards (ESO-LOG ...): astropy keeps them; so do we,
    without a warning on every read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)
        yield


def _split_extension(path: str | os.PathLike, hdu: int | None) -> tuple[Path, int | None]:
    m = _EXT_SUFFIX.match(str(path))
    if m and not Path(path).exists():
        return Path(m.group(1)), int(m.group(2)) if hdu is None else hdu
    return Path(path), hdu


def open_image_hdu(path: Path, hdu: int | None, *,
                   with_extent: bool = False) -> tuple[int, fits.Header, bool, int]:
    """Find the image HDU of a FITS file without reading pixels.

    Parameters
    ----------
    path : pathlib.Path
        The FITS file.
    hdu : int or None
        The HDU asked for; None: the first HDU with 2-D image data.
    with_extent : bool
        Also return the file size the HDU's pixels need.

    Returns
    -------
    (index, header, compressed, n_image_hdus)
        With ``with_extent=True`` a fifth item: the smallest file size (bytes) that holds the
        HDU's pixels, to tell a truncated file before reading it.
    """
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not a FITS file")
    try:
        with _quiet_fits():
            with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                images = []
                for i, h in enumerate(hdul):
                    if isinstance(h, fits.CompImageHDU | fits.ImageHDU | fits.PrimaryHDU):
                        if h.header.get("NAXIS", 0) >= 2 or h.header.get("ZNAXIS", 0) >= 2:
                            images.append(i)
                if hdu is None:
                    if not images:
                        raise ImageError(f"{path}: no HDU with 2-D image data")
                    hdu = images[0]
                elif hdu >= len(hdul) or hdu not in images:
                    raise ImageError(f"{path}: HDU {hdu} is not a 2-D image")
                h = hdul[hdu]
                header = h.header.copy()
                compressed = isinstance(h, fits.CompImageHDU)
                naxis = [header.get(f"NAXIS{k}", 1) for k in range(3, header.get("NAXIS", 2) + 1)]
                if any(n > 1 for n in naxis):
                    raise ImageError(f"{path}: HDU {hdu} is a data cube, not a 2-D image")
                if not with_extent:
                    return hdu, header, compressed, len(images)
                return hdu, header, compressed, len(images), _data_end(hdul, hdu, header)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise ImageError(f"{path}: not a readable FITS file ({exc})") from exc


def _data_end(hdul, index: int, header: fits.Header) -> int:
    """Offset where the HDU's pixels end (without the final padding, which some writers skip)."""
    info = hdul.fileinfo(index)
    if isinstance(hdul[index], fits.CompImageHDU):  # the heap: known only padded
        return info["datLoc"] + max(0, info["datSpan"] - 2879)
    nbytes = abs(int(header.get("BITPIX", 8))) // 8
    for k in range(1, int(header.get("NAXIS", 0)) + 1):
        nbytes *= int(header.get(f"NAXIS{k}", 0))
    return info["datLoc"] + nbytes


class BaseImage:
    """A 2-D FITS image, opened lazily.

    Parameters
    ----------
    path : str or path-like
        The FITS file; ``'file.fits[1]'`` selects an extension.
    hdu : int, optional
        HDU index; default: the first HDU with 2-D image data.
    telescope_profile : TelescopeProfile or str, optional
        Force a telescope profile instead of choosing it from the header.

    Notes
    -----
    Nothing here writes to the file: every method that makes a product returns a new object.
    Pickling keeps the path only, so images travel to worker processes cheaply.
    """

    image_type = "image"

    def __init__(self, path: str | os.PathLike, *, hdu: int | None = None,
                 telescope_profile: TelescopeProfile | str | None = None) -> None:
        self.path, hdu = _split_extension(path, hdu)
        self.path = self.path.expanduser().absolute()
        (self.hdu, self._header, self.compressed, self._n_images,
         self._data_end) = open_image_hdu(self.path, hdu, with_extent=True)
        if 0 in self.shape:
            raise ImageError(f"{self.path}: HDU {self.hdu} is an empty image (shape "
                             f"{self.shape[0]}x{self.shape[1]})")
        self._profile_arg = telescope_profile
        self._data: np.ndarray | None = None
        self._row_hdul = None
        # one image object may be shared by threads: the lazy pixels and the row-reading
        # file handle (one seek position) are guarded by this lock
        self._lock = threading.RLock()

    # -- pickling: paths, never pixels ------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"path": str(self.path), "hdu": self.hdu, "profile": self._profile_arg}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], hdu=state["hdu"], telescope_profile=state["profile"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, hdu={self.hdu})"

    def descriptor(self) -> ImageDescriptor:
        """What identifies this image (file, HDU, kind, profile), small and picklable: what
        a batch sends to its workers.

        Returns
        -------
        ImageDescriptor
            ``label`` is the path, with ``[HDU]`` when the file holds several images.
        """
        label = str(self.path) if self._n_images == 1 else f"{self.path}[{self.hdu}]"
        profile = self._profile_arg
        return ImageDescriptor(path=str(self.path), hdu=self.hdu, kind=self.image_type,
                               profile=profile, label=label)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and (self.path, self.hdu) == (other.path, other.hdu)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path, self.hdu))

    # -- raw access ------------------------------------------------------------------------
    @property
    def header(self) -> fits.Header:
        """A copy of the image HDU's header (editing it never touches the file)."""
        return self._header

    @property
    def data(self) -> np.ndarray:
        """The pixels, memory-mapped when the file allows it (read-only)."""
        data = self._data
        if data is not None:
            return data
        with self._lock:
            if self._data is None:
                with self._reading():
                    with _quiet_fits():
                        try:
                            data = fits.getdata(self.path, self.hdu, memmap=True)
                        except ValueError:  # scaled integers (BZERO/BSCALE): no memory map
                            data = fits.getdata(self.path, self.hdu, memmap=False)
                    if data.ndim != 2:
                        data = data.reshape(data.shape[-2:])
                data.flags.writeable = False
                self._data = data
            return self._data

    @contextlib.contextmanager
    def _reading(self):
        """Check the file still holds all the pixels, and turn a library error met while
        reading them into an `ImageError` naming the file."""
        try:
            size = os.stat(self.path).st_size
        except OSError as exc:
            raise ImageError(f"{self.path}: cannot be read ({exc.strerror or exc})") from exc
        if size < self._data_end:
            raise ImageError(f"{self.path}: truncated FITS file: HDU {self.hdu} needs "
                             f"{self._data_end} bytes for its pixels, the file has {size}")
        try:
            yield
        except ImageError:
            raise
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            raise ImageError(f"{self.path}: pixels of HDU {self.hdu} cannot be read "
                             f"({type(exc).__name__}: {exc})") from exc

    def read_native(self, dtype=np.float32) -> np.ndarray:
        """A private, writeable, native-byte-order copy of the pixels (one full-frame array).

        Unlike `data` it keeps no memory map of the file resident: for algorithms that need
        the whole frame in memory once (background meshes, detection).

        Parameters
        ----------
        dtype : numpy dtype
            The array's dtype.

        Returns
        -------
        numpy.ndarray
            The 2-D pixel array.
        """
        if self.compressed or np.dtype(dtype).kind != "f":
            return np.array(self.data, dtype=dtype)
        with self._reading(), _quiet_fits():
            with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                raw = hdul[self.hdu].data
            raw = raw.reshape(raw.shape[-2:])
        if raw.dtype.kind == "f" and raw.dtype.itemsize == np.dtype(dtype).itemsize:
            if raw.dtype.byteorder not in ("=", "|", "<" if np.little_endian else ">"):
                raw = raw.byteswap(inplace=True).view(raw.dtype.newbyteorder())
            return raw
        return raw.astype(dtype)

    def read_rows(self, y0: int, y1: int, dtype=np.float32) -> np.ndarray:
        """Rows ``y0:y1`` read from the file (no memory map left resident).

        Thread-safe: the file handle (one seek position) is used under the image's lock.

        Parameters
        ----------
        y0, y1 : int
            First and past-the-last row (0-based).
        dtype : numpy dtype
            The array's dtype.

        Returns
        -------
        numpy.ndarray
            The rows, shape ``(y1 - y0, nx)``.
        """
        if self.compressed:
            return np.array(self.data[y0:y1], dtype=dtype)
        with self._lock:
            if self._row_hdul is None:
                with self._reading(), _quiet_fits():
                    self._row_hdul = fits.open(self.path, memmap=False, lazy_load_hdus=True)
            with self._reading(), _quiet_fits():
                section = self._row_hdul[self.hdu].section
                rows = section[y0:y1] if section.shape and len(section.shape) == 2 else \
                    np.asarray(section[..., y0:y1, :]).reshape(-1, self.shape[1])
                return np.asarray(rows, dtype=dtype)

    def close(self) -> None:
        """Close the file handle used by `read_rows` (reopened on demand)."""
        with self._lock:
            hdul, self._row_hdul = self._row_hdul, None
            if hdul is not None:
                hdul.close()

    def clear(self) -> None:
        """Forget cached pixels (they are read again on next use)."""
        with self._lock:
            self._data = None

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) without reading the pixels."""
        h = self._header  # astropy shows a compressed HDU's image header (NAXISn, not ZNAXISn)
        if "ZNAXIS1" in h:
            return int(h["ZNAXIS2"]), int(h["ZNAXIS1"])
        return int(h["NAXIS2"]), int(h["NAXIS1"])

    @property
    def n_images(self) -> int:
        """How many image HDUs the file holds."""
        return self._n_images

    @property
    def product_hdu(self) -> int | None:
        """The HDU the names of this image's products carry (``mef.fits.hdu2.cat``), or None
        for a file of one image (``image.fits.cat``)."""
        return self.hdu if self._n_images > 1 else None

    @property
    def sextractor_path(self) -> str | None:
        """How the binary can open this image itself, or None when it cannot (compressed)."""
        if self.compressed:
            return None
        if self.hdu == 0 and self._n_images == 1:
            return str(self.path)
        return f"{self.path}[{self.hdu}]"

    # -- normalised metadata (docs/images.md) -------------------------------------------------
    @functools.cached_property
    def profile(self) -> TelescopeProfile:
        """The telescope profile chosen from the header (or forced at construction)."""
        if isinstance(self._profile_arg, TelescopeProfile):
            return self._profile_arg
        if isinstance(self._profile_arg, str):
            from ..profiles import get_profile

            return get_profile(self._profile_arg)
        return select_profile(self._header, source=str(self.path))

    def _get(self, prop: str):
        return first_value(self._header, HEADER_KEYS[prop])

    @property
    def exptime(self) -> float | None:
        """Exposure time in seconds."""
        return header_float(self._header, HEADER_KEYS["exptime"])

    @property
    def filter(self) -> str | None:
        """Filter name (7DT: m400..m875, u, g, r, i, z)."""
        value = self._get("filter")
        return None if value is None else str(value)

    @property
    def telname(self) -> str | None:
        """Telescope name (7DT units are 7DT01..7DT20)."""
        value = self._get("telname")
        return None if value is None else str(value)

    @property
    def objname(self) -> str | None:
        """Target / field name (7DT tiles like T00528)."""
        value = self._get("objname")
        return None if value is None else str(value)

    @property
    def observatory(self) -> str | None:
        """Observatory: header OBSERVAT, else the profile's."""
        value = self._get("observatory")
        return str(value) if value is not None else self.profile.observatory

    @property
    def telkey(self) -> str | None:
        """Configuration key of the data tree (e.g. ``7DT_C361K_HIGH_1x1``); None if generic."""
        return None if self.profile.name == "generic" else self.profile.name

    @property
    def obsdate(self) -> str | None:
        """Observation start, ISO string (DATE-OBS, else JD/MJD)."""
        return header_obsdate(self._header)

    @property
    def egain(self) -> float | None:
        """Gain in e-/ADU: EGAIN, else GAIN when the profile says it is e-/ADU, else profile."""
        value = header_float(self._header, HEADER_KEYS["egain"])
        if value is None and self.profile.gain_key_is_egain:
            value = header_float(self._header, ("GAIN",))
        if value is None and self.profile.egain > 0:
            value = self.profile.egain
        return value if value is not None and value > 0 else None

    @property
    def rdnoise(self) -> float | None:
        """Read noise in e-: header, else profile."""
        value = header_float(self._header, HEADER_KEYS["rdnoise"])
        return value if value is not None else (self.profile.rdnoise or None)

    @property
    def saturation(self) -> float:
        """Saturation level in ADU: SATURATE, else profile."""
        value = header_float(self._header, HEADER_KEYS["saturation"])
        return value if value is not None else self.profile.saturation

    @property
    def seeing(self) -> float | None:
        """Seeing FWHM in arcsec from the header; None when unknown."""
        value = header_float(self._header, HEADER_KEYS["seeing"])
        return value if value is not None and value > 0 else None

    @property
    def depth(self) -> float | None:
        """5-sigma limiting magnitude from the header, if any."""
        return header_float(self._header, HEADER_KEYS["depth"])

    @property
    def ncombine(self) -> int | None:
        """Number of combined frames."""
        value = header_float(self._header, HEADER_KEYS["ncombine"])
        return None if value is None else int(value)

    @functools.cached_property
    def wcs(self):
        """The celestial WCS (with SIP/TPV distortion) or None when the image has none."""
        from astropy.wcs import WCS, FITSFixedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            try:
                w = WCS(self._header, naxis=2, relax=True)
            except Exception as exc:  # astropy raises many kinds on broken headers
                warnings.warn(f"{self.path}: WCS cannot be read ({exc})", HeaderWarning,
                              stacklevel=2)
                return None
        if not w.has_celestial:
            return None
        # wcslib sets itself up on first use, writing into the shared structure: done here
        # once, so threads sharing the image only ever read it
        with contextlib.suppress(Exception):
            w.wcs.set()
        return w

    def require_wcs(self):
        """The WCS, or a `MissingWCSError` naming the file.

        Returns
        -------
        astropy.wcs.WCS
            The image's celestial WCS.
        """
        if self.wcs is None:
            raise MissingWCSError(f"{self.path}: no celestial WCS in the header, but sky "
                                  "coordinates were asked for")
        return self.wcs

    @functools.cached_property
    def pixelscale(self) -> float | None:
        """Pixel scale in arcsec/pixel: from the WCS, else the profile; None if unknown."""
        if self.wcs is not None:
            from astropy.wcs.utils import proj_plane_pixel_scales

            scales = proj_plane_pixel_scales(self.wcs.celestial) * 3600.0
            return float(np.sqrt(scales[0] * scales[1]))
        return self.profile.pixel_scale or None

    @functools.cached_property
    def center(self):
        """Sky position (SkyCoord) of the image centre, or None without a WCS."""
        if self.wcs is None:
            return None
        ny, nx = self.shape
        return self.wcs.pixel_to_world((nx - 1) / 2.0, (ny - 1) / 2.0)

    @property
    def fovx(self) -> float | None:
        """Field of view along x in degrees."""
        return None if self.pixelscale is None else self.shape[1] * self.pixelscale / 3600.0

    @property
    def fovy(self) -> float | None:
        """Field of view along y in degrees."""
        return None if self.pixelscale is None else self.shape[0] * self.pixelscale / 3600.0


@dataclass(frozen=True)
class ImageDescriptor:
    """An image as a batch worker receives it: file, HDU, kind and profile, never pixels.

    The parameters are also the (frozen) attributes.

    Parameters
    ----------
    path : str
        The FITS file (``'file.fits[N]'`` is also understood when ``hdu`` is None).
    hdu : int or None
        The HDU; None: the first HDU with 2-D image data.
    kind : str
        ``'science'``, ``'reference'``, ``'calibration'``; anything else (``'image'``) opens
        a plain `BaseImage`.
    profile : str, TelescopeProfile or None
        The telescope profile forced on the image, if any.
    label : str
        How the image is named in summaries (default: ``path``, with ``[hdu]`` when ``hdu``
        is given).
    """

    path: str
    hdu: int | None = None
    kind: str = "science"
    profile: object = field(default=None, compare=False)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.path if self.hdu is None
                               else f"{self.path}[{self.hdu}]")

    def __str__(self) -> str:
        return self.label

    def open(self) -> BaseImage:
        """The image object (its header read; pixels when used).

        Returns
        -------
        BaseImage
            A `ScienceImage`, `ReferenceImage` or `CalibrationImage` as ``kind`` says (else a
            `BaseImage`), with this HDU and profile.
        """
        from . import scienceimage

        cls = {"science": scienceimage.ScienceImage, "reference": scienceimage.ReferenceImage,
               "calibration": scienceimage.CalibrationImage}.get(self.kind, BaseImage)
        return cls(self.path, hdu=self.hdu, telescope_profile=self.profile)

    @classmethod
    def of(cls, item) -> ImageDescriptor:
        """The descriptor of an image object, a descriptor, or a path (``'file.fits[N]'``).

        Parameters
        ----------
        item : BaseImage, ImageDescriptor, str or path-like
            The image; a descriptor is returned as it is.

        Returns
        -------
        ImageDescriptor
            The descriptor (a path gives a science image, HDU resolved when opened).

        Raises
        ------
        TypeError
            For anything else.
        """
        if isinstance(item, ImageDescriptor):
            return item
        if isinstance(item, BaseImage):
            return item.descriptor()
        if isinstance(item, str | os.PathLike):
            return cls(path=str(item), label=str(item))
        raise TypeError(f"expected an image, an ImageDescriptor or a path, got "
                        f"{type(item).__name__}")
