"""A Flax module class given where an instance goes."""

from typing import Any

import flax.linen as nn


def refuse_module_class(value: Any, what: str) -> None:
    """Raises a TypeError naming ``what`` (``"Residual's block"``) when ``value`` is a
    Flax module class, which builds a module when called, not a module.

    Examples:
      >>> refuse_module_class(nn.Dense(2), "Residual's block")
      >>> refuse_module_class(nn.Dense, "Residual's block")
      Traceback (most recent call last):
      TypeError: Residual's block is the class Dense, not a module: pass an instance, Dense(...).
    """
    if isinstance(value, type) and issubclass(value, nn.Module):
        raise TypeError(
            f"{what} is the class {value.__name__}, not a module: pass an instance, "
            f"{value.__name__}(...)."
        )
