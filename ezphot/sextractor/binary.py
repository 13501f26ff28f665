"""Finding the SExtractor binary, asking it what it knows, and running it safely.

The binary is looked up lazily, never at import time: an explicit path, else
``$EZPHOT_SEXTRACTOR``, else the first of ``source-extractor``, ``sex``, ``sextractor`` on PATH.
What the binary prints for ``-v``, ``-dd`` and ``-dp`` is cached per binary (path and mtime).

Every call of the binary (those probes and the runs) goes through `execute`: an argument list
(no shell), a new session (its own process group), a timeout after which the whole group is
killed, and on Linux a parent-death signal, so that no SExtractor outlives the Python process
that started it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import SExtractorConfigError, SExtractorNotFoundError, SExtractorTimeoutError

log = logging.getLogger(__name__)

__all__ = ["SExtractorBinary", "find_sextractor", "execute", "resolve_timeout",
           "default_run_timeout", "TIMEOUT_ENV", "PROBE_TIMEOUT"]

CANDIDATE_NAMES = ("source-extractor", "sex", "sextractor")

#: Environment variable with the timeout (seconds) of every call of the binary.
TIMEOUT_ENV = "EZPHOT_SEXTRACTOR_TIMEOUT"
#: Default timeout of the ``-v``/``-dd``/``-dp`` probes (they take milliseconds).
PROBE_TIMEOUT = 60.0
#: Longest timeout (seconds, 20 days: poll() waits at most 2**31 ms); longer ones (1e12:
#: "no limit") are cut to it.
MAX_TIMEOUT = 20 * 86400.0


@dataclass(frozen=True)
class SExtractorBinary:
    """A SExtractor executable and what it reports about itself.

    Parameters
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


# -- timeouts -----------------------------------------------------------------------------
def default_run_timeout(n_pixels: int | None) -> float:
    """Generous default timeout of one run: 10 min plus 20 s per million pixels.

    A full 7DT frame (61 Mpx, about 10 s of work for the binary) gets 30 min.

    Parameters
    ----------
    n_pixels : int or None
        Pixels of the image (None: unknown, 10 min).

    Returns
    -------
    float
        Seconds.
    """
    return 600.0 + 20.0 * (n_pixels or 0) / 1e6


def _positive_seconds(value: object, origin: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise SExtractorConfigError(
            f"{origin} must be a positive number of seconds, got {value!r}")
    return min(seconds, MAX_TIMEOUT)  # the OS cannot wait longer in one call


def resolve_timeout(timeout: float | None, default: float) -> float:
    """The timeout of a call: the argument, else ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else ``default``.

    Parameters
    ----------
    timeout : float or None
        The call's argument.
    default : float
        Seconds when neither the argument nor the environment variable is set.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    SExtractorConfigError
        For a timeout (argument or environment) that is not a positive number of seconds.
    """
    if timeout is not None:
        return _positive_seconds(timeout, "timeout")
    env = os.environ.get(TIMEOUT_ENV)
    if env is not None and env.strip() != "":
        return _positive_seconds(env.strip(), f"${TIMEOUT_ENV}")
    return float(default)


# -- running ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _parent_death_signal():
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies (or None)."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: nothing but syscalls
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(137)

    return preexec


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Completed:
    """What one call of the binary returned."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


def execute(argv: list[str], *, timeout: float, cwd: str | os.PathLike | None = None,
            what: str = "") -> Completed:
    """Run ``argv`` (no shell) in a new session; kill its whole process group on timeout.

    Parameters
    ----------
    argv : list of str
        Executable and arguments.
    timeout : float
        Seconds; the process group is killed (SIGKILL) when they have passed.
    cwd : path-like, optional
        Working directory of the child.
    what : str
        What is being done, for the timeout message (e.g. the image's path).

    Returns
    -------
    Completed
        Return code, stdout, stderr and wall time of the call.

    Raises
    ------
    SExtractorTimeoutError
        When the call did not finish within ``timeout``; names ``what``, the binary and the
        seconds.
    OSError
        When the executable cannot be started.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
                            preexec_fn=_parent_death_signal())
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)  # drain and reap
            raise SExtractorTimeoutError(
                f"SExtractor ({argv[0]}) {what or ' '.join(argv[1:])} did not finish within "
                f"{timeout:g} s and was killed (with its process group); raise the limit with "
                f"timeout= or ${TIMEOUT_ENV}") from None
    except BaseException:  # interrupted (KeyboardInterrupt...) or timed out: nothing survives
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    _kill_group(proc)  # strays the binary may have left in its group
    return Completed(proc.returncode, out or b"", err or b"", time.perf_counter() - t0)


# -- discovery ----------------------------------------------------------------------------
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


def _run(path: str, *args: str, timeout: float) -> str:
    try:
        done = execute([path, *args], timeout=timeout, what=f"probe '{' '.join(args)}'")
    except SExtractorTimeoutError:
        raise
    except OSError as exc:  # not executable, bad interpreter line...
        raise SExtractorNotFoundError(
            f"SExtractor binary {path} cannot be run: {exc}. "
            f"{SExtractorNotFoundError.INSTALL_HINT}"
        ) from exc
    text = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:  # -v etc. exit 0; anything else is a broken binary
        raise SExtractorNotFoundError(
            f"SExtractor binary {path} failed on '{' '.join(args)}' "
            f"(exit {done.returncode}): {text[-500:]}"
        )
    return text


_CACHE: dict[tuple[str, int], SExtractorBinary] = {}
_CACHE_LOCK = threading.Lock()


def _describe(path: str, mtime_ns: int, timeout: float) -> SExtractorBinary:
    key = (path, mtime_ns)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    version_text = _run(path, "-v", timeout=timeout)
    m = re.search(r"version\s+([0-9][0-9.]*)", version_text)
    if not m:
        raise SExtractorNotFoundError(
            f"{path} does not look like SExtractor: '-v' printed {version_text.strip()[:200]!r}"
        )
    binary = SExtractorBinary(
        path=path,
        version=m.group(1),
        keywords=parse_keywords(_run(path, "-dd", timeout=timeout)),
        parameters=parse_parameters(_run(path, "-dp", timeout=timeout)),
    )
    log.debug("Using SExtractor %s at %s", binary.version, path)
    with _CACHE_LOCK:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = binary
    return binary


def find_sextractor(binary: str | os.PathLike | None = None, *,
                    timeout: float | None = None) -> SExtractorBinary:
    """Locate the SExtractor binary and describe it.

    Parameters
    ----------
    binary : str or path-like, optional
        Name or path of the executable. Defaults to ``$EZPHOT_SEXTRACTOR``, then the first
        of ``source-extractor``, ``sex``, ``sextractor`` on PATH.
    timeout : float, optional
        Seconds allowed to each of the ``-v``/``-dd``/``-dp`` probes; default
        ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else 60.

    Returns
    -------
    SExtractorBinary

    Raises
    ------
    SExtractorNotFoundError
        When no usable binary is found; the message says how to install one.
    SExtractorTimeoutError
        When a probe hangs (the binary and its process group are killed).
    """
    path = _resolve_path(binary)
    return _describe(path, Path(path).stat().st_mtime_ns, resolve_timeout(timeout, PROBE_TIMEOUT))
