"""What is given where a Flax module goes: a module class, a model config, or no module."""

from typing import Any

import flax.linen as nn

from phosjax._callables import a_type


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


def check_module(where: str, model: Any) -> None:
    """Raises a TypeError naming ``where`` unless ``model`` is a Flax module: a model
    config (what a `phosjax.train.Cell` takes) is to be built first, a module class
    instantiated.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> check_module("make_train_step", ModelConfig("mlp", 3, (8,)))
      Traceback (most recent call last):
      TypeError: make_train_step: model must be a Flax module, got a ModelConfig: pass its .build()
    """
    refuse_module_class(model, f"{where}: model")
    if not isinstance(model, nn.Module):
        built = callable(getattr(model, "build", None))
        fix = "pass its .build()" if built else "e.g. ModelConfig('mlp', 10, (40,)).build()"
        raise TypeError(f"{where}: model must be a Flax module, got {a_type(model)}: {fix}")
