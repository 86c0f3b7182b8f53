"""Stacking layers: a list of layers in order, and one block repeated with `nn.scan`."""

import collections.abc as abc
from typing import Any, ClassVar

import flax.linen as nn
import jax

from phosjax.layers._common import (
    PassesKeywords,
    call_block,
    check_block,
    check_blocks,
    check_keywords,
    check_shape,
    checked_size,
    checked_train,
    compute_dtype,
    zero_mask_padding,
)


class Sequence(PassesKeywords, nn.Module):
    """Applies ``layers`` in order, passing the train flag to each layer that takes one.

    Unlike `flax.linen.Sequential`, the flag reaches the layers that behave differently
    in training: as ``train`` (`DropPath`...), or as ``deterministic`` /
    ``use_running_average`` set to ``not train`` (`flax.linen.Dropout`,
    `flax.linen.BatchNorm`). A layer may be a function of the input (``nn.relu``), which
    gets the flag and keywords its signature names, as a module does.

    Other keywords of the call (an attention ``mask``) go to the layers whose call takes
    them (see `phosjax.layers`).

    Attributes:
      layers: the modules (or functions) to apply, first to last.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.layers import DropPath, Sequence
      >>> layer = Sequence([nn.Dense(4), nn.relu, DropPath(0.5), nn.Dense(2)])
      >>> x = jnp.ones((3, 5)); variables = layer.init(jax.random.key(0), x)
      >>> layer.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)}).shape
      (3, 2)
    """

    layers: abc.Sequence[nn.Module]
    blocks_field: ClassVar[str] = "layers"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_blocks(self, "layers", "layer")
        check_keywords(self, self.layers, keywords)
        x = zero_mask_padding(self, x, keywords)
        for layer in self.layers:
            x = call_block(layer, x, train, **keywords)
        return x


class Repeat(PassesKeywords, nn.Module):
    """One block repeated ``num_layers`` times with `flax.linen.scan` over stacked params.

    The block is compiled once whatever the depth. Every collection it makes or reads
    gets a leading layer axis of size ``num_layers``: its parameters, knobs and batch
    statistics, the values it tags, its auxiliary losses and path weights (probing
    returns one value per layer stacked on axis 0) and those of its own (what it
    records with ``self.sow``, a Flax attention's decoding ``cache``). Every rng stream
    the block draws from (``"params"``, ``"dropout"``, a stream of its own) is split:
    each layer gets its own draws. The output keeps the input's dtype (the scan carry);
    an integer input is carried in float32.

    Other keywords of the call (an attention ``mask``) go to every layer, broadcast
    over the scan (see `phosjax.layers`).

    Attributes:
      block: a Flax module (`flax.linen.scan` stacks its parameters; wrap a function in
        one) that maps ``x`` to an output of the same shape (anything else is an error);
        the output is cast to the carry's dtype.
      num_layers: how many times to apply it (an int >= 1), each time with its own
        parameters.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import ReZero, Repeat
      >>> layer = Repeat(ReZero(nn.Dense(4)), num_layers=3)
      >>> x = jnp.ones((2, 4)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> variables["params"]["block"]["block"]["kernel"].shape
      (3, 4, 4)
      >>> px.probe(layer, variables, x, "block/residual")[1]["block/residual"].shape
      (3, 2, 4)

      Other keywords of the call go to the block (see `phosjax.layers`), every layer
      getting the same value:

      >>> from phosjax.layers import TransformerBlock
      >>> layer = Repeat(TransformerBlock(num_heads=2), num_layers=2)
      >>> x = jnp.ones((2, 5, 4)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 3 tokens, 2 padded
      >>> jax.jit(layer.apply)(variables, x, mask=real).shape
      (2, 5, 4)
    """

    block: nn.Module
    blocks_field: ClassVar[str] = "block"
    num_layers: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_block(self.block, "Repeat's block", functions=False)
        check_keywords(self, self.block, keywords)
        x = zero_mask_padding(self, x, keywords)
        num_layers = checked_size(self, "num_layers")

        def body(
            block: nn.Module, carry: jax.Array, shared: dict[str, Any]
        ) -> tuple[jax.Array, None]:
            y = call_block(block, carry, train, **shared)
            check_shape(y, carry.shape, "Repeat's block must keep the input shape")
            return y.astype(carry.dtype), None

        scanned = nn.scan(
            body,
            variable_axes={True: 0},  # every collection, a block's own too
            split_rngs={True: True},
            in_axes=nn.broadcast,
            length=num_layers,
        )
        x, _ = scanned(self.block, x.astype(compute_dtype(None, x)), keywords)
        return x
