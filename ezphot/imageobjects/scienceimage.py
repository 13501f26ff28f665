"""Image kinds of the tutorial: `ScienceImage`, `ReferenceImage`, `CalibrationImage`."""

from __future__ import annotations

import contextlib
import logging
import threading

from .baseimage import BaseImage
from .maps import Background, Errormap, ImageMap, Mask

_log = logging.getLogger("ezphot")


class _CallGate(logging.Handler):
    """Sits on the ``ezphot`` logger while any ezphot call with a ``verbose`` flag runs.

    ``verbose=True`` needs INFO records, which the logger's usual effective level (WARNING)
    drops before any handler sees them. So, while calls are active, the logger is opened to
    INFO with propagation switched off, and this gate:

    - writes ``[INFO] message`` lines for records made in a thread that is inside a
      ``verbose=True`` call, to the stream that was ``sys.stdout`` when that call began
      (per thread: concurrent calls never see each other's lines);
    - forwards to the root logger's handlers exactly the records the user's configuration
      would have let through (level at or above the original effective level), minus the
      INFO/DEBUG of threads inside a ``verbose=False`` call.

    The logger's level and propagation are restored when the last active call ends.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.calls: dict[int, list[tuple[bool, object]]] = {}  # thread -> stack of calls
        self.level_before = logging.NOTSET
        self.propagate_before = True
        self.effective_before = logging.WARNING

    def _threshold(self, name: str, quiet: bool) -> int:
        """The level the user's configuration would have let through for logger ``name``:
        its own or a parent's explicit level below ``ezphot``, else ezphot's original one
        (raised to WARNING inside a ``verbose=False`` call, as before)."""
        while name and name != "ezphot":
            level = logging.getLogger(name).level
            if level != logging.NOTSET:
                return level
            name = name.rpartition(".")[0]
        return max(self.effective_before, logging.WARNING) if quiet else self.effective_before

    def emit(self, record: logging.LogRecord) -> None:
        stack = self.calls.get(record.thread)
        verbose, stream = stack[-1] if stack else (None, None)
        if verbose and record.levelno >= logging.INFO:
            try:
                tag = "INFO" if record.levelno == logging.INFO else record.levelname
                stream.write(f"[{tag}] {record.getMessage()}\n")
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream must not break photometry
                self.handleError(record)
        if record.levelno < self._threshold(record.name, verbose is False):
            return
        root = logging.getLogger()
        if root.handlers:
            root.handle(record)
        elif record.levelno >= logging.lastResort.level and not verbose:
            logging.lastResort.handle(record)


_gate = _CallGate()
_gate_lock = threading.Lock()


@contextlib.contextmanager
def _verbosity(verbose: bool):
    """``verbose=True``: one-line progress messages of this call (this thread only) on the
    current ``sys.stdout``; ``verbose=False``: warnings only. Thread-safe; the ``ezphot``
    logger is left as it was found when the last overlapping call ends."""
    import sys

    tid = threading.get_ident()
    with _gate_lock:
        if not _gate.calls:
            _gate.level_before = _log.level
            _gate.propagate_before = _log.propagate
            _gate.effective_before = _log.getEffectiveLevel()
            _log.addHandler(_gate)
            _log.propagate = False
            _log.setLevel(min(logging.INFO, _gate.effective_before))
        _gate.calls.setdefault(tid, []).append((bool(verbose), sys.stdout))
    try:
        yield
    finally:
        with _gate_lock:
            stack = _gate.calls[tid]
            stack.pop()
            if not stack:
                del _gate.calls[tid]
            if not _gate.calls:
                _log.removeHandler(_gate)
                _log.propagate = _gate.propagate_before
                _log.setLevel(_gate.level_before)


def progress_disable(progress: bool | None, n_items: int, minimum: int = 2) -> bool | None:
    """tqdm's ``disable=`` for a loop of ``n_items``: the one rule for ezphot's progress bars.

    - ``progress=True`` / ``False``: shown / hidden, whatever else holds;
    - fewer than ``minimum`` items: hidden (a bar for one step is noise);
    - inside a ``verbose=False`` call of this thread: hidden; inside ``verbose=True``: shown;
    - otherwise (e.g. a batch started from a script or a notebook): tqdm decides (``None``:
      shown on an interactive terminal or in Jupyter, hidden when stderr is a file or pipe).
    """
    if progress is not None:
        return not progress
    if n_items < minimum:
        return True
    stack = _gate.calls.get(threading.get_ident())
    if stack:
        return not stack[-1][0]
    return None


__all__ = ["ScienceImage", "ReferenceImage", "CalibrationImage"]


def _plain_signatures(cls):
    """Give the public methods of ``cls`` the signature a user types, for ``help()``:
    ``from __future__ import annotations`` would show every annotation as a quoted string."""
    import inspect

    for name, func in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(func):
            continue
        sig = inspect.signature(func)
        func.__signature__ = sig.replace(
            parameters=[p.replace(annotation=inspect.Parameter.empty)
                        for p in sig.parameters.values()],
            return_annotation=inspect.Signature.empty)
    return cls


class _ProductsMixin:
    """Products saved beside the image (``<F>.bkgmap``, ``<F>.bkgrms``, ``<F>.srcmask``)."""

    def _product(self, cls):
        path = cls.default_path(self.path)
        return cls(path, target_img=self.path) if path.is_file() else None

    @property
    def bkgmap(self) -> Background | None:
        """The saved background map, or None."""
        return self._product(Background)

    @property
    def bkgrms(self) -> Errormap | None:
        """The saved background-RMS map, or None."""
        return self._product(Errormap)

    @property
    def sourcemask(self) -> Mask | None:
        """The saved source mask, or None."""
        return self._product(Mask)

    # -- making products (new objects; the image is never modified) ------------------------
    def _finish(self, product: ImageMap, save: bool, visualize: bool, save_fig: bool, title: str):
        if save:
            product.save()
        if visualize or save_fig:
            from ..visualization import plot_map, save_figure

            product.figure = plot_map(product, title=f"{self.path.name}: {title}",
                                      display=visualize)
            if save_fig:
                save_figure(product.figure, f"{product.default_path(self.path)}.png")
        return product

    def calculate_circularmask(self, target_srcmask=None, *, x_position: float,
                               y_position: float, radius_arcsec: float, unit: str = "coord",
                               save: bool = False, verbose: bool = True, visualize: bool = False,
                               save_fig: bool = False) -> Mask:
        """A `Mask` of the pixels within ``radius_arcsec`` of a position (OR-ed with the
        given mask); see `ezphot.masks.calculate_circularmask`."""
        from ..masks import calculate_circularmask

        with _verbosity(verbose):
            mask = calculate_circularmask(self, x_position=x_position, y_position=y_position,
                                          radius_arcsec=radius_arcsec, unit=unit,
                                          target_srcmask=target_srcmask)
            return self._finish(mask, save, visualize, save_fig, "circular mask")

    def calculate_sourcemask(self, target_srcmask=None, *, sigma: float = 5,
                             mask_radius_factor: float = 3, saturation_level: float = 50000,
                             detection_filter="gauss", detection_filter_fwhm: float | None = None,
                             timeout: float | None = None,
                             save: bool = False, verbose: bool = True, visualize: bool = False,
                             save_fig: bool = False) -> Mask:
        """A `Mask` of the detected sources; see `ezphot.masks.calculate_sourcemask`."""
        from ..masks import calculate_sourcemask

        with _verbosity(verbose):
            mask = calculate_sourcemask(self, target_srcmask=target_srcmask, sigma=sigma,
                                        mask_radius_factor=mask_radius_factor,
                                        saturation_level=saturation_level,
                                        detection_filter=detection_filter,
                                        detection_filter_fwhm=detection_filter_fwhm,
                                        timeout=timeout)
            return self._finish(mask, save, visualize, save_fig, "source mask")

    def calculate_bkg(self, target_srcmask=None, target_ivpmask=None, *, is_2D_bkg: bool = True,
                      box_size: int = 64, filter_size: int = 3, estimator: str = "mean",
                      skew_correction: bool = False, deep_mask: bool = True,
                      fwhm: float | None = None, save: bool = False, verbose: bool = True,
                      visualize: bool = False, save_fig: bool = False) -> Background:
        """SExtractor-style `Background`; see `ezphot.background.calculate_bkg`."""
        from ..background import calculate_bkg

        with _verbosity(verbose):
            bkg = calculate_bkg(self, target_srcmask=target_srcmask, target_ivpmask=target_ivpmask,
                                is_2D_bkg=is_2D_bkg, box_size=box_size, filter_size=filter_size,
                                estimator=estimator, skew_correction=skew_correction,
                                deep_mask=deep_mask, fwhm=fwhm)
            return self._finish(bkg, save, visualize, save_fig, "background")

    def calculate_bkgrms_from_propagation(self, target_bkg, *, mbias=None, mdark=None,
                                          mflat=None, ncombine: int | None = None,
                                          save: bool = False, verbose: bool = True,
                                          visualize: bool = False,
                                          save_fig: bool = False) -> Errormap:
        """Background RMS from the noise model; see
        `ezphot.background.calculate_bkgrms_from_propagation`."""
        from ..background import calculate_bkgrms_from_propagation

        with _verbosity(verbose):
            rms = calculate_bkgrms_from_propagation(self, target_bkg, mbias=mbias, mdark=mdark,
                                                    mflat=mflat, ncombine=ncombine)
            return self._finish(rms, save, visualize, save_fig, "background RMS")

    # -- pictures ----------------------------------------------------------------------------
    def show(self, coord_type: str = "pixel", scale: str = "zscale", downsample: int = 4,
             figsize=(8, 6), *, ax=None):
        """The image (binned by ``downsample``), zscaled; ``'coord'`` draws RA/Dec axes.
        Shown under the cell in Jupyter; ``ax=`` draws into your axes. Returns ``(fig, ax)``."""
        from ..visualization import show_image

        return show_image(self, coord_type=coord_type, scale=scale, downsample=downsample,
                          figsize=figsize, ax=ax)

    def show_position(self, x: float, y: float, coord_type: str = "pixel", radius_arcsec=None,
                      a_arcsec=None, b_arcsec=None, theta_deg=None, zoom_radius_pixel: int = 100,
                      downsample: int = 1, scale: str = "zscale", figsize=(6, 6), *, ax=None):
        """A cut-out around a position with its aperture at true size (``coord_type='coord'``:
        RA/Dec in deg). Shown under the cell in Jupyter; ``ax=`` draws into your axes.
        Returns ``(fig, ax)``."""
        from ..visualization import show_position

        return show_position(self, x, y, coord_type=coord_type, radius_arcsec=radius_arcsec,
                             a_arcsec=a_arcsec, b_arcsec=b_arcsec, theta_deg=theta_deg,
                             zoom_radius_pixel=zoom_radius_pixel, downsample=downsample,
                             scale=scale, figsize=figsize, ax=ax)


class ScienceImage(_ProductsMixin, BaseImage):
    """A calibrated science frame."""

    image_type = "science"


class ReferenceImage(_ProductsMixin, BaseImage):
    """A reference (template) image, e.g. a deep stack."""

    image_type = "reference"


class CalibrationImage(BaseImage):
    """A master calibration frame (bias, dark, flat)."""

    image_type = "calibration"


_plain_signatures(_ProductsMixin)
