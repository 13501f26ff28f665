"""ezphot: aperture photometry of astronomical FITS images with SExtractor and photutils.

Subpackages are imported on first use, so ``import ezphot`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_SUBMODULES = {"utils", "methods", "imageobjects", "dataobjects", "sextractor", "photometry",
               "datasets", "batch", "visualization", "profiles", "config", "exceptions"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ezphot' has no attribute {name!r}")
