"""Module-level ``__getattr__``/``__dir__`` that import a package's names on first use."""

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import ModuleType
from typing import Any


def lazy_exports(
    namespace: MutableMapping[str, Any],
    exports: Mapping[str, str],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package that import its names when first used.

    ``namespace`` is the package's ``globals()``; ``exports`` maps each re-exported
    name to the module defining it; ``submodules`` are subpackages reachable as
    attributes. A loaded name is stored in ``namespace``, so later lookups cost nothing,
    and importing the package alone imports none of those modules (the bench viewer
    starts without loading jax).

    >>> import types
    >>> demo = types.ModuleType("demo")
    >>> demo.__getattr__, demo.__dir__ = lazy_exports(vars(demo), {"sqrt": "math"})
    >>> demo.sqrt(4.0), "sqrt" in vars(demo), "sqrt" in dir(demo)
    (2.0, True, True)
    >>> demo.cos
    Traceback (most recent call last):
    AttributeError: module 'demo' has no attribute 'cos'
    """
    package, names = namespace["__name__"], set(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = _imported(f"{package}.{name}")
        elif name in exports:
            value = getattr(_imported(exports[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | names | set(exports))

    return __getattr__, __dir__


def _imported(module: str) -> ModuleType:
    """``importlib.import_module(module)``, an AttributeError raised while importing it (an
    API its dependencies lack) an ImportError naming it: raised by a module's
    ``__getattr__``, it would read as the name missing ("cannot import name", ``hasattr``
    False) and hide the error."""
    try:
        return importlib.import_module(module)
    except AttributeError as error:
        raise ImportError(f"importing {module!r} failed: {error}") from error
