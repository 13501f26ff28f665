"""Pictures: an image (with WCS axes), a position with its aperture, detected sources.

Figures are made with `matplotlib.figure.Figure` (no pyplot global state, no GUI backend), so
they work headless, in worker processes and in notebooks (where a Figure displays itself).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Ellipse

from ._io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["show_image", "show_position", "plot_catalog", "plot_map", "save_figure"]


def _norm(data: np.ndarray, scale: str):
    from astropy.visualization import ImageNormalize, MinMaxInterval, ZScaleInterval

    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return None
    interval = ZScaleInterval() if scale == "zscale" else MinMaxInterval()
    return ImageNormalize(finite, interval=interval)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def show_image(img, coord_type: str = "pixel", scale: str = "zscale", downsample: int = 4,
               figsize=(8, 6)):
    """The whole image, zscaled; ``coord_type='coord'`` draws WCSAxes with RA/Dec.

    Returns
    -------
    (matplotlib.figure.Figure, Axes)
    """
    if coord_type not in ("pixel", "coord"):
        raise ValueError(f"coord_type must be 'pixel' or 'coord', got {coord_type!r}")
    step = max(1, int(downsample))
    data = np.asarray(img.data[::step, ::step], dtype=float)
    fig = Figure(figsize=figsize)
    if coord_type == "coord":
        wcs = img.require_wcs()
        ax = fig.add_subplot(1, 1, 1, projection=wcs[::step, ::step] if step > 1 else wcs)
        ax.coords[0].set_axislabel("RA")
        ax.coords[1].set_axislabel("Dec")
    else:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_xlabel(f"x [pixel / {step}]" if step > 1 else "x [pixel]")
        ax.set_ylabel(f"y [pixel / {step}]" if step > 1 else "y [pixel]")
    im = ax.imshow(data, origin="lower", cmap="gray", norm=_norm(data, scale))
    fig.colorbar(im, ax=ax, label="ADU")
    ax.set_title(img.path.name)
    return fig, ax


def show_position(img, x: float, y: float, coord_type: str = "pixel", radius_arcsec=None,
                  a_arcsec=None, b_arcsec=None, theta_deg=None, zoom_radius_pixel: int = 100,
                  downsample: int = 1, scale: str = "zscale", figsize=(6, 6)):
    """A cut-out around a position with the aperture drawn at its true size.

    ``coord_type='coord'``: x, y are RA, Dec (deg) and theta is the position angle east of
    north; ``'pixel'``: 0-based pixels, theta counter-clockwise from +x.

    Returns
    -------
    (matplotlib.figure.Figure, Axes)
    """
    from .photometry.geometry import sky_to_pixel_ellipse, to_pixel

    px, py = to_pixel(img, x, y, coord_type)
    px, py = float(px[0]), float(py[0])
    ny, nx = img.shape
    r = int(zoom_radius_pixel)
    x0, x1 = max(0, int(px) - r), min(nx, int(px) + r + 1)
    y0, y1 = max(0, int(py) - r), min(ny, int(py) + r + 1)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"{img.path}: position ({x}, {y}) is off the image")
    step = max(1, int(downsample))
    cut = np.asarray(img.data[y0:y1:step, x0:x1:step], dtype=float)
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    extent = (x0 - 0.5, x0 - 0.5 + cut.shape[1] * step, y0 - 0.5, y0 - 0.5 + cut.shape[0] * step)
    ax.imshow(cut, origin="lower", cmap="gray", norm=_norm(cut, scale), extent=extent)
    scale_px = img.pixelscale
    if a_arcsec is not None and b_arcsec is not None:
        if coord_type == "coord":
            a, b, theta = sky_to_pixel_ellipse(img, px, py, a_arcsec, b_arcsec, theta_deg or 0.0)
        else:
            a, b, theta = a_arcsec, b_arcsec, np.radians(theta_deg or 0.0)
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
    return fig, ax


def plot_catalog(catalog, save: bool = False, max_sources: int = 20000, downsample: int | None = None):
    """The image with the catalogue's sources and their largest aperture drawn.

    Parameters
    ----------
    catalog : Catalog
        Needs ``info.target_img`` and X_IMAGE/Y_IMAGE (0-based) columns.
    save : bool
        Also write the figure as PNG beside the catalogue (``<catalog>.png``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .imageobjects import ScienceImage

    img = ScienceImage(catalog.info.target_img)
    ny, nx = img.shape
    step = downsample or max(1, int(np.ceil(max(nx, ny) / 2000)))
    data = np.asarray(img.data[::step, ::step], dtype=float)
    fig = Figure(figsize=(9, 9 * ny / nx + 0.5))
    ax = fig.add_subplot(1, 1, 1)
    extent = (-0.5, -0.5 + data.shape[1] * step, -0.5, -0.5 + data.shape[0] * step)
    ax.imshow(data, origin="lower", cmap="gray", norm=_norm(data, "zscale"), extent=extent)
    t = catalog.data
    if len(t) and "X_IMAGE" in t.colnames:
        t = t[:max_sources]
        sizes = [catalog.data[c][:max_sources] for c in t.colnames if c.startswith("PIXSIZE_APER")]
        diam = np.max(np.vstack([np.asarray(s, float) for s in sizes]), axis=0) if sizes \
            else np.full(len(t), 10.0)
        if "SMA_IMAGE" in t.colnames:  # elliptical forced photometry
            w, h = 2 * np.asarray(t["SMA_IMAGE"], float), 2 * np.asarray(t["SMI_IMAGE"], float)
            ang = np.asarray(t["THETA_IMAGE"], float)
        else:
            w = h = diam
            ang = np.zeros(len(t))
        offsets = np.column_stack([np.asarray(t["X_IMAGE"], float), np.asarray(t["Y_IMAGE"], float)])
        ax.add_collection(EllipseCollection(w, h, ang, units="xy", offsets=offsets,
                                            offset_transform=ax.transData, facecolors="none",
                                            edgecolors="red", linewidths=0.6))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(f"{img.path.name}: {len(catalog.data)} sources ({catalog.info.catalog_type})")
    if save:
        base = catalog.info.path or f"{img.path}.cat"
        path = save_figure(fig, f"{base}.png")
        log.info("Figure saved: %s", path)
    return fig


def plot_map(product, title: str = "", downsample: int | None = None):
    """A picture of a Background, Errormap or Mask (downsampled for large frames)."""
    data = np.asarray(product.data)
    ny, nx = data.shape
    step = downsample or max(1, int(np.ceil(max(nx, ny) / 2000)))
    shown = data[::step, ::step].astype(float)
    fig = Figure(figsize=(8, 8 * ny / nx + 0.6))
    ax = fig.add_subplot(1, 1, 1)
    extent = (-0.5, -0.5 + shown.shape[1] * step, -0.5, -0.5 + shown.shape[0] * step)
    cmap = "gray_r" if data.dtype == bool else "viridis"
    im = ax.imshow(shown, origin="lower", cmap=cmap, extent=extent,
                   norm=None if data.dtype == bool else _norm(shown, "minmax"))
    if data.dtype != bool:
        fig.colorbar(im, ax=ax, label="ADU")
    ax.set_title(title or type(product).__name__)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    return fig
