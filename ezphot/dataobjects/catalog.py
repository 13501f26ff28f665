"""`Catalog`: a photometry result, its metadata (``info``) and its table (``data``).

Saved losslessly as a FITS file: the table (units and dtypes kept) in an HDU named CATALOG,
the info and the SExtractor configuration/version as JSON in the primary header. Every HDU
carries FITS CHECKSUM/DATASUM cards, verified on load (a damaged file raises `CatalogError`),
and the metadata a provenance key (``meta['provenance']``: method, options, targets, input
identity, versions; its sha256 in the EZPROV card) that `ezphot.batch` compares to resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._io import atomic_write, fits_owner
from ..exceptions import CatalogError, ForeignFileError, MissingDependencyError

log = logging.getLogger(__name__)

__all__ = ["Catalog", "CatalogInfo", "CatalogState", "provenance_digest",
           "provenance_difference", "table_fingerprint"]


@dataclass
class CatalogInfo:
    """Metadata of a catalogue (dot access; printed as the tutorial's ``Info ====`` block).

    Parameters
    ----------
    path : str, optional
        Where the catalogue is saved.
    target_img : str, optional
        The measured image.
    obsdate : str, optional
        Observation date (ISO, from the header).
    filter : str, optional
        Filter name.
    exptime : float, optional
        Exposure time in seconds.
    depth : float, optional
        Limiting magnitude, when known.
    seeing : float, optional
        Seeing FWHM in arcsec.
    catalog_type : str, optional
        How the catalogue was made (e.g. 'sextractor', 'circular').
    ra, dec : float, optional
        Image centre in degrees.
    fov_ra, fov_dec : float, optional
        Field of view in degrees.
    objname : str, optional
        Target / field name.
    observatory : str, optional
        Observatory name.
    telname : str, optional
        Telescope name.
    aperture_diameter_arcsec : list of float, optional
        Aperture diameters of the catalogue, in arcsec.
    zp, zp_err : float, optional
        Zero point (magnitude of 1 count, ADU) of the calibrated main column and its
        uncertainty in mag (set by `ezphot.calibration.calibrate`; None when uncalibrated).
    extra : dict, optional
        Any other key.
    """

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
    zp: float | None = None        # zero point (mag of 1 count) of the main column, if known
    zp_err: float | None = None
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = ["Info ============================================"]
        for f in fields(self):
            # zp/zp_err only once calibrated: the tutorial's block stays as it was
            if f.name != "extra" and not (f.name in ("zp", "zp_err")
                                          and getattr(self, f.name) is None):
                lines.append(f"{f.name}: {getattr(self, f.name)}")
        lines.append("===================================================")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-able dict.

        Returns
        -------
        dict
            Every field, numpy scalars and paths turned into plain Python values.
        """
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping) -> CatalogInfo:
        """Inverse of `to_dict` (unknown keys go to ``extra``).

        Parameters
        ----------
        d : mapping
            A dict as made by `to_dict`.

        Returns
        -------
        CatalogInfo
            The info.
        """
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in d.items() if k not in names})
        return cls(**known, extra=extra)


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


class CatalogState(NamedTuple):
    """What `Catalog.check` found at a path.

    Parameters
    ----------
    state : str
        'missing', 'foreign', 'damaged', 'changed' or 'ok'.
    reason : str
        Why, in a few words.
    rows : int
        The catalogue's length when it loaded, else -1.
    """

    state: str
    reason: str
    rows: int = -1  # the catalogue's length when it loaded


def provenance_digest(provenance: Mapping) -> str:
    """sha256 of the canonical JSON of a provenance key.

    Parameters
    ----------
    provenance : mapping
        The provenance key (method, options, targets, input identity, versions).

    Returns
    -------
    str
        Hexadecimal sha256 digest.
    """
    text = json.dumps(jsonable(dict(provenance)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# what differs between a saved and an expected provenance, in the order it is reported
_PROVENANCE_FIELDS = (("method", "method changed"), ("input", "input changed"),
                      ("targets", "targets changed"), ("options", "options changed"),
                      ("ezphot", "ezphot version changed"),
                      ("sextractor", "SExtractor version changed"),
                      ("photutils", "photutils version changed"))


def provenance_difference(saved: Mapping | None, expected: Mapping) -> str:
    """'' when ``saved`` equals ``expected``, else a short reason ('options changed'...).

    Parameters
    ----------
    saved : mapping or None
        The provenance key read from a catalogue.
    expected : mapping
        The provenance key of the run about to be made.

    Returns
    -------
    str
        '' when they are equal, else the first difference found.
    """
    if not isinstance(saved, Mapping):
        return "no provenance key"
    saved, expected = jsonable(dict(saved)), jsonable(dict(expected))
    if saved.get("options") is None and expected.get("options") is not None:
        return "options unknown (saved outside run_batch)"
    for key, reason in _PROVENANCE_FIELDS:
        if saved.get(key) != expected.get(key):
            return reason
    return "" if provenance_digest(saved) == provenance_digest(expected) else "provenance changed"


def _short(exc: BaseException, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def check_replaceable(path: Path) -> None:
    """Raise `ForeignFileError` unless ``path`` is an ezphot catalogue (which may be replaced)."""
    if os.path.islink(path) or not os.path.isfile(path) or fits_owner(path) != "catalog":
        raise ForeignFileError(f"{path}: exists and is not an ezphot catalogue; ezphot leaves it "
                               "untouched (move it away to write the catalogue there)")


# export formats whose files hold the table's metadata (nested dicts, as YAML) with the units
_META_FORMATS = ("ecsv", "ascii.ecsv", "parquet")
def table_fingerprint(table: Table) -> str:
    """A digest of a table's contents: column names, dtypes (byte order normalised), units
    and values. `Catalog` compares it to the one taken when the provenance key was attached
    (measured or loaded): a table edited since then no longer carries that key.

    Parameters
    ----------
    table : astropy.table.Table
        The table.

    Returns
    -------
    str
        A hexadecimal blake2b digest.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(str(len(table)).encode())
    for name in table.colnames:
        col = table[name]
        arr = np.asarray(col)  # masked columns: the values (a mask added later is not seen)
        dt = arr.dtype if arr.dtype.byteorder == "|" else arr.dtype.newbyteorder("<")
        h.update(f"\0{name}\0{dt.str}\0{arr.shape}\0{getattr(col, 'unit', None)}\0".encode())
        if arr.dtype.kind == "O":
            h.update(repr(arr.tolist()).encode())
            continue
        if arr.dtype.byteorder not in ("=", "|", "<"):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        h.update(np.ascontiguousarray(arr).view(np.uint8).ravel())
    return h.hexdigest()


_CHECKSUM = True  # False only in benchmarks/run_benchmarks.py (the cost of the checksum)
_DAMAGE_WORDS = ("checksum", "datasum", "truncated", "corrupt")


def _read_verified(path: Path) -> tuple[Table, fits.Header]:
    """Table and primary header of a saved catalogue, its CHECKSUM/DATASUM verified."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, checksum=True, memmap=False) as hdul:
                header = hdul[0].header.copy()
                if "EZINFO" not in header:
                    raise CatalogError(f"{path}: not an ezphot catalogue (no EZINFO card)")
                if "CATALOG" not in hdul:
                    raise CatalogError(f"{path}: damaged catalogue (truncated: no complete "
                                       "CATALOG table)")
                hdu = hdul["CATALOG"]
                if ("CHECKSUM" in header) != ("CHECKSUM" in hdu.header):
                    raise CatalogError(f"{path}: damaged catalogue (a checksum card is missing)")
                data = Table.read(hdu, format="fits", character_as_bytes=False)
        except CatalogError:
            raise
        except Exception as exc:  # astropy raises OSError, TypeError, ValueError... on damage
            raise CatalogError(f"{path}: not a readable catalogue ({type(exc).__name__}: "
                               f"{exc})") from exc
    damage = [str(w.message).strip() for w in caught
              if any(word in str(w.message).lower() for word in _DAMAGE_WORDS)]
    if damage:
        raise CatalogError(f"{path}: damaged catalogue ({'; '.join(damage)})")
    return data, header


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
            self.verified = loaded.verified
            self._sealed = loaded._sealed
            return
        self.data = source if source is not None else Table()
        if isinstance(info, Mapping):
            info = CatalogInfo.from_dict(info)
        self.info = info or CatalogInfo()
        self.meta = dict(meta or {})
        # SExtractor check images of this run (type -> CheckImage); not part of the saved file
        self.checkimages: dict = {}
        self.verified = False  # True when loaded from a file whose checksum verified
        # fingerprint of the table when its provenance key was attached (`seal`) or loaded
        self._sealed: str | None = None

    def __repr__(self) -> str:
        return (f"Catalog({self.info.catalog_type or 'catalog'} of {self.info.target_img}, "
                f"{len(self.data)} rows x {len(self.data.colnames)} columns)")

    def __len__(self) -> int:
        return len(self.data)

    # -- persistence -----------------------------------------------------------------------
    def seal(self) -> None:
        """Record the table as measured: `save` keeps ``meta['provenance']`` only while the
        table is unchanged since (called by ezphot when it attaches the key)."""
        self._sealed = table_fingerprint(self.data)

    def _drop_stale_provenance(self, path: Path) -> str:
        """Drop the provenance key of a table edited since it was measured or loaded (it
        would tell `run_batch(resume=True)` that the frame's catalogue is ezphot's result);
        ``meta['edited']`` says so. Returns the table's fingerprint."""
        fingerprint = table_fingerprint(self.data)
        if self.meta.get("provenance") is not None and fingerprint != self._sealed:
            log.warning("%s: the table was changed after it was measured; its provenance key "
                        "is dropped (a batch resume measures this frame again)", path)
            self.meta.pop("provenance")
            self.meta["edited"] = "table changed after measurement; provenance key dropped"
        return fingerprint

    def save(self, path: str | os.PathLike | None = None, *, overwrite: bool = True) -> Path:
        """Write the catalogue (FITS, lossless, with CHECKSUM/DATASUM) atomically.

        Parameters
        ----------
        path : path-like, optional
            Destination; default ``info.path``.
        overwrite : bool
            Replace an existing ezphot catalogue (atomically). When False an existing file is
            an error. A file that ezphot did not write is never replaced.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ForeignFileError
            A file that is not an ezphot catalogue sits at ``path`` (it is left untouched).
        OutputError
            The folder is read-only or the disk is full (names the path).
        """
        path = Path(path or self.info.path or "")
        if not str(path) or path.is_dir():
            raise ValueError("Catalog.save needs a file path (info.path is not set)")
        if os.path.lexists(path):
            check_replaceable(path)
            if not overwrite:
                raise FileExistsError(f"{path} exists and overwrite=False")
        self.info.path = str(path)
        fingerprint = self._drop_stale_provenance(path)
        primary = fits.PrimaryHDU()
        primary.header["EZPHOT"] = ("catalog", "written by ezphot")
        provenance = self.meta.get("provenance")
        if provenance is not None:
            primary.header["EZPROV"] = (provenance_digest(provenance),
                                        "sha256 of the provenance key (EZMETA)")
        primary.header["EZINFO"] = json.dumps(self.info.to_dict())
        meta = {**self.meta, "table_meta": dict(self.data.meta)}
        primary.header["EZMETA"] = json.dumps(jsonable(meta), default=str)
        table = self.data.copy(copy_data=False)
        table.meta.clear()  # provenance goes in EZMETA; table meta keys are not FITS-safe
        hdu = fits.table_to_hdu(table)
        hdu.name = "CATALOG"

        def write(tmp: Path) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                fits.HDUList([primary, hdu]).writeto(tmp, checksum=_CHECKSUM)

        atomic_write(path, write, may_replace=check_replaceable)
        if self.meta.get("provenance") is not None:
            self._sealed = fingerprint  # saved as measured: still the measured table
        log.info("Catalogue saved: %s (%d rows)", path, len(self.data))
        return path

    @classmethod
    def _load(cls, path: Path) -> Catalog:
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{path}: no such catalogue")
        if not path.is_file():
            raise CatalogError(f"{path}: not a catalogue file")
        data, header = _read_verified(path)
        try:
            info = CatalogInfo.from_dict(json.loads(header["EZINFO"]))
            meta = json.loads(header.get("EZMETA", "{}"))
            if not isinstance(meta, dict):
                raise TypeError("EZMETA is not a JSON object")
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"{path}: damaged ezphot catalogue header ({exc})") from exc
        for name in data.colnames:  # FITS is big-endian; hand back native arrays
            col = data[name]
            if col.dtype.byteorder not in ("=", "|"):
                data[name] = col.astype(col.dtype.newbyteorder("="))
                data[name].unit = col.unit
        data.meta.clear()
        data.meta.update(meta.pop("table_meta", {}))
        info.path = str(path)
        catalog = cls(data, info=info, meta=meta)
        catalog.verified = "CHECKSUM" in header
        if meta.get("provenance") is not None:
            catalog.seal()  # as saved (checksum verified): edits from here on drop the key
        return catalog

    @staticmethod
    def check(path: str | os.PathLike, provenance: Mapping | None = None) -> CatalogState:
        """Whether the file at ``path`` is a sound ezphot catalogue (made with ``provenance``).

        Parameters
        ----------
        path : path-like
            The file to check.
        provenance : mapping, optional
            The expected provenance key; when given, another one is 'changed'.

        Returns
        -------
        CatalogState
            ``state`` is 'missing', 'foreign' (not written by ezphot: never to be replaced),
            'damaged' (checksum failed, truncated, unreadable), 'changed' (no checksum, or
            another provenance) or 'ok'; ``reason`` says why in a few words.
        """
        path = Path(path)
        if not os.path.lexists(path):
            return CatalogState("missing", "no catalogue")
        try:
            check_replaceable(path)
        except ForeignFileError as exc:
            return CatalogState("foreign", str(exc))
        try:
            catalog = Catalog._load(path)
        except (CatalogError, OSError) as exc:
            why = _short(exc, path)  # the file is ezphot's: whatever fails is damage
            return CatalogState("damaged", why if why.startswith("damaged catalogue")
                                else f"damaged catalogue ({why})")
        if not catalog.verified:
            return CatalogState("changed", "no checksum (written by an older ezphot)")
        if provenance is not None:
            if catalog.meta.get("edited") and catalog.meta.get("provenance") is None:
                return CatalogState("changed", "edited after measurement (no provenance key)")
            why = provenance_difference(catalog.meta.get("provenance"), provenance)
            if why:
                return CatalogState("changed", why)
        return CatalogState("ok", "verified", len(catalog.data))

    @staticmethod
    def is_complete(path: str | os.PathLike) -> bool:
        """True when ``path`` is a complete ezphot catalogue whose checksum verifies.

        Parameters
        ----------
        path : path-like
            The file to check.

        Returns
        -------
        bool
            ``Catalog.check(path).state == 'ok'``.
        """
        return Catalog.check(path).state == "ok"

    # -- conversions ----------------------------------------------------------------------
    def to_pandas(self):
        """The table as a pandas DataFrame (units dropped).

        Returns
        -------
        pandas.DataFrame
            One column per catalogue column, without units.
        """
        return self.data.to_pandas()

    def write(self, path: str | os.PathLike, format: str = "ecsv", overwrite: bool = False) -> Path:
        """Export the table to another format (``'ecsv'``, ``'csv'``, ``'parquet'``, ...).

        ``'ecsv'`` and ``'parquet'`` keep the column units, dtypes and descriptions and the
        metadata: the table's own ``meta``, the info (``meta['ezphot_info']``, a dict:
        ``CatalogInfo.from_dict(table.meta['ezphot_info'])`` rebuilds it) and the provenance
        (``meta['ezphot_meta']``). ``'csv'`` is plain text for spreadsheets: a header line of
        column names and the values; units, dtypes (e.g. float32 reads back as float64), the
        info and all metadata are lost. Other astropy formats are written as astropy writes
        them (the metadata only where that format can hold it). The lossless file, with
        checksums, is `save`'s FITS. Written atomically. ECSV and Parquet files carry ezphot's
        marker (meta ``ezphot_export``); with ``overwrite=True`` only such a file is replaced:
        any other file at ``path`` (and any existing CSV, which has no place for a marker)
        raises `ForeignFileError` and is left untouched.

        Parameters
        ----------
        path : path-like
            Destination file (written atomically).
        format : str
            ``'ecsv'`` (default), ``'csv'``, ``'parquet'`` or another astropy table format.
        overwrite : bool
            Replace an existing file at ``path``; when False that is an error.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        FileExistsError
            ``path`` exists and ``overwrite`` is False.
        ForeignFileError
            A file ezphot did not write (or a CSV file) is at ``path``.
        MissingDependencyError
            ``format='parquet'`` without pyarrow (``pip install 'ezphot[parquet]'``).
        """
        from .._io import EXPORT_KEY, check_export_replaceable

        path = Path(path)
        kind = {"ascii.csv": "csv", "ascii.ecsv": "ecsv"}.get(format, format)
        if os.path.lexists(path):
            if not overwrite:
                raise FileExistsError(f"{path} exists and overwrite=False")
            check_export_replaceable(path, kind)
        if format == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as exc:
                raise MissingDependencyError(
                    f"{path}: writing Parquet needs the pyarrow package; install it with "
                    "pip install 'ezphot[parquet]' (or pip install pyarrow), or export to "
                    "'ecsv', which keeps units and metadata too") from exc
        table = self.data.copy(copy_data=False)
        if format in _META_FORMATS:
            table.meta = dict(table.meta)
            table.meta["ezphot_info"] = self.info.to_dict()
            # plain JSON types, as in save's EZMETA: the writers serialise them as YAML
            table.meta["ezphot_meta"] = json.loads(json.dumps(jsonable(self.meta),
                                                              default=str))
        if kind in ("ecsv", "parquet"):
            table.meta[EXPORT_KEY] = _export_mark()
        fmt = {"csv": "ascii.csv", "ecsv": "ascii.ecsv"}.get(format, format)
        atomic_write(path, lambda tmp: table.write(tmp, format=fmt),
                     may_replace=lambda p: check_export_replaceable(p, kind))
        return path


def _export_mark() -> str:
    """ezphot's ownership marker of an export (the version that wrote it)."""
    try:
        from .. import __version__
    except ImportError:  # pragma: no cover
        __version__ = "unknown"
    return f"ezphot {__version__}"
