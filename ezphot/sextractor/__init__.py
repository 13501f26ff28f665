"""The SExtractor adapter: binary discovery, configuration writer, runner and LDAC reader."""

from .binary import SExtractorBinary, find_sextractor
from .checkimage import CheckImage
from .configfile import (validate_config, validate_keywords, validate_parameters, write_config,
                         write_param)
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
    "LDACCatalog",
    "read_ldac",
    "SExtractorRun",
    "run_sextractor",
]
