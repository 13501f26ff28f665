"""Photometry over many images: a local process pool by default, Dask distributed on request.

Workers receive image descriptors (file, HDU, kind, profile), never pixel arrays, and call
the methods' core functions (`ezphot.photometry.registry`). Each image's catalogue is
written atomically, so an interrupted batch leaves only complete catalogues, and a re-run
with ``resume=True`` measures only the images whose catalogue is missing, damaged, or made
with other settings or another input (checksum and provenance key, see `process_image`).
Local workers exit when the batch process dies, even when it is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from astropy.table import Table
from tqdm.auto import tqdm

from ._aliases import resolve_renamed
from .exceptions import EzphotError, ForeignFileError
from .imageobjects.baseimage import ImageDescriptor
from .imageobjects.scienceimage import progress_disable
from .photometry.registry import get_method, method_names

log = logging.getLogger(__name__)

__all__ = ["run_batch", "process_image", "catalog_suffix", "local_pool", "METHODS"]

# the registered photometry methods (ezphot/photometry/registry.py)
METHODS = method_names()


class BatchError(EzphotError, RuntimeError):
    """An image of a batch failed with ``on_error='raise'``."""


def catalog_suffix(method: str, options: Mapping | None = None) -> str:
    """File suffix of the catalogue a method writes beside the image (from the registry).

    Forced photometry ('circular', 'elliptical') writes one file per target list: with the
    call's ``options`` (``x``, ``y``...) the suffix carries their digest
    (``.circ.<hash>.cat``, see `ezphot.photometry.common.forced_suffix`).

    Parameters
    ----------
    method : {'sextractor', 'photutils', 'circular', 'elliptical'}
        The photometry method.
    options : mapping, optional
        The call's options (forced photometry: with the targets).

    Returns
    -------
    str
        The suffix, e.g. ``'.cat'``.
    """
    spec = get_method(method)
    if options is None:
        return spec.suffix
    from .photometry.common import expected_suffix

    return expected_suffix(method, options)


# options of the tutorial façade: a batch shows nothing and logs warnings only; save_fig
# saves each catalogue's picture beside it
_FACADE_ONLY = ("verbose", "visualize", "save_fig")


def _measure(img, method: str, options: Mapping) -> object:
    """One measurement with the method's core function (not the tutorial façade)."""
    from .imageobjects.scienceimage import verbosity

    save_fig = bool(options.get("save_fig", False))
    options = {k: v for k, v in options.items() if k not in _FACADE_ONLY}
    if options.pop("use_saved_maps", False):
        options.setdefault("target_bkg", img.bkgmap)
        options.setdefault("target_bkgrms", img.bkgrms)
    options["save"] = True
    with verbosity(False):
        catalog = get_method(method).func(img, **options)
        if save_fig:
            from .visualization import plot_result

            catalog.figure = plot_result(catalog, save=True, display=False)
    return catalog


def process_image(image: ImageDescriptor | str, method: str, options: Mapping,
                  resume: bool) -> dict:
    """Measure one image (runs in a worker). Never raises: failures become a summary row.

    With ``resume`` an existing catalogue is reused only when its checksum verifies and its
    provenance key (method, options, targets, input file, versions) equals this call's; a
    damaged catalogue or one made otherwise is measured again and ``reason`` says why. A
    file at the output path that ezphot did not write fails the image and is left untouched.

    Parameters
    ----------
    image : ImageDescriptor or str
        The image: a descriptor (file, HDU, kind, profile) or a path.
    method : str
        The photometry method (see `run_batch`).
    options : mapping
        Options of the method.
    resume : bool
        Reuse a verified catalogue made the same way.

    Returns
    -------
    dict
        One summary row: image, status, sources, seconds, error, catalog, reason.
    """
    if _worker_state["terminating"]:  # the batch is gone: start nothing new
        raise SystemExit(1)
    _worker_state["busy"] = True
    try:
        return _process_image(ImageDescriptor.of(image), method, options, resume)
    finally:
        _worker_state["busy"] = False


def _process_image(image: ImageDescriptor, method: str, options: Mapping, resume: bool) -> dict:
    from .dataobjects import Catalog
    from .photometry.common import catalog_path, expect_provenance, provenance

    t0 = time.perf_counter()
    row = {"image": image.label, "status": "done", "sources": -1, "seconds": 0.0, "error": "",
           "catalog": "", "reason": ""}
    try:
        img = image.open()
        target = catalog_path(img, catalog_suffix(method, options))
        key = provenance(method, img, options)
        state = Catalog.check(target, key)
        if state.state == "foreign":
            raise ForeignFileError(state.reason)
        if resume and state.state == "ok":
            row.update(status="skipped", catalog=str(target), reason="unchanged",
                       sources=state.rows)
        else:
            if state.state == "missing":
                row["reason"] = "new"
            elif not resume:
                row["reason"] = "measured again (resume=False)"
            else:
                row["reason"] = f"remeasured: {state.reason}"
                log.info("%s: %s", target, row["reason"])
            with expect_provenance(target, key):
                catalog = _measure(img, method, options)
            row.update(sources=len(catalog.data), catalog=str(catalog.info.path or ""))
    except Exception as exc:  # a batch reports every failure instead of dying on the first
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.debug("%s failed:\n%s", image.label, traceback.format_exc())
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _descriptors(images: Iterable) -> list[ImageDescriptor]:
    """What the workers receive: one descriptor per image (file, HDU, kind, profile)."""
    return [ImageDescriptor.of(item) for item in images]


_COLUMNS = ["image", "status", "sources", "seconds", "error", "catalog", "reason"]


def _summary(rows: list[dict]) -> Table:
    names = _COLUMNS
    table = Table(rows=[[r.get(n, "") for n in names] for r in rows], names=names) if rows \
        else Table(names=names, dtype=[str, str, int, float, str, str, str])
    table["seconds"].unit = "s"
    return table


def run_batch(images: Iterable, method: str = "sextractor", *, workers: int | None = None,
              client=None, scheduler: str | None = None, on_error: str = "skip",
              resume: bool = True, progress: bool | None = None, **options) -> Table:
    """Apply a photometry method to many images.

    Parameters
    ----------
    images : ImageSet or iterable of images, `ImageDescriptor` or paths
        Workers receive descriptors (file, HDU, kind, profile): ``'mef.fits[1]'`` or
        ``ScienceImage('mef.fits[1]')`` is measured on HDU 1.
    method : str
        A registered method (`ezphot.photometry.registry`): 'sextractor', 'photutils',
        'circular', 'elliptical'.
    workers : int, optional
        Local worker processes (default: the number of cores). 1 runs in this process.
    client : dask.distributed.Client, optional
        Run on this Dask cluster instead of a local pool (e.g. a dask-jobqueue cluster).
    scheduler : str, optional
        Address of a Dask scheduler to connect to (``'tcp://host:8786'``).
    on_error : {'skip', 'raise'}
        'skip' records failures in the summary; 'raise' stops at the first failure with an
        exception naming the file (outputs already written are kept).
    resume : bool
        Skip images whose catalogue verifies (FITS checksum) and was made with the same
        method, options, targets, input file (path, HDU, size, modification time) and
        ezphot/SExtractor versions; any other is measured again. A file ezphot did not
        write at the output path is never replaced: that image fails.
    progress : bool, optional
        Show a tqdm progress bar (None: tqdm's default; False: none).
    **options
        Passed to the photometry method (e.g. ``detection_sigma``, ``aperture_diameter_arcsec``;
        ``use_saved_maps=True`` uses each image's saved ``.bkgmap``/``.bkgrms``).

    Returns
    -------
    astropy.table.Table
        One row per image: image, status ('done', 'skipped', 'failed'), sources, seconds,
        error, catalog, reason ('new', 'unchanged', 'remeasured: options changed',
        'remeasured: damaged catalogue (...)', ...).
    """
    spec = get_method(method)
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    paths = _descriptors(images)
    # the method's deprecated option names, resolved once (the resume key uses the new ones)
    options = resolve_renamed(spec.func, options)
    desc = f"Photometry ({method})"
    if client is not None or scheduler is not None:
        rows = _run_dask(paths, method, options, resume, client, scheduler, on_error, progress,
                         desc)
    elif (workers or os.cpu_count() or 1) == 1 or len(paths) <= 1:
        rows = []
        for p in tqdm(paths, desc=desc, disable=progress_disable(progress, len(paths), 1)):
            rows.append(process_image(p, method, options, resume))
            _check(rows[-1], on_error)
    else:
        rows = _run_local(paths, method, options, resume, workers or os.cpu_count() or 1,
                          on_error, progress, desc)
    order = {p.label: i for i, p in enumerate(paths)}
    rows.sort(key=lambda r: order[r["image"]])
    summary = _summary(rows)
    n_failed = sum(r["status"] == "failed" for r in rows)
    log.info("Batch %s: %d images, %d failed", method, len(rows), n_failed)
    return summary


def _check(row: dict, on_error: str) -> None:
    if on_error == "raise" and row["status"] == "failed":
        raise BatchError(f"{row['image']}: {row['error']}")


_PR_SET_PDEATHSIG = 1
# per worker process: its batch is gone (SIGTERM received); a task is running
_worker_state = {"terminating": False, "busy": False}


def _kill_children() -> None:
    """SIGKILL this process's children (a running SExtractor); Linux /proc only."""
    me = str(os.getpid())
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if ppid == me:
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)


def _terminate(signum, frame) -> None:
    """SIGTERM in a worker: kill its binary, then unwind (run directories removed), once."""
    if not _worker_state["terminating"]:
        _worker_state["terminating"] = True
        _kill_children()
        raise SystemExit(128 + signum)


def _watch_parent(parent_pid: int, interval: float = 0.5, grace: float = 5.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    log.warning("Batch process %d is gone; worker %d exits", parent_pid, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    # the running task unwinds (its run directory removed); then leave, whatever the pool's
    # loop does (it would wait forever for work from the dead parent)
    t0 = time.monotonic()
    time.sleep(0.05)
    while _worker_state["busy"] and time.monotonic() - t0 < grace:
        time.sleep(0.05)
    _kill_children()
    os._exit(1)


def _worker_init(parent_pid: int) -> None:
    """Initializer of the local pool's workers: exit within seconds when the batch dies.

    On Linux the kernel sends SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG); a
    watchdog thread polling the parent pid does the same elsewhere, and is a backstop (it
    ends the worker ``grace`` seconds later whatever happens). SIGTERM raises SystemExit in
    the worker, so a running measurement unwinds: its binary is killed and its run directory
    removed.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="ezphot-parent-watchdog").start()
    if os.getppid() != parent_pid:  # died before the prctl above took effect
        os.kill(os.getpid(), signal.SIGTERM)


_GUARD_HINT = ("run_batch() with worker processes was called at the top level of {path}: "
               "each worker re-runs that script when it starts. Put the call under "
               "`if __name__ == '__main__':` (or pass workers=1).")


def _check_main_guard() -> None:
    """A script that calls run_batch() at its top level, without the ``__main__`` guard,
    makes every spawned worker run the script again and die ("worker died"): say so."""
    import ast

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # inside a worker that is importing the user's script: the same mistake, seen from here
        raise EzphotError(_GUARD_HINT.format(path=path or "the main script"))
    if main is None or not path or not str(path).endswith(".py"):
        return  # interactive session or notebook: nothing is re-run
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main)
                                     and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return  # called from a function: fine with spawn
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return
    line = frame.f_lineno
    for node in tree.body:
        if node.lineno <= line <= (node.end_lineno or node.lineno):
            if not isinstance(node, ast.If):
                raise EzphotError(_GUARD_HINT.format(path=path))
            return


# BLAS thread counts a worker process reads when numpy loads its BLAS
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ENVIRON_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_blas_thread_each():
    """Worker processes started in this block get one BLAS thread each, as Dask's nanny gives
    its workers (the variables the user set are left alone).

    With one worker per core, each worker's BLAS would start a thread per core and the
    threads spin against each other: `multiband_catalog` on 8 full frames, forced part with
    2 workers 25.0 s with the default threads, 16.9 s with one (the background map's
    interpolation is a BLAS product). ``os.environ`` is what a spawned process inherits; the
    variables are set only while processes start (under a lock) and do not change this
    process's own BLAS, which read them when it loaded."""
    with _ENVIRON_LOCK:
        added = [k for k in _BLAS_THREADS if k not in os.environ]
        for k in added:
            os.environ[k] = "1"
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # 'spawn' is safe whatever threads the parent runs (fork is not), on every platform.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))


# the pool of an enclosing `local_pool` block (this thread's context): {'pool', 'workers',
# 'broken'}
_SHARED_POOL: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ezphot_batch_pool",
                                                                            default=None)


def _warm_up(modules: tuple[str, ...]) -> int:
    """Import ``modules`` in a worker (run once per worker when a `local_pool` starts)."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    return os.getpid()


@contextlib.contextmanager
def local_pool(workers: int | None = None, *, warm_up: Iterable[str] = ()):
    """Start local worker processes now and keep them for the `run_batch` calls in the block.

    A run in several steps (detect on one frame, then measure every frame) pays the workers'
    start (a spawned interpreter importing ezphot, astropy, photutils...) while its first,
    serial step runs, instead of after it. `run_batch` calls inside the block with the same
    ``workers`` and no Dask ``client``/``scheduler`` submit to these processes; the results
    are those of separate pools (same worker code). If a worker dies the block's pool is
    left and `run_batch` retries on a pool of its own, as always.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: the number of cores). 1 starts none (`run_batch` then
        measures in the calling process).
    warm_up : iterable of str
        Modules each worker imports as soon as it starts (e.g. the photometry method's).

    Yields
    ------
    int
        The number of worker processes started (0 for ``workers=1``).
    """
    n = workers or os.cpu_count() or 1
    if n <= 1:
        yield 0
        return
    _check_main_guard()
    pool = _new_pool(n)
    state = {"pool": pool, "workers": n, "broken": False}
    token = _SHARED_POOL.set(state)
    done = False
    try:
        modules = tuple(warm_up)
        with _one_blas_thread_each():  # the processes start here
            for _ in range(n):  # one task per worker: every process is spawned now
                pool.submit(_warm_up, modules)
        yield n
        done = True
    finally:
        _SHARED_POOL.reset(token)
        # after success the idle workers exit on their own (their interpreters' teardown,
        # ~0.5 s, is not the caller's to wait for); after a failure they are waited for, so
        # that no task outlives the caller's run directories
        pool.shutdown(wait=not done, cancel_futures=True)


def local_submitter() -> Callable[..., Future | None] | None:
    """A function that submits ``fn(*args)`` to the workers of the enclosing `local_pool`
    block, from any thread (tasks run in the order of submission: side work submitted now
    runs before a later `run_batch`'s tasks); None outside such a block or with no workers.

    For side work a later batch step profits from (`multiband_catalog` makes the frames'
    sky while it detects). The function returns None instead of a Future once the pool is
    broken or shut down; ``fn`` must be importable by the workers.
    """
    state = _SHARED_POOL.get()
    if state is None:
        return None

    def submit(fn: Callable, *args) -> Future | None:
        if state["broken"]:
            return None
        try:
            return state["pool"].submit(fn, *args)
        except RuntimeError:  # shut down, or broken (BrokenProcessPool is a RuntimeError)
            return None

    return submit


def _run_local(paths, method, options, resume, workers, on_error, progress, desc,
               max_attempts: int = 2) -> list[dict]:
    """A process pool (the enclosing `local_pool`'s when it has ``workers`` processes); if a
    worker dies (killed, out of memory) a new pool is built and the unfinished images are
    tried again, up to ``max_attempts`` times each."""
    from concurrent.futures.process import BrokenProcessPool

    _check_main_guard()
    shared = _SHARED_POOL.get()
    rows: list[dict] = []
    attempts = dict.fromkeys(paths, 0)
    todo = list(paths)
    with tqdm(total=len(paths), desc=desc,
              disable=progress_disable(progress, len(paths), 1)) as bar:
        while todo:
            for p in todo:
                attempts[p] += 1
            own = shared is None or shared["broken"] or shared["workers"] != workers
            pool = _new_pool(min(workers, len(todo))) if own else shared["pool"]
            with _one_blas_thread_each():  # the processes start at the submissions
                pending: dict[Future, str] = {
                    pool.submit(process_image, p, method, options, resume): p for p in todo}
            todo = []
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        path = pending.pop(fut)
                        try:
                            row = fut.result()
                        except BrokenProcessPool:
                            if not own:
                                shared["broken"] = True
                            if attempts[path] < max_attempts:
                                todo.append(path)
                                continue
                            row = {"image": path.label, "status": "failed", "sources": -1,
                                   "seconds": 0.0, "catalog": "", "reason": "",
                                   "error": "worker process died (killed or out of memory)"}
                        rows.append(row)
                        bar.update(1)
                        _check(row, on_error)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                if own:  # a shared pool is shut down (the same way) by its local_pool block
                    pool.shutdown(wait=True, cancel_futures=True)
                raise
            if own:
                pool.shutdown(wait=True)
            if todo:
                log.warning("A worker died; retrying %d unfinished images", len(todo))
    return rows


def _run_dask(paths, method, options, resume, client, scheduler, on_error, progress, desc):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("Dask runs need 'pip install ezphot[dask]'") from exc
    own = client is None
    if own:
        client = Client(scheduler)
    rows: list[dict] = []
    try:
        futures = client.map(process_image, paths, method=method, options=options,
                             resume=resume, pure=False)
        with tqdm(total=len(paths), desc=desc,
              disable=progress_disable(progress, len(paths), 1)) as bar:
            for fut in as_completed(futures):
                row = fut.result()
                rows.append(row)
                bar.update(1)
                if on_error == "raise" and row["status"] == "failed":
                    client.cancel(futures)
                    _check(row, on_error)
    finally:
        if own:
            client.close()
    return rows
