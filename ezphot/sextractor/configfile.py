"""Writing SExtractor configuration (``.sex``) and parameter (``.param``) files.

Keywords and parameters are validated against the lists the binary itself prints
(``-dd`` and ``-dp``), so a typo fails before the binary runs, with a clear message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
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
]

# Output parameters whose length is the number of PHOT_APERTURES.
VECTOR_APERTURE_PARAMS = frozenset(
    {"FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER", "FLUX_POWER", "FLUXERR_POWER"}
)

_PARAM_SPEC = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\((\d+)\))?$")


def format_value(value) -> str:
    """Format a Python value as SExtractor expects it on a configuration line."""
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
    """Raise `SExtractorConfigError` for a keyword the binary does not know."""
    unknown = [k for k in keys if k.upper() not in binary.keywords]
    if unknown:
        hints = "; ".join(f"{k}{_suggest(k.upper(), binary.keywords)}" for k in unknown)
        raise SExtractorConfigError(
            f"Unknown SExtractor configuration keyword(s) for {binary.path} "
            f"(version {binary.version}): {hints}"
        )


def validate_parameters(params: Iterable[str], binary: SExtractorBinary) -> list[tuple[str, int | None]]:
    """Check output parameter names (``NAME`` or ``NAME(n)``) against the binary's list.

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
    """Read a ``.param`` file: one parameter a line, comments and blank lines skipped."""
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def write_param(path: Path, params: Sequence[str], n_apertures: int, binary: SExtractorBinary) -> list[str]:
    """Write a ``.param`` file, sizing aperture vectors to ``n_apertures``.

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


def write_config(path: Path, config: Mapping[str, object], binary: SExtractorBinary) -> None:
    """Write a ``.sex`` file from a mapping of keywords to values (validated first)."""
    validate_keywords(config, binary)
    width = max((len(k) for k in config), default=0) + 2
    text = "".join(f"{k.upper():<{width}}{format_value(v)}\n" for k, v in config.items())
    path.write_text(text)
