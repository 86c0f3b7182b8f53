"""The baseline zoo, registered when `phosjax.models` is imported.

Defaults are small enough to train on a CPU in seconds; every size is explicit in the
resolved `ModelConfig`, so a pruned params tree always has a config that builds it.
"""

from phosjax.layers import TransformerBlock
from phosjax.models._blocks import DenseBlock, Layer, ResBlock
from phosjax.models._kinds import IMAGE, SEQUENCE, VECTOR
from phosjax.models._mixing import choice_block, moe_block
from phosjax.models._registry import register_model
from phosjax.models._sequence import GRUBlock, Patches


def _vector_stem(features: int) -> Layer:
    """The stem of the vector models: a `Layer`, which on vectors is a ``Dense``, so its
    convolution options (``kernel_size``, ``stride``), which would change nothing, are
    not theirs."""
    return Layer(features)


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
register_model("cnn2d", Layer, depth=1, width=(16, 32), input_kinds=[IMAGE])
register_model(
    "resnet", ResBlock, stem=Layer, depth=1, width=(16, 32), input_kinds=[IMAGE, SEQUENCE]
)
register_model(
    "transformer",
    TransformerBlock,
    stem=Patches,
    depth=2,
    width=32,
    input_kinds=[SEQUENCE],
    options={"patch_size": 4, "num_heads": 4, "mlp_features": 64},
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
)
