"""Image kinds of the tutorial: `ScienceImage`, `ReferenceImage`, `CalibrationImage`."""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading

from .._aliases import renamed, resolve_renamed
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
def verbosity(verbose: bool):
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


def facade_signature(core, facade, *, image_method: bool = False):
    """The signature a user sees for ``facade``, a thin layer over the function ``core``:
    ``facade``'s positional parameters, then ``core``'s other parameters (with their
    defaults, which ``core`` alone holds), then ``facade``'s own keyword-only options.
    ``image_method``: ``facade`` is a method of the image that ``core`` takes first."""
    import inspect

    fparams = list(inspect.signature(facade).parameters.values())
    head = [p for p in fparams if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    own = [p for p in fparams if p.kind is p.KEYWORD_ONLY]
    skip = {p.name for p in head + own}
    cparams = list(inspect.signature(core).parameters.values())[1 if image_method else 0:]
    middle = [p for p in cparams if p.name not in skip]
    if image_method:
        middle = [p.replace(kind=p.KEYWORD_ONLY) for p in middle]
    own = [p for p in own if p.name not in {q.name for q in cparams}]
    return inspect.Signature(head + middle + own)


def plain_signatures(cls):
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

    def __init__(self, *args, **kwargs) -> None:
        if not _SIGNED:
            _product_signatures()
        super().__init__(*args, **kwargs)

    # help() and inspect.signature show BaseImage's parameters, not (*args, **kwargs)
    __init__.__signature__ = inspect.signature(BaseImage.__init__)

    def _product(self, cls):
        path = cls.default_path(self.path, hdu=self.product_hdu)
        return (cls(path, target_img=self.path, target_hdu=self.product_hdu)
                if path.is_file() else None)

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
                save_figure(product.figure,
                            f"{product.default_path(self.path, hdu=self.product_hdu)}.png")
        return product

    # Each method passes its options to the function that makes the product (which holds
    # them and their defaults) and adds only save, verbose, visualize and save_fig.
    @renamed(target_srcmask="target_mask")
    def calculate_circularmask(self, target_mask=None, *, save: bool = False,
                               verbose: bool = True, visualize: bool = False,
                               save_fig: bool = False, **kwargs) -> Mask:
        """A `Mask` of the pixels within ``radius_arcsec`` of a position ``x``, ``y`` (OR-ed
        with the given mask); see `ezphot.masks.calculate_circularmask`."""
        from ..masks import calculate_circularmask as make

        kwargs = resolve_renamed(make, kwargs, stacklevel=4)
        with verbosity(verbose):
            mask = make(self, target_mask=target_mask, **kwargs)
            return self._finish(mask, save, visualize, save_fig, "circular mask")

    @renamed(target_srcmask="target_mask")
    def calculate_sourcemask(self, target_mask=None, *, save: bool = False, verbose: bool = True,
                             visualize: bool = False, save_fig: bool = False, **kwargs) -> Mask:
        """A `Mask` of the detected sources; see `ezphot.masks.calculate_sourcemask`."""
        from ..masks import calculate_sourcemask as make

        kwargs = resolve_renamed(make, kwargs, stacklevel=4)
        with verbosity(verbose):
            mask = make(self, target_mask=target_mask, **kwargs)
            return self._finish(mask, save, visualize, save_fig, "source mask")

    @renamed(target_srcmask="target_mask")
    def calculate_bkg(self, target_mask=None, target_ivpmask=None, *, save: bool = False,
                      verbose: bool = True, visualize: bool = False, save_fig: bool = False,
                      **kwargs) -> Background:
        """SExtractor-style `Background`; see `ezphot.background.calculate_bkg`."""
        from ..background import calculate_bkg as make

        kwargs = resolve_renamed(make, kwargs, stacklevel=4)
        with verbosity(verbose):
            bkg = make(self, target_mask=target_mask, target_ivpmask=target_ivpmask, **kwargs)
            return self._finish(bkg, save, visualize, save_fig, "background")

    def calculate_bkgrms_from_propagation(self, target_bkg, *, save: bool = False,
                                          verbose: bool = True, visualize: bool = False,
                                          save_fig: bool = False, **kwargs) -> Errormap:
        """Background RMS from the noise model; see
        `ezphot.background.calculate_bkgrms_from_propagation`."""
        from ..background import calculate_bkgrms_from_propagation as make

        with verbosity(verbose):
            rms = make(self, target_bkg, **kwargs)
            return self._finish(rms, save, visualize, save_fig, "background RMS")

    # -- pictures ----------------------------------------------------------------------------
    @renamed(coord_type="unit")
    def show(self, unit: str = "pixel", scale: str = "zscale", downsample: int = 4,
             figsize=(8, 6), *, ax=None):
        """The image (binned by ``downsample``), zscaled; ``unit='coord'`` draws RA/Dec axes.
        Shown under the cell in Jupyter; ``ax=`` draws into your axes. Returns ``(fig, ax)``.
        (``coord_type``: deprecated alias of ``unit``.)"""
        from ..visualization import show_image

        return show_image(self, unit=unit, scale=scale, downsample=downsample,
                          figsize=figsize, ax=ax)

    @renamed(coord_type="unit", a_arcsec="a", b_arcsec="b", theta_deg="theta")
    def show_position(self, x: float, y: float, unit: str = "pixel", radius_arcsec=None,
                      a=None, b=None, theta=None, zoom_radius_pixel: int = 100,
                      downsample: int = 1, scale: str = "zscale", figsize=(6, 6), *, ax=None):
        """A cut-out around a position with its aperture at true size (``unit='coord'``:
        RA/Dec in deg, ellipse semi-axes ``a``, ``b`` in arcsec and ``theta`` east of north;
        ``'pixel'``: pixels, theta from +x). Shown under the cell in Jupyter; ``ax=`` draws
        into your axes. Returns ``(fig, ax)``. (Deprecated aliases: ``coord_type``,
        ``a_arcsec``, ``b_arcsec``, ``theta_deg``.)"""
        from ..visualization import show_position

        return show_position(self, x, y, unit=unit, radius_arcsec=radius_arcsec,
                             a=a, b=b, theta=theta,
                             zoom_radius_pixel=zoom_radius_pixel, downsample=downsample,
                             scale=scale, figsize=figsize, ax=ax)


class ScienceImage(_ProductsMixin, BaseImage):
    """A calibrated science frame.

    Parameters
    ----------
    path : str or path-like
        The FITS file; ``'file.fits[1]'`` selects an extension.
    hdu : int, optional
        HDU index; default: the first HDU with 2-D image data.
    telescope_profile : TelescopeProfile or str, optional
        Force a telescope profile instead of choosing it from the header.

    See Also
    --------
    BaseImage : the methods and properties.
    """

    image_type = "science"


class ReferenceImage(_ProductsMixin, BaseImage):
    """A reference (template) image, e.g. a deep stack.

    Parameters
    ----------
    path : str or path-like
        The FITS file; ``'file.fits[1]'`` selects an extension.
    hdu : int, optional
        HDU index; default: the first HDU with 2-D image data.
    telescope_profile : TelescopeProfile or str, optional
        Force a telescope profile instead of choosing it from the header.

    See Also
    --------
    BaseImage : the methods and properties.
    """

    image_type = "reference"


class CalibrationImage(BaseImage):
    """A master calibration frame (bias, dark, flat).

    Parameters
    ----------
    path : str or path-like
        The FITS file; ``'file.fits[1]'`` selects an extension.
    hdu : int, optional
        HDU index; default: the first HDU with 2-D image data.
    telescope_profile : TelescopeProfile or str, optional
        Force a telescope profile instead of choosing it from the header.

    See Also
    --------
    BaseImage : the methods and properties.
    """

    image_type = "calibration"


_SIGNED = []


def _product_signatures() -> None:
    """The product methods show their functions' parameters and defaults (help(), pydoc).

    Done at import, or, when this module is imported while `ezphot.background` or
    `ezphot.masks` is itself being imported (they import the map classes), when the first
    image is made."""
    try:
        from ..background import calculate_bkg, calculate_bkgrms_from_propagation
        from ..masks import calculate_circularmask, calculate_sourcemask
    except ImportError:  # partially initialised: later
        return
    for core in (calculate_circularmask, calculate_sourcemask, calculate_bkg,
                 calculate_bkgrms_from_propagation):
        method = vars(_ProductsMixin)[core.__name__]
        method.__signature__ = facade_signature(core, method, image_method=True)
    plain_signatures(_ProductsMixin)
    _SIGNED.append(True)


_product_signatures()
plain_signatures(_ProductsMixin)
