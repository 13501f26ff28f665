"""Reading SExtractor's FITS_LDAC catalogues.

A FITS_LDAC file holds, for every image extension SExtractor measured, a pair of tables:
``LDAC_IMHEAD`` (the image header plus SExtractor's ``SEX*`` keywords as one text cell) and
``LDAC_OBJECTS`` (the sources). Vector columns (``FLUX_APER`` with several apertures,
``FLUX_RADIUS`` with several fractions) are split into ``NAME, NAME_1, NAME_2, ...``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

log = logging.getLogger(__name__)

__all__ = ["LDACCatalog", "read_ldac", "split_vector_name"]


@dataclass
class LDACCatalog:
    """One image extension's catalogue from a FITS_LDAC file.

    Attributes
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
    """Column name of element ``index`` of a vector column: NAME, NAME_1, NAME_2, ..."""
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


def read_ldac(path: str | Path) -> list[LDACCatalog]:
    """Read a FITS_LDAC catalogue.

    Parameters
    ----------
    path : str or path-like
        The ``.ldac``/``.cat`` file written with ``CATALOG_TYPE FITS_LDAC``.

    Returns
    -------
    list of LDACCatalog
        One entry per image extension SExtractor measured, in file order.
    """
    out: list[LDACCatalog] = []
    with fits.open(path, memmap=False) as hdul:
        header = None
        for hdu in hdul[1:]:
            if hdu.name == "LDAC_IMHEAD":
                header = _header_from_imhead(hdu)
            elif hdu.name == "LDAC_OBJECTS":
                out.append(LDACCatalog(header if header is not None else fits.Header(),
                                       _objects_to_table(hdu)))
                header = None
    if not out:
        raise ValueError(f"{path}: no LDAC_OBJECTS table (not a FITS_LDAC catalogue)")
    return out
