"""The zoo's model names, for the tests that run every zoo model."""

from phosjax.models import model_spec, registered_models


def zoo_models() -> list[str]:
    """The names `phosjax.models._zoo` registers (a new zoo model too), not those that test
    modules collected earlier registered (some deliberately broken)."""
    return [
        name for name in registered_models() if model_spec(name).module == "phosjax.models._zoo"
    ]
