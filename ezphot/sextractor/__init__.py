"""The SExtractor adapter: binary discovery, configuration writer, detection filters, runner
and LDAC reader."""

from .binary import SExtractorBinary, find_sextractor
from .checkimage import CheckImage
from .configfile import (
    validate_config,
    validate_keywords,
    validate_parameters,
    write_config,
    write_param,
)
from .convfilter import DetectionFilter, make_kernel, read_conv, write_conv
from .ldac import LDACCatalog, read_ldac
from .runner import SExtractorRun, run_sextractor

__all__ = [
    "SExtractorBinary",
    "find_sextractor",
    "CheckImage",
    "validate_config",
    "validate_keywords",
    "validate_parameters",
    "write_config",
    "write_param",
    "DetectionFilter",
    "make_kernel",
    "read_conv",
    "write_conv",
    "LDACCatalog",
    "read_ldac",
    "SExtractorRun",
    "run_sextractor",
]
