"""The baseline zoo, registered when `phosjax.models` is imported.

Defaults are small enough to train on a CPU in seconds; every size is explicit in the
resolved `ModelConfig`, so a pruned params tree always has a config that builds it.

Every zoo model takes the options ``dtype``, the dtype its stem and blocks compute in
(``logreg``, a head alone: its head; ``None``: what the input and params promote to), and
``param_dtype``, the one every param is stored in (float32), as Flax's layers do (a
bench's ``compute_dtype`` instead casts float32 master params for each step). The logits
are what the last features and the head's params promote to: float32 ones with float32
params, whatever ``dtype`` computes in (``logreg``'s too), as the loss expects:

  >>> import jax, jax.numpy as jnp
  >>> from phosjax.models import ModelConfig, build_model
  >>> options = {"dtype": "bfloat16", "param_dtype": "bfloat16"}
  >>> model = build_model(ModelConfig("gru", 3, (8,), width=4, options=options))
  >>> params = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 8)))["params"]
  >>> {str(leaf.dtype) for leaf in jax.tree.leaves(params)}
  {'bfloat16'}
"""

import math
from typing import Any

import jax.numpy as jnp

from phosjax.layers import TransformerBlock
from phosjax.models._blocks import DenseBlock, Layer, ResBlock
from phosjax.models._config import ModelConfig
from phosjax.models._kinds import IMAGE, SEQUENCE, VECTOR
from phosjax.models._mixing import choice_block, moe_block
from phosjax.models._options import check_counts, check_rate, factory_defaults
from phosjax.models._registry import register_model
from phosjax.models._sequence import GRUBlock, Patches


def _vector_stem(features: int, dtype: Any = None, param_dtype: Any = jnp.float32) -> Layer:
    """The stem of the vector models: a `Layer`, which on vectors is a ``Dense``, so its
    convolution options (``kernel_size``, ``stride``), which would change nothing, are
    not theirs (its dtypes are)."""
    return Layer(features, dtype=dtype, param_dtype=param_dtype)


_CONVOLUTION_COUNTS = {
    key: value for key, value in factory_defaults(Layer).items() if key in ("kernel_size", "stride")
}
"""A convolution's counts, with the defaults of `Layer` (cnn2d's block, resnet's stem;
`ResBlock`'s ``kernel_size`` is 3 too)."""


def _check_convolutions(config: ModelConfig) -> None:
    """A convolution's ``kernel_size`` and ``stride`` (options of its block's, which the
    registry does not hold) are ints >= 1, as `check_counts` checks registered counts.

    Examples:
      >>> _check_convolutions(ModelConfig("cnn2d", 3, (8, 8, 1), options={"kernel_size": 0}))
      Traceback (most recent call last):
      ValueError: model 'cnn2d': option kernel_size must be an int >= 1 (its default is 3), got 0
    """
    check_counts(_CONVOLUTION_COUNTS, dict(config.options), f"model {config.name!r}")


def _check_transformer(config: ModelConfig) -> None:
    """``num_heads`` divides every stage width, ``patch_size`` is at most the length of
    the input viewed as a sequence (``(L,)`` is ``L`` long, ``(H, W, C)`` ``H * W``), and
    ``dropout_rate`` is a rate, in ``[0, 1)``.

    Examples:
      >>> _check_transformer(ModelConfig("transformer", 3, (40,), width=30).resolved())
      Traceback (most recent call last):
      ValueError: model 'transformer': option num_heads 4 does not divide the width 30 ...
    """
    options, where = dict(config.options), f"model {config.name!r}"
    check_rate(options, "dropout_rate", where)
    heads = options["num_heads"]
    for width in config.widths or ():
        if width % heads:
            divisors = [n for n in range(1, width + 1) if width % n == 0]
            raise ValueError(
                f"{where}: option num_heads {heads} does not divide the width {width} (each "
                f"head takes width / num_heads features); give one of {divisors}"
            )
    shape = config.input_shape
    length = shape[0] if len(shape) == 1 else math.prod(shape[:-1])
    if options["patch_size"] > length:
        raise ValueError(
            f"{where}: option patch_size {options['patch_size']} is longer than the input "
            f"sequence ({length} long for input_shape {shape}); give a patch_size <= {length}"
        )


def _check_moenet(config: ModelConfig) -> None:
    """``top_k`` is at most ``num_experts``.

    Examples:
      >>> _check_moenet(ModelConfig("moenet", 3, (8,), options={"top_k": 5}).resolved())
      Traceback (most recent call last):
      ValueError: model 'moenet': option top_k 5 is more than num_experts 4; give ...
    """
    options = dict(config.options)
    if options["top_k"] > options["num_experts"]:
        raise ValueError(
            f"model {config.name!r}: option top_k {options['top_k']} is more than "
            f"num_experts {options['num_experts']}; give a top_k <= num_experts (each "
            "example is routed to top_k different experts)"
        )


register_model("logreg", None, depth=0, width=(), input_kinds=[VECTOR])
register_model("mlp", DenseBlock, stem=_vector_stem, depth=1, width=100, input_kinds=[VECTOR])
register_model(
    "cnn1d",
    Layer,
    depth=3,
    width=25,
    input_kinds=[SEQUENCE],
    options={"stride": 2, "kernel_size": 3, "pool": "flatten"},
)
register_model(
    "cnn2d", Layer, depth=1, width=(16, 32), input_kinds=[IMAGE], check=_check_convolutions
)
register_model(
    "resnet",
    ResBlock,
    stem=Layer,
    depth=1,
    width=(16, 32),
    input_kinds=[IMAGE, SEQUENCE],
    check=_check_convolutions,
)
register_model(
    "transformer",
    TransformerBlock,
    stem=Patches,
    depth=2,
    width=32,
    input_kinds=[SEQUENCE],
    options={"patch_size": 4, "num_heads": 4, "mlp_features": 64},
    check=_check_transformer,
)
register_model("gru", GRUBlock, depth=1, width=32, input_kinds=[SEQUENCE], options={"pool": "last"})
register_model(
    "choicenet", choice_block, stem=_vector_stem, depth=2, width=64, input_kinds=[VECTOR]
)
register_model(
    "moenet",
    moe_block,
    stem=_vector_stem,
    depth=1,
    width=64,
    input_kinds=[VECTOR],
    options={"num_experts": 4, "top_k": 1, "hidden_features": 64},
    check=_check_moenet,
)
