"""Input validation that says what is wrong and where.

One validator (`check_scalar`, after scikit-learn's) is reused by every source, predictor
and config check, so that every message has the same form::

    coin_mixture.thetas[1] == 1.5, must be < 1.

`where` is the dotted location of the value (a config key, a source field); callers that
know more context (the config key that holds a source) prefix it with `located`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the key that holds it."""


def located(where: str, error: Exception) -> ConfigError:
    """Return a ConfigError whose message is prefixed by the config location `where`."""
    return ConfigError(f"{where}: {error}")


def check_scalar(
    value,
    name: str,
    target_type: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
):
    """Check the type and bounds of a scalar and return it.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Where the value lives, for example ``"beta_coin.alpha"``; it starts the message.
    target_type : type or tuple of types
        Accepted types (bool is never accepted as a number).
    min_val, max_val : float, optional
        Bounds; None means unbounded.
    include_boundaries : {"both", "left", "right", "neither"}
        Whether the bounds belong to the allowed interval. ``"neither"`` states an open
        interval such as (0, 1).

    Returns
    -------
    The value, unchanged.

    Raises
    ------
    TypeError
        If the value has the wrong type.
    ValueError
        If the value is outside its bounds or not finite.

    Examples
    --------
    >>> check_scalar(0.5, "coin.theta", float, min_val=0, max_val=1, include_boundaries="neither")
    0.5
    >>> check_scalar(1.5, "coin.theta", float, min_val=0, max_val=1, include_boundaries="neither")
    Traceback (most recent call last):
    ...
    ValueError: coin.theta == 1.5, must be < 1.
    """
    if include_boundaries not in ("both", "left", "right", "neither"):
        raise ValueError(f"include_boundaries == {include_boundaries!r}, unknown")
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise TypeError(f"{name} must be {wanted}, not {type(value).__name__} ({value!r}).")
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise ValueError(f"{name} == {value}, must be finite.")
    left_closed = include_boundaries in ("both", "left")
    right_closed = include_boundaries in ("both", "right")
    if min_val is not None:
        if value < min_val or (value == min_val and not left_closed):
            op = ">=" if left_closed else ">"
            raise ValueError(f"{name} == {value}, must be {op} {min_val}.")
    if max_val is not None:
        if value > max_val or (value == max_val and not right_closed):
            op = "<=" if right_closed else "<"
            raise ValueError(f"{name} == {value}, must be {op} {max_val}.")
    return value


def check_probability(value, name: str) -> float:
    """A probability in the open interval (0, 1), as float."""
    return float(check_scalar(value, name, numbers.Real, min_val=0, max_val=1,
                              include_boundaries="neither"))


def check_positive(value, name: str) -> float:
    """A real number > 0, as float."""
    return float(check_scalar(value, name, numbers.Real, min_val=0, include_boundaries="neither"))


def check_probabilities(values, name: str) -> tuple[float, ...]:
    """A non-empty sequence of probabilities in (0, 1), as a tuple of floats."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, not {type(values).__name__}.")
    if len(values) == 0:
        raise ValueError(f"{name} is empty, must hold at least one value.")
    return tuple(check_probability(v, f"{name}[{i}]") for i, v in enumerate(values))


def check_weights(values, name: str, size: int, *, atol: float = 1e-9) -> tuple[float, ...]:
    """Positive weights, one per component, summing to 1 (within `atol`)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, not {type(values).__name__}.")
    if len(values) != size:
        raise ValueError(f"{name} has {len(values)} values, must have {size} (one per theta).")
    weights = tuple(
        float(check_scalar(v, f"{name}[{i}]", numbers.Real, min_val=0,
                           include_boundaries="neither"))
        for i, v in enumerate(values)
    )
    total = math.fsum(weights)
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} sums to {total:.12g}, must sum to 1.")
    return weights
