"""Small file-system helpers: atomic writes, per-run temporary directories, output paths, and
the streaming float32 FITS writer (`write_float_image`).

Ownership markers
-----------------
What a killed process (SIGKILL, OOM) leaves behind is removed by a later run, but only when
ezphot can prove it made it: every run directory holds a marker file (``.ezphot-owner``) and
every ``.part`` file has a sibling marker (``<part>.owner``), both JSON records of the
writing process (pid, host, boot id, process start time). A leftover is removed only when its
marker is valid, names the entry, comes from this host (and pid namespace) and its process is
dead — a pid now used by another process (different start time, or another boot) counts as
dead. Names alone
never decide: a user's ``ezphot-sex-123@host-abc`` folder without a valid marker is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits

from .exceptions import EzphotError, OutputError

log = logging.getLogger(__name__)

__all__ = ["atomic_write", "run_directory", "remove_stale", "product_path", "fits_owner",
           "OWNER_MARKER", "write_float_image", "plain_header"]

OWNER_MARKER = ".ezphot-owner"  # inside a run directory
_PART_MARKER = ".owner"  # suffix of the sibling marker of a .part file
_MAX_MARKER = 4096


def _owner_tag() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc; None if absent."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _owner_record(name: str) -> dict:
    stat = _proc_stat(os.getpid())
    return {"ezphot": "owner", "name": name, "pid": os.getpid(), "host": socket.gethostname(),
            "boot": boot_id(), "pidns": _pid_namespace(),
            "start": None if stat is None else stat[1], "created": round(time.time(), 3)}


def _write_marker(path: Path, name: str) -> None:
    """Create ``path`` (exclusively) holding the owner record of this process for ``name``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(_owner_record(name), f)


def _read_marker(path: Path) -> dict | None:
    """The owner record in ``path``, or None when absent or not a valid ezphot marker."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_MARKER + 1)
        rec = json.loads(raw) if len(raw) <= _MAX_MARKER else None
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("ezphot") != "owner":
        return None
    pid, start = rec.get("pid"), rec.get("start")
    if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
        return None
    if not isinstance(rec.get("host"), str) or not isinstance(rec.get("name"), str):
        return None
    if start is not None and not (isinstance(start, int) and not isinstance(start, bool)):
        return None
    return rec


def _owner_dead(rec: dict) -> bool:
    """True only when the process that wrote ``rec`` (a valid marker) provably no longer runs."""
    if rec["host"] != socket.gethostname():
        return False  # another machine's (shared file system): not ours to judge
    pidns = _pid_namespace()
    if rec.get("pidns") and pidns and rec["pidns"] != pidns:
        return False  # another container's pids are not visible here
    boot = boot_id()
    if rec.get("boot") and boot and rec["boot"] != boot:
        return True  # written before a reboot
    pid = rec["pid"]
    stat = _proc_stat(pid)
    if stat is None:
        if Path("/proc/self/stat").exists():
            return True  # /proc works and has no such process
        try:  # no /proc (macOS...): existence only, pid reuse cannot be told
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            return False
        return False
    state, start = stat
    if state in ("Z", "X"):
        return True  # a zombie: it has exited, its parent has not reaped it yet
    if rec["start"] is None:
        return False  # alive pid, unknown start time: it may be the writer
    return start != rec["start"]  # same pid, other start time: the pid was reused


def _stale_owner(entry: os.DirEntry) -> Path | None:
    """The marker proving ``entry`` is a leftover of a dead ezphot process, else None."""
    if entry.is_dir(follow_symlinks=False):
        marker = Path(entry.path) / OWNER_MARKER
    elif entry.name.endswith(".part") and entry.is_file(follow_symlinks=False):
        marker = Path(f"{entry.path}{_PART_MARKER}")
    else:
        return None
    rec = _read_marker(marker)
    if rec is None or rec["name"] != entry.name or not _owner_dead(rec):
        return None
    return marker


def remove_stale(directory: Path, startswith: str) -> int:
    """Remove leftovers of dead ezphot processes in ``directory`` (see the module notes).

    Only entries whose name starts with ``startswith`` are looked at, and only those with a
    valid ownership marker of a dead process of this host are removed.
    """
    removed = 0
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(startswith)]
    except OSError:
        return 0
    names = {e.name for e in entries}
    for entry in entries:
        if entry.name.endswith(".part" + _PART_MARKER) and entry.is_file(follow_symlinks=False):
            # a marker whose .part is gone (killed between the two unlinks)
            part = entry.name[:-len(_PART_MARKER)]
            rec = _read_marker(Path(entry.path))
            if part not in names and rec is not None and rec["name"] == part \
                    and _owner_dead(rec):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            continue
        marker = _stale_owner(entry)
        if marker is None:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            with contextlib.suppress(OSError):
                os.unlink(marker)
        log.info("Removed %s, left by an ezphot process that no longer runs", entry.path)
        removed += 1
    return removed


def _output_error(path: Path, exc: OSError, what: str = "cannot write") -> OutputError:
    cause: BaseException | None = exc
    while cause is not None and not getattr(cause, "errno", None):  # astropy rewraps
        cause = cause.__cause__ or cause.__context__
    code = getattr(cause, "errno", None) or exc.errno
    reason = os.strerror(code) if code else (exc.strerror or str(exc))
    exc.errno = code
    hint = ""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " (read-only? set EZPHOT_OUTPUT_DIR to write products elsewhere)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (disk full)"
    err = OutputError(f"{path}: {what}: {reason}{hint}")
    err.errno = exc.errno  # (no .filename: OSError would then print only the errno and path)
    return err


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None], *,
                 may_replace: Callable[[Path], None] | None = None) -> Path:
    """Write a file atomically.

    ``writer`` is called with a temporary path in the destination directory; the temporary
    file is renamed onto ``path`` only when ``writer`` returns, so readers never see a
    half-written file and a crash leaves the previous file intact.

    Parameters
    ----------
    path : path-like
        Final destination.
    writer : callable
        Function that writes the complete file to the path it is given.
    may_replace : callable, optional
        Called with ``path`` just before the rename when a file already exists there; it
        raises to keep that file (e.g. one ezphot did not write).

    Returns
    -------
    pathlib.Path
        The destination path.

    Raises
    ------
    OutputError
        The folder cannot be created or written (read-only, disk full...); names the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path, exc, "cannot create its folder") from exc
    remove_stale(path.parent, f".{path.name}.")
    tmp_path = path.parent / f".{path.name}.{_owner_tag()}.{secrets.token_hex(4)}.part"
    marker = Path(f"{tmp_path}{_PART_MARKER}")
    try:
        try:
            _write_marker(marker, tmp_path.name)  # first: a .part never exists unmarked
        except FileExistsError:  # astronomically unlikely: draw another name
            tmp_path = tmp_path.with_name(f".{path.name}.{_owner_tag()}."
                                          f"{secrets.token_hex(8)}.part")
            marker = Path(f"{tmp_path}{_PART_MARKER}")
            _write_marker(marker, tmp_path.name)
        writer(tmp_path)
        if may_replace is not None and os.path.lexists(path):
            may_replace(path)
        os.replace(tmp_path, path)
    except EzphotError:
        raise
    except OSError as exc:
        raise _output_error(path, exc) from exc
    finally:
        for p in (tmp_path, marker):
            with contextlib.suppress(OSError):
                p.unlink()
    return path


@contextlib.contextmanager
def run_directory(prefix: str = "ezphot-", keep: bool = False, *,
                  parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A private temporary directory for one run, removed afterwards even on failure.

    The parent directory is ``parent`` when given, else ``$EZPHOT_TMPDIR`` when set, else the
    system default. Run directories that killed processes of this host left there are
    removed first (those with a valid ownership marker only; see the module notes).
    """
    parent = Path(parent or os.environ.get("EZPHOT_TMPDIR") or tempfile.gettempdir())
    remove_stale(parent, "ezphot-")
    try:
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner_tag()}-", dir=parent))
    except OSError as exc:
        raise _output_error(parent, exc, "cannot create a run directory") from exc
    try:
        try:
            _write_marker(path / OWNER_MARKER, path.name)
        except OSError as exc:
            raise _output_error(path, exc, "cannot create a run directory") from exc
        yield path
    finally:
        if keep:
            log.info("Keeping run directory %s", path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def hdu_suffix(suffix: str, hdu: int | None) -> str:
    """A product's suffix naming the HDU it belongs to (``.hdu2.cat``), for an image of a file
    that holds several images (``hdu`` not None): products of two extensions never share a
    name."""
    return suffix if hdu is None else f".hdu{int(hdu)}{suffix}"


def product_path(image_path: str | os.PathLike, suffix: str, *, create: bool = True) -> Path:
    """Where a product of an image (catalogue, map) is written.

    Beside the image (``<image><suffix>``) when its folder is writable; else under
    ``$EZPHOT_OUTPUT_DIR``, mirroring the image's absolute path.

    Raises
    ------
    OutputError
        The image's folder is read-only and ``EZPHOT_OUTPUT_DIR`` is not set (only when
        ``create`` is True; otherwise the path beside the image is returned).
    """
    from .config import output_root

    image_path = Path(image_path)
    beside = Path(f"{image_path}{suffix}")
    if os.access(image_path.parent, os.W_OK):
        return beside
    root = output_root()
    if root is None:
        if not create:
            return beside
        err = OutputError(f"{image_path.parent} is read-only; set EZPHOT_OUTPUT_DIR to "
                          "write products elsewhere")
        err.errno = errno.EROFS
        raise err
    image_path = image_path.absolute()
    return root / image_path.relative_to(image_path.anchor).parent / beside.name


def fits_owner(path: str | os.PathLike, max_blocks: int = 64) -> str | None:
    """The value of the ``EZPHOT`` card of a FITS file's primary header, else None.

    Reads the header cards only (up to ``max_blocks`` 2880-byte blocks), so a catalogue cut
    short after its header is still recognised as ezphot's. Maps written before that card
    existed are recognised by their ``EZKIND`` card.
    """
    try:
        with open(path, "rb") as f:
            first = f.read(2880)
            if not first.startswith(b"SIMPLE  ="):
                return None
            block, n = first, 0
            while block and n < max_blocks:
                for i in range(0, len(block) - 79, 80):
                    card = block[i:i + 80]
                    key = card[:8]
                    if key == b"END     ":
                        return None
                    if key in (b"EZPHOT  ", b"EZKIND  ") and card[8:10] == b"= ":
                        value = card[10:].split(b"/")[0].strip().strip(b"'").strip()
                        text = value.decode("ascii", "replace")
                        return text if key == b"EZPHOT  " else "map"
                block, n = f.read(2880), n + 1
    except OSError:
        return None
    return None


# -- streaming FITS writer ----------------------------------------------------------------------
# Keywords of the tile-compression convention (and of extensions), dropped from a plain copy.
_COMPRESSION_KEY = re.compile(
    r"^(XTENSION|PCOUNT|GCOUNT|ZIMAGE|ZSIMPLE|ZEXTEND|ZBLOCKED|ZTENSION|ZPCOUNT|ZGCOUNT|ZBITPIX|"
    r"ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+|ZVAL\d+|ZMASKCMP|ZQUANTIZ|ZDITHER0|ZHECKSUM|"
    r"ZDATASUM)$")
_STRUCTURAL = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|BZERO|BSCALE|BLANK|CHECKSUM|DATASUM)$")


def plain_header(header: fits.Header, shape: tuple[int, int]) -> fits.Header:
    """A float32 primary header with the image's metadata and WCS (no structure/compression)."""
    out = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", shape[1]),
                       ("NAXIS2", shape[0])])
    for card in header.cards:
        if card.keyword and not (_STRUCTURAL.match(card.keyword)
                                 or _COMPRESSION_KEY.match(card.keyword)):
            out.append(card, end=True)
    return out


# Bytes per row block when streaming an image: blocks that stay in the CPU cache and below
# malloc's mmap threshold. With blocks of 512 rows (19 MB for 7DT) every temporary was a
# fresh mmap whose pages the kernel had to fault in and zero: writing the two maps of a full
# 7DT frame took 0.4-0.6 s, now 0.15-0.25 s (benchmarks/, "maps").
_BLOCK_BYTES = 1 << 19


def write_float_image(path: Path, shape: tuple[int, int], rows, header: fits.Header | None = None,
                      chunk: int | None = None) -> str:
    """Write a float32 FITS image row block by row block (no full-frame temporary array).

    ``rows(y0, y1)`` returns the rows ``y0:y1`` of the image; ``chunk`` rows are asked for at
    a time (default: about 512 KiB of pixels).
    """
    chunk = chunk or max(1, _BLOCK_BYTES // (4 * shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        head = plain_header(header or fits.Header(), shape).tostring().encode("ascii")
    # a plain FITS file written directly: astropy's StreamingHDU flushes every block (slow)
    block = np.empty((chunk, shape[1]), dtype=">f4")  # one reused big-endian buffer
    with open(path, "wb", buffering=0) as fh:
        fh.write(head)
        for y0 in range(0, shape[0], chunk):
            y1 = min(shape[0], y0 + chunk)
            out = block[: y1 - y0]
            out[...] = rows(y0, y1)
            fh.write(out.data)
        fh.write(b"\0" * (-fh.tell() % 2880))  # FITS blocks are 2880 bytes
    return str(path)


# -- ownership of exports: pictures and tables in other formats ---------------------------
# A PNG carries a text chunk ``ezphot`` (matplotlib ``metadata=``), an ECSV or Parquet table
# the meta key ``ezphot_export``. A plain CSV has no place for a marker: ezphot never
# replaces an existing CSV file.
EXPORT_KEY = "ezphot_export"
PNG_KEY = "ezphot"


def png_owner(path: str | os.PathLike, max_bytes: int = 1 << 20) -> str | None:
    """The value of the ``ezphot`` text chunk of a PNG file (read before its image data),
    else None (not a PNG, no such chunk, unreadable)."""
    import struct

    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            read = 8
            while read < max_bytes:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND") or length > max_bytes:
                    return None
                body = f.read(length + 4)  # data and CRC
                read += 8 + length + 4
                if kind == b"tEXt" and body[:len(PNG_KEY) + 1] == PNG_KEY.encode() + b"\0":
                    return body[len(PNG_KEY) + 1:length].decode("latin-1")
    except OSError:
        return None
    return None


def table_export_owner(path: str | os.PathLike, fmt: str) -> str | None:
    """The ``ezphot_export`` value in an ECSV header or a Parquet file's table metadata,
    else None. Other formats (CSV...) carry no marker: None."""
    import re

    pattern = re.compile(rf"\b{EXPORT_KEY}:\s*['\"]?([^'\"\n}}]+)")
    try:
        if fmt == "ecsv":
            with open(path, "rb") as f:
                head = f.read(1 << 20).decode("utf-8", "replace")
            if not head.startswith("# %ECSV"):
                return None
            header = "\n".join(line for line in head.splitlines() if line.startswith("#"))
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            header = meta.get(b"table_meta_yaml", b"").decode("utf-8", "replace")
        else:
            return None
    except Exception:  # noqa: BLE001 - whatever cannot be read is not provably ours
        return None
    found = pattern.search(header)
    return found.group(1).strip() if found else None


def check_export_replaceable(path: Path, fmt: str) -> None:
    """Raise `ForeignFileError` unless ``path`` is an export (PNG, ECSV, Parquet) that ezphot
    wrote; it is left untouched."""
    from .exceptions import ForeignFileError

    what = {"png": "picture", "csv": "CSV file"}.get(fmt, f"{fmt} export")
    if fmt == "csv" and os.path.lexists(path):
        raise ForeignFileError(f"{path}: exists; a CSV file carries no ownership marker, so "
                               "ezphot never replaces one (move it away, or export ECSV)")
    owner = None
    if not os.path.islink(path) and os.path.isfile(path):
        owner = png_owner(path) if fmt == "png" else table_export_owner(path, fmt)
    if owner is None:
        raise ForeignFileError(f"{path}: exists and is not an ezphot {what}; ezphot leaves it "
                               "untouched (move it away to write there)")
