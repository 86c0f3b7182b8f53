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


def check_module(where: str, model: Any, *, apply_too: bool = False) -> None:
    """Raises a TypeError naming ``where`` unless ``model`` is a Flax module (``apply_too``:
    or a function, taken for its ``apply``): a model config (what a `phosjax.train.Cell`
    takes) is to be built first, a module class instantiated.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> check_module("make_train_step", ModelConfig("mlp", 3, (8,)))
      Traceback (most recent call last):
      TypeError: make_train_step: model must be a Flax module, got a ModelConfig: pass its .build()
    """
    refuse_module_class(model, f"{where}: model")
    if isinstance(model, nn.Module) or (apply_too and callable(model)):
        return
    built = callable(getattr(model, "build", None))
    fix = "pass its .build()" if built else "e.g. ModelConfig('mlp', 10, (40,)).build()"
    what = "a Flax module or an apply(variables, *args)" if apply_too else "a Flax module"
    raise TypeError(f"{where}: model must be {what}, got {a_type(model)}: {fix}")
