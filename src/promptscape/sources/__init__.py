"""Sources (data generators), each with its sampler and its exact Bayes predictor.

Importing this package imports every module in it, which registers every kind in `SOURCES`.
"""

from promptscape.sources.base import (SOURCES, BinarySource, Source, build_source, compositions,
                                      log_multinomial, register, row_index, symbol_counts,
                                      symbol_losses)
import importlib as _importlib
import pkgutil as _pkgutil

# Every module of this package is a source kind (or the base): importing them all registers
# every kind, so a new kind is its module alone.
for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module}")

__all__ = ["SOURCES", "BinarySource", "Source", "build_source", "compositions", "log_multinomial",
           "register", "row_index", "symbol_counts", "symbol_losses"]
