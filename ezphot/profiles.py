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

from .config import sextractor_config_dir
from .exceptions import HeaderWarning

log = logging.getLogger(__name__)

__all__ = ["TelescopeProfile", "load_profiles", "select_profile", "base_sextractor_config"]


@dataclass(frozen=True)
class TelescopeProfile:
    """Detector facts and SExtractor defaults for one telescope configuration.

    Attributes
    ----------
    name : str
        e.g. ``'7DT_C361K_HIGH_1x1'`` or ``'generic'``.
    camera : str
        The profile file's name (e.g. ``'7DT_C361K'``).
    egain : float
        Gain in e-/ADU (0 = unknown).
    read_noise : float
        Read noise in e-.
    saturation : float
        Saturation level in ADU.
    pixel_scale : float
        arcsec/pixel (0 = take it from the WCS).
    binning : int
    naxis : tuple of int or None
        Detector size (NAXIS1, NAXIS2) for this binning.
    gain_mode : str or None
    gain_key_is_egain : bool
        Whether the header's GAIN keyword is in e-/ADU (False for 7DT: it is a setting).
    sextractor : dict
        SExtractor keyword defaults (base ``default.sex`` updated with the profile's).
    """

    name: str
    camera: str
    egain: float
    read_noise: float
    saturation: float
    pixel_scale: float
    binning: int = 1
    naxis: tuple[int, int] | None = None
    gain_mode: str | None = None
    gain_setting: float | None = None
    gain_key_is_egain: bool = True
    observatory: str | None = None
    telescope_pattern: str | None = None
    instrument: str | None = None
    sextractor: dict = field(default_factory=dict, repr=False)


def base_sextractor_config() -> dict[str, str]:
    """Keywords of ``sextractor_configs/default.sex`` as strings."""
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
                    read_noise=float(var.get("read_noise", doc.get("read_noise", 0.0))),
                    saturation=float(var.get("saturation", doc.get("saturation", 65535.0))),
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
    """All shipped profiles (every variant of every camera file)."""
    return _load(sextractor_config_dir() / "profiles")


def get_profile(name: str) -> TelescopeProfile:
    """The profile called ``name`` (e.g. ``'7DT_C361K_HIGH_1x1'``)."""
    for p in load_profiles():
        if p.name == name:
            return p
    raise KeyError(f"No telescope profile named {name!r}; known: {[p.name for p in load_profiles()]}")


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
