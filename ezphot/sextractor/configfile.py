"""Writing SExtractor configuration (``.sex``) and parameter (``.param``) files.

Keywords and parameters are validated against the lists the binary itself prints
(``-dd`` and ``-dp``), so a typo fails before the binary runs, with a clear message.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import SExtractorConfigError
from .binary import SExtractorBinary

__all__ = [
    "format_value",
    "validate_keywords",
    "validate_parameters",
    "write_config",
    "write_param",
    "read_param_file",
    "VECTOR_APERTURE_PARAMS",
    "KEYWORD_SPECS",
    "check_value",
    "checkimage_types",
    "input_files",
    "validate_config",
]

# Output parameters whose length is the number of PHOT_APERTURES.
VECTOR_APERTURE_PARAMS = frozenset(
    {"FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER", "FLUX_POWER", "FLUXERR_POWER"}
)

_PARAM_SPEC = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\((\d+)\))?$")


def format_value(value) -> str:
    """Format a Python value as SExtractor expects it on a configuration line.

    Parameters
    ----------
    value : object
        A number, bool, string or sequence of them.

    Returns
    -------
    str
        The text (booleans Y/N, sequences comma-separated).
    """
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, str | Path):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def validate_keywords(keys: Iterable[str], binary: SExtractorBinary) -> None:
    """Raise `SExtractorConfigError` for a keyword the binary does not know.

    Parameters
    ----------
    keys : iterable of str
        Configuration keywords.
    binary : SExtractorBinary
        The binary (its ``-dd``/``-dp`` lists).
    """
    unknown = [k for k in keys if k.upper() not in binary.keywords]
    if unknown:
        hints = "; ".join(f"{k}{_suggest(k.upper(), binary.keywords)}" for k in unknown)
        raise SExtractorConfigError(
            f"Unknown SExtractor configuration keyword(s) for {binary.path} "
            f"(version {binary.version}): {hints}"
        )


def validate_parameters(params: Iterable[str],
                        binary: SExtractorBinary) -> list[tuple[str, int | None]]:
    """Check output parameter names (``NAME`` or ``NAME(n)``) against the binary's list.

    Parameters
    ----------
    params : iterable of str
        Output parameters.
    binary : SExtractorBinary
        The binary (its ``-dd``/``-dp`` lists).

    Returns
    -------
    list of (name, length)
        Parsed parameters; length None when not given.
    """
    parsed = []
    bad = []
    for spec in params:
        m = _PARAM_SPEC.match(spec.strip().upper())
        if not m or m.group(1) not in binary.parameters:
            bad.append(f"{spec}{_suggest(spec.strip().upper(), binary.parameters)}")
            continue
        parsed.append((m.group(1), int(m.group(2)) if m.group(2) else None))
    if bad:
        raise SExtractorConfigError(
            f"Unknown SExtractor output parameter(s) for {binary.path} "
            f"(version {binary.version}): {'; '.join(bad)}"
        )
    return parsed


def read_param_file(path: str | Path) -> list[str]:
    """Read a ``.param`` file: one parameter a line, comments and blank lines skipped.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    list of str
        The parameters.
    """
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def write_param(path: Path, params: Sequence[str], n_apertures: int,
                binary: SExtractorBinary) -> list[str]:
    """Write a ``.param`` file, sizing aperture vectors to ``n_apertures``.

    Parameters
    ----------
    path : pathlib.Path
        Destination (in the run directory).
    params : sequence of str
        Output parameters.
    n_apertures : int
        Number of PHOT_APERTURES.
    binary : SExtractorBinary
        The binary (its ``-dd``/``-dp`` lists).

    Returns
    -------
    list of str
        The parameter lines written.
    """
    lines = []
    for name, length in validate_parameters(params, binary):
        if name in VECTOR_APERTURE_PARAMS:
            length = n_apertures
        lines.append(f"{name}({length})" if length else name)
    path.write_text("\n".join(lines) + "\n")
    return lines


def write_config(path: Path, config: Mapping[str, object],
                 binary: SExtractorBinary) -> dict[str, str]:
    """Write a ``.sex`` file from a mapping of keywords to values (every value checked first).

    Parameters
    ----------
    path : pathlib.Path
        Destination (in the run directory).
    config : mapping
        Keyword -> value.
    binary : SExtractorBinary
        The binary (its ``-dd``/``-dp`` lists).

    Returns
    -------
    dict
        The lines written, ``{KEYWORD: value string}``.
    """
    validate_keywords(config, binary)
    lines = {k.upper(): check_value(k.upper(), v) for k, v in config.items()}
    width = max((len(k) for k in lines), default=0) + 2
    path.write_text("".join(f"{k:<{width}}{v}\n" for k, v in lines.items()))
    return lines


# -- what each keyword may hold -----------------------------------------------------------
# Types and ranges of SExtractor's configuration keywords, from its documentation and the
# keyword table of its sources (prefs): kind, fewest and most list members, lowest and
# highest value (numbers) or the choices (keys). SExtractor itself reads "1.5x" as 1.5 and
# "24.5" as 24 for an integer without a word; ezphot refuses both, naming the keyword.
_INF = math.inf
_CHECK_TYPES = ("NONE", "IDENTICAL", "BACKGROUND", "BACKGROUND_RMS", "MINIBACKGROUND",
                "MINIBACK_RMS", "-BACKGROUND", "FILTERED", "OBJECTS", "APERTURES",
                "SEGMENTATION", "ASSOC", "-OBJECTS", "PSFS", "-PSFS", "PC_CONVPROTOS",
                "-PC_CONVPROTOS", "PC_PROTOS", "MAP_SOM", "MODELS", "-MODELS", "SPHEROIDS",
                "-SPHEROIDS", "DISKS", "-DISKS", "PATTERNS", "OTHER")


@dataclass(frozen=True)
class KeywordSpec:
    """What a configuration keyword may hold."""

    kind: str  # float, int, bool, key, token (a word), fitskey, infile, outfile
    n_min: int = 1
    n_max: int = 1
    lo: float = -_INF
    hi: float = _INF
    choices: tuple[str, ...] = ()


def _f(n_min=1, n_max=1, lo=-_INF, hi=_INF):
    return KeywordSpec("float", n_min, n_max, lo, hi)


def _i(n_min=1, n_max=1, lo=-_INF, hi=_INF):
    return KeywordSpec("int", n_min, n_max, lo, hi)


def _k(*choices, n_min=1, n_max=1):
    return KeywordSpec("key", n_min, n_max, choices=choices)


_BOOL = KeywordSpec("bool")
_IN = KeywordSpec("infile")
_OUT = KeywordSpec("outfile")

KEYWORD_SPECS: dict[str, KeywordSpec] = {
    "ANALYSIS_THRESH": _f(1, 2),
    "ASSOC_DATA": _i(1, 32, 0, 1_000_000),
    "ASSOC_NAME": _IN,
    "ASSOC_PARAMS": _i(2, 3, 1, 1_000_000),
    "ASSOC_RADIUS": _f(lo=1e-10, hi=1e10),
    "ASSOC_TYPE": _k("FIRST", "NEAREST", "MEAN", "MAG_MEAN", "SUM", "MAG_SUM", "MIN", "MAX"),
    "ASSOCCOORD_TYPE": _k("PIXEL", "WORLD"),
    "ASSOCSELEC_TYPE": _k("ALL", "MATCHED", "-MATCHED"),
    "BACK_FILTERSIZE": _i(1, 2, 1, 11),
    "BACK_FILTTHRESH": _f(lo=0.0),
    "BACK_PEARSON": _f(lo=1.0),
    "BACKPHOTO_THICK": _i(lo=1, hi=256),
    "BACKPHOTO_TYPE": _k("GLOBAL", "LOCAL"),
    "BACK_SIZE": _i(1, 2, 1, 2_000_000_000),
    "BACK_TYPE": _k("AUTO", "MANUAL", n_max=2),
    "BACK_VALUE": _f(1, 2),
    "CATALOG_NAME": _OUT,
    "CATALOG_TYPE": _k("NONE", "ASCII", "ASCII_HEAD", "ASCII_SKYCAT", "ASCII_VOTABLE",
                       "FITS_LDAC", "FITS_TPX", "FITS_1.0"),
    "CHECKIMAGE_NAME": _OUT,
    "CHECKIMAGE_TYPE": _k(*_CHECK_TYPES, n_min=0, n_max=17),
    "CLEAN": _BOOL,
    "CLEAN_PARAM": _f(lo=0.1, hi=10.0),
    "DEBLEND_MINCONT": _f(lo=0.0, hi=1.0),
    "DEBLEND_NTHRESH": _i(lo=1, hi=64),
    "DETECT_MINAREA": _i(lo=1, hi=1_000_000),
    "DETECT_MAXAREA": _i(lo=0, hi=1_000_000_000),
    "DETECT_THRESH": _f(1, 2),
    "DETECT_TYPE": _k("CCD", "PHOTO"),
    "DGEO_IMAGE": _IN,
    "DGEO_TYPE": _k("NONE", "PIXEL"),
    "FILTER": _BOOL,
    "FILTER_NAME": _IN,
    "FILTER_THRESH": _f(0, 2),
    "FITS_UNSIGNED": _BOOL,
    "FLAG_IMAGE": _IN,
    "FLAG_TYPE": _k("OR", "AND", "MIN", "MAX", "MOST", n_min=0, n_max=4),
    "GAIN": _f(lo=0.0, hi=1e30),
    "GAIN_KEY": KeywordSpec("fitskey"),
    "HEADER_SUFFIX": KeywordSpec("token"),
    "INTERP_MAXXLAG": _i(1, 2, 1, 1_000_000),
    "INTERP_MAXYLAG": _i(1, 2, 1, 1_000_000),
    "INTERP_TYPE": _k("NONE", "VAR_ONLY", "ALL", n_max=2),
    "MAG_GAMMA": _f(lo=1e-10, hi=1e30),
    "MAG_ZEROPOINT": _f(lo=-100.0, hi=100.0),
    "MASK_TYPE": _k("NONE", "BLANK", "CORRECT"),
    "MEMORY_BUFSIZE": _i(lo=8, hi=65534),
    "MEMORY_OBJSTACK": _i(lo=16, hi=65536),
    "MEMORY_PIXSTACK": _i(lo=1000, hi=100_000_000),
    "NTHREADS": _i(lo=-65535, hi=65535),
    "PARAMETERS_NAME": _IN,
    "PATTERN_TYPE": _k("RINGS-QUADPOLE", "RINGS-OCTOPOLE", "RINGS-HARMONIC", "GAUSS-LAGUERRE"),
    "PHOT_APERTURES": _f(1, 64, 0.0, 2 * 1048576),
    "PHOT_AUTOPARAMS": _f(2, 2, 0.0, 10.0),
    "PHOT_AUTOAPERS": _f(2, 2, 0.0, 1e6),
    "PHOT_FLUXFRAC": _f(1, 64, 1e-6, 1.0),
    "PHOT_PETROPARAMS": _f(2, 2, 0.0, 10.0),
    "PIXEL_SCALE": _f(lo=0.0, hi=1e10),
    "PSF_NAME": _IN,
    "PSF_NMAX": _i(lo=1, hi=1000),
    "RESCALE_WEIGHTS": KeywordSpec("bool", 1, 2),
    "SATUR_KEY": KeywordSpec("fitskey"),
    "SATUR_LEVEL": _f(lo=-1e30, hi=1e30),
    "SEEING_FWHM": _f(lo=0.0, hi=1e10),
    "SOM_NAME": _IN,
    "STARNNW_NAME": _IN,
    "THRESH_TYPE": _k("RELATIVE", "ABSOLUTE", n_max=2),
    "VERBOSE_TYPE": _k("QUIET", "NORMAL", "EXTRA_WARNINGS", "FULL"),
    "WEIGHT_GAIN": KeywordSpec("bool", 1, 2),
    "WEIGHT_IMAGE": _IN,
    "WEIGHT_THRESH": _f(0, 2, 0.0),
    "WEIGHT_TYPE": _k("NONE", "BACKGROUND", "MAP_RMS", "MAP_VAR", "MAP_WEIGHT", n_min=0,
                      n_max=2),
    "WRITE_XML": _BOOL,
    "XML_NAME": _OUT,
    "XSL_URL": KeywordSpec("token"),
}

#: Keywords naming files the binary writes, and the runner's own: ezphot sets them.
OUTPUT_FILE_KEYWORDS = frozenset(k for k, s in KEYWORD_SPECS.items() if s.kind == "outfile")
RUNNER_KEYWORDS = OUTPUT_FILE_KEYWORDS | {"CATALOG_TYPE", "PARAMETERS_NAME"}
#: Keywords naming files the binary reads, and whether they are FITS (``file[N]`` allowed).
INPUT_FILE_KEYWORDS = {"FILTER_NAME": False, "STARNNW_NAME": False, "ASSOC_NAME": False,
                       "PSF_NAME": False, "SOM_NAME": False, "PARAMETERS_NAME": False,
                       "WEIGHT_IMAGE": True, "FLAG_IMAGE": True, "DGEO_IMAGE": True}
#: Most files a list-valued input keyword may name.
INPUT_FILE_MAX = {"WEIGHT_IMAGE": 2, "FLAG_IMAGE": 4, "PSF_NAME": 2}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# SExtractor splits values on these, reads '#' as a comment, '@file' as a list in a file and
# expands '$VARIABLES': none may appear inside one word.
_WORD = re.compile(r"^[^\s=,;\"'#@$`\\]+$")
_FITS_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")
_SPLIT = re.compile(r"[\s,]+")


def check_value(key: str, value: object) -> str:
    """The configuration-file text of ``value`` for ``key``, after checking it fits the keyword.

    Numbers must parse (finite, in the keyword's range; integers integral), booleans are Y/N,
    keys one of the keyword's choices; no control character anywhere.

    Parameters
    ----------
    key : str
        The keyword.
    value : object
        Its value.

    Returns
    -------
    str
        The value's text on the configuration line.

    Raises
    ------
    SExtractorConfigError
        Naming the keyword, the value and what is wrong with it.
    """
    key = key.upper()
    text = format_value(value)
    if _CONTROL.search(text) or _CONTROL.search(key):
        raise SExtractorConfigError(
            f"SExtractor keyword {key}: value {text!r} contains a control character "
            "(newline, NUL...)")
    spec = KEYWORD_SPECS.get(key)
    if spec is None or spec.kind in ("infile", "outfile"):
        # file names are the runner's (plain names in the run directory); unknown keywords
        # of another version: one or more plain words
        words = [w for w in _SPLIT.split(text.strip()) if w]
        bad = [w for w in words if not _WORD.match(w)]
        if bad:
            raise SExtractorConfigError(
                f"SExtractor keyword {key}: {bad[0]!r} is not a plain word")
        return ",".join(words)
    words = [w for w in _SPLIT.split(text.strip()) if w]
    if not spec.n_min <= len(words) <= spec.n_max:
        want = (f"{spec.n_min}" if spec.n_min == spec.n_max
                else f"{spec.n_min} to {spec.n_max}")
        raise SExtractorConfigError(
            f"SExtractor keyword {key} takes {want} value(s), got {len(words)}: {text!r}")
    out = []
    for w in words:
        if spec.kind in ("float", "int"):
            try:
                number = float(w)
            except ValueError:
                number = math.nan
                if w.lower() not in ("nan", "+nan", "-nan"):
                    raise SExtractorConfigError(
                        f"SExtractor keyword {key} takes numbers, got {w!r}") from None
            if not math.isfinite(number):
                raise SExtractorConfigError(
                    f"SExtractor keyword {key} takes finite numbers, got {w!r}")
            if spec.kind == "int":
                if number != int(number):
                    raise SExtractorConfigError(
                        f"SExtractor keyword {key} takes integers, got {w!r}")
                w = str(int(number))
            if not spec.lo <= number <= spec.hi:
                raise SExtractorConfigError(
                    f"SExtractor keyword {key}: {w} is out of range [{spec.lo:g}, {spec.hi:g}]")
        elif spec.kind == "bool":
            if w.upper() not in ("Y", "N"):
                raise SExtractorConfigError(
                    f"SExtractor keyword {key} takes Y or N, got {w!r}")
            w = w.upper()
        elif spec.kind == "key":
            if w.upper() not in spec.choices:
                raise SExtractorConfigError(
                    f"SExtractor keyword {key} takes one of {', '.join(spec.choices)}; got "
                    f"{w!r}{_suggest(w.upper(), spec.choices)}")
            w = w.upper()
        elif spec.kind == "fitskey":
            if not _FITS_KEY.match(w):
                raise SExtractorConfigError(
                    f"SExtractor keyword {key} takes a FITS keyword (A-Z, 0-9, _ or -, at "
                    f"most 8 characters), got {w!r}")
        elif not _WORD.match(w):
            raise SExtractorConfigError(f"SExtractor keyword {key}: {w!r} is not a plain word")
        out.append(w)
    return ",".join(out)


_EXT = re.compile(r"^(.*)\[(\d+)\]$")


def input_files(key: str, value: object) -> list[tuple[Path, str]]:
    """The files an input keyword names, each checked to exist and be readable.

    A string naming an existing file is one file (commas and spaces included); otherwise a
    string is split on commas. FITS keywords accept ``file.fits[N]`` for an extension.

    Parameters
    ----------
    key : str
        An input keyword (FILTER_NAME, WEIGHT_IMAGE, ...).
    value : object
        Its value.

    Returns
    -------
    list of (path, extension)
        Absolute paths and their extension suffix (``'[N]'`` or ``''``).

    Raises
    ------
    SExtractorConfigError
        Naming the keyword and the path of a file that does not exist or cannot be read.
    """
    key = key.upper()
    fits_ok = INPUT_FILE_KEYWORDS.get(key, False)
    if isinstance(value, str | Path):
        items = [value] if Path(value).is_file() or isinstance(value, Path) \
            else [v.strip() for v in str(value).split(",") if v.strip()]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise SExtractorConfigError(f"SExtractor keyword {key} takes file names, got {value!r}")
    if not items:
        raise SExtractorConfigError(f"SExtractor keyword {key} names no file")
    if len(items) > INPUT_FILE_MAX.get(key, 1):
        raise SExtractorConfigError(
            f"SExtractor keyword {key} takes at most {INPUT_FILE_MAX.get(key, 1)} file(s), got "
            f"{len(items)}")
    out = []
    for item in items:
        if not isinstance(item, str | Path):
            raise SExtractorConfigError(f"SExtractor keyword {key} takes file names, got {item!r}")
        text = str(item)
        if _CONTROL.search(text):
            raise SExtractorConfigError(
                f"SExtractor keyword {key}: file name {text!r} contains a control character")
        path, ext = Path(text).expanduser(), ""
        m = _EXT.match(text)
        if fits_ok and m and not path.exists():
            path, ext = Path(m.group(1)).expanduser(), f"[{m.group(2)}]"
        if not path.is_file():
            raise SExtractorConfigError(
                f"SExtractor keyword {key}: {path}: no such file (a file the binary reads)")
        if not os.access(path, os.R_OK):
            raise SExtractorConfigError(f"SExtractor keyword {key}: {path}: not readable")
        out.append((path.absolute(), ext))
    return out


def checkimage_types(value: object) -> list[str]:
    """Check-image types from ``checkimages=`` or CHECKIMAGE_TYPE, validated, NONE dropped.

    Parameters
    ----------
    value : str or sequence of str or None
        The types.

    Returns
    -------
    list of str
        Upper-case types.
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    types = []
    for v in value:
        for w in check_value("CHECKIMAGE_TYPE", v).split(","):
            if w and w != "NONE" and w not in types:
                types.append(w)
    return types


def validate_config(config: Mapping[str, object], binary: SExtractorBinary, *,
                    what: str = "sex_params") -> dict[str, object]:
    """Check a user's configuration before anything runs.

    Unknown keywords, the keywords ezphot sets (output files, catalogue type, parameter
    file), values that do not fit their keyword and input files that do not exist raise
    `SExtractorConfigError` naming the keyword.

    Parameters
    ----------
    config : mapping
        Keyword -> value.
    binary : SExtractorBinary
        The binary (its ``-dd``/``-dp`` lists).
    what : str
        Where the configuration came from, for messages.

    Returns
    -------
    dict
        The configuration with upper-case keywords (the caller's mapping is not modified).
    """
    user = {str(k).upper(): v for k, v in dict(config or {}).items()}
    validate_keywords(user, binary)
    owned = sorted(k for k in user if k in RUNNER_KEYWORDS)
    if owned:
        raise SExtractorConfigError(
            f"{what}: {', '.join(owned)} cannot be set: ezphot names the binary's output "
            "files (kept in the run directory) and writes the parameter list itself; ask for "
            "check images with checkimages=[...] (or CHECKIMAGE_TYPE) and for columns with "
            "parameters=[...]")
    for key, value in user.items():
        if key in INPUT_FILE_KEYWORDS:
            input_files(key, value)
        else:
            check_value(key, value)
    return user
