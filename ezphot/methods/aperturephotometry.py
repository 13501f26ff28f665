"""`AperturePhotometry`: the tutorial's façade over ezphot's photometry methods."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator

from .._aliases import resolve_renamed
from ..dataobjects.catalog import Catalog
from ..photometry.registry import get_method

# the only options the façade adds; everything else goes to the core function unchanged
FACADE_OPTIONS = ("verbose", "visualize", "save_fig")

log = logging.getLogger("ezphot")

__all__ = ["AperturePhotometry"]


@contextlib.contextmanager
def _verbosity(verbose: bool) -> Iterator[None]:
    """``verbose=False`` lowers ezphot's logging to warnings for the call (thread-safe)."""
    from ..imageobjects.scienceimage import verbosity as shared

    with shared(verbose):
        yield


def _hint_unit(func, target_img, args: tuple, kwargs: dict) -> None:
    """Warn when ``unit='pixel'`` positions are all off the image but, read as RA/Dec, fall on
    it: the usual slip of passing coordinates without ``unit='coord'``."""
    import warnings

    import numpy as np

    from ..exceptions import PositionWarning

    try:
        call = inspect.signature(func).bind(target_img, *args, **kwargs)
        call.apply_defaults()
        x_arr, y_arr, unit = (call.arguments.get(k) for k in ("x", "y", "unit"))
    except TypeError:  # the call itself is wrong: the function says so
        return
    if unit != "pixel":
        return
    try:
        x = np.atleast_1d(np.asarray(x_arr, dtype=float)).ravel()
        y = np.atleast_1d(np.asarray(y_arr, dtype=float)).ravel()
        if x.size == 0 or x.size != y.size or not (np.isfinite(x).all() and np.isfinite(y).all()):
            return
        from ..photometry.common import as_image

        img = as_image(target_img)
        ny, nx = img.shape
        if ((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)).any():
            return
        if not ((x >= 0) & (x < 360) & (np.abs(y) <= 90)).all() or img.wcs is None:
            return
        px, py = img.wcs.all_world2pix(x, y, 0, quiet=True)
    except Exception:  # noqa: BLE001 - only a hint: the measurement reports real problems
        return
    on = (px >= -0.5) & (px < nx - 0.5) & (py >= -0.5) & (py < ny - 0.5)
    if on.any():
        warnings.warn(f"{img.path}: none of the {x.size} position(s) is on the image in pixels, "
                      f"but {int(on.sum())} would be as RA/Dec: did you mean unit='coord'?",
                      PositionWarning, stacklevel=3)


def _call_signature(func) -> str:
    """``(target_img, *, save=True, ...)``: the call as a user types it (no ``self``, no
    annotations, defaults as literals)."""
    params = [p.replace(annotation=inspect.Parameter.empty)
              for p in inspect.signature(func).parameters.values() if p.name != "self"]
    return str(inspect.Signature(params))


class AperturePhotometry:
    """Aperture photometry of FITS images (columns and formulas: docs/catalogue.md).

    Every method takes the image first, keyword-only options after, and returns a `Catalog`.
    Each is a thin layer over a core function (`ezphot.photometry.registry`), whose signature
    holds the options and their defaults; the façade adds only ``verbose``, ``visualize`` and
    ``save_fig``. Common options: ``save`` (write the catalogue beside the image,
    atomically; False writes and deletes nothing), ``verbose`` (log at INFO, else warnings
    only), ``visualize`` (draw the sources/apertures; the figure is in ``catalog.figure``),
    ``save_fig`` (PNG beside the catalogue).
    """

    def __init__(self) -> None:
        if not _SIGNED:
            _readable_help()

    def help(self) -> None:
        """Print each public method as you would call it, with a one-line description."""
        lines = ["Help for AperturePhotometry", "Public methods:"]
        for name, member in inspect.getmembers(type(self), inspect.isfunction):
            if not name.startswith("_") and name != "help":
                doc = (inspect.getdoc(member) or "").strip().split("\n\n")[0]
                lines.append(f"- {name}{_call_signature(member)}")
                first = " ".join(doc.split()).split(". ")[0].rstrip(".")
                lines.append(f"    {first}.")
        print("\n".join(lines))  # noqa: T201 - help() is the one place that prints

    def sex_photometry(self, target_img, *, verbose: bool = True, visualize: bool = True,
                       save_fig: bool = False, **kwargs) -> Catalog:
        """Detect and measure sources with the SExtractor binary.

        The signature shown is that of the core function
        `ezphot.photometry.sexphot.sex_photometry` (which holds every default) plus the
        façade's own ``verbose``, ``visualize`` and ``save_fig``.

        Parameters
        ----------
        target_img : ScienceImage, ReferenceImage, CalibrationImage or path
            The image to measure.
        target_bkg : Background, float or None
            Background to subtract (BACK_TYPE MANUAL); None: SExtractor's own mesh background.
        target_bkgrms : Errormap or None
            Background RMS map used as the weight (MAP_RMS).
        target_mask : Mask or None
            Pixels excluded from detection and measurement (True = excluded).
        sex_params : dict, optional
            Any SExtractor keyword (validated against the binary); not modified. Keywords
            naming the binary's output files (CATALOG_NAME, CHECKIMAGE_NAME, XML_NAME) are
            refused.
        detection_sigma : float
            DETECT_THRESH and ANALYSIS_THRESH in sigmas.
        aperture_diameter_arcsec, aperture_diameter_seeing : float or list
            Aperture diameters: fixed (arcsec) first, then multiples of the seeing FWHM.
        annulus_width_arcsec : float, optional
            Local background annulus thickness (BACKPHOTO_TYPE LOCAL).
        saturation_level : float, optional
            SATUR_LEVEL in ADU; default: the telescope profile's saturation (60000 for 7DT).
            The header's SATURATE does not override it.
        kron_factor : float
            First PHOT_AUTOPARAMS value.
        parameters : list of str, optional
            SExtractor output parameters (default:
            `ezphot.photometry.sexphot.default_parameters`).
        egain : float, optional
            GAIN in e-/ADU (default: header / telescope profile).
        zeropoint : float or str
            MAG_ZEROPOINT (default 0: instrumental magnitudes), or the name of the header
            keyword that holds it (``'ZP'``...; missing or not a number: `ImageError`
            naming the file and the keyword). Recorded in ``meta['zeropoint']``;
            ``info.depth`` is measured on the data with it.
        seeing : float, optional
            Seeing FWHM in arcsec (default: the header's, else measured when seeing-multiple
            apertures, CLASS_STAR or a seeing-matched filter need it).
        binary : SExtractorBinary or str, optional
            The SExtractor binary (default: ``$EZPHOT_SEXTRACTOR``, else found on the path).
        checkimages : list of str, optional
            SExtractor check-image types, e.g. ``['BACKGROUND', 'SEGMENTATION']``: returned in
            ``catalog.checkimages`` as `CheckImage` objects and, with ``save=True``, saved as
            ``<frame>.cat.<type>.fits`` (``-TYPE`` as ``minus_type``).
        timeout : float, optional
            Seconds allowed to the binary (default ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else
            10 min + 20 s per million pixels).
        save : bool
            Write the catalogue beside the image (``<frame>.<suffix>``, atomically).
        detection_filter : str or 2-D array, optional
            'gauss' (matched to the seeing; default), 'tophat', 'mexhat', 'default' (the
            shipped 3x3) or a kernel array; see `ezphot.sextractor.convfilter`.
        detection_filter_fwhm : float, optional
            FWHM (px) of the generated filter (default: the seeing).
        detection_filter_size : int, optional
            Odd kernel size (px) of the generated filter.
        verbose : bool
            False lowers ezphot's logging to warnings for this call.
        visualize : bool
            Draw the image with the catalogue (shown inline in Jupyter).
        save_fig : bool
            Save that picture as a PNG beside the catalogue.

        Returns
        -------
        Catalog
            SExtractor's measurements (0-based pixel positions) with units and the info.
        """
        return self._run("sextractor", target_img, (), kwargs, verbose, visualize, save_fig)

    def run_photometry(self, target_img, *, method: str = "sextractor", **kwargs) -> Catalog:
        """Any registered method by name (`ezphot.photometry.registry`).

        Parameters
        ----------
        target_img : ScienceImage or path
            The image to measure.
        method : {'sextractor', 'photutils', 'circular', 'elliptical'}
            The registered method.
        **kwargs
            Options of the chosen method (``verbose``, ``visualize``, ``save_fig`` included).

        Returns
        -------
        Catalog
            The chosen method's catalogue.
        """
        spec = get_method(method)
        facade = {k: kwargs.pop(k) for k in FACADE_OPTIONS if k in kwargs}
        return self._run(spec.name, target_img, (), kwargs, **facade)

    def photutils_photometry(self, target_img, *, verbose: bool = True, visualize: bool = True,
                             save_fig: bool = False, **kwargs) -> Catalog:
        """Detection photometry with photutils (segmentation, deblending, Kron and circular
        apertures); columns named as SExtractor's. The background is always subtracted
        (estimated when not given).

        The signature shown is that of the core function
        `ezphot.photometry.detect.photutils_photometry` (which holds every default) plus the
        façade's own ``verbose``, ``visualize`` and ``save_fig``.

        Parameters
        ----------
        target_img : ScienceImage or path
            The image to measure.
        target_bkg, target_bkgrms, target_mask : optional
            Background map or value (ADU), RMS map (ADU), mask (True = excluded); estimated /
            none when not given.
        detection_sigma : float
            Detection threshold in units of the background RMS.
        aperture_diameter_arcsec : float or list
            Circular aperture diameters in arcsec.
        kron_factor : float
            Kron radius factor (as SExtractor's PHOT_AUTOPARAMS).
        minarea_pixels : int
            Minimum connected pixels of a detection.
        deblend_contrast : float
            photutils' deblending contrast (0-1).
        deblend_nlevels : int
            photutils' deblending levels.
        egain : float, optional
            Gain in e-/ADU (default: header / telescope profile).
        seeing : float, optional
            Seeing FWHM in arcsec (default: the image's).
        zeropoint : float or str
            Magnitude zero point (default 0: instrumental magnitudes), or the name of the
            header keyword that holds it (``'ZP'``...; missing or not a number: `ImageError`
            naming the file and the keyword). Recorded in ``meta['zeropoint']``;
            ``info.depth`` is measured on the data with it.
        nproc : int
            Processes of photutils' deblending (the catalogue does not depend on it; with
            ``nproc > 1`` a script needs the ``if __name__ == '__main__':`` guard).
        save : bool
            Write the catalogue beside the image (``<frame>.<suffix>``, atomically).
        verbose : bool
            False lowers ezphot's logging to warnings for this call.
        visualize : bool
            Draw the image with the catalogue (shown inline in Jupyter).
        save_fig : bool
            Save that picture as a PNG beside the catalogue.

        Returns
        -------
        Catalog
            The detections, columns named as SExtractor's.
        """
        return self._run("photutils", target_img, (), kwargs, verbose, visualize, save_fig)

    def circular_photometry(self, target_img, *args, verbose: bool = True,
                            visualize: bool = True, save_fig: bool = False, **kwargs) -> Catalog:
        """Forced photometry in circular apertures at given positions.

        The signature shown is that of the core function
        `ezphot.photometry.forced.circular_photometry` (which holds every default) plus the
        façade's own ``verbose``, ``visualize`` and ``save_fig``.

        Parameters
        ----------
        target_img : ScienceImage or path
            The image to measure.
        x, y : float, list or array (or a SkyCoord as ``x``)
            0-based pixels (``unit='pixel'``) or RA/Dec in degrees (``unit='coord'``).
            ``x_arr``/``y_arr``: deprecated aliases.
        aperture_diameter_arcsec, aperture_diameter_seeing : float, list or Quantity
            Diameters: fixed (arcsec, or a Quantity in angle or pixels), then seeing multiples.
        annulus_width_arcsec : float, optional
            Local sky (sigma-clipped median) from an annulus of this width starting at
            4 × the seeing FWHM or at the largest aperture, whichever is larger (used when no
            ``target_bkg`` is given); its uncertainty enters FLUXERR.
        unit : {'pixel', 'coord'}
            How ``x``, ``y`` are given.
        target_bkg, target_bkgrms, target_mask : optional
            Background map or value, RMS map, mask (True = excluded). Without them the
            background and RMS are estimated on tiles around the positions.
        method : {'exact', 'center', 'subpixel'}
            photutils' aperture-pixel overlap method.
        subpixels : int
            Sub-pixels per pixel side for ``method='subpixel'``.
        egain : float, optional
            Gain in e-/ADU for the source Poisson noise (default: header / telescope profile).
        seeing : float, optional
            Seeing FWHM in arcsec (default: the image's).
        zeropoint : float or str
            Magnitude zero point (default 0: instrumental magnitudes), or the name of the
            header keyword that holds it (``'ZP'``...; missing or not a number: `ImageError`
            naming the file and the keyword). Recorded in ``meta['zeropoint']``;
            ``info.depth`` is measured on the data with it.
        save : bool
            Write the catalogue beside the image (``<frame>.<suffix>``, atomically).
        confusion_error : bool
            Add the excess scatter of blank apertures near the positions over the noise model
            (confusion by stars below the detection limit) to FLUXERR/MAGERR in quadrature;
            recorded in ``meta['confusion_error']`` (default True).
        sky_cache : path-like, optional
            A directory keeping the whole-frame sky estimate's meshes (no maps or mask
            given): read when it holds them for this unchanged file, else made and stored
            there; the same numbers.
        verbose : bool
            False lowers ezphot's logging to warnings for this call.
        visualize : bool
            Draw the image with the catalogue (shown inline in Jupyter).
        save_fig : bool
            Save that picture as a PNG beside the catalogue.

        Returns
        -------
        Catalog
            See `ezphot.photometry.forced` for the columns and formulas.
        """
        return self._run("circular", target_img, args, kwargs, verbose, visualize, save_fig)

    def elliptical_photometry(self, target_img, *args, verbose: bool = True,
                              visualize: bool = True, save_fig: bool = False,
                              **kwargs) -> Catalog:
        """Forced photometry in elliptical apertures at given positions.

        The signature shown is that of the core function
        `ezphot.photometry.forced.elliptical_photometry` (which holds every default) plus the
        façade's own ``verbose``, ``visualize`` and ``save_fig``.

        Parameters
        ----------
        target_img : ScienceImage or path
            The image to measure.
        x, y : float, list or array
            Centres: 0-based pixels (``unit='pixel'``) or RA/Dec in degrees (``unit='coord'``).
            ``x_arr``/``y_arr``: deprecated aliases.
        a, b : float, list or array
            Semi-major and semi-minor axes: pixels, or arcsec with ``unit='coord'``.
            ``sma_arr``/``smi_arr``: deprecated aliases.
        theta : float, list or array
            Orientation in degrees: ``unit='coord'``, position angle east of north (as
            THETA_J2000); ``unit='pixel'``, counter-clockwise from +x (as THETA_IMAGE).
            ``theta_arr``: deprecated alias.
        unit : {'pixel', 'coord'}
            How positions, axes and angles are given.
        annulus_ratio : float, optional
            Local sky in an elliptical annulus from the aperture to ``annulus_ratio`` times
            its size.
        target_bkg, target_bkgrms, target_mask : optional
            Background map or value, RMS map, mask (True = excluded).
        method : {'exact', 'center', 'subpixel'}
            photutils' aperture-pixel overlap method.
        subpixels : int
            Sub-pixels per pixel side for ``method='subpixel'``.
        egain : float, optional
            Gain in e-/ADU for the source Poisson noise (default: header / telescope profile).
        zeropoint : float or str
            Magnitude zero point (default 0: instrumental magnitudes), or the name of the
            header keyword that holds it (``'ZP'``...; missing or not a number: `ImageError`
            naming the file and the keyword). Recorded in ``meta['zeropoint']``;
            ``info.depth`` is measured on the data with it.
        save : bool
            Write the catalogue beside the image (``<frame>.<suffix>``, atomically).
        sky_cache : path-like, optional
            A directory keeping the whole-frame sky estimate's meshes, as for
            `circular_photometry`.
        verbose : bool
            False lowers ezphot's logging to warnings for this call.
        visualize : bool
            Draw the image with the catalogue (shown inline in Jupyter).
        save_fig : bool
            Save that picture as a PNG beside the catalogue.

        Returns
        -------
        Catalog
            One row per position; see `ezphot.photometry.forced` for the columns.
        """
        return self._run("elliptical", target_img, args, kwargs, verbose, visualize, save_fig)

    def _run(self, method: str, target_img, args: tuple, kwargs: dict, verbose: bool = True,
             visualize: bool = True, save_fig: bool = False) -> Catalog:
        """Call the method's core function (which holds every default) with ``verbose``,
        then draw the figure."""
        spec = get_method(method)
        kwargs = resolve_renamed(spec.func, kwargs, stacklevel=4)  # the tutorial's old names
        if spec.targets:
            _hint_unit(spec.func, target_img, args, kwargs)
        with _verbosity(verbose):
            catalog = spec.func(target_img, *args, **kwargs)
            return self._figure(catalog, visualize, save_fig)

    @staticmethod
    def _figure(catalog: Catalog, visualize: bool, save_fig: bool) -> Catalog:
        if not (visualize or save_fig):
            return catalog
        from ..visualization import plot_result

        catalog.figure = plot_result(catalog, save=save_fig, display=visualize)
        return catalog


_SIGNED: list = []


def _readable_help() -> None:
    """Each façade method shows the signature a user types: its core function's parameters
    (and defaults) with the façade's ``verbose``, ``visualize`` and ``save_fig``.

    Done when the first `AperturePhotometry` is made: the core functions import photutils,
    which ``import ezphot.methods`` should not pay for."""
    from ..imageobjects.scienceimage import facade_signature, plain_signatures

    for method in ("sextractor", "photutils", "circular", "elliptical"):
        spec = get_method(method)
        func = getattr(AperturePhotometry, spec.facade_name)
        func.__signature__ = facade_signature(spec.func, func)
    plain_signatures(AperturePhotometry)
    _SIGNED.append(True)
