"""Reading SExtractor's FITS_LDAC catalogues.

A FITS_LDAC file holds, for every image extension SExtractor measured, a pair of tables:
``LDAC_IMHEAD`` (the image header plus SExtractor's ``SEX*`` keywords as one text cell) and
``LDAC_OBJECTS`` (the sources). Vector columns (``FLUX_APER`` with several apertures,
``FLUX_RADIUS`` with several fractions) are split into ``NAME, NAME_1, NAME_2, ...``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from ..exceptions import SExtractorOutputError

log = logging.getLogger(__name__)

__all__ = ["LDACCatalog", "read_ldac", "split_vector_name"]


@dataclass
class LDACCatalog:
    """One image extension's catalogue from a FITS_LDAC file.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image header as SExtractor saw it, plus its ``SEX*`` keywords.
    table : astropy.table.Table
        The sources, vector columns split, units from the file.
    """

    header: fits.Header
    table: Table

    def _float(self, key: str) -> float:
        return float(self.header[key]) if key in self.header else float("nan")

    @property
    def background(self) -> float:
        """Global (median) background level SExtractor used, ADU (``SEXBKGND``)."""
        return self._float("SEXBKGND")

    @property
    def background_rms(self) -> float:
        """Global (median) background RMS SExtractor used, ADU (``SEXBKDEV``)."""
        return self._float("SEXBKDEV")

    @property
    def threshold(self) -> float:
        """Detection threshold in ADU (``SEXTHLD``)."""
        return self._float("SEXTHLD")

    @property
    def version(self) -> str:
        """SExtractor's version string (``SEXVERS``)."""
        return str(self.header.get("SEXVERS", ""))


def split_vector_name(name: str, index: int) -> str:
    """Column name of element ``index`` of a vector column: NAME, NAME_1, NAME_2, ...

    Parameters
    ----------
    name : str
        The vector column's name.
    index : int
        The element (0-based).

    Returns
    -------
    str
        ``name`` for element 0, else ``name_<index>``.
    """
    return name if index == 0 else f"{name}_{index}"


def _header_from_imhead(hdu: fits.BinTableHDU) -> fits.Header:
    cards = hdu.data[0][0]
    text = "\n".join(str(c) for c in np.atleast_1d(cards))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # real headers carry non-standard cards; keep them
        return fits.Header.fromstring(text, sep="\n")


def _objects_to_table(hdu: fits.BinTableHDU) -> Table:
    table = Table()
    data = hdu.data
    for col in hdu.columns:
        arr = np.asarray(data[col.name]) if data is not None else np.zeros(0, col.dtype)
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        unit = u.Unit(col.unit, parse_strict="silent") if col.unit else None
        if arr.ndim == 2:
            for i in range(arr.shape[1]):
                table[split_vector_name(col.name, i)] = arr[:, i]
                table[split_vector_name(col.name, i)].unit = unit
        else:
            table[col.name] = arr
            table[col.name].unit = unit
    return table


_VECTOR = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\((\d+)\))?$")


def _check_layout(hdul: fits.HDUList, size: int) -> None:
    """Raise ValueError when the file is shorter than its headers say (truncated)."""
    for i, hdu in enumerate(hdul):
        info = hdu.fileinfo()
        end = info["datLoc"] + hdu.header.get("PCOUNT", 0) + _data_bytes(hdu.header)
        if end > size:
            raise ValueError(f"truncated: HDU {i} needs {end} bytes, the file has {size}")


def _data_bytes(header: fits.Header) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = abs(int(header.get("BITPIX", 8))) // 8
    for k in range(1, naxis + 1):
        n *= int(header.get(f"NAXIS{k}", 0))
    return n


def read_ldac(path: str | Path, *, expected: Sequence[str] | None = None,
              source: str | None = None) -> list[LDACCatalog]:
    """Read a FITS_LDAC catalogue, checking it is complete.

    Parameters
    ----------
    path : str or path-like
        The ``.ldac``/``.cat`` file written with ``CATALOG_TYPE FITS_LDAC``.
    expected : sequence of str, optional
        The ``.param`` lines the catalogue was made with (``NAME`` or ``NAME(n)``): each must
        be a column of that length.
    source : str, optional
        What the file is, for messages (default: its path).

    Returns
    -------
    list of LDACCatalog
        One entry per image extension SExtractor measured, in file order.

    Raises
    ------
    SExtractorOutputError
        When the file is missing, empty, truncated, not FITS, not FITS_LDAC or lacks a
        column; the message names the file and the problem.
    """
    path = Path(path)
    what = f"{source} ({path})" if source else str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SExtractorOutputError(f"{what}: cannot be read ({exc})") from exc
    if size == 0:
        raise SExtractorOutputError(f"{what}: empty file (0 bytes), not a FITS_LDAC catalogue")
    out: list[LDACCatalog] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstropyUserWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                truncated = [w for w in caught if "truncated" in str(w.message)]
                if truncated:  # astropy reads what is there and only warns
                    raise ValueError(str(truncated[0].message))
                _check_layout(hdul, size)
                header = None
                for hdu in hdul[1:]:
                    if hdu.name == "LDAC_IMHEAD":
                        header = _header_from_imhead(hdu)
                    elif hdu.name == "LDAC_OBJECTS":
                        if not isinstance(hdu, fits.BinTableHDU):
                            raise ValueError("LDAC_OBJECTS is not a binary table")
                        out.append(LDACCatalog(header if header is not None else fits.Header(),
                                               _objects_to_table(hdu)))
                        header = None
    except SExtractorOutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways; one error
        raise SExtractorOutputError(
            f"{what}: not a readable FITS_LDAC catalogue ({type(exc).__name__}: {exc})"
        ) from exc
    if not out:
        raise SExtractorOutputError(f"{what}: no LDAC_OBJECTS table (not a FITS_LDAC catalogue)")
    for spec in expected or ():
        m = _VECTOR.match(spec.strip().upper())
        name, length = (m.group(1), int(m.group(2) or 1)) if m else (spec, 1)
        for cat in out:
            have = [c for c in cat.table.colnames
                    if c == name or re.fullmatch(rf"{re.escape(name)}_\d+", c)]
            if name not in cat.table.colnames or (length > 1 and len(have) != length):
                raise SExtractorOutputError(
                    f"{what}: column {name}{f'({length})' if length > 1 else ''} asked for but "
                    f"not in the catalogue (columns: {', '.join(cat.table.colnames[:20])})")
    return out
