"""phosjax.layers: interesting Flax linen layers that report what they do.

Every layer tags its notable values (`phosjax.core.tag`), raises its auxiliary losses
with `phosjax.core.aux_loss` (scaled by enclosing path weights) and declares its
tunable constants as knobs, each with the range it takes (`phosjax.core.Range`, listed by
`phosjax.core.knobs`); a value out of it (a temperature or a bound of 0 or less, a
negative penalty weight, a NaN) is a ValueError naming it wherever it is concrete
(`phosjax.core.tweak`, a bench's planning, `phosjax.train.init_group`, the layer itself),
and makes the output NaN only where it is traced (set under ``jit`` or ``vmap``, or in a
`Repeat`'s scan, unchecked).
Layers that behave differently in training take ``train: bool = False``; features are on
the last axis. As Flax's layers do, every layer that creates parameters takes
``param_dtype``, their storage dtype (float32 by default; ``dtype``, where a layer has
it, is the computation's; either must be a floating dtype, another is a ValueError when
the layer is made); containers leave their blocks' parameters alone.

Containers (`Choice`, `GatedSkip`, `Residual`, `ReZero`, `Sequence`, `Repeat`) pass the
train flag to a block positionally when it is the parameter after the input, so a
block lifted with `flax.linen.remat` (or `flax.linen.jit`) works once it marks the flag
static: ``nn.remat(Block, static_argnums=(2,))`` (``self``, ``x``, ``train``).
They pass the other keyword arguments of their call (an attention ``mask``) to those of
their blocks whose call names them (or takes ``**kwargs``; not a ``mask`` to Flax's
normalization layers, whose ``mask`` selects the elements their statistics count;
Flax's attention layers, `flax.linen.MultiHeadDotProductAttention`, which read a mask
of query-key pairs, get a padding mask ``(..., L)`` as ``(..., 1, 1, L)``, the keys every
query may attend, as `MultiHeadSelfAttention` reads it; a `flax.linen.Sequential`, which
passes keywords to its first layer alone, gets them when that layer takes them; a
subclass of these that keeps their call is read as they are, one that overrides it as
its own call says), as `Sequence` passes the train flag only to the layers that take one:
``Repeat(TransformerBlock(2), 3)(x, mask=real)`` gives every block ``mask=real``,
``Sequence([TransformerBlock(2), nn.Dense(8)])`` only the first. A keyword that none
of a container's blocks takes is a TypeError naming it and the blocks (a misspelled one
does not go unused; the error names the keyword meant, ``mask`` for ``maks``). A
``mask`` holds booleans or integers (true or nonzero: real, or attend); every layer and
container that reads one refuses a float mask, which may be an additive one (a
TypeError: see docs/layers.md). One that is a padding mask of the input's
tokens (its shape but the features, axes of size 1 broadcasting), or an attention mask of
a sequence's ``(B, H, L, L)`` (its padding as `MultiHeadSelfAttention` reads it), also makes a
container read the padded tokens as zeros, as the layers that take one do (`MultiHeadSelfAttention`,
`MixtureOfExperts`, `SqueezeExcite`, `ActivityL1`...): what they hold (an infinity, a
NaN) reaches neither a block that does not take the mask nor any gradient. Only the
container's input is zeroed (a container nested in it zeroes its own): a block after
the first (a `Sequence`'s, a `Repeat`'s next layer) gets the padded tokens as the
blocks before made them (a `TransformerBlock`'s output there is that of a zero input,
not zeros). A norm whose statistics span the tokens (`flax.linen.GroupNorm`,
`flax.linen.BatchNorm`), which gets no mask, counts the padded tokens too (as zeros
where it comes first, else as they were made), so its real tokens' outputs still depend
on how many there are.

Example:
  >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
  >>> from phosjax.layers import Choice
  >>> layer, x = Choice([nn.Dense(3), nn.Dense(3)]), jnp.ones((2, 3))
  >>> variables = layer.init(jax.random.key(0), x)
  >>> out, found = px.probe(layer, variables, x, "weights")  # its mixture weights, tagged
  >>> found["weights"].tolist(), sorted(px.knobs(layer, x))
  ([0.5, 0.5], ['T'])
"""

from phosjax.layers._attention import MultiHeadSelfAttention, TransformerBlock
from phosjax.layers._gating import GLU, LayerScale, SqueezeExcite, SwiGLU
from phosjax.layers._pathways import Choice, GatedSkip, Residual, ReZero
from phosjax.layers._rare import FourierFeatures, HyperDense, LipschitzDense
from phosjax.layers._regularizing import ActivityL1, DropPath, OrthogonalDense
from phosjax.layers._routing import MixtureOfExperts
from phosjax.layers._stacking import Repeat, Sequence

__all__ = [
    "GLU",
    "ActivityL1",
    "Choice",
    "DropPath",
    "FourierFeatures",
    "GatedSkip",
    "HyperDense",
    "LayerScale",
    "LipschitzDense",
    "MixtureOfExperts",
    "MultiHeadSelfAttention",
    "OrthogonalDense",
    "ReZero",
    "Repeat",
    "Residual",
    "Sequence",
    "SqueezeExcite",
    "SwiGLU",
    "TransformerBlock",
]
