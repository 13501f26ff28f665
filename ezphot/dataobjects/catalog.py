"""`Catalog`: a photometry result, its metadata (``info``) and its table (``data``).

Saved losslessly as a FITS file: the table (units and dtypes kept) in an HDU named CATALOG,
the info and the SExtractor configuration/version as JSON in the primary header.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["Catalog", "CatalogInfo"]


@dataclass
class CatalogInfo:
    """Metadata of a catalogue (dot access; printed as the tutorial's ``Info ====`` block)."""

    path: str | None = None
    target_img: str | None = None
    obsdate: str | None = None
    filter: str | None = None
    exptime: float | None = None
    depth: float | None = None
    seeing: float | None = None
    catalog_type: str | None = None
    ra: float | None = None
    dec: float | None = None
    fov_ra: float | None = None
    fov_dec: float | None = None
    objname: str | None = None
    observatory: str | None = None
    telname: str | None = None
    aperture_diameter_arcsec: list[float] | None = None
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = ["Info ============================================"]
        for f in fields(self):
            if f.name != "extra":
                lines.append(f"{f.name}: {getattr(self, f.name)}")
        lines.append("===================================================")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping) -> CatalogInfo:
        """Inverse of `to_dict` (unknown keys go to ``extra``)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in d.items() if k not in names})
        return cls(**known, extra=extra)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


class Catalog:
    """A photometry catalogue.

    Parameters
    ----------
    source : path-like or astropy.table.Table, optional
        A saved catalogue to load, or the table itself.
    info : CatalogInfo or dict, optional
        Metadata (ignored when loading from a file, which carries its own).
    meta : dict, optional
        Provenance (SExtractor version and configuration, aperture method...).

    Attributes
    ----------
    info : CatalogInfo
    data : astropy.table.Table
    """

    def __init__(self, source: str | os.PathLike | Table | None = None, *,
                 info: CatalogInfo | Mapping | None = None, meta: Mapping | None = None) -> None:
        if isinstance(source, str | os.PathLike):
            loaded = self._load(Path(source))
            self.data, self.info, self.meta = loaded.data, loaded.info, loaded.meta
            return
        self.data = source if source is not None else Table()
        if isinstance(info, Mapping):
            info = CatalogInfo.from_dict(info)
        self.info = info or CatalogInfo()
        self.meta = dict(meta or {})

    def __repr__(self) -> str:
        return (f"Catalog({self.info.catalog_type or 'catalog'} of {self.info.target_img}, "
                f"{len(self.data)} rows x {len(self.data.colnames)} columns)")

    def __len__(self) -> int:
        return len(self.data)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None, *, overwrite: bool = True) -> Path:
        """Write the catalogue (FITS, lossless) atomically.

        Parameters
        ----------
        path : path-like, optional
            Destination; default ``info.path``.
        overwrite : bool
            Replace an existing file (atomically). When False an existing file is an error.
        """
        path = Path(path or self.info.path or "")
        if not str(path) or path.is_dir():
            raise ValueError("Catalog.save needs a file path (info.path is not set)")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists and overwrite=False")
        self.info.path = str(path)
        primary = fits.PrimaryHDU()
        primary.header["EZPHOT"] = ("catalog", "written by ezphot")
        primary.header["EZINFO"] = json.dumps(self.info.to_dict())
        meta = {**self.meta, "table_meta": dict(self.data.meta)}
        primary.header["EZMETA"] = json.dumps(_jsonable(meta), default=str)
        table = self.data.copy(copy_data=False)
        table.meta.clear()  # provenance goes in EZMETA; table meta keys are not FITS-safe
        hdu = fits.table_to_hdu(table)
        hdu.name = "CATALOG"

        def write(tmp: Path) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                fits.HDUList([primary, hdu]).writeto(tmp)

        atomic_write(path, write)
        log.info("Catalogue saved: %s (%d rows)", path, len(self.data))
        return path

    @classmethod
    def _load(cls, path: Path) -> Catalog:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such catalogue")
        try:
            with fits.open(path) as hdul:
                header = hdul[0].header
                if "EZINFO" not in header or "CATALOG" not in hdul:
                    raise ValueError(f"{path}: not an ezphot catalogue (no EZINFO/CATALOG)")
                info = CatalogInfo.from_dict(json.loads(header["EZINFO"]))
                meta = json.loads(header.get("EZMETA", "{}"))
                data = Table.read(hdul["CATALOG"], format="fits", character_as_bytes=False)
        except OSError as exc:
            raise ValueError(f"{path}: not a readable catalogue ({exc})") from exc
        for name in data.colnames:  # FITS is big-endian; hand back native arrays
            col = data[name]
            if col.dtype.byteorder not in ("=", "|"):
                data[name] = col.astype(col.dtype.newbyteorder("="))
                data[name].unit = col.unit
        data.meta.clear()
        data.meta.update(meta.pop("table_meta", {}))
        info.path = str(path)
        return cls(data, info=info, meta=meta)

    @staticmethod
    def is_complete(path: str | os.PathLike) -> bool:
        """True when ``path`` is a complete, readable ezphot catalogue (used to resume)."""
        try:
            with fits.open(path) as hdul:
                return "EZINFO" in hdul[0].header and "CATALOG" in hdul
        except (OSError, ValueError):
            return False

    # -- conversions ----------------------------------------------------------------------
    def to_pandas(self):
        """The table as a pandas DataFrame (units dropped)."""
        return self.data.to_pandas()

    def write(self, path: str | os.PathLike, format: str = "ecsv", overwrite: bool = False) -> Path:
        """Export the table to another format (``'ecsv'``, ``'csv'``, ``'parquet'``, ...).

        ``'ecsv'`` keeps units, dtypes and the info; ``'csv'`` is plain text.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists and overwrite=False")
        table = self.data.copy(copy_data=False)
        if format == "ecsv":
            table.meta["ezphot_info"] = self.info.to_dict()
        fmt = {"csv": "ascii.csv", "ecsv": "ascii.ecsv"}.get(format, format)
        atomic_write(path, lambda tmp: table.write(tmp, format=fmt))
        return path
