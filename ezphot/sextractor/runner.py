"""Running the SExtractor binary once, in a directory of its own.

Everything the binary reads or writes has a plain name inside the run directory, which the
caller creates with :func:`ezphot._io.run_directory` and which is removed afterwards: the
image and every file a keyword names are linked there (``in_image.fits``, ``in_filter.conv``,
...), the binary runs with that directory as its working directory and relative names (it
splits its arguments on commas and spaces, and reads ``#``, ``@`` and ``$`` in values), and
its output (the FITS_LDAC catalogue, check images, XML) can only land there. It runs with a
timeout (see `ezphot.sextractor.binary.execute`); its exit code is checked and its stderr is
carried by the exception when it fails; its catalogue is checked before it is read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..config import sextractor_config_dir
from ..exceptions import (
    MeasurementWarning,
    SExtractorConfigError,
    SExtractorError,
    SExtractorOutputError,
)
from .binary import SExtractorBinary, default_run_timeout, execute, find_sextractor, resolve_timeout
from .checkimage import checkimage_file_name
from .configfile import (
    INPUT_FILE_KEYWORDS,
    RUNNER_KEYWORDS,
    checkimage_types,
    format_value,
    input_files,
    write_config,
    write_param,
)
from .ldac import LDACCatalog, read_ldac

log = logging.getLogger(__name__)

__all__ = ["SExtractorRun", "run_sextractor", "default_files", "checkimage_file_name"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# SExtractor goes on after these, but with sources dropped or truncated (its memory stacks,
# MEMORY_PIXSTACK / MEMORY_OBJSTACK / DEBLEND_NTHRESH buffers, were too small).
_LOSSY = re.compile(r"WARNING:.*(overflow|stack|buffer)", re.IGNORECASE)
# A name the binary takes as one word: no separator, no leading dash (an option).
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_EXT = re.compile(r"^(.*)\[(\d+)\]$")


@dataclass
class SExtractorRun:
    """What one run of the binary produced.

    Parameters
    ----------
    catalogs : list of LDACCatalog
        One per measured image extension.
    config : dict
        The configuration of the run, as strings; files the binary read are given by their
        own (absolute) paths, so the run can be repeated by hand.
    parameters : list of str
        The parameter lines written to the ``.param`` file.
    binary : SExtractorBinary
        The binary that ran.
    stderr : str
        What the binary printed on stderr.
    seconds : float
        Wall time of the binary.
    workdir : pathlib.Path, optional
        The run directory (removed after the run).
    checkimages : dict
        ``{type: (data, header)}`` of the check images asked for, read before the run
        directory goes.
    """

    catalogs: list[LDACCatalog]
    config: dict
    parameters: list[str]
    binary: SExtractorBinary
    stderr: str = ""
    seconds: float = 0.0
    workdir: Path | None = field(default=None, repr=False)
    checkimages: dict = field(default_factory=dict, repr=False)


def _clean(stderr: bytes) -> str:
    """SExtractor's stderr without its terminal escape codes."""
    return _ANSI.sub("", stderr.decode(errors="replace")).strip()


def default_files() -> dict[str, str]:
    """Absolute paths of ezphot's default filter and neural-network files.

    Returns
    -------
    dict of str to str
        FILTER_NAME and STARNNW_NAME.
    """
    cfg = sextractor_config_dir()
    return {"FILTER_NAME": str(cfg / "default.conv"), "STARNNW_NAME": str(cfg / "default.nnw")}


def _split_image(image: str | os.PathLike) -> tuple[Path, str]:
    """``file.fits[N]`` -> (file.fits, '[N]'), unless a file is really called so."""
    text = str(image)
    path = Path(text)
    m = _EXT.match(text)
    if m and not path.exists():
        return Path(m.group(1)), f"[{m.group(2)}]"
    return path, ""


def _plain_suffix(path: Path) -> str:
    suffix = path.suffix
    return suffix if re.fullmatch(r"\.[A-Za-z0-9_]{1,10}", suffix) else ""


def _in_workdir(path: Path, workdir: Path) -> str | None:
    """The relative name of ``path`` when it is a plain name directly in ``workdir``."""
    try:
        if path.parent.resolve() == workdir.resolve() and _PLAIN.match(path.name):
            return path.name
    except OSError:
        pass
    return None


def _link(source: Path, workdir: Path, name: str) -> str:
    """Give the binary ``source`` under the plain ``name`` in ``workdir`` (read-only use).

    A symbolic link, else a hard link, else a copy (file systems without links).
    """
    dest = workdir / name
    target = source.resolve()
    try:
        os.symlink(target, dest)
    except OSError:
        try:
            os.link(target, dest)
        except OSError:
            shutil.copyfile(target, dest)
    return name


def _stage(path: Path, ext: str, workdir: Path, name: str) -> str:
    """The name the binary is given for ``path`` (+ extension), staged in ``workdir``."""
    own = _in_workdir(path, workdir)
    return (own if own is not None else _link(path, workdir, name)) + ext


def _n_pixels(path: Path, ext: str) -> int | None:
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            header = hdul[int(ext[1:-1]) if ext else 0].header
            if not ext and header.get("NAXIS", 0) < 2 and len(hdul) > 1:
                header = hdul[1].header
            n = 1
            for k in (1, 2):
                n *= int(header.get(f"ZNAXIS{k}", header.get(f"NAXIS{k}", 0)))
            return n
    except Exception:  # noqa: BLE001 - only a default timeout depends on it
        return None


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
    checkimages: Sequence[str] | None = None,
) -> SExtractorRun:
    """Run SExtractor on one image.

    Parameters
    ----------
    image : path-like
        The measurement image (``file.fits`` or ``file.fits[N]``); any legal file name.
    workdir : pathlib.Path
        An empty directory owned by this run (any legal path).
    config : mapping
        Configuration keywords and values; ezphot's filter/NNW files fill in
        ``FILTER_NAME``/``STARNNW_NAME`` when absent. The keywords naming output files
        (CATALOG_NAME, CHECKIMAGE_NAME, XML_NAME), CATALOG_TYPE and PARAMETERS_NAME are
        ezphot's and refused; CHECKIMAGE_TYPE means the same as ``checkimages``.
    parameters : sequence of str
        Output parameters; aperture vectors are sized to ``n_apertures``.
    n_apertures : int
        Number of PHOT_APERTURES.
    binary : SExtractorBinary or str, optional
        The executable; found with :func:`find_sextractor` when None.
    detection_image : path-like, optional
        A separate detection image (dual-image mode).
    timeout : float, optional
        Seconds after which the binary (its whole process group) is killed; default
        ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else 10 min + 20 s per million pixels.
    checkimages : sequence of str, optional
        Check-image types to return (``'BACKGROUND'``, ``'SEGMENTATION'``, ...).

    Returns
    -------
    SExtractorRun

    Raises
    ------
    SExtractorError
        When the binary exits with an error; carries its stderr.
    SExtractorTimeoutError
        When it did not finish within the timeout (names the image, binary and seconds).
    SExtractorOutputError
        When its catalogue (or a check image) is missing, empty, truncated or garbage.
    SExtractorConfigError
        For an unknown, reserved or invalid keyword, value or parameter, or a missing input
        file (before the binary runs).
    """
    if not isinstance(binary, SExtractorBinary):
        binary = find_sextractor(binary)
    workdir = Path(workdir)
    user = {str(k).upper(): v for k, v in config.items()}
    owned = sorted(k for k in user if k in RUNNER_KEYWORDS)
    if owned:
        raise SExtractorConfigError(
            f"{', '.join(owned)} cannot be set: ezphot names the binary's output files (kept "
            "in the run directory) and writes its parameter list; use checkimages= and "
            "parameters=")
    types = checkimage_types(checkimages) + [
        t for t in checkimage_types(user.pop("CHECKIMAGE_TYPE", None))
        if t not in checkimage_types(checkimages)]
    full = {**default_files(), **user}

    image_path, image_ext = _split_image(image)
    if not image_path.is_file():
        raise SExtractorConfigError(f"{image_path}: no such image file")
    # every file the binary reads: checked, and staged under a plain name
    shown = dict(full)  # what the run reports: the files' own paths
    for key in [k for k in full if k in INPUT_FILE_KEYWORDS]:
        files = input_files(key, full[key])
        stem = key.lower().removesuffix("_name").removesuffix("_image")
        names = [_stage(p, ext, workdir, f"in_{stem}{'' if i == 0 else f'_{i}'}{_plain_suffix(p)}")
                 for i, (p, ext) in enumerate(files)]
        full[key] = ",".join(names)
        shown[key] = ",".join(f"{p}{ext}" for p, ext in files)
    names = [_stage(image_path, image_ext, workdir, f"in_image{_plain_suffix(image_path)}")]
    if detection_image is not None:
        det_path, det_ext = _split_image(detection_image)
        if not det_path.is_file():
            raise SExtractorConfigError(f"{det_path}: no such detection image file")
        names.insert(0, _stage(det_path, det_ext, workdir,
                               f"in_detect{_plain_suffix(det_path)}"))
        staged = [(det_path, names[0]), (image_path, names[1])]
    else:
        staged = [(image_path, names[0])]
    # external headers (HEADER_SUFFIX, default '.head') beside an image are read as before
    suffix = format_value(full.get("HEADER_SUFFIX", binary.keywords.get("HEADER_SUFFIX", "")))
    if suffix and re.fullmatch(r"\.[A-Za-z0-9_]{1,16}", suffix):
        for source, name in staged:
            head = source.with_name(source.name.rsplit(".", 1)[0] + suffix)
            mine = Path(name.split("[")[0])
            mine = workdir / (mine.name.rsplit(".", 1)[0] + suffix)
            if head.is_file() and not mine.exists() and _in_workdir(source, workdir) is None:
                _link(head, workdir, mine.name)

    catalog_name, param_name, config_name = "catalog.ldac", "run.param", "run.sex"
    check_names = [f"check_{checkimage_file_name(t)}.fits" for t in types]
    full.update(CATALOG_NAME=catalog_name, CATALOG_TYPE="FITS_LDAC", PARAMETERS_NAME=param_name,
                XML_NAME="run.xml")
    if types:
        full.update(CHECKIMAGE_TYPE=",".join(types), CHECKIMAGE_NAME=",".join(check_names))
    full.setdefault("VERBOSE_TYPE", "QUIET")
    lines = write_param(workdir / param_name, parameters, n_apertures, binary)
    written = write_config(workdir / config_name, full, binary)
    run_config = {k: shown.get(k, v) if k in INPUT_FILE_KEYWORDS and k != "PARAMETERS_NAME"
                  else v for k, v in written.items()}
    run_config.update(CATALOG_NAME=str(workdir / catalog_name),
                      PARAMETERS_NAME=str(workdir / param_name))
    if types:
        run_config["CHECKIMAGE_NAME"] = ",".join(str(workdir / n) for n in check_names)
    run_config.pop("XML_NAME", None)

    seconds = resolve_timeout(timeout, default_run_timeout(_n_pixels(image_path, image_ext)))
    args = [binary.path, ",".join(names), "-c", config_name]
    log.debug("Running %s in %s (timeout %g s)", " ".join(args), workdir, seconds)
    done = execute(args, cwd=workdir, timeout=seconds, what=f"on {image}")
    stderr = _clean(done.stderr)
    if done.returncode != 0:
        raise SExtractorError(
            f"SExtractor ({binary.path}, version {binary.version}) failed on {image} with "
            f"exit code {done.returncode}: {stderr[-2000:] or '(no stderr)'}")
    catalog_path = workdir / catalog_name
    if not catalog_path.is_file():
        raise SExtractorOutputError(
            f"SExtractor ({binary.path}) on {image} exited 0 but wrote no catalogue: "
            f"{stderr[-2000:] or '(no stderr)'}")
    catalogs = read_ldac(catalog_path, expected=lines, source=f"SExtractor's catalogue of {image}")
    _report_warnings(stderr, image)
    checks = {}
    for t, name in zip(types, check_names, strict=False):
        checks[t] = _read_checkimage(workdir / name, t, image, binary)
    return SExtractorRun(
        catalogs=catalogs,
        config=run_config,
        parameters=lines,
        binary=binary,
        stderr=stderr,
        seconds=done.seconds,
        workdir=workdir,
        checkimages=checks,
    )


def _report_warnings(stderr: str, image) -> None:
    """SExtractor's own warnings: those that mean lost or truncated sources (a memory stack
    overflow) become a `MeasurementWarning` naming the image; the others are logged."""
    lines = [ln.strip().lstrip(">").strip() for ln in stderr.splitlines() if "WARNING" in ln]
    lossy = [ln for ln in lines if _LOSSY.search(ln)]
    for ln in lines:
        if ln not in lossy:
            log.info("SExtractor on %s: %s", image, ln)
    if lossy:
        more = f" (and {len(lossy) - 1} more)" if len(lossy) > 1 else ""
        warnings.warn(f"{image}: SExtractor dropped or truncated sources: {lossy[0]}{more}; "
                      "raise MEMORY_PIXSTACK / MEMORY_OBJSTACK (sex_params)",
                      MeasurementWarning, stacklevel=2)


def _read_checkimage(path: Path, check_type: str, image, binary: SExtractorBinary):
    """(data, header) of a check image the binary wrote, or SExtractorOutputError."""
    what = f"SExtractor's {check_type} check image of {image} ({path.name})"
    if not path.is_file() or path.stat().st_size == 0:
        raise SExtractorOutputError(f"{what}: not written by {binary.path}")
    try:
        with fits.open(path, memmap=False) as hdul:
            hdul.verify("exception")
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
            if hdu is None:
                raise ValueError("no image data")
            data = np.array(hdu.data)
            header = hdu.header.copy()
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear error
        raise SExtractorOutputError(f"{what}: unreadable ({exc})") from exc
    return data.astype(data.dtype.newbyteorder("="), copy=False), header

