"""Pictures: an image (with WCS axes), a position with its aperture, detected sources.

Where the figures go:

- In a Jupyter kernel with a pyplot notebook backend (inline, widget/ipympl, nbagg) figures
  are made with pyplot, so Jupyter shows them under the cell (inline closes them afterwards).
- In a Jupyter kernel on a non-interactive backend (e.g. ``MPLBACKEND=Agg``) the figure is
  shown with ``IPython.display`` as a PNG.
- Everywhere else (scripts, tests, batch workers, CLI) figures are plain
  `matplotlib.figure.Figure` objects: no pyplot state, so none accumulate.

Every drawing function accepts ``ax=`` to draw into the user's axes (then nothing is shown:
the figure is the user's).
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import numpy as np
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Ellipse

from ._aliases import renamed
from ._io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["show_image", "show_position", "plot_catalog", "plot_forced", "plot_map", "save_figure",
           "bin_image"]


_NOTEBOOK_BACKENDS = ("inline", "ipympl", "widget", "nbagg", "notebook")


def jupyter_kernel():
    """The running IPython kernel shell, or None (no IPython, or a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _pyplot_notebook_backend() -> bool:
    import matplotlib

    if hasattr(matplotlib.rcParams, "_get_backend_or_none"):
        backend = str(matplotlib.rcParams._get_backend_or_none() or "").lower()
    else:
        backend = matplotlib.get_backend().lower()
    return any(b in backend for b in _NOTEBOOK_BACKENDS)


def new_figure(figsize=(8, 6)) -> Figure:
    """A figure that Jupyter shows under the cell (pyplot-managed) when a notebook backend
    is active; a plain `Figure` (never registered with pyplot) everywhere else."""
    if jupyter_kernel() is not None and _pyplot_notebook_backend():
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    return Figure(figsize=figsize)


def present(fig: Figure) -> None:
    """Show a figure made by `new_figure` in a notebook on a non-notebook backend (PNG).

    pyplot-managed figures are shown by Jupyter itself; outside a kernel nothing happens.
    """
    shell = jupyter_kernel()
    if shell is None:
        return
    import matplotlib.pyplot as plt

    if plt.fignum_exists(getattr(fig, "number", -1)) and _pyplot_notebook_backend():
        return  # the inline/widget backend shows it
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    display(Image(data=buf.getvalue(), format="png"))


def _figure_and_axes(ax, figsize, **subplot_kw):
    """``(fig, ax, owned)``: the user's axes, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax, False
    fig = new_figure(figsize)
    return fig, fig.add_subplot(1, 1, 1, **subplot_kw), True


def bin_image(data, step: int) -> np.ndarray:
    """Mean of ``step x step`` blocks (NaN-aware; edges that do not fill a block dropped).

    Binning keeps faint sources and noise statistics that taking every n-th pixel loses.
    The frame is binned in strips of a few MB (no full-frame temporary); only strips with a
    non-finite block take the slower NaN-aware path.

    Parameters
    ----------
    data : 2-D array_like
        The frame.
    step : int
        Block size in pixels (1 returns the frame as float).

    Returns
    -------
    numpy.ndarray
        The binned frame, shape ``(ny // step, nx // step)``.
    """
    data = np.asarray(data)
    step = max(1, int(step))
    if step == 1:
        return data.astype(float, copy=False)
    ny, nx = (data.shape[0] // step) * step, (data.shape[1] // step) * step
    if data.dtype == bool:
        return data[:ny, :nx].reshape(ny // step, step, nx // step, step).max(axis=(1, 3))
    out = np.empty((ny // step, nx // step), dtype=np.float32)
    rows = max(step, ((1 << 22) // (4 * max(nx, 1))) // step * step)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        strip = np.asarray(data[y0:y1, :nx], dtype=np.float32)
        # sums of strided slices: long inner loops (a reduction over a 4-long axis is slow)
        cols = strip[:, 0::step].copy()
        for k in range(1, step):
            cols += strip[:, k::step]
        binned = cols[0::step].copy()
        for k in range(1, step):
            binned += cols[k::step]
        binned /= np.float32(step * step)
        # a non-finite pixel makes its block's sum non-finite: only such strips need more
        if not np.isfinite(binned).all():
            block = strip.reshape((y1 - y0) // step, step, nx // step, step)
            finite = np.isfinite(block)
            total = np.where(finite, block, 0).sum(axis=(1, 3))
            count = finite.sum(axis=(1, 3))
            with np.errstate(invalid="ignore", divide="ignore"):
                binned = np.where(count > 0, total / count, np.nan)
        out[y0 // step:y1 // step] = binned
    return out


def _norm(data: np.ndarray, scale: str):
    from astropy.visualization import ImageNormalize, MinMaxInterval, ZScaleInterval

    if not np.isfinite(data).any():
        return None
    interval = ZScaleInterval() if scale == "zscale" else MinMaxInterval()
    # the interval drops non-finite values itself: no copy of the finite pixels needed
    return ImageNormalize(data, interval=interval)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG atomically, marked as ezphot's (a PNG text chunk ``ezphot``).

    A file at ``path`` that is not a PNG ezphot wrote is never replaced (`ForeignFileError`).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Destination.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    import os

    from ._io import PNG_KEY, check_export_replaceable

    if os.path.lexists(path):
        check_export_replaceable(Path(path), "png")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                      metadata={PNG_KEY: "figure"}),
                        may_replace=lambda p: check_export_replaceable(p, "png"))


@renamed(coord_type="unit")
def show_image(img, unit: str = "pixel", scale: str = "zscale", downsample: int = 4,
               figsize=(8, 6), *, ax=None):
    """The whole image, zscaled; ``unit='coord'`` draws WCSAxes with RA/Dec.

    Parameters
    ----------
    img : BaseImage or path
        The image.
    unit : {'pixel', 'coord'}
        Axes in 0-based pixels, or RA/Dec (WCSAxes). ``coord_type``: deprecated alias.
    scale : str
        Display interval: 'zscale' or 'minmax'.
    downsample : int
        Block size: the picture shows the mean of ``downsample x downsample`` pixels.
    ax : matplotlib Axes, optional
        Draw into these axes (for ``'coord'``, WCSAxes made with ``projection=img.wcs``).
    figsize : tuple of float
        Figure size in inches (when ezphot makes the figure).

    Returns
    -------
    (matplotlib.figure.Figure, Axes)
    """
    if unit not in ("pixel", "coord"):
        raise ValueError(f"unit must be 'pixel' or 'coord', got {unit!r}")
    step = max(1, int(downsample))
    data = bin_image(img.data, step)
    if unit == "coord":
        wcs = img.require_wcs()
        if ax is not None and not hasattr(ax, "coords"):
            raise ValueError("show('coord', ax=...) needs WCSAxes: "
                             "fig.add_subplot(projection=img.wcs)")
        fig, ax, owned = _figure_and_axes(ax, figsize, projection=wcs)
        ax.coords[0].set_axislabel("RA")
        ax.coords[1].set_axislabel("Dec")
    else:
        fig, ax, owned = _figure_and_axes(ax, figsize)
        ax.set_xlabel("x [pixel]")
        ax.set_ylabel("y [pixel]")
    # extent in full-resolution pixels: WCS axes, positions and apertures stay in frame pixels
    extent = (-0.5, -0.5 + data.shape[1] * step, -0.5, -0.5 + data.shape[0] * step)
    # nearest neighbour picks screen pixels from the data before the colour map ('data'
    # stage): the same pixels as colour-mapping the whole binned frame first ('rgba', what
    # 'auto' picks when the frame is shrunk), at a fraction of the cost
    im = ax.imshow(data, origin="lower", cmap="gray", norm=_norm(data, scale), extent=extent,
                   interpolation="nearest", interpolation_stage="data")
    if owned:
        fig.colorbar(im, ax=ax, label="ADU")
    ax.set_title(img.path.name)
    if owned:
        present(fig)
    return fig, ax


@renamed(coord_type="unit", a_arcsec="a", b_arcsec="b", theta_deg="theta")
def show_position(img, x: float, y: float, unit: str = "pixel", radius_arcsec=None,
                  a=None, b=None, theta=None, zoom_radius_pixel: int = 100,
                  downsample: int = 1, scale: str = "zscale", figsize=(6, 6), *, ax=None):
    """A cut-out around a position with the aperture drawn at its true size.

    ``unit='coord'``: x, y are RA, Dec (deg), the semi-axes ``a``, ``b`` arcsec and theta
    (deg) the position angle east of north; ``'pixel'``: 0-based pixels, theta
    counter-clockwise from +x. Deprecated aliases: ``coord_type``, ``a_arcsec``,
    ``b_arcsec``, ``theta_deg``.

    Parameters
    ----------
    img : BaseImage or path
        The image.
    x, y : float
        The position.
    unit : {'pixel', 'coord'}
        How ``x``, ``y`` (and ``a``, ``b``, ``theta``) are given. ``coord_type``: deprecated
        alias.
    radius_arcsec : float, optional
        Circular aperture radius to draw (arcsec).
    a, b : float, optional
        Semi-axes of an elliptical aperture to draw (drawn when both are given): arcsec with
        ``unit='coord'``, pixels with ``unit='pixel'``. ``a_arcsec``/``b_arcsec``:
        deprecated aliases.
    theta : float, optional
        Its angle in degrees (default 0): position angle east of north with
        ``unit='coord'``, counter-clockwise from +x with ``unit='pixel'``. ``theta_deg``:
        deprecated alias.
    zoom_radius_pixel : int
        Half size of the cut-out in pixels.
    downsample : int
        Block size of the binned cut-out.
    scale : str
        Display interval: 'zscale' or 'minmax'.
    figsize : tuple of float
        Figure size in inches (when ezphot makes the figure).
    ax : matplotlib Axes, optional
        Draw into these axes.

    Returns
    -------
    (matplotlib.figure.Figure, Axes)
    """
    from .photometry.geometry import sky_to_pixel_ellipse, to_pixel

    px, py = to_pixel(img, x, y, unit)
    px, py = float(px[0]), float(py[0])
    ny, nx = img.shape
    r = int(zoom_radius_pixel)
    x0, x1 = max(0, int(px) - r), min(nx, int(px) + r + 1)
    y0, y1 = max(0, int(py) - r), min(ny, int(py) + r + 1)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"{img.path}: position ({x}, {y}) is off the image")
    step = max(1, int(downsample))
    cut = bin_image(img.data[y0:y1, x0:x1], step)
    fig, ax, owned = _figure_and_axes(ax, figsize)
    extent = (x0 - 0.5, x0 - 0.5 + cut.shape[1] * step, y0 - 0.5, y0 - 0.5 + cut.shape[0] * step)
    ax.imshow(cut, origin="lower", cmap="gray", norm=_norm(cut, scale), extent=extent)
    scale_px = img.pixelscale
    if a is not None and b is not None:
        if unit == "coord":
            a, b, theta = sky_to_pixel_ellipse(img, px, py, a, b, theta or 0.0)
        else:
            theta = np.radians(theta or 0.0)
        ax.add_patch(Ellipse((px, py), 2 * float(np.squeeze(a)), 2 * float(np.squeeze(b)),
                             angle=float(np.degrees(np.squeeze(theta))), fill=False, color="red",
                             lw=1.5))
    if radius_arcsec is not None:
        if not scale_px:
            raise ValueError(f"{img.path}: radius_arcsec needs a pixel scale")
        ax.add_patch(Circle((px, py), radius_arcsec / scale_px, fill=False, color="cyan", lw=1.5))
    ax.plot([px], [py], marker="+", color="yellow", ms=10)
    ax.set_xlim(x0 - 0.5, x1 - 0.5)
    ax.set_ylim(y0 - 0.5, y1 - 0.5)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(f"{img.path.name}\nx, y = {px:.1f}, {py:.1f}", fontsize="small")
    if owned:
        present(fig)
    return fig, ax


def plot_catalog(catalog, save: bool = False, max_sources: int = 20000,
                 downsample: int | None = None, *, ax=None, zoom=None, display: bool = True):
    """The image with the catalogue's sources and their largest aperture drawn.

    Parameters
    ----------
    catalog : Catalog
        Needs ``info.target_img`` and X_IMAGE/Y_IMAGE (0-based) columns.
    save : bool
        Also write the figure as PNG beside the catalogue (``<catalog>.png``).
    max_sources : int
        At most this many sources are drawn.
    downsample : int, optional
        Block size of the binned frame (default: about 2000 pixels across).
    ax : matplotlib Axes, optional
        Draw into these axes.
    zoom : (x, y, half_size), optional
        Show only the square of ``half_size`` pixels around pixel ``(x, y)``, at full
        resolution.
    display : bool
        Show the figure in a notebook (False: only build/save it).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .imageobjects import ScienceImage

    img = ScienceImage(catalog.info.target_img)
    ny, nx = img.shape
    if zoom is not None:
        zx, zy, half = (float(v) for v in zoom)
        x0, x1 = max(0, int(zx - half)), min(nx, int(zx + half) + 1)
        y0, y1 = max(0, int(zy - half)), min(ny, int(zy + half) + 1)
        if x0 >= x1 or y0 >= y1:
            raise ValueError(f"{img.path}: zoom centre ({zx}, {zy}) is off the image")
        step = 1
    else:
        x0, x1, y0, y1 = 0, nx, 0, ny
        step = downsample or max(1, int(np.ceil(max(nx, ny) / 2000)))
    data = bin_image(img.data[y0:y1, x0:x1], step)
    fig, ax, owned = _figure_and_axes(ax, (9, 9 * (y1 - y0) / (x1 - x0) + 0.5))
    extent = (x0 - 0.5, x0 - 0.5 + data.shape[1] * step, y0 - 0.5, y0 - 0.5 + data.shape[0] * step)
    ax.imshow(data, origin="lower", cmap="gray", norm=_norm(data, "zscale"), extent=extent,
              interpolation="nearest", interpolation_stage="data")  # as show_image
    t = catalog.data
    if len(t) and "X_IMAGE" in t.colnames:
        t = t[:max_sources]
        sizes = [t[c] for c in t.colnames if c.startswith("PIXSIZE_APER")]
        diam = np.max(np.vstack([np.asarray(s, float) for s in sizes]), axis=0) if sizes \
            else np.full(len(t), 10.0)
        if "SMA_IMAGE" in t.colnames:  # elliptical forced photometry
            w, h = 2 * np.asarray(t["SMA_IMAGE"], float), 2 * np.asarray(t["SMI_IMAGE"], float)
            ang = np.asarray(t["THETA_IMAGE"], float)
        else:
            w = h = diam
            ang = np.zeros(len(t))
        offsets = np.column_stack([np.asarray(t["X_IMAGE"], float),
                                   np.asarray(t["Y_IMAGE"], float)])
        # at least ~3 screen pixels wide so that apertures stay visible on a binned frame
        lw = 1.0 if zoom is not None else 0.8
        ax.add_collection(EllipseCollection(w, h, ang, units="xy", offsets=offsets,
                                            offset_transform=ax.transData, facecolors="none",
                                            edgecolors="red", linewidths=lw))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(f"{img.path.name}: {len(catalog.data)} sources ({catalog.info.catalog_type})")
    if save:
        base = catalog.info.path or f"{img.path}.cat"
        path = save_figure(fig, f"{base}.png")
        log.info("Figure saved: %s", path)
    if owned and display:
        present(fig)
    return fig


def _forced_label(row, suffix: str, kind: str) -> str:
    """``flux ± error`` (with the magnitude) when detected at 3 sigma, else the 5-sigma
    upper limit."""
    flux, err = float(row[f"FLUX_{kind}{suffix}"]), float(row[f"FLUXERR_{kind}{suffix}"])
    if not np.isfinite(flux):
        return "no measurement"
    digits = 0 if err >= 10 else 2
    fe = f"{flux:.{digits}f} ± {err:.{digits}f} ct"
    if err > 0 and flux >= 3 * err:
        mag, magerr = float(row[f"MAG_{kind}{suffix}"]), float(row[f"MAGERR_{kind}{suffix}"])
        return f"{fe} ({mag:.2f} ± {magerr:.2f} mag)"
    return f"< {float(row[f'UL5_{kind}{suffix}']):.2f} mag (5σ); {fe}"


def plot_forced(catalog, *, max_positions: int = 16, zoom_radius_pixel: float | None = None,
                ncols: int = 4, scale: str = "zscale", ax=None, save: bool = False,
                display: bool = True):
    """Cut-outs around forced-photometry positions (a grid for several), with the apertures
    at their true size and orientation, each labelled with flux ± error or the upper limit.

    Parameters
    ----------
    catalog : Catalog
        A circular or elliptical forced-photometry catalogue.
    max_positions : int
        At most this many positions are drawn (the first ones).
    zoom_radius_pixel : float, optional
        Half size of each cut-out (default: 3 × the largest aperture radius, at least 15 px).
    ncols : int
        Cut-outs per row of the grid.
    scale : str
        Display interval: 'zscale' or 'minmax'.
    ax : matplotlib Axes, optional
        Draw the first position into these axes.
    save : bool
        Also write the figure as PNG beside the catalogue (``<catalog>.png``).
    display : bool
        Show the figure in a notebook (False: only build/save it).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Rectangle

    from .imageobjects import ScienceImage

    img = ScienceImage(catalog.info.target_img)
    data = img.data
    ny, nx = data.shape
    t = catalog.data
    elliptical = "SMA_IMAGE" in t.colnames
    n = min(len(t), max(1, int(max_positions)))
    if elliptical:
        radii = [np.asarray(t["SMA_IMAGE"][:n], float)]
        kind, suffixes = "ELIP", [""]
    else:
        diam = [float(d) for d in np.atleast_1d(catalog.meta.get("aperture_diameter_pixel", []))]
        radii = [np.full(n, d / 2.0) for d in diam]
        kind, suffixes = "APER", ["" if i == 0 else f"_{i}" for i in range(len(diam))]
    annulus = catalog.meta.get("annulus_pixel")  # circular: [inner, outer] radius
    ratio = catalog.meta.get("annulus_ratio")  # elliptical: outer / inner
    big = np.nanmax(np.vstack(radii)) if radii and n else 5.0
    big = max(float(big), float(annulus[1]) if annulus else 0.0,
              float(big) * float(ratio) if ratio else 0.0)
    half = float(zoom_radius_pixel) if zoom_radius_pixel else max(15.0, 3.0 * float(big))
    if ax is not None:
        fig, axes, owned = ax.figure, [ax], False
        n = min(n, 1)
    else:
        cols = max(1, min(int(ncols), n))
        rows = int(np.ceil(n / cols)) if n else 1
        fig = new_figure((3.6 * cols, 3.9 * rows))
        axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]
        owned = True
    colours = ["cyan", "yellow", "orange", "magenta", "lime", "red"]
    for i in range(n):
        a = axes[i]
        row = t[i]
        x, y = float(row["X_IMAGE"]), float(row["Y_IMAGE"])
        x0, x1 = int(np.floor(x - half)), int(np.ceil(x + half)) + 1
        y0, y1 = int(np.floor(y - half)), int(np.ceil(y + half)) + 1
        cx0, cx1, cy0, cy1 = max(0, x0), min(nx, x1), max(0, y0), min(ny, y1)
        if cx0 < cx1 and cy0 < cy1:
            cut = np.asarray(data[cy0:cy1, cx0:cx1], dtype=float)
            a.imshow(cut, origin="lower", cmap="gray", norm=_norm(cut, scale),
                     extent=(cx0 - 0.5, cx1 - 0.5, cy0 - 0.5, cy1 - 0.5), interpolation="nearest")
        else:
            a.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.3"))
        lines = []
        if elliptical:
            a.add_patch(Ellipse((x, y), 2 * float(row["SMA_IMAGE"]), 2 * float(row["SMI_IMAGE"]),
                                angle=float(row["THETA_IMAGE"]), fill=False, color=colours[0],
                                lw=1.2))
            if ratio:  # the sky annulus: the ellipse scaled by annulus_ratio
                a.add_patch(Ellipse((x, y), 2 * ratio * float(row["SMA_IMAGE"]),
                                    2 * ratio * float(row["SMI_IMAGE"]),
                                    angle=float(row["THETA_IMAGE"]), fill=False, color="white",
                                    lw=0.8, ls="--"))
            lines.append(_forced_label(row, "", kind))
        else:
            for j, (r, sfx) in enumerate(zip(radii, suffixes, strict=False)):
                a.add_patch(Circle((x, y), float(r[i]), fill=False, color=colours[j % 6], lw=1.0))
                lines.append(f"⌀{2 * float(r[i]):.1f}px: {_forced_label(row, sfx, kind)}")
            if annulus:  # the local-sky annulus, dashed
                for rad in annulus:
                    a.add_patch(Circle((x, y), float(rad), fill=False, color="white", lw=0.8,
                                       ls="--"))
                lines.append(f"sky annulus {annulus[0]:.1f}-{annulus[1]:.1f}px")
        a.plot([x], [y], marker="+", color="red", ms=8, mew=1)
        a.set_xlim(x0 - 0.5, x1 - 0.5)
        a.set_ylim(y0 - 0.5, y1 - 0.5)
        a.set_title(f"#{i} x, y = {x:.1f}, {y:.1f}" + ("" if int(row["FLAGS"]) == 0
                                                      else f" FLAGS {int(row['FLAGS'])}"),
                    fontsize="small")
        a.text(0.02, 0.02, "\n".join(lines), transform=a.transAxes, fontsize=6.5, color="white",
               va="bottom", ha="left", bbox=dict(facecolor="black", alpha=0.6, lw=0))
        a.tick_params(labelsize=6)
    if owned:
        fig.suptitle(f"{img.path.name}: {catalog.info.catalog_type} forced photometry"
                     + (f" (first {n} of {len(t)})" if len(t) > n else ""), fontsize="small")
    if save:
        from .photometry.registry import METHODS

        suffix = getattr(METHODS.get(catalog.meta.get("method")), "suffix", ".cat")
        base = catalog.info.path or f"{img.path}{suffix}"
        log.info("Figure saved: %s", save_figure(fig, f"{base}.png"))
    if owned and display:
        present(fig)
    return fig


def plot_map(product, title: str = "", downsample: int | None = None, *, ax=None,
             display: bool = True):
    """A picture of a Background, Errormap or Mask (binned for large frames).

    Parameters
    ----------
    product : Background, Errormap or Mask
        The map.
    title : str
        Title (default: the map's kind).
    downsample : int, optional
        Block size (default: about 2000 pixels across).
    ax : matplotlib Axes, optional
        Draw into these axes.
    display : bool
        Show the figure in a notebook (False: only build it).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    data = np.asarray(product.data)
    ny, nx = data.shape
    step = downsample or max(1, int(np.ceil(max(nx, ny) / 2000)))
    shown = bin_image(data, step)
    fig, ax, owned = _figure_and_axes(ax, (8, 8 * ny / nx + 0.6))
    extent = (-0.5, -0.5 + shown.shape[1] * step, -0.5, -0.5 + shown.shape[0] * step)
    cmap = "gray_r" if data.dtype == bool else "viridis"
    im = ax.imshow(shown, origin="lower", cmap=cmap, extent=extent, interpolation="nearest",
                   norm=None if data.dtype == bool else _norm(shown, "minmax"))
    if data.dtype != bool and owned:
        fig.colorbar(im, ax=ax, label="ADU")
    ax.set_title(title or type(product).__name__)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    if owned and display:
        present(fig)
    return fig


def plot_result(catalog, *, save: bool = False, display: bool = True):
    """The picture of a photometry catalogue: detections (`plot_catalog`) or forced-photometry
    cut-outs (`plot_forced`), as its method draws it."""
    if catalog.info.catalog_type in ("circular", "elliptical"):
        return plot_forced(catalog, save=save, display=display)
    return plot_catalog(catalog, save=save, display=display)
