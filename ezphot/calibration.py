"""Photometric calibration: zero points from a reference catalogue, depth, calibrated columns.

>>> from ezphot.calibration import ReferenceCatalog, calibrate, plot_calibration
>>> ref = ReferenceCatalog.read('field_ps1.csv', survey='ps1')      # a local file
>>> cal = calibrate(catalog, ref, band='r')                          # a new Catalog
>>> cal.info.zp, cal.info.zp_err, cal.info.depth                     # MAG_AUTO by default
>>> cal.data['MAG_AUTO_CAL'], cal.meta['calibration']['columns']['APER_1']
>>> fig = plot_calibration(cal)

The zero point of a flux column is the magnitude of 1 count (ADU) in it:
``m = -2.5 log10(FLUX_<col>) + ZP_<col>`` (with a colour term ``+ k (colour - colour0)``).
It is measured on stars matched to the reference (astropy ``match_to_catalog_sky`` within
``match_radius_arcsec``), selected from the catalogue's own columns (unflagged, unsaturated,
on the stellar locus of CLASS_STAR / ELONGATION / FWHM_IMAGE, isolated, S/N and magnitude
range; each cut is a keyword, skipped when its column is absent, e.g. in forced catalogues),
sigma-clipped on the pulls, then averaged with inverse-variance weights; the error is that
of the weighted mean scaled by sqrt(reduced chi^2), i.e. set by the stars' actual scatter
(with fewer than 10 stars only scaled up).
Each aperture and AUTO gets its own zero point (aperture corrections included).

Depth (``info.depth``) is the 5-sigma point-source limit: the calibrated magnitude of a point
source whose flux in the column has S/N 5, from the catalogue's own noise (median sky variance
``FLUXERR**2 - FLUX/gain`` of its faint sources) and the gain (`point_source_depth`).

Reference catalogues are read from local files only (no network on the survey machines):
FITS, ECSV, CSV or Parquet, with RA/Dec in degrees and a magnitude (and error) per band.
Built-in column mappings (``survey=``):

- ``'gaia'``: Gaia DR3 synthetic photometry (``gaiadr3.synthetic_photometry_gspc`` joined to
  ``gaia_source`` for ``ra, dec``; or GaiaXPy ``generate`` output for the 7DT medium bands):
  every ``<band>_mag`` column is a band (``g_sdss``, ``r_ps1``, ``v_jkc``, ``m400``...), its
  error from ``<band>_mag_error`` or ``<band>_flux_error / <band>_flux``.
- ``'ps1'``: Pan-STARRS1 DR2 MeanObject (MAST CasJobs: ``raMean, decMean, gMeanPSFMag,
  gMeanPSFMagErr``...; or VizieR II/349: ``RAJ2000, DEJ2000, gmag, e_gmag``...).
- ``'skymapper'``: SkyMapper DR2/DR4 master table (``raj2000, dej2000, u_psf, e_u_psf``...;
  or VizieR II/358: ``RAICRS, DEICRS, uPSF, e_uPSF``...).
- ``'apass'``: APASS DR9/DR10 (VizieR II/336: ``RAJ2000, DEJ2000, Vmag, e_Vmag, Bmag,
  g'mag, r'mag, i'mag``...).

To make such a file on a machine with network access, e.g. with astroquery::

    from astroquery.vizier import Vizier
    t = Vizier(columns=['**'], row_limit=-1).query_region(
        'T00528 centre', radius='1.2 deg', catalog='II/349/ps1')[0]
    t.write('field_ps1.ecsv')                      # ReferenceCatalog.read(..., survey='ps1')

or the Gaia archive (``SELECT s.ra, s.dec, p.* FROM gaiadr3.gaia_source AS s JOIN
gaiadr3.synthetic_photometry_gspc AS p USING (source_id) WHERE 1 = CONTAINS(...)``, saved
as FITS or CSV). Without ``survey``, columns ``RA, DEC, MAG_<band>, MAGERR_<band>`` or
``ra, dec, <band>_mag, <band>_magerr`` (what `ezphot.datasets.make_reference_catalog`
writes) are found by name; any other table works with ``columns={'ra': ..., 'dec': ...,
'<band>': ('<mag column>', '<error column>')}``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Column, Table

from ._validate import header_number
from .dataobjects import Catalog
from .exceptions import ArgumentError, CalibrationError, ImageError, ReferenceCatalogError

log = logging.getLogger(__name__)

__all__ = ["ReferenceCatalog", "calibrate", "plot_calibration", "point_source_depth",
           "header_zeropoint", "catalog_gain", "SURVEYS", "CAL_USED", "CAL_CLIPPED",
           "CAL_SELECTED", "CAL_MATCHED"]

# CAL_FLAG values: what the calibration did with each source (for the main column)
CAL_UNMATCHED, CAL_MATCHED, CAL_SELECTED, CAL_CLIPPED, CAL_USED = 0, 1, 2, 3, 4

# column names of the common exports: (ra candidates, dec candidates, band -> (mag, err) list)
_PS1_BANDS = "grizy"
_SM_BANDS = "uvgriz"
SURVEYS: dict[str, dict] = {
    "ps1": {"ra": ("raMean", "RAJ2000", "ra", "RAMean"), "dec": ("decMean", "DEJ2000", "dec",
                                                                 "DecMean"),
            "bands": {b: [(f"{b}MeanPSFMag", f"{b}MeanPSFMagErr"), (f"{b}mag", f"e_{b}mag")]
                      for b in _PS1_BANDS}},
    "skymapper": {"ra": ("raj2000", "RAICRS", "ra", "RAJ2000"),
                  "dec": ("dej2000", "DEICRS", "dec", "DEJ2000"),
                  "bands": {b: [(f"{b}_psf", f"e_{b}_psf"), (f"{b}PSF", f"e_{b}PSF")]
                            for b in _SM_BANDS}},
    "apass": {"ra": ("RAJ2000", "ra", "RA"), "dec": ("DEJ2000", "dec", "DEC"),
              "bands": {"B": [("Bmag", "e_Bmag")], "V": [("Vmag", "e_Vmag")],
                        "g": [("g'mag", "e_g'mag"), ("gpmag", "e_gpmag")],
                        "r": [("r'mag", "e_r'mag"), ("rpmag", "e_rpmag")],
                        "i": [("i'mag", "e_i'mag"), ("ipmag", "e_ipmag")]}},
    "gaia": {"ra": ("ra", "RA_ICRS", "RAJ2000"), "dec": ("dec", "DE_ICRS", "DEJ2000"),
             "bands": None},  # every <band>_mag column
}
_SURVEY_ALIASES = {"panstarrs": "ps1", "pan-starrs1": "ps1", "panstarrs1": "ps1",
                   "gaiadr3": "gaia", "gaia_dr3": "gaia", "gaiaxp": "gaia", "sm": "skymapper"}
_FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".ecsv": "ascii.ecsv",
            ".csv": "ascii.csv", ".parquet": "parquet", ".pq": "parquet"}


# -- reference catalogues ------------------------------------------------------------------
@dataclass
class ReferenceCatalog:
    """Reference stars: RA/Dec (deg) and magnitudes with errors per band.

    Make one with `ReferenceCatalog.read` (a file) or from a table with
    ``ReferenceCatalog(table)`` whose columns are ``RA``, ``DEC``, ``MAG_<band>`` and
    ``MAGERR_<band>`` (what ``read`` produces).

    The parameters are also the attributes.

    Parameters
    ----------
    table : astropy.table.Table
        The stars: ``RA``, ``DEC`` (deg), ``MAG_<band>`` and ``MAGERR_<band>`` columns. Rows
        without a finite RA/Dec are dropped (with a warning).
    survey : str or None
        The survey whose column mapping was used (``'gaia'``, ``'ps1'``, ...), if any.
    path : str or None
        The file it was read from, if any (names it in messages).
    _coord : SkyCoord or None
        Internal cache of the sky positions (`coord`); not to be given.
    """

    table: Table
    survey: str | None = None
    path: str | None = None
    _coord: SkyCoord | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = self.path or "reference table"
        for name in ("RA", "DEC"):
            if name not in self.table.colnames:
                raise ReferenceCatalogError(f"{where}: no {name} column")
        ra = np.asarray(self.table["RA"], float)
        dec = np.asarray(self.table["DEC"], float)
        good = np.isfinite(ra) & np.isfinite(dec)
        if not good.all():
            log.warning("%s: %d rows without finite RA/Dec dropped", where, (~good).sum())
            self.table = self.table[good]
            ra, dec = ra[good], dec[good]
        if (np.abs(dec) > 90).any():
            raise ReferenceCatalogError(f"{where}: declinations outside [-90, 90] deg (is DEC "
                                        "in degrees?)")
        if not self.bands:
            raise ReferenceCatalogError(f"{where}: no magnitude column (MAG_<band>)")

    @property
    def bands(self) -> list[str]:
        """The bands present (``MAG_<band>`` columns)."""
        return [c[4:] for c in self.table.colnames if c.startswith("MAG_")]

    @property
    def coord(self) -> SkyCoord:
        """Sky positions (ICRS), made once."""
        if self._coord is None:
            self._coord = SkyCoord(np.asarray(self.table["RA"], float) * u.deg,
                                   np.asarray(self.table["DEC"], float) * u.deg)
        return self._coord

    def __len__(self) -> int:
        return len(self.table)

    def band_for(self, name: str) -> str:
        """The band of this catalogue called ``name`` (exact, then case-insensitive, then the
        one band whose name starts with ``name + '_'``, e.g. 'g' -> 'g_sdss').

        Parameters
        ----------
        name : str
            A band or filter name.

        Returns
        -------
        str
            The band as named in this catalogue (its ``MAG_<band>`` column).

        Raises
        ------
        ReferenceCatalogError
            When no band, or more than one, matches.
        """
        bands = self.bands
        if name in bands:
            return name
        lower = [b for b in bands if b.lower() == name.lower()]
        if len(lower) == 1:
            return lower[0]
        prefixed = [b for b in bands if b.lower().startswith(name.lower() + "_")]
        if len(prefixed) == 1:
            return prefixed[0]
        raise ReferenceCatalogError(f"{self.path or 'reference'}: no band {name!r} "
                                    f"(bands: {', '.join(bands)}); give band=")

    @classmethod
    def read(cls, path: str | os.PathLike, *, survey: str | None = None,
             columns: Mapping | None = None, format: str | None = None) -> ReferenceCatalog:
        """Read a reference catalogue from a local FITS, ECSV, CSV or Parquet file.

        Parameters
        ----------
        path : path-like
        survey : {'gaia', 'ps1', 'skymapper', 'apass'}, optional
            Built-in column mapping of a common export (see the module docstring).
        columns : dict, optional
            ``{'ra': name, 'dec': name, band: (mag name, error name or None), ...}``;
            entries given here win over the survey's. Without either, the file must have
            ``RA``, ``DEC``, ``MAG_<band>`` (``MAGERR_<band>``) columns.
        format : str, optional
            astropy ``Table.read`` format (default from the file extension).

        Returns
        -------
        ReferenceCatalog
            The stars with ``RA``, ``DEC``, ``MAG_<band>``, ``MAGERR_<band>`` columns.

        Raises
        ------
        ReferenceCatalogError
            Unreadable file, unknown survey, a mapped column missing (names the file).
        """
        path = Path(path)
        if not path.is_file():
            raise ReferenceCatalogError(f"{path}: no such reference catalogue file")
        fmt = format or _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ReferenceCatalogError(f"{path}: unknown file type {path.suffix!r}; give "
                                        f"format= (one of {sorted(set(_FORMATS.values()))})")
        try:
            raw = Table.read(path, format=fmt)
        except Exception as exc:  # astropy raises many types on bad files
            raise ReferenceCatalogError(f"{path}: not a readable {fmt} table "
                                        f"({type(exc).__name__}: {exc})") from exc
        try:
            table = map_columns(raw, survey=survey, columns=columns, where=str(path))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ReferenceCatalogError):
                raise
            # e.g. sexagesimal text where degrees are expected
            raise ReferenceCatalogError(f"{path}: a mapped column is not numeric ({exc})") \
                from exc
        return cls(table, survey=_survey_key(survey), path=str(path))


def _survey_key(survey: str | None) -> str | None:
    if survey is None:
        return None
    key = _SURVEY_ALIASES.get(survey.lower(), survey.lower())
    if key not in SURVEYS:
        raise ReferenceCatalogError(f"unknown survey {survey!r}: one of {sorted(SURVEYS)} (or "
                                    "give columns=)")
    return key


def _first(raw: Table, names: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in raw.colnames}
    for n in names:
        if n in raw.colnames:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def _as_float(col) -> np.ndarray:
    data = col.filled(np.nan) if hasattr(col, "filled") else col
    try:
        return np.asarray(data, dtype=float)
    except (TypeError, ValueError):  # text columns with blanks ('', '--')
        return np.array([float(v) if str(v).strip() not in ("", "--", "nan", "None") else np.nan
                         for v in np.asarray(data)])


def map_columns(raw: Table, *, survey: str | None = None, columns: Mapping | None = None,
                where: str = "reference") -> Table:
    """A table in the reference layout (RA, DEC, MAG_<band>, MAGERR_<band>) from ``raw``."""
    key = _survey_key(survey)
    spec = SURVEYS[key] if key else None
    columns = dict(columns or {})
    out = Table()
    for coord in ("ra", "dec"):
        name = columns.pop(coord, None)
        if name is None:
            cands = (spec[coord] if spec else ()) + (coord.upper(), coord)
            name = _first(raw, cands)
        if name is None or name not in raw.colnames:
            raise ReferenceCatalogError(f"{where}: no {coord.upper()} column (looked for "
                                        f"{name or ', '.join(spec[coord] if spec else ())!s}); "
                                        f"give columns={{'{coord}': <name>}}")
        col = raw[name]
        values = _as_float(col)
        if getattr(col, "unit", None) is not None and col.unit not in (u.deg, None):
            try:
                values = (values * col.unit).to_value(u.deg)
            except u.UnitConversionError as exc:
                raise ReferenceCatalogError(f"{where}: column {name} in {col.unit}, not an "
                                            "angle") from exc
        out[coord.upper()] = values * u.deg
    bands: dict[str, tuple[str, str | None] | tuple[np.ndarray, np.ndarray]] = {}
    if spec is not None and spec["bands"] is not None:
        for band, options in spec["bands"].items():
            for mag, err in options:
                if mag in raw.colnames:
                    bands[band] = (mag, err if err in raw.colnames else None)
                    break
    elif spec is not None:  # gaia: every <band>_mag
        for c in raw.colnames:
            m = re.fullmatch(r"(.+)_mag", c)
            if m:
                bands[m.group(1)] = (c, None)
    elif not columns:
        for c in raw.colnames:
            if c.startswith("MAG_"):
                band = c[4:]
                bands[band] = (c, f"MAGERR_{band}" if f"MAGERR_{band}" in raw.colnames else None)
        if not bands:  # '<band>_mag' with '<band>_magerr' (ezphot.datasets, many exports)
            for c in raw.colnames:
                m = re.fullmatch(r"(.+)_mag", c)
                if m:
                    b = m.group(1)
                    err = _first(raw, (f"{b}_magerr", f"{b}_mag_err", f"{b}_mag_error",
                                       f"e_{b}_mag", f"{b}_emag"))
                    bands[b] = (c, err)
    for band, value in columns.items():
        mag, err = (value, None) if isinstance(value, str) else tuple(value)
        for n in (mag, err):
            if n is not None and n not in raw.colnames:
                raise ReferenceCatalogError(f"{where}: no column {n!r} (for band {band!r})")
        bands[str(band)] = (mag, err)
    if not bands:
        raise ReferenceCatalogError(f"{where}: no magnitude columns found (survey {survey!r}); "
                                    "give columns={'<band>': ('<mag>', '<err>')}")
    for band, (mag, err) in bands.items():
        m = _as_float(raw[mag])
        if err is not None:
            e = _as_float(raw[err])
        elif key == "gaia" and f"{band}_mag_error" in raw.colnames:
            e = _as_float(raw[f"{band}_mag_error"])
        elif key == "gaia" and {f"{band}_flux", f"{band}_flux_error"} <= set(raw.colnames):
            with np.errstate(divide="ignore", invalid="ignore"):
                e = 2.5 / math.log(10) * _as_float(raw[f"{band}_flux_error"]) \
                    / _as_float(raw[f"{band}_flux"])
        else:
            e = np.full(len(raw), np.nan)
        out[f"MAG_{band}"] = m * u.mag
        out[f"MAGERR_{band}"] = e * u.mag
    out.meta["columns"] = {b: list(v) for b, v in bands.items()}
    return out


# -- noise, gain, depth --------------------------------------------------------------------
def catalog_gain(catalog: Catalog) -> float | None:
    """The gain (e-/ADU) a catalogue's errors were computed with, when recorded.

    Parameters
    ----------
    catalog : Catalog
        A photometry catalogue.

    Returns
    -------
    float or None
        ``meta['egain']``, else the SExtractor configuration's GAIN, when finite and
        positive; None otherwise.
    """
    meta = catalog.meta or {}
    for value in (meta.get("egain"), (meta.get("sextractor_config") or {}).get("GAIN")):
        try:
            g = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(g) and g > 0:
            return g
    return None


def _columns(table: Table) -> list[str]:
    """Flux columns with an error: 'AUTO', 'APER', 'APER_1', ..., 'ELIP' (suffixes)."""
    out = []
    for c in table.colnames:
        if c.startswith("FLUX_") and f"FLUXERR_{c[5:]}" in table.colnames:
            out.append(c[5:])
    return out


def point_source_depth(catalog: Catalog, zeropoint: float, *, column: str | None = None,
                       snr: float = 5.0, gain: float | None = None) -> float | None:
    """The magnitude of a point source measured at S/N ``snr`` in ``column``.

    The noise comes from the catalogue itself: the sky (and read-noise) variance in the
    column's aperture, ``FLUXERR**2 - FLUX/gain``, is the median over its faint sources
    (S/N < 50; all when fewer than 5), then ``F`` solves ``F / sqrt(var + F/gain) = snr`` and
    the depth is ``zeropoint - 2.5 log10(F)``.

    Parameters
    ----------
    catalog : Catalog
    zeropoint : float
        Magnitude of 1 count in the column (as `calibrate` defines it).
    column : str, optional
        'AUTO', 'APER', 'APER_1', ... (default: AUTO when present, else the first aperture).
    snr : float
    gain : float, optional
        e-/ADU (default: the one the catalogue was measured with; no Poisson term when
        unknown).

    Returns
    -------
    float or None
        None when the catalogue has no usable row.
    """
    table = catalog.data
    cols = _columns(table)
    if column is None:
        column = "AUTO" if "AUTO" in cols else (cols[0] if cols else None)
    if column is None or column not in cols:
        return None
    gain = gain if gain is not None else catalog_gain(catalog)
    flux = np.asarray(table[f"FLUX_{column}"], float)
    err = np.asarray(table[f"FLUXERR_{column}"], float)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    if not ok.any():
        return None
    flux, err = flux[ok], err[ok]
    poisson = np.maximum(flux, 0) / gain if gain else 0.0
    var = err**2 - poisson
    with np.errstate(divide="ignore", invalid="ignore"):
        faint = flux / err < 50
    if faint.sum() >= 5:
        var = var[faint]
    var = float(np.median(var))
    if not var > 0:
        return None
    a = snr**2 / gain if gain else 0.0
    flux5 = 0.5 * (a + math.sqrt(a * a + 4 * snr**2 * var))
    return float(zeropoint - 2.5 * math.log10(flux5))


def header_zeropoint(header, keys: Sequence[str] | None = None) -> tuple[float | None, str]:
    """The zero point a FITS header carries: the first finite numeric keyword of ``keys``.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping, or None
        The image's header.
    keys : sequence of str, optional
        Keywords to look for, in order (default: `ezphot.multiband.ZEROPOINT_KEYS`: ZP,
        ZP_AUTO, MAGZERO, MAGZP, PHOTZP).

    Returns
    -------
    (float or None, str)
        The value and ``'header <KEY>'``; ``(None, 'none')`` when no keyword holds a number.
    """
    if keys is None:
        from .multiband import ZEROPOINT_KEYS as keys
    if header is None:
        return None, "none"
    for key in keys:
        try:
            return header_number(header, key), f"header {key}"
        except ImageError:  # absent, not a number, not finite: the next one
            continue
    return None, "none"


def fill_depth(catalog: Catalog, zeropoint: float | None, *, column: str | None = None,
               source: str = "zeropoint", header=None) -> None:
    """Set ``info.depth`` from the data when a zero point is known (in place).

    The zero point is ``zeropoint`` (the catalogue's magnitudes carry it), else — with none
    (None or 0: the instrumental convention) — the one the image's ``header`` carries
    (`header_zeropoint`: ZP, ZP_AUTO, MAGZERO, MAGZP, PHOTZP; the magnitudes stay
    instrumental, the depth is calibrated like a pipeline's UL5 keyword). Only without
    either does the header's depth keyword (UL5, DEPTH...) stay. Recorded in
    ``meta['depth']`` (``source``: 'zeropoint', 'header <KEY>' or 'header').

    Parameters
    ----------
    catalog : Catalog
        A photometry catalogue (changed in place).
    zeropoint : float or None
        The zero point its magnitudes were computed with.
    column : str, optional
        Flux column (`point_source_depth`; default AUTO, else the first aperture).
    source : str
        What ``meta['depth']['source']`` says for ``zeropoint``.
    header : astropy.io.fits.Header, optional
        The image's header: its zero-point keyword when ``zeropoint`` is None or 0.
    """
    if zeropoint is not None and math.isfinite(float(zeropoint)) and float(zeropoint) != 0.0:
        zp = float(zeropoint)
    else:
        zp, source = header_zeropoint(header)
    if zp is None:
        if catalog.info.depth is not None:
            catalog.meta.setdefault("depth", {"source": "header", "value": catalog.info.depth})
        return
    depth = point_source_depth(catalog, zp, column=column)
    if depth is None:
        return
    catalog.info.depth = round(depth, 4)
    catalog.meta["depth"] = {"source": source, "value": round(depth, 4), "snr": 5.0,
                             "column": column or ("AUTO" if "FLUX_AUTO" in catalog.data.colnames
                                                  else "first aperture"),
                             "zeropoint": zp}


# -- calibration ---------------------------------------------------------------------------
def _sky(table: Table) -> SkyCoord:
    for ra, dec in (("X_WORLD", "Y_WORLD"), ("ALPHA_J2000", "DELTA_J2000"), ("RA", "DEC")):
        if ra in table.colnames and dec in table.colnames:
            return SkyCoord(np.asarray(table[ra], float) * u.deg,
                            np.asarray(table[dec], float) * u.deg)
    raise CalibrationError("the catalogue has no sky positions (X_WORLD/Y_WORLD)")


def _check_range(value, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) if v is not None else np.nan for v in value)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{name} must be (low, high), got {value!r}") from exc
    lo = -np.inf if np.isnan(lo) else lo
    hi = np.inf if np.isnan(hi) else hi
    if not lo < hi:
        raise ArgumentError(f"{name} must be (low, high) with low < high, got {value!r}")
    return lo, hi


def _positive(value, name: str, optional: bool = True, minimum: float = 0.0):
    if value is None and optional:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{name} must be a number, got {value!r}") from exc
    if not (math.isfinite(v) and v > minimum):
        raise ArgumentError(f"{name} must be finite and > {minimum}, got {value!r}")
    return v


def _saturation(catalog: Catalog) -> float | None:
    cfg = (catalog.meta or {}).get("sextractor_config") or {}
    try:
        return float(cfg.get("SATUR_LEVEL"))
    except (TypeError, ValueError):
        return None


_BIRGE_MIN = 10  # stars from which the scatter alone sets the zero point's error


def _robust_zp(delta, err, sigma: float, maxiters: int):
    """Sigma-clipped, then inverse-variance mean: (zp, err, std, keep mask).

    Clipping is on the pulls ``(delta - centre) / err`` (stars have very different errors),
    centred on the median and scaled by their MAD when it exceeds 1 (errors too small).
    """
    from astropy.stats import mad_std

    keep = np.ones(delta.size, bool)
    centre = float(np.median(delta))
    for _ in range(maxiters):
        pull = (delta - centre) / err
        scale = max(float(mad_std(pull[keep])), 1.0)
        new = np.abs(pull) <= sigma * scale
        centre = float(np.median(delta[new])) if new.any() else centre
        if (new == keep).all():
            break
        keep = new
    d, e = delta[keep], err[keep]
    w = 1.0 / e**2
    zp = float(np.sum(w * d) / np.sum(w))
    zp_err = float(math.sqrt(1.0 / np.sum(w)))
    n = int(keep.sum())
    std = float(np.std(d, ddof=1)) if n > 1 else float("nan")
    if n > 1:
        # the error follows the stars' actual scatter (Birge ratio); with few stars only
        # upwards (a small chi^2 by chance must not shrink it)
        chi2 = float(np.sum(w * (d - zp) ** 2) / (n - 1))
        zp_err *= math.sqrt(chi2 if n >= _BIRGE_MIN else max(chi2, 1.0))
    return zp, zp_err, std, keep


def _fit_colour(delta, err, colour, sigma: float, maxiters: int):
    """delta = zp + k (colour - c0), robustly: (zp, err, std, keep, k, k_err, c0)."""
    from scipy.stats import siegelslopes

    c0 = float(np.median(colour))
    x = colour - c0
    # start from repeated medians (robust to wrong magnitudes, which sit on lines of slope
    # -1 or +1 in this plane: least squares would follow them)
    slope, icept = siegelslopes(delta, x)
    pull = (delta - (icept + slope * x)) / err
    keep = np.abs(pull) <= sigma * max(1.4826 * float(np.median(np.abs(pull - np.median(
        pull)))), 1.0)
    for _ in range(maxiters):
        w = 1.0 / err[keep] ** 2
        a = np.vstack([np.ones(keep.sum()), x[keep]]).T
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        p = cov @ (a.T @ (w * delta[keep]))
        pull = (delta - (p[0] + p[1] * x)) / err
        mad = 1.4826 * np.median(np.abs(pull[keep] - np.median(pull[keep])))
        new = np.abs(pull) <= sigma * max(mad, 1.0)
        if (new == keep).all():
            break
        keep = new
    n = int(keep.sum())
    resid = delta[keep] - (p[0] + p[1] * x[keep])
    chi2 = float(np.sum(resid**2 / err[keep] ** 2) / max(n - 2, 1))
    scale = math.sqrt(chi2 if n >= _BIRGE_MIN else max(chi2, 1.0))
    return (float(p[0]), float(math.sqrt(cov[0, 0])) * scale, float(np.std(resid, ddof=1)),
            keep, float(p[1]), float(math.sqrt(cov[1, 1])) * scale, c0)


def calibrate(catalog: Catalog, reference: ReferenceCatalog | str | os.PathLike, *,
              band: str | None = None, survey: str | None = None,
              column: str = "AUTO", match_radius_arcsec: float = 1.0,
              flag_mask: int = 0xFF, saturation_fraction: float = 0.8,
              class_star_min: float | None = 0.7, elongation_max: float | None = 1.4,
              fwhm_tolerance: float | None = 0.3, locus_snr_min: float = 50.0,
              isolation_arcsec: float | None = None,
              isolation_dmag: float = 5.0, snr_min: float = 20.0,
              mag_range: tuple[float | None, float | None] | None = None,
              ref_magerr_max: float | None = 0.1, color: tuple[str, str] | None = None,
              sigma: float = 3.0, maxiters: int = 10, min_stars: int = 5,
              error_floor: float = 0.005) -> Catalog:
    """Zero points of every magnitude column of ``catalog`` against ``reference``.

    Parameters
    ----------
    catalog : Catalog
        A `sex_photometry`, `photutils_photometry` or forced-photometry catalogue (sky
        positions X_WORLD/Y_WORLD and FLUX_<col>/FLUXERR_<col> columns).
    reference : ReferenceCatalog or path
        A path is read with `ReferenceCatalog.read` (``survey=``).
    survey : {'gaia', 'ps1', 'skymapper', 'apass'}, optional
        Column mapping used when ``reference`` is a path (see `ReferenceCatalog.read`).
    band : str, optional
        Reference band (default: the catalogue's filter, see `ReferenceCatalog.band_for`).
    column : str
        Column whose zero point goes to ``info.zp``/``info.zp_err``/``info.depth``
        ('AUTO', 'APER', 'APER_1', ...; AUTO when present, else the first aperture).
    match_radius_arcsec : float
        Cross-match radius.
    flag_mask : int
        Stars with any of these FLAGS bits set are not used (default: any SExtractor flag).
    saturation_fraction : float
        Stars whose peak (FLUX_MAX + BACKGROUND) reaches this fraction of the saturation level
        the catalogue was measured with are not used.
    class_star_min, elongation_max : float or None
        Stellar-locus cuts on CLASS_STAR and ELONGATION (None: no cut).
    fwhm_tolerance : float or None
        Keep stars with ``abs(FWHM_IMAGE / locus - 1)`` below this; the locus is the median FWHM of
        the matched unflagged stars at S/N >= ``locus_snr_min``.
    locus_snr_min : float
        CLASS_STAR and FWHM_IMAGE cuts apply to sources at least this S/N in ``column``
        (below it SExtractor's CLASS_STAR drifts to 0.5 and FWHM_IMAGE widens for stars too);
        fainter stars pass on ELONGATION, the flags and the clipping.
    isolation_arcsec : float or None
        No other catalogue source brighter than the star + ``isolation_dmag`` within this
        radius (default: the largest aperture diameter, at least 5"; 0 switches it off).
    isolation_dmag : float
        A neighbour within ``isolation_arcsec`` less than this many magnitudes fainter than
        the star (in ``column``'s flux; or without a flux) rejects the star.
    snr_min : float
        Minimum S/N (FLUX/FLUXERR) in each column.
    mag_range : (low, high), optional
        Reference magnitudes used (None on either side: open).
    ref_magerr_max : float or None
        Largest reference magnitude error used.
    color : (band1, band2), optional
        Fit a colour term ``k (m1 - m2 - c0)`` (c0 the median colour of the stars used).
    sigma, maxiters : float, int
        Sigma clipping of ``m_ref + 2.5 log10(FLUX)`` in units of each star's error
        (median centre; the width scaled by the pulls' MAD when that exceeds 1).
    min_stars : int
        Fewer stars left in the main column raises `CalibrationError`.
    error_floor : float
        Added in quadrature to each star's error (mag): flat-field and PSF systematics.

    Returns
    -------
    Catalog
        A new catalogue: the same rows, plus ``MAG_<col>_CAL`` and ``MAGERR_<col>_CAL``
        (error including the zero point's) for every column, REF_MAG, REF_MAGERR, REF_SEP
        (arcsec) of the matched reference star, and CAL_FLAG (0 unmatched, 1 matched, 2
        selected, 3 clipped, 4 used in the main column). ``info.zp``, ``info.zp_err`` and
        ``info.depth`` (5-sigma point-source limit) are those of ``column``;
        ``meta['calibration']`` records everything.
    """
    if not isinstance(catalog, Catalog):
        raise TypeError(f"calibrate needs a Catalog, got {type(catalog).__name__}")
    where = catalog.info.path or catalog.info.target_img or "catalogue"
    match_radius_arcsec = _positive(match_radius_arcsec, "match_radius_arcsec", False)
    saturation_fraction = _positive(saturation_fraction, "saturation_fraction", False)
    class_star_min = None if class_star_min is None else float(class_star_min)
    if class_star_min is not None and not 0 <= class_star_min <= 1:
        raise ArgumentError(f"class_star_min must be in [0, 1], got {class_star_min}")
    elongation_max = _positive(elongation_max, "elongation_max", minimum=1.0)
    fwhm_tolerance = _positive(fwhm_tolerance, "fwhm_tolerance")
    snr_min = _positive(snr_min, "snr_min", False) if snr_min else 0.0
    isolation_dmag = _positive(isolation_dmag, "isolation_dmag", False)
    ref_magerr_max = _positive(ref_magerr_max, "ref_magerr_max")
    sigma = _positive(sigma, "sigma", False, minimum=1.0)
    error_floor = float(error_floor)
    if not (math.isfinite(error_floor) and error_floor >= 0):
        raise ArgumentError(f"error_floor must be >= 0, got {error_floor}")
    mag_range = _check_range(mag_range, "mag_range")
    if int(min_stars) < 2 or int(maxiters) < 1:
        raise ArgumentError("min_stars must be >= 2 and maxiters >= 1")
    if not isinstance(flag_mask, int | np.integer) or flag_mask < 0:
        raise ArgumentError(f"flag_mask must be a non-negative integer, got {flag_mask!r}")

    if not isinstance(reference, ReferenceCatalog):
        reference = ReferenceCatalog.read(reference, survey=survey)
    bandname = band or catalog.info.filter
    if not bandname:
        raise ArgumentError(f"{where}: the catalogue has no filter; give band=")
    band = reference.band_for(str(bandname))
    if color is not None:
        if len(color) != 2:
            raise ArgumentError(f"color must be two band names, got {color!r}")
        color = (reference.band_for(color[0]), reference.band_for(color[1]))

    table = catalog.data
    cols = _columns(table)
    if not cols:
        raise CalibrationError(f"{where}: no FLUX_<col>/FLUXERR_<col> columns to calibrate")
    if column not in cols:
        if column == "AUTO":
            column = next(c for c in cols if c.startswith("APER")) if any(
                c.startswith("APER") for c in cols) else cols[0]
        else:
            raise ArgumentError(f"{where}: no column FLUX_{column} (have {', '.join(cols)})")
    n = len(table)

    # cross-match: reference stars inside the catalogue's footprint only (cheap KD tree)
    sky = _sky(table)
    finite = np.isfinite(sky.ra.deg) & np.isfinite(sky.dec.deg)
    ref_idx_all = np.arange(len(reference))
    if finite.any():
        ref_sub = _footprint(reference, sky[finite], match_radius_arcsec)
    else:
        ref_sub = np.zeros(0, int)
    ref_mag = np.full(n, np.nan)
    ref_err = np.full(n, np.nan)
    ref_sep = np.full(n, np.nan)
    ref_row = np.full(n, -1)
    if ref_sub.size and finite.any():
        idx, sep, _ = sky[finite].match_to_catalog_sky(reference.coord[ref_sub])
        ok = sep.arcsec <= match_radius_arcsec
        rows = np.flatnonzero(finite)[ok]
        ref_row[rows] = ref_idx_all[ref_sub][idx[ok]]
        ref_sep[rows] = sep.arcsec[ok]
        # one catalogue source per reference star: the nearest
        order = np.argsort(ref_sep[rows])
        _, first = np.unique(ref_row[rows][order], return_index=True)
        dup = np.ones(rows.size, bool)
        dup[order[first]] = False
        ref_row[rows[dup]] = -1
        ref_sep[rows[dup]] = np.nan
    matched = ref_row >= 0
    rt = reference.table
    ref_mag[matched] = np.asarray(rt[f"MAG_{band}"], float)[ref_row[matched]]
    ref_err[matched] = np.asarray(rt[f"MAGERR_{band}"], float)[ref_row[matched]]
    colour = np.full(n, np.nan)
    if color is not None:
        colour[matched] = (np.asarray(rt[f"MAG_{color[0]}"], float)[ref_row[matched]]
                           - np.asarray(rt[f"MAG_{color[1]}"], float)[ref_row[matched]])
    log.info("%s: %d of %d sources matched to %d reference stars within %.2f\"", where,
             matched.sum(), n, ref_sub.size, match_radius_arcsec)

    # selection from the catalogue's own columns (recorded: which cuts were applied)
    sel = matched & np.isfinite(ref_mag)
    cuts: dict[str, int] = {"matched": int(sel.sum())}

    def cut(name: str, keep: np.ndarray) -> None:
        nonlocal sel
        sel = sel & keep
        cuts[name] = int(sel.sum())

    if "FLAGS" in table.colnames:
        cut("flags", (np.asarray(table["FLAGS"], int) & int(flag_mask)) == 0)
    satur = _saturation(catalog)
    if satur and "FLUX_MAX" in table.colnames:
        peak = np.asarray(table["FLUX_MAX"], float)
        if "BACKGROUND" in table.colnames:
            peak = peak + np.asarray(table["BACKGROUND"], float)
        cut("saturation", peak < saturation_fraction * satur)
    locus_snr_min = _positive(locus_snr_min, "locus_snr_min", False)
    with np.errstate(divide="ignore", invalid="ignore"):
        bright = np.asarray(table[f"FLUX_{column}"], float) \
            / np.asarray(table[f"FLUXERR_{column}"], float) >= locus_snr_min
    if class_star_min is not None and "CLASS_STAR" in table.colnames:
        cut("class_star", ~bright | (np.asarray(table["CLASS_STAR"], float) >= class_star_min))
    if elongation_max is not None and "ELONGATION" in table.colnames:
        cut("elongation", np.asarray(table["ELONGATION"], float) <= elongation_max)
    locus = None
    if fwhm_tolerance is not None and "FWHM_IMAGE" in table.colnames:
        fwhm = np.asarray(table["FWHM_IMAGE"], float)
        good = sel & bright & np.isfinite(fwhm) & (fwhm > 0)
        if good.sum() >= 3:
            locus = float(np.median(fwhm[good]))
            cut("fwhm", ~bright | (np.abs(fwhm / locus - 1) < fwhm_tolerance))
    if ref_magerr_max is not None:
        e = np.where(np.isfinite(ref_err), ref_err, 0.0)  # no error given: not a reason to drop
        cut("ref_magerr", e <= ref_magerr_max)
    if mag_range is not None:
        cut("mag_range", (ref_mag >= mag_range[0]) & (ref_mag <= mag_range[1]))
    if color is not None:
        cut("color", np.isfinite(colour))
    if isolation_arcsec is None:
        diam = catalog.info.aperture_diameter_arcsec or []
        isolation_arcsec = max([5.0, *[float(d) for d in diam]])
    isolation_arcsec = float(isolation_arcsec)
    if isolation_arcsec > 0 and sel.any():
        cut("isolation", _isolated(table, sky, finite, sel, column, isolation_arcsec,
                                   isolation_dmag))

    # per column: S/N cut, clipping, weighted mean
    err_floor2 = error_floor**2
    results: dict[str, dict] = {}
    used_main = np.zeros(n, bool)
    clipped_main = np.zeros(n, bool)
    out = table.copy(copy_data=True)
    for col in cols:
        flux = np.asarray(table[f"FLUX_{col}"], float)
        ferr = np.asarray(table[f"FLUXERR_{col}"], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = flux / ferr
            inst = -2.5 * np.log10(flux)
            inst_err = 2.5 / math.log(10) / snr
        use = sel & np.isfinite(inst) & (flux > 0) & (snr >= snr_min)
        if color is not None:
            use &= np.isfinite(colour)
        delta = ref_mag[use] - inst[use]
        err = np.sqrt(inst_err[use] ** 2 + np.where(np.isfinite(ref_err[use]), ref_err[use],
                                                     0.0) ** 2 + err_floor2)
        err = np.where(err > 0, err, max(error_floor, 1e-3))
        if use.sum() < min_stars:
            if col == column:
                raise CalibrationError(
                    f"{where}: only {int(use.sum())} reference stars usable for {col} "
                    f"(need {min_stars}; selection: {cuts}); widen match_radius_arcsec, "
                    "mag_range or the star cuts")
            log.warning("%s: %s not calibrated (%d stars)", where, col, use.sum())
            continue
        if color is None:
            zp, zp_err, std, keep = _robust_zp(delta, err, sigma, int(maxiters))
            k = k_err = c0 = None
        else:
            zp, zp_err, std, keep, k, k_err, c0 = _fit_colour(delta, err, colour[use], sigma,
                                                              int(maxiters))
        results[col] = {"zp": round(zp, 6), "zp_err": round(zp_err, 6), "std": round(std, 6),
                        "n_stars": int(keep.sum()), "n_clipped": int((~keep).sum())}
        if color is not None:
            results[col].update(color_term=round(k, 6), color_term_err=round(k_err, 6),
                                color_zero=round(c0, 6))
        with np.errstate(invalid="ignore"):
            term = 0.0
            if color is not None:
                # unmatched sources: the term at the median colour (zero)
                term = k * np.where(np.isfinite(colour), colour - c0, 0.0)
            mag_cal = inst + zp + term
            magerr_cal = np.sqrt(inst_err**2 + zp_err**2)
        unit = u.mag
        out[f"MAG_{col}_CAL"] = Column(np.where(flux > 0, mag_cal, np.nan), unit=unit)
        out[f"MAGERR_{col}_CAL"] = Column(np.where(flux > 0, magerr_cal, np.nan), unit=unit)
        if col == column:
            rows = np.flatnonzero(use)
            used_main[rows[keep]] = True
            clipped_main[rows[~keep]] = True
    if column not in results:
        raise CalibrationError(f"{where}: {column} could not be calibrated")
    flag = np.where(matched, CAL_MATCHED, CAL_UNMATCHED)
    flag[sel] = CAL_SELECTED
    flag[clipped_main] = CAL_CLIPPED
    flag[used_main] = CAL_USED
    out["REF_MAG"] = Column(ref_mag, unit=u.mag)
    out["REF_MAGERR"] = Column(ref_err, unit=u.mag)
    out["REF_SEP"] = Column(ref_sep, unit=u.arcsec)
    if color is not None:
        out["REF_COLOR"] = Column(colour, unit=u.mag)
    out["CAL_FLAG"] = flag.astype(np.int16)

    from copy import deepcopy

    info = deepcopy(catalog.info)
    info.path = None
    main = results[column]
    info.zp, info.zp_err = main["zp"], main["zp_err"]
    result = Catalog(out, info=info, meta=deepcopy(catalog.meta))
    result.meta.pop("provenance", None)  # a new product: the source catalogue's key is not it
    depth = point_source_depth(result, main["zp"], column=column)
    if depth is not None:
        result.info.depth = round(depth, 4)
        result.meta["depth"] = {"source": "calibrate", "value": round(depth, 4), "snr": 5.0,
                                "column": column, "zeropoint": main["zp"]}
    result.meta["calibration"] = {
        "reference": reference.path, "survey": reference.survey, "band": band,
        "n_reference": len(reference), "column": column, "zp": main["zp"],
        "zp_err": main["zp_err"], "depth": result.info.depth,
        "zp_definition": "m = -2.5 log10(FLUX_<col>) + zp", "columns": results,
        "color": list(color) if color else None, "selection": cuts,
        "options": {"match_radius_arcsec": match_radius_arcsec, "flag_mask": int(flag_mask),
                    "saturation_fraction": saturation_fraction, "saturation_level": satur,
                    "class_star_min": class_star_min, "elongation_max": elongation_max,
                    "fwhm_tolerance": fwhm_tolerance, "fwhm_locus": locus,
                    "locus_snr_min": locus_snr_min,
                    "isolation_arcsec": isolation_arcsec, "isolation_dmag": isolation_dmag,
                    "snr_min": snr_min, "mag_range": None if mag_range is None
                    else [None if not math.isfinite(v) else v for v in mag_range],
                    "ref_magerr_max": ref_magerr_max, "sigma": sigma,
                    "maxiters": int(maxiters), "error_floor": error_floor},
        "source_catalog": catalog.info.path,
    }
    log.info("%s: ZP_%s = %.4f +- %.4f from %d stars (%d clipped); depth %s", where, column,
             main["zp"], main["zp_err"], main["n_stars"], main["n_clipped"], result.info.depth)
    return result


def _footprint(reference: ReferenceCatalog, sky: SkyCoord, pad_arcsec: float) -> np.ndarray:
    """Rows of ``reference`` within a box around ``sky`` (RA wrap and poles handled)."""
    ra = np.asarray(reference.table["RA"], float)
    dec = np.asarray(reference.table["DEC"], float)
    pad = pad_arcsec / 3600.0 + 1e-6
    dlo, dhi = sky.dec.deg.min() - pad, sky.dec.deg.max() + pad
    keep = (dec >= dlo) & (dec <= dhi)
    if dhi < 89 and dlo > -89:
        # RA span around the catalogue's mean direction (wrap-safe)
        centre = float(np.degrees(np.arctan2(np.mean(np.sin(sky.ra.rad)),
                                             np.mean(np.cos(sky.ra.rad)))))
        off = (sky.ra.deg - centre + 180.0) % 360.0 - 180.0
        cosd = math.cos(math.radians(max(abs(dlo), abs(dhi))))
        rpad = pad / max(cosd, 1e-3)
        roff = (ra - centre + 180.0) % 360.0 - 180.0
        keep &= (roff >= off.min() - rpad) & (roff <= off.max() + rpad)
    return np.flatnonzero(keep)


def _isolated(table, sky, finite, sel, column, radius_arcsec, dmag) -> np.ndarray:
    """True for selected sources with no neighbour brighter than (flux / 10**(0.4 dmag))."""
    from astropy.coordinates import search_around_sky

    flux = np.asarray(table[f"FLUX_{column}"], float)
    keep = np.ones(len(table), bool)
    rows = np.flatnonzero(sel & finite)
    all_rows = np.flatnonzero(finite)
    if rows.size == 0:
        return keep
    i, j, _, _ = search_around_sky(sky[rows], sky[all_rows], radius_arcsec * u.arcsec)
    me, other = rows[i], all_rows[j]
    near = me != other
    me, other = me[near], other[near]
    threshold = np.nan_to_num(flux[me], nan=0.0) * 10 ** (-0.4 * dmag)
    # a neighbour without a flux (NaN) counts as bright: it could be anything
    bad = ~(np.nan_to_num(flux[other], nan=np.inf) < threshold)
    keep[np.unique(me[bad])] = False
    return keep


# -- picture -------------------------------------------------------------------------------
def plot_calibration(catalog: Catalog, column: str | None = None, *, axes=None):
    """Diagnostic picture of a calibrated catalogue: ZP of each star against its reference
    magnitude and its position (x, y), used stars, clipped ones (red crosses; triangles at
    the axis' edge when beyond it) and the selected-but-faint ones (grey), the zero point
    and its scatter (band).

    Parameters
    ----------
    catalog : Catalog
        The output of `calibrate`.
    column : str, optional
        Default: the main column of the calibration.
    axes : sequence of 3 matplotlib Axes, optional
        Draw into these. Otherwise a new figure, shown under the cell in Jupyter.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .visualization import new_figure, present

    cal = (catalog.meta or {}).get("calibration")
    if not cal:
        raise CalibrationError("not a calibrated catalogue (no meta['calibration'])")
    column = column or cal["column"]
    res = cal["columns"].get(column)
    if res is None:
        raise ArgumentError(f"column {column!r} was not calibrated (have "
                            f"{', '.join(cal['columns'])})")
    t = catalog.data
    flux = np.asarray(t[f"FLUX_{column}"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        zp_star = np.asarray(t["REF_MAG"], float) + 2.5 * np.log10(flux)
    flag = np.asarray(t["CAL_FLAG"], int)
    owned = axes is None
    if owned:
        fig = new_figure((13, 4.2))
        axes = [fig.add_subplot(1, 3, k + 1) for k in range(3)]
    else:
        fig = axes[0].figure
    xs = [np.asarray(t["REF_MAG"], float)]
    labels = [f"reference {cal['band']} [mag]"]
    for name in ("X_IMAGE", "Y_IMAGE"):
        xs.append(np.asarray(t[name], float) if name in t.colnames else np.full(len(t), np.nan))
        labels.append(f"{name} [pix]")
    zp, std = res["zp"], res["std"]
    half = max(5 * (std if np.isfinite(std) else 0.05), 0.1)
    lo, hi = zp - half, zp + half
    # stars beyond the axis (wrong reference magnitudes, blends) drawn at its edge as triangles
    edge = np.clip(zp_star, lo + 0.03 * half, hi - 0.03 * half)
    beyond = np.isfinite(zp_star) & (edge != zp_star)
    for ax, x, label in zip(axes, xs, labels, strict=False):
        for mask, style in (((flag == CAL_SELECTED), dict(c="0.7", marker=".", ls="none",
                                                            label="selected, not used")),
                            ((flag == CAL_USED), dict(c="C0", marker="o", ms=4, ls="none",
                                                      label=f"used ({res['n_stars']})")),
                            ((flag == CAL_CLIPPED), dict(c="C3", marker="x", ls="none",
                                                         label=f"clipped ({res['n_clipped']})"))):
            inside = mask & ~beyond
            if inside.any():
                ax.plot(x[inside], zp_star[inside], **style)
                style["label"] = None  # one legend entry per kind
            for side, marker in ((zp_star > hi, "^"), (zp_star < lo, "v")):
                out = mask & beyond & side
                if out.any():
                    ax.plot(x[out], edge[out], **{**style, "marker": marker, "mfc": "none"})
                    style["label"] = None
        ax.axhline(zp, color="k", lw=1)
        if np.isfinite(std):
            ax.axhspan(zp - std, zp + std, color="k", alpha=0.1, lw=0)
        ax.set_xlabel(label)
        ax.set_ylabel(f"ZP_{column} [mag]")
        ax.set_ylim(lo, hi)
    axes[0].legend(loc="best", fontsize="small")
    axes[0].set_title(f"ZP_{column} = {zp:.4f} ± {res['zp_err']:.4f} (σ {std:.3f})",
                      fontsize="medium")
    if owned:
        fig.tight_layout()
        present(fig)
    return fig
