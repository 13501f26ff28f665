"""Image kinds of the tutorial: `ScienceImage`, `ReferenceImage`, `CalibrationImage`."""

from __future__ import annotations

from .baseimage import BaseImage
from .maps import Background, Errormap, Mask

__all__ = ["ScienceImage", "ReferenceImage", "CalibrationImage"]


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


class ScienceImage(_ProductsMixin, BaseImage):
    """A calibrated science frame."""

    image_type = "science"


class ReferenceImage(_ProductsMixin, BaseImage):
    """A reference (template) image, e.g. a deep stack."""

    image_type = "reference"


class CalibrationImage(BaseImage):
    """A master calibration frame (bias, dark, flat)."""

    image_type = "calibration"
