"""Telescope profiles: detector facts and SExtractor defaults per telescope, as data files.

Profiles live in ``sextractor_configs/profiles/*.toml``. One is chosen from an image header
(observatory or telescope name, instrument, binning, gain mode) — never from the file path and
never by asking. An unknown telescope gets the ``generic`` profile, whose numbers come from the
header and the WCS.
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits
from astropy.utils.exceptions import AstropyDeprecationWarning

from .config import sextractor_config_dir
from .exceptions import HeaderWarning

log = logging.getLogger(__name__)

__all__ = ["TelescopeProfile", "load_profiles", "select_profile", "base_sextractor_config"]


@dataclass(frozen=True)
class TelescopeProfile:
    """Detector facts and SExtractor defaults for one telescope configuration.

    Parameters
    ----------
    name : str
        e.g. ``'7DT_C361K_HIGH_1x1'`` or ``'generic'``.
    camera : str
        The profile file's name (e.g. ``'7DT_C361K'``).
    egain : float
        Gain in e-/ADU (0 = unknown).
    rdnoise : float
        Read noise in e- (``read_noise``: deprecated alias; TOML key ``rdnoise`` or
        ``read_noise``).
    saturation : float
        Saturation level in ADU: the default ``saturation_level`` of detection photometry.
    mask_saturation : float
        Level in ADU from which the source mask counts a source as saturated (twice the mask
        radius): the default ``saturation_level`` of `calculate_sourcemask` (profile key
        ``mask_saturation``; default 5/6 of ``saturation``).
    pixel_scale : float
        arcsec/pixel (0 = take it from the WCS).
    binning : int
        Pixel binning.
    naxis : tuple of int or None
        Detector size (NAXIS1, NAXIS2) for this binning.
    gain_mode : str or None
        Camera gain mode (e.g. 'HIGH').
    gain_setting : float or None
        The header's GAIN value that selects this variant (when GAIN is a setting).
    gain_key_is_egain : bool
        Whether the header's GAIN keyword is in e-/ADU (False for 7DT: it is a setting).
    observatory : str or None
        Header OBSERVAT value this profile matches.
    telescope_pattern : str or None
        Regular expression matched against the header's telescope name.
    instrument : str or None
        Instrument name.
    sextractor : dict
        SExtractor keyword defaults (base ``default.sex`` updated with the profile's).
    """

    name: str
    camera: str
    egain: float
    rdnoise: float
    saturation: float
    pixel_scale: float
    mask_saturation: float | None = None
    binning: int = 1
    naxis: tuple[int, int] | None = None
    gain_mode: str | None = None
    gain_setting: float | None = None
    gain_key_is_egain: bool = True
    observatory: str | None = None
    telescope_pattern: str | None = None
    instrument: str | None = None
    sextractor: dict = field(default_factory=dict, repr=False)

    @property
    def read_noise(self) -> float:
        """Deprecated alias of `rdnoise`."""
        warnings.warn("TelescopeProfile.read_noise is deprecated, use rdnoise",
                      AstropyDeprecationWarning, stacklevel=2)
        return self.rdnoise


def base_sextractor_config() -> dict[str, str]:
    """Keywords of ``sextractor_configs/default.sex`` as strings.

    Returns
    -------
    dict of str to str
        Upper-case keyword -> value.
    """
    return _read_sex(sextractor_config_dir() / "default.sex")


@functools.lru_cache(maxsize=4)
def _read_sex(path: Path) -> dict[str, str]:
    config = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            config[key.upper()] = value.strip()
    return config


def _first_of(keys: tuple[str, ...], var: dict, doc: dict, default: float) -> float:
    for source in (var, doc):
        for key in keys:
            if key in source:
                return float(source[key])
    return default


def _mask_saturation(var: dict, doc: dict) -> float:
    value = var.get("mask_saturation", doc.get("mask_saturation"))
    if value is None:
        return float(var.get("saturation", doc.get("saturation", 65535.0))) * 5.0 / 6.0
    return float(value)


@functools.lru_cache(maxsize=4)
def _load(directory: Path) -> tuple[TelescopeProfile, ...]:
    base = _read_sex(directory.parent / "default.sex")
    profiles = []
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        sex = {**base, **{k.upper(): v for k, v in doc.get("sextractor", {}).items()}}
        for var in doc.get("variant", []):
            profiles.append(
                TelescopeProfile(
                    name=var["name"],
                    camera=doc["name"],
                    egain=float(var.get("egain", 0.0)),
                    rdnoise=_first_of(("rdnoise", "read_noise"), var, doc, 0.0),
                    saturation=float(var.get("saturation", doc.get("saturation", 65535.0))),
                    mask_saturation=_mask_saturation(var, doc),
                    pixel_scale=float(var.get("pixel_scale", 0.0)),
                    binning=int(var.get("binning", 1)),
                    naxis=tuple(var["naxis"]) if "naxis" in var else None,
                    gain_mode=var.get("gain_mode"),
                    gain_setting=var.get("gain_setting"),
                    gain_key_is_egain=bool(doc.get("gain_key_is_egain", True)),
                    observatory=doc.get("observatory"),
                    telescope_pattern=doc.get("telescope_pattern"),
                    instrument=doc.get("instrument"),
                    sextractor=sex,
                )
            )
    if not any(p.name == "generic" for p in profiles):
        raise FileNotFoundError(f"No 'generic' telescope profile in {directory}")
    return tuple(profiles)


def load_profiles() -> tuple[TelescopeProfile, ...]:
    """All shipped profiles (every variant of every camera file).

    Returns
    -------
    tuple of TelescopeProfile
        The profiles, ordered by file then variant.
    """
    return _load(sextractor_config_dir() / "profiles")


def get_profile(name: str) -> TelescopeProfile:
    """The profile called ``name`` (e.g. ``'7DT_C361K_HIGH_1x1'``)."""
    for p in load_profiles():
        if p.name == name:
            return p
    known = [p.name for p in load_profiles()]
    raise KeyError(f"No telescope profile named {name!r}; known: {known}")


def _first(header: fits.Header, *keys: str):
    for k in keys:
        if k in header and header[k] not in (None, ""):
            return header[k]
    return None


def _matches_camera(p: TelescopeProfile, header: fits.Header) -> bool:
    observatory = str(_first(header, "OBSERVAT", "OBSERVATORY") or "").strip()
    telname = str(_first(header, "TELESCOP", "TELNAME") or "").strip()
    if p.observatory and observatory.upper() == p.observatory.upper():
        return True
    return bool(p.telescope_pattern and re.match(p.telescope_pattern, telname))


def _binning(header: fits.Header, candidates: list[TelescopeProfile]) -> int | None:
    value = _first(header, "XBINNING", "BINNING", "CCDXBIN", "BINX")
    if value is not None:
        try:
            return int(str(value).split("x")[0].split()[0])
        except ValueError:
            pass
    naxis1 = header.get("NAXIS1") or header.get("ZNAXIS1")
    for p in candidates:
        if p.naxis and naxis1 == p.naxis[0]:
            return p.binning
    return None


def _gain_mode(header: fits.Header, candidates: list[TelescopeProfile]) -> str | None:
    mode = _first(header, "GAINMODE", "READMODE")
    if mode is not None and str(mode).strip().upper() in {p.gain_mode for p in candidates}:
        return str(mode).strip().upper()
    egain = _first(header, "EGAIN")
    if egain is not None:
        for p in candidates:
            if p.egain and abs(float(egain) - p.egain) <= 0.1 * p.egain:
                return p.gain_mode
    setting = _first(header, "GAIN")
    if setting is not None:
        for p in candidates:
            if p.gain_setting is not None and float(setting) == float(p.gain_setting):
                return p.gain_mode
    return None


def select_profile(header: fits.Header, source: str = "image") -> TelescopeProfile:
    """Choose the profile for an image from its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
    source : str
        Name of the file, for log messages.

    Returns
    -------
    TelescopeProfile
        A camera variant when the header identifies one, else ``generic``.
    """
    profiles = load_profiles()
    generic = next(p for p in profiles if p.name == "generic")
    candidates = [p for p in profiles if p.name != "generic" and _matches_camera(p, header)]
    if not candidates:
        return generic
    binning = _binning(header, candidates)
    if binning is not None:
        candidates = [p for p in candidates if p.binning == binning] or candidates
    mode = _gain_mode(header, candidates)
    if mode is not None:
        candidates = [p for p in candidates if p.gain_mode == mode] or candidates
    chosen = candidates[0]
    if len(candidates) > 1:
        warnings.warn(
            f"{source}: header does not settle the {chosen.camera} configuration (binning "
            f"{binning}, gain mode {mode}); using {chosen.name}", HeaderWarning, stacklevel=2)
    return chosen
