"""Image objects: science/reference/calibration images and their per-pixel maps."""

from .baseimage import BaseImage, ImageDescriptor
from .maps import Background, Errormap, Mask
from .scienceimage import CalibrationImage, ReferenceImage, ScienceImage

__all__ = ["BaseImage", "ImageDescriptor", "ScienceImage", "ReferenceImage", "CalibrationImage",
           "Background", "Errormap", "Mask"]
