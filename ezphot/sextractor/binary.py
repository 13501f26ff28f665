"""Finding the SExtractor binary and asking it what it knows (version, keywords, parameters).

The binary is looked up lazily, never at import time: an explicit path, else
``$EZPHOT_SEXTRACTOR``, else the first of ``source-extractor``, ``sex``, ``sextractor`` on PATH.
What the binary prints for ``-v``, ``-dd`` and ``-dp`` is cached per binary (path and mtime).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import sh

from ..exceptions import SExtractorNotFoundError

log = logging.getLogger(__name__)
# sh logs every process start at INFO; that is noise in a photometry log.
if logging.getLogger("sh").level == logging.NOTSET:
    logging.getLogger("sh").setLevel(logging.WARNING)

__all__ = ["SExtractorBinary", "find_sextractor"]

CANDIDATE_NAMES = ("source-extractor", "sex", "sextractor")


@dataclass(frozen=True)
class SExtractorBinary:
    """A SExtractor executable and what it reports about itself.

    Attributes
    ----------
    path : str
        Absolute path of the executable.
    version : str
        Version string, e.g. ``'2.25.0'``.
    keywords : dict
        Configuration keywords with their default values (from ``-dd``).
    parameters : dict
        Output parameters with their units (from ``-dp``), unit '' when dimensionless.
    """

    path: str
    version: str
    keywords: dict[str, str] = field(repr=False)
    parameters: dict[str, str] = field(repr=False)

    def command(self) -> sh.Command:
        """An ``sh`` command bound to this executable."""
        return sh.Command(self.path)


def _resolve_path(binary: str | os.PathLike | None) -> str:
    if binary is None:
        binary = os.environ.get("EZPHOT_SEXTRACTOR") or None
        origin = "EZPHOT_SEXTRACTOR"
    else:
        origin = "argument"
    if binary is not None:
        binary = str(binary)
        found = shutil.which(binary) if os.sep not in binary else binary
        if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
            raise SExtractorNotFoundError(
                f"SExtractor binary {binary!r} (from {origin}) does not exist or is not "
                f"executable. {SExtractorNotFoundError.INSTALL_HINT}"
            )
        return os.path.abspath(found)
    for name in CANDIDATE_NAMES:
        found = shutil.which(name)
        if found:
            return os.path.abspath(found)
    raise SExtractorNotFoundError(
        f"No SExtractor binary on PATH (looked for {', '.join(CANDIDATE_NAMES)}). "
        f"{SExtractorNotFoundError.INSTALL_HINT}"
    )


_KEYWORD_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)\s*(.*?)\s*(?:#.*)?$")
_PARAM_LINE = re.compile(r"^#([A-Z][A-Z0-9_]*)\s+(.*?)\s*(?:\[(.*)\])?\s*$")


def parse_keywords(text: str) -> dict[str, str]:
    """Parse the output of ``sex -dd`` into ``{KEYWORD: default value}``."""
    keywords = {}
    for line in text.splitlines():
        m = _KEYWORD_LINE.match(line.strip())
        if m:
            keywords[m.group(1)] = m.group(2)
    return keywords


def parse_parameters(text: str) -> dict[str, str]:
    """Parse the output of ``sex -dp`` into ``{PARAMETER: unit}``."""
    params = {}
    for line in text.splitlines():
        m = _PARAM_LINE.match(line.rstrip())
        if m:
            params[m.group(1)] = m.group(3) or ""
    return params


def _run(path: str, *args: str) -> str:
    try:
        out = sh.Command(path)(*args, _err_to_out=True, _timeout=60)
    except sh.ErrorReturnCode as exc:  # -v etc. exit 0; anything else is a broken binary
        raise SExtractorNotFoundError(
            f"SExtractor binary {path} failed on '{' '.join(args)}' "
            f"(exit {exc.exit_code}): {exc.stdout.decode(errors='replace')[-500:]}"
        ) from exc
    except (OSError, sh.CommandNotFound) as exc:
        raise SExtractorNotFoundError(
            f"SExtractor binary {path} cannot be run: {exc}. "
            f"{SExtractorNotFoundError.INSTALL_HINT}"
        ) from exc
    return str(out)


@functools.lru_cache(maxsize=8)
def _describe(path: str, mtime_ns: int) -> SExtractorBinary:
    version_text = _run(path, "-v")
    m = re.search(r"version\s+([0-9][0-9.]*)", version_text)
    if not m:
        raise SExtractorNotFoundError(
            f"{path} does not look like SExtractor: '-v' printed {version_text.strip()[:200]!r}"
        )
    binary = SExtractorBinary(
        path=path,
        version=m.group(1),
        keywords=parse_keywords(_run(path, "-dd")),
        parameters=parse_parameters(_run(path, "-dp")),
    )
    log.debug("Using SExtractor %s at %s", binary.version, path)
    return binary


def find_sextractor(binary: str | os.PathLike | None = None) -> SExtractorBinary:
    """Locate the SExtractor binary and describe it.

    Parameters
    ----------
    binary : str or path-like, optional
        Name or path of the executable. Defaults to ``$EZPHOT_SEXTRACTOR``, then the first
        of ``source-extractor``, ``sex``, ``sextractor`` on PATH.

    Returns
    -------
    SExtractorBinary

    Raises
    ------
    SExtractorNotFoundError
        When no usable binary is found; the message says how to install one.
    """
    path = _resolve_path(binary)
    return _describe(path, Path(path).stat().st_mtime_ns)
