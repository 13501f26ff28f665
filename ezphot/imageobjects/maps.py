"""Per-pixel products of an image: `Background`, `Errormap` (background RMS) and `Mask`.

Each holds its array and its own header (with provenance), can be saved atomically as FITS
beside the image (``<F>.bkgmap``, ``<F>.bkgrms``, ``<F>.srcmask``) and loaded back. Creating
or computing one never touches a file that already exists; only ``save()`` writes.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from .._io import atomic_write
from ..exceptions import ImageError

log = logging.getLogger(__name__)

__all__ = ["ImageMap", "Background", "Errormap", "Mask"]


class ImageMap:
    """A 2-D array that belongs to an image.

    Parameters
    ----------
    source : path-like or array_like
        A saved map to load, or the data.
    header : astropy.io.fits.Header, optional
        Provenance header (copied).
    target_img : path-like, optional
        The image the map belongs to.
    target_hdu : int, optional
        Its HDU, for an image of a file that holds several images (None otherwise): the
        maps of two extensions are saved under different names (``mef.fits.hdu2.bkgmap``).
    """

    suffix = ".map"
    kind = "map"

    def __init__(self, source: str | os.PathLike | np.ndarray, *, header: fits.Header | None = None,
                 target_img: str | os.PathLike | None = None,
                 target_hdu: int | None = None) -> None:
        self.path: Path | None = None
        self._file_stat: tuple[int, int, int] | None = None
        file_stat = None
        if isinstance(source, str | os.PathLike):
            self.path = Path(source)
            if not self.path.is_file():
                raise ImageError(f"{self.path}: no such {self.kind} file")
            # before reading: a file replaced meanwhile then never passes for these pixels
            file_stat = _stat(self.path)
            data, header = _read_map(self.path, self.kind)
            if target_img is None:
                target_img = header.get("EZTARGET")
                target_hdu = header.get("EZHDU") if target_hdu is None else target_hdu
        else:
            data = np.asarray(source)
        if data.ndim != 2:
            where = f"{self.path}: " if self.path is not None else ""
            raise ImageError(f"{where}{self.kind} must be 2-D, got shape {data.shape}")
        if 0 in data.shape:
            where = f"{self.path}: " if self.path is not None else ""
            raise ImageError(f"{where}{self.kind} is empty (shape {data.shape})")
        self.data = self._validate(data)
        if self.path is not None:
            # loaded from a file: read-only, so the file stays a faithful copy of ``data``
            # and can be handed to SExtractor as it is (see `unmodified_file`)
            self._data.flags.writeable = False
            self._file_stat = file_stat
        self.header = fits.Header() if header is None else header.copy()
        self.target_img = None if target_img is None else str(target_img)
        self.target_hdu = None if target_hdu is None else int(target_hdu)

    @property
    def data(self) -> np.ndarray:
        """The map's pixels (read-only when loaded from a file: copy it to change it)."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        self._file_stat = None  # new pixels: the file no longer holds them

    def unmodified_file(self) -> Path | None:
        """The FITS file holding exactly ``data``, or None.

        That is the file the map was loaded from, provided ``data`` was not replaced since
        and the file was not rewritten (same size, inode and mtime).

        Returns
        -------
        pathlib.Path or None
            That file, or None (the map was computed or changed in memory).
        """
        if self._file_stat is None or self.path is None:
            return None
        try:
            return self.path if _stat(self.path) == self._file_stat else None
        except OSError:
            return None

    def _validate(self, data: np.ndarray) -> np.ndarray:
        return data

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, target_img={self.target_img!r})"

    def check_shape(self, shape: tuple[int, int], image_path: object = "image") -> None:
        """Raise `ImageError` unless the map matches an image of ``shape``.

        Parameters
        ----------
        shape : tuple of int
            The image's (ny, nx).
        image_path : object
            The image's name for the message.
        """
        if tuple(self.shape) != tuple(shape):
            raise ImageError(f"{self.kind} of shape {self.shape} does not match {image_path} of "
                             f"shape {tuple(shape)}")

    @classmethod
    def default_path(cls, image_path: str | os.PathLike, hdu: int | None = None) -> Path:
        """Where the product of ``image_path`` is found: ``<image><suffix>``
        (``<image>.hdu<N><suffix>`` for HDU ``hdu`` of a file of several images).

        Beside the image; when the image's folder is read-only and ``$EZPHOT_OUTPUT_DIR`` is
        set, the copy under that root (where `save` writes), unless only the one beside the
        image exists.

        Parameters
        ----------
        image_path : path-like
            The image.
        hdu : int, optional
            Its HDU, for an image of a file that holds several images (`product_hdu`).

        Returns
        -------
        pathlib.Path
            The product's path.
        """
        from .._io import hdu_suffix, product_path

        suffix = hdu_suffix(cls.suffix, hdu)
        beside = Path(f"{image_path}{suffix}")
        out = product_path(image_path, suffix, create=False)
        return beside if out != beside and beside.is_file() and not out.is_file() else out

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Save atomically as FITS.

        The default path is beside the target image (``<image><suffix>``), or under
        ``$EZPHOT_OUTPUT_DIR`` when the image's folder is read-only (as catalogues). A file
        there that ezphot did not write is never replaced (`ForeignFileError`); a read-only
        folder or a full disk raise `OutputError` naming the path.

        Parameters
        ----------
        path : path-like, optional
            Destination; default beside the target image.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        from .._io import hdu_suffix, product_path
        if path is None:
            if self.target_img is None:
                raise ValueError(f"{self.kind}: no path given and no target image known")
            path = product_path(self.target_img, hdu_suffix(self.suffix, self.target_hdu))
        path = Path(path)
        if os.path.lexists(path):
            _check_replaceable(path, self.kind)
        header = self.header.copy()
        for key in ("EZPHOT", "EZTARGET", "EZHDU", "EZKIND"):
            header.remove(key, ignore_missing=True, remove_all=True)
        if self.target_img:
            header["EZTARGET"] = str(self.target_img)
            if self.target_hdu is not None:
                header["EZHDU"] = (self.target_hdu, "HDU of EZTARGET the map belongs to")
        header["EZKIND"] = self.kind
        data = self.data.astype(np.uint8) if self.data.dtype == bool else self.data

        def write(tmp: Path) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                hdu = fits.PrimaryHDU(data, header=header)
                # first card after the structural ones: ownership is readable from the
                # first header block (`ezphot._io.fits_owner`)
                hdu.header.insert(f"NAXIS{data.ndim}", ("EZPHOT", "map", "written by ezphot"),
                                  after=True)
                hdu.writeto(tmp)

        self.path = atomic_write(path, write,
                                 may_replace=lambda p: _check_replaceable(p, self.kind))
        self._file_stat = None  # what is loaded is no longer what `unmodified_file` vouched for
        log.info("%s saved: %s", self.kind, self.path)
        return self.path


def _check_replaceable(path: Path, kind: str) -> None:
    """Raise `ForeignFileError` unless ``path`` is a map ezphot wrote (which may be replaced)."""
    from .._io import fits_owner
    from ..exceptions import ForeignFileError

    if os.path.islink(path) or not os.path.isfile(path) or fits_owner(path) != "map":
        raise ForeignFileError(f"{path}: exists and is not an ezphot map; ezphot leaves it "
                               f"untouched (move it away to save the {kind} there)")


def _read_map(path: Path, kind: str) -> tuple[np.ndarray, fits.Header]:
    """Pixels and header of a saved map; a truncated or garbage file is an `ImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy's "may have been truncated": checked below
            with fits.open(path, lazy_load_hdus=True, memmap=False) as hdul:
                hdu = hdul[0]
                header = hdu.header.copy()
                info = hdul.fileinfo(0)
                shape = tuple(int(header.get(f"NAXIS{k}", 0))
                              for k in range(int(header.get("NAXIS", 0)), 0, -1))
                need = info["datLoc"] + abs(int(header.get("BITPIX", 8))) // 8 * int(
                    np.prod(shape)) if shape else 0
                size = os.stat(path).st_size
                if size < need:
                    raise ImageError(f"{path}: truncated FITS {kind}: its pixels need {need} "
                                     f"bytes, the file has {size}")
                if hdu.data is None:
                    raise ImageError(f"{path}: no pixels in the primary HDU of this {kind} file")
                data = hdu.data
                if data.dtype.byteorder not in ("=", "|", "<" if np.little_endian else ">"):
                    # native byte order in place: no second full-frame copy while converting
                    data = data.byteswap(inplace=True).view(data.dtype.newbyteorder())
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable FITS {kind} ({type(exc).__name__}: "
                         f"{exc})") from exc
    return data, header


def _stat(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_ino, st.st_mtime_ns


class Background(ImageMap):
    """A background map in ADU (or a constant broadcast to the image shape).

    Parameters
    ----------
    source : path-like or array_like
        A saved map to load, or the data (ADU; a scalar is broadcast).
    header : astropy.io.fits.Header, optional
        Provenance header (copied).
    target_img : path-like, optional
        The image the map belongs to.
    target_hdu : int, optional
        Its HDU, for an image of a file that holds several images (None otherwise): the
        maps of two extensions are saved under different names (``mef.fits.hdu2.bkgmap``).
    """

    suffix = ".bkgmap"
    kind = "background"

    def _validate(self, data: np.ndarray) -> np.ndarray:
        return data.astype(np.float32, copy=False)

    @property
    def value(self) -> float:
        """Median level of the map (ADU)."""
        return float(np.nanmedian(self.data))


class Errormap(ImageMap):
    """A background-RMS map in ADU (1-sigma per pixel).

    Parameters
    ----------
    source : path-like or array_like
        A saved map to load, or the data (ADU; every pixel finite and >= 0).
    header : astropy.io.fits.Header, optional
        Provenance header (copied).
    target_img : path-like, optional
        The image the map belongs to.
    target_hdu : int, optional
        Its HDU, for an image of a file that holds several images (None otherwise): the
        maps of two extensions are saved under different names (``mef.fits.hdu2.bkgmap``).
    """

    suffix = ".bkgrms"
    kind = "background RMS map"

    def _validate(self, data: np.ndarray) -> np.ndarray:
        data = data.astype(np.float32, copy=False)
        n_bad = 0
        for y0 in range(0, data.shape[0], 1024):  # by blocks: no full-frame temporaries
            block = data[y0:y0 + 1024]
            n_bad += int(np.count_nonzero(~(block >= 0)) + np.count_nonzero(np.isinf(block)))
        if n_bad:
            raise ImageError(f"{self.kind} has {n_bad} negative or non-finite pixels")
        return data


class Mask(ImageMap):
    """A boolean mask: True marks pixels to exclude.

    Parameters
    ----------
    source : path-like or array_like
        A saved map to load, or the data (bool, or integers: nonzero = masked).
    header : astropy.io.fits.Header, optional
        Provenance header (copied).
    target_img : path-like, optional
        The image the map belongs to.
    target_hdu : int, optional
        Its HDU, for an image of a file that holds several images (None otherwise): the
        maps of two extensions are saved under different names (``mef.fits.hdu2.bkgmap``).
    """

    suffix = ".srcmask"
    kind = "mask"

    def _validate(self, data: np.ndarray) -> np.ndarray:
        if data.dtype == bool:
            return data
        if np.issubdtype(data.dtype, np.integer):
            return data != 0
        raise ImageError(f"mask must be boolean or integer, got dtype {data.dtype}")

    def __or__(self, other: Mask) -> Mask:
        other = other if isinstance(other, Mask) else Mask(np.asarray(other))
        self.check_shape(other.shape, "other mask")
        return Mask(self.data | other.data, header=self.header, target_img=self.target_img,
                    target_hdu=self.target_hdu)
