"""Sources (data generators), each with its sampler and its exact Bayes predictor.

Importing this package registers every kind in `SOURCES`.
"""

from promptscape.sources.base import SOURCES, V, Source, build_source, register, symbol_losses
from promptscape.sources import coins, switching  # noqa: F401  (registers the kinds)

__all__ = ["SOURCES", "V", "Source", "build_source", "register", "symbol_losses"]
