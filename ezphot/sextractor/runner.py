"""Running the SExtractor binary once, in a directory of its own.

The binary is called with an argument list (no shell) through ``sh``; its exit code is
checked and its stderr is carried by the exception when it fails. All files of a run
(configuration, parameter list, input maps, catalogue) live in the run's directory, which the
caller creates with :func:`ezphot._io.run_directory` and which is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sh

from ..config import sextractor_config_dir
from ..exceptions import SExtractorError
from .binary import SExtractorBinary, find_sextractor
from .configfile import write_config, write_param
from .ldac import LDACCatalog, read_ldac

log = logging.getLogger(__name__)

__all__ = ["SExtractorRun", "run_sextractor", "default_files"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Keywords the runner owns: the output must be FITS_LDAC in the run directory.
_RUNNER_KEYS = ("CATALOG_NAME", "CATALOG_TYPE", "PARAMETERS_NAME")


@dataclass
class SExtractorRun:
    """What one run of the binary produced.

    Attributes
    ----------
    catalogs : list of LDACCatalog
        One per measured image extension.
    config : dict
        The configuration written to the ``.sex`` file.
    parameters : list of str
        The parameter lines written to the ``.param`` file.
    binary : SExtractorBinary
    stderr : str
        What the binary printed on stderr.
    seconds : float
        Wall time of the binary.
    """

    catalogs: list[LDACCatalog]
    config: dict
    parameters: list[str]
    binary: SExtractorBinary
    stderr: str = ""
    seconds: float = 0.0
    workdir: Path | None = field(default=None, repr=False)


def _clean(stderr: bytes) -> str:
    """SExtractor's stderr without its terminal escape codes."""
    return _ANSI.sub("", stderr.decode(errors="replace")).strip()


def default_files() -> dict[str, str]:
    """Absolute paths of ezphot's default filter and neural-network files."""
    cfg = sextractor_config_dir()
    return {"FILTER_NAME": str(cfg / "default.conv"), "STARNNW_NAME": str(cfg / "default.nnw")}


def run_sextractor(
    image: str | os.PathLike,
    *,
    workdir: Path,
    config: Mapping[str, object],
    parameters: Sequence[str],
    n_apertures: int,
    binary: SExtractorBinary | str | None = None,
    detection_image: str | os.PathLike | None = None,
    timeout: float | None = None,
) -> SExtractorRun:
    """Run SExtractor on one image.

    Parameters
    ----------
    image : path-like
        The measurement image (``file.fits`` or ``file.fits[N]``).
    workdir : pathlib.Path
        An empty directory owned by this run.
    config : mapping
        Configuration keywords and values; ezphot's filter/NNW files fill in
        ``FILTER_NAME``/``STARNNW_NAME`` when absent.
    parameters : sequence of str
        Output parameters; aperture vectors are sized to ``n_apertures``.
    n_apertures : int
        Number of PHOT_APERTURES.
    binary : SExtractorBinary or str, optional
        The executable; found with :func:`find_sextractor` when None.
    detection_image : path-like, optional
        A separate detection image (dual-image mode).
    timeout : float, optional
        Seconds after which the binary is killed.

    Returns
    -------
    SExtractorRun

    Raises
    ------
    SExtractorError
        When the binary exits with an error or writes no catalogue; carries its stderr.
    SExtractorConfigError
        For an unknown keyword or parameter (before the binary runs).
    """
    if not isinstance(binary, SExtractorBinary):
        binary = find_sextractor(binary)
    workdir = Path(workdir)
    full_config = {**default_files(), **{k.upper(): v for k, v in config.items()}}
    for key in _RUNNER_KEYS:
        full_config.pop(key, None)
    catalog_path = workdir / "catalog.ldac"
    param_path = workdir / "run.param"
    config_path = workdir / "run.sex"
    full_config.update(
        CATALOG_NAME=str(catalog_path), CATALOG_TYPE="FITS_LDAC", PARAMETERS_NAME=str(param_path)
    )
    full_config.setdefault("VERBOSE_TYPE", "QUIET")
    lines = write_param(param_path, parameters, n_apertures, binary)
    write_config(config_path, full_config, binary)

    images = str(image) if detection_image is None else f"{detection_image},{image}"
    args = [images, "-c", str(config_path)]
    log.debug("Running %s %s", binary.path, " ".join(args))
    t0 = time.perf_counter()
    try:
        result = sh.Command(binary.path)(
            *args, _cwd=str(workdir), _timeout=timeout, _return_cmd=True
        )
        stderr = _clean(result.stderr)
    except sh.ErrorReturnCode as exc:
        stderr = _clean(exc.stderr)
        raise SExtractorError(
            f"SExtractor ({binary.path}, version {binary.version}) failed on {image} with "
            f"exit code {exc.exit_code}: {stderr[-2000:] or '(no stderr)'}"
        ) from exc
    except sh.TimeoutException as exc:
        raise SExtractorError(
            f"SExtractor on {image} did not finish within {timeout} s and was killed"
        ) from exc
    seconds = time.perf_counter() - t0
    if not catalog_path.is_file():
        raise SExtractorError(
            f"SExtractor on {image} exited 0 but wrote no catalogue: {stderr[-2000:]}"
        )
    catalogs = read_ldac(catalog_path)
    return SExtractorRun(
        catalogs=catalogs,
        config=full_config,
        parameters=lines,
        binary=binary,
        stderr=stderr,
        seconds=seconds,
        workdir=workdir,
    )
