"""Sphinx helpers of the ezphot documentation.

- The landing page's picture is made by ezphot at build time: a small generated 7DT-like frame
  (:mod:`ezphot.datasets`), measured by :meth:`~ezphot.methods.AperturePhotometry.sex_photometry`
  and drawn by :func:`ezphot.visualization.plot_catalog`. It is kept in ``_generated/`` and made
  again only when ezphot's version changes or the file is missing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PICTURE = "_generated/landing.png"


def make_landing_picture(out: Path) -> None:
    """Generate a small frame, measure it, and save the catalogue's picture as ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ezphot.datasets import FrameSpec, make_frame
    from ezphot.methods import AperturePhotometry
    from ezphot.visualization import plot_catalog

    with tempfile.TemporaryDirectory(prefix="ezphot-docs-") as tmp:
        spec = FrameSpec(shape=(500, 800), star_density=3)
        path, _ = make_frame(Path(tmp) / spec.file_name(), spec, seed=3)
        catalog = AperturePhotometry().sex_photometry(
            str(path), detection_sigma=3, aperture_diameter_arcsec=[7],
            aperture_diameter_seeing=[], save=False, verbose=False, visualize=False)
        fig = plot_catalog(catalog, display=False)
        fig.set_size_inches(9, 5.9)
        fig.axes[0].set_title(f"sex_photometry: {len(catalog.data)} sources, 7\" apertures "
                              "(a generated 7DT-like frame)")
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.png")
        fig.savefig(part, dpi=80, bbox_inches="tight")
        plt.close(fig)
        os.replace(part, out)


def _landing(app) -> None:
    import ezphot

    out = Path(app.srcdir) / PICTURE
    stamp = out.with_suffix(".version")
    if out.exists() and stamp.exists() and stamp.read_text() == ezphot.__version__:
        return
    log.info("ezphot docs: making the landing picture")
    make_landing_picture(out)
    stamp.write_text(ezphot.__version__)


def setup(app):
    app.connect("builder-inited", _landing)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
