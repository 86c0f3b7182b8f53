"""Graph versions of zoo models: the same layers and variables, every layer a node.

``graph_model(config)`` builds the `GraphModel` twin of ``build_model(config)`` for the
zoo's ``"resnet"`` and ``"transformer"``: the same parameter tree (the zoo model's
variables run it unchanged), with each convolution, norm, activation and residual sum a
node that can be read, injected, cut out or stitched.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.layers import MultiHeadSelfAttention
from phosjax.layers._common import Dropout, batch_norm, layer_norm
from phosjax.models import FRAME_OPTIONS, ModelConfig, model_spec
from phosjax.models._config import checked_config
from phosjax.models._frame import checked_batch, pool_tokens
from phosjax.models._kinds import choose_kind, view_as
from phosjax.models._masks import call_mask, check_mask_tokens, padding_mask, zero_padded_input
from phosjax.models.graph._model import GraphModel
from phosjax.models.graph._spec import node

Spec = dict[str, Any]


def _resnet_block(
    features: int,
    spatial: int,
    kernel_size: int,
    downsample: bool,
    fan_in: int,
    previous: str,
    typed: dict[str, Any],
) -> Spec:
    """`phosjax.models.ResBlock`, opened: conv-BN-ReLU-conv-BN, shortcut, sum, ReLU."""
    window, strides = (kernel_size,) * spatial, (2 if downsample else 1,) * spatial
    norm = lambda: batch_norm(momentum=0.9, **typed)
    block: Spec = {
        "conv_0": node(nn.Conv(features, window, strides, use_bias=False, **typed), previous),
        "norm_0": norm(),
        "act_0": nn.relu,
        "conv_1": nn.Conv(features, window, use_bias=False, **typed),
        "norm_1": norm(),
    }
    shortcut = previous
    if downsample or fan_in != features:
        projection = nn.Conv(features, (1,) * spatial, strides, use_bias=False, **typed)
        block["proj"] = node(projection, inputs=previous)
        block["proj_norm"] = norm()
        shortcut = "proj_norm"
    block["add"] = node(inputs=("norm_1", shortcut), combine="add")
    block["act"] = nn.relu
    return block


def _dtypes(options: dict[str, Any]) -> dict[str, Any]:
    """The ``dtype`` and ``param_dtype`` options (their defaults: None, float32)."""
    return {"dtype": options.get("dtype"), "param_dtype": options.get("param_dtype", jnp.float32)}


def _resnet(config: ModelConfig, spatial: int) -> tuple[Spec, str]:
    options = dict(config.options)
    widths, depth = config.widths or (), config.depth or 0
    kernel_size = options.get("kernel_size", 3)
    stem_stride = (options.get("stride", 1),) * spatial
    typed = _dtypes(options)
    spec: Spec = {
        "stem": {
            "Conv_0": nn.Conv(widths[0], (kernel_size,) * spatial, stem_stride, **typed),
            "act": nn.relu,
        }
    }
    previous, fan_in = "/stem/act", widths[0]
    for i, (stage, width) in enumerate((s, w) for s, w in enumerate(widths) for _ in range(depth)):
        downsample = stage > 0 and i % depth == 0
        spec[f"blocks_{i}"] = _resnet_block(
            width, spatial, kernel_size, downsample, fan_in, previous, typed
        )
        previous, fan_in = f"/blocks_{i}/act", width
    return spec, previous


def _transformer(config: ModelConfig, spatial: int) -> tuple[Spec, str]:
    from phosjax.models._sequence import Patches

    options = dict(config.options)
    widths, depth = config.widths or (), config.depth or 0
    rate, typed = options.get("dropout_rate", 0.0), _dtypes(options)
    stem = Patches(widths[0], patch_size=options["patch_size"], **typed)
    spec: Spec = {"stem": stem}
    previous = "/stem"
    for i, width in enumerate(w for w in widths for _ in range(depth)):
        attention = MultiHeadSelfAttention(
            options["num_heads"], options.get("causal", False), rate, **typed
        )
        branch = f"/blocks_{i}/attention_drop" if rate else f"/blocks_{i}/attention"
        block: Spec = {
            "attention_norm": node(layer_norm(**typed), inputs=previous),
            "attention": attention,
            **({"attention_drop": Dropout(rate)} if rate else {}),
            "attention_add": node(inputs=(branch, previous), combine="add"),
            "mlp_norm": layer_norm(**typed),
            "mlp_in": nn.Dense(options.get("mlp_features") or 4 * width, **typed),
            "gelu": nn.gelu,
            "mlp_out": nn.Dense(width, **typed),
            **({"mlp_drop": Dropout(rate)} if rate else {}),
        }
        block["mlp_add"] = node(inputs=(list(block)[-1], "attention_add"), combine="add")
        spec[f"blocks_{i}"] = block
        previous = f"/blocks_{i}/mlp_add"
    return spec, previous


_BUILDERS: dict[str, Callable[[ModelConfig, int], tuple[Spec, str]]] = {
    "resnet": _resnet,
    "transformer": _transformer,
}

TWIN_OPTIONS = {
    "resnet": frozenset({"kernel_size", "stride", "dtype", "param_dtype", *FRAME_OPTIONS}),
    "transformer": frozenset(
        {
            "patch_size",
            "num_heads",
            "mlp_features",
            "causal",
            "dropout_rate",
            "dtype",
            "param_dtype",
            *FRAME_OPTIONS,
        }
    ),
}
"""The options each graph twin honours (every option its zoo model takes)."""


def _check_options(config: ModelConfig) -> None:
    """Raises a ValueError naming the options of ``config`` its graph twin would ignore."""
    unread = sorted(set(dict(config.options)) - TWIN_OPTIONS[config.name])
    if unread:
        raise ValueError(
            f"graph_model({config.name!r}) does not support option(s) {unread}; it takes "
            f"{sorted(TWIN_OPTIONS[config.name])}. Use build_model for the others."
        )


# The twin's own functions, as callables that compare equal when built alike (closures
# would not), so that two twins of one config are equal and a jit taking the model as a
# static argument compiles once for both; `__name__`: the op that `to_dot` shows.


@dataclasses.dataclass(frozen=True)
class _View:
    """``x`` checked as the zoo model checks it, viewed as ``kind``."""

    __name__: ClassVar[str] = "view"
    model: str
    input_shape: tuple[int, ...]
    kind: str

    def __call__(self, x: jax.Array) -> jax.Array:
        where = f"graph_model({self.model!r})"
        return view_as(checked_batch(x, self.input_shape, where), self.kind)


@dataclasses.dataclass(frozen=True)
class _ViewPadded:
    """`_View`, with the tokens the zoo's ``mask`` pads read as zeros; a mask of the
    input's tokens, not the stem's, is refused as the zoo's Frame refuses it."""

    __name__: ClassVar[str] = "view_padded"
    view: _View
    stem: nn.Module

    def __call__(self, x: jax.Array, mask: Any = None) -> jax.Array:
        mask, viewed = call_mask(mask), self.view(x)
        if mask is not None:  # the stem's tokens, its shapes alone (traced, not run)
            stem = self.stem.clone(parent=None)
            made = jax.eval_shape(lambda v: stem.init_with_output(jax.random.key(0), v)[0], viewed)
            owner = f"graph_model({self.view.model!r})"
            check_mask_tokens(self.stem, mask, viewed, made, owner=owner)
        return zero_padded_input(mask, viewed, self.stem)


@dataclasses.dataclass(frozen=True)
class _Pool:
    """The tokens pooled as ``pool`` says."""

    __name__: ClassVar[str] = "pool"
    pool: str

    def __call__(self, h: jax.Array) -> jax.Array:
        return pool_tokens(h, self.pool)


@dataclasses.dataclass(frozen=True)
class _PoolReal:
    """The tokens the zoo's ``mask`` keeps pooled as ``pool`` says."""

    __name__: ClassVar[str] = "pool_real"
    pool: str

    def __call__(self, h: jax.Array, mask: Any = None) -> jax.Array:
        return pool_tokens(h, self.pool, padding_mask(call_mask(mask), h))


def graph_model(config: ModelConfig) -> GraphModel:
    """The `GraphModel` twin of ``build_model(config)``, for ``"resnet"`` and
    ``"transformer"``.

    Nodes: ``view`` (the input as a sequence or image), ``stem``, ``blocks_<i>/...``
    (``conv_0``, ``norm_0``, ``act_0``, ``conv_1``, ``norm_1``, ``proj``, ``proj_norm``,
    ``add``, ``act`` for a ResNet; ``attention_norm``, ``attention``, ``attention_add``,
    ``mlp_norm``, ``mlp_in``, ``gelu``, ``mlp_out``, ``mlp_add`` for a transformer),
    ``features`` (pooled), ``dropout`` (when the option is set) and ``head`` (the logits).
    ``view`` checks the input shape as the zoo model does. A transformer's call (of depth
    1 or more; at depth 0 no node takes it, as no block of the zoo model does) takes the
    zoo model's ``mask`` (see `phosjax.models.Frame`; ``view`` refuses one of the input's
    tokens, not the stem's, as the zoo model does): ``view`` reads the padded tokens
    as zeros, its attention nodes attend the real tokens only and ``features`` pools
    them. The nodes take it as given, so an image's is one of its pixels as the sequence
    the twin views, ``(batch, height * width)`` (the zoo model also takes ``(batch,
    height, width)``: ``mask.reshape(batch, -1)`` gives the twin's). For code that
    expects the logits alone (the training engine, `phosjax.morph`), use
    ``graph_model(config).clone(returns="head")``.

    Raises:
      ValueError: the model is not registered (the nearest names given), has no graph
        version (the ones that have are listed), or ``config`` sets an option the twin
        does not support (named).
      TypeError: ``config`` is no `ModelConfig` (a model's name alone), naming what to pass.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> config = ModelConfig("resnet", num_classes=10, input_shape=(40,))
      >>> graph = graph_model(config)
      >>> graph.shapes(jnp.ones((2, 40)))["blocks_1/add"].shape
      (2, 20, 32)
    """
    spec_of_name = model_spec(checked_config(config, "graph_model").name)  # a known model
    if config.name not in _BUILDERS:
        raise ValueError(
            f"model {config.name!r} has no graph version; these have: {sorted(_BUILDERS)}."
        )
    resolved = spec_of_name.resolve(config)
    _check_options(resolved)
    options = dict(resolved.options)
    kinds = spec_of_name.input_kinds or ()
    kind = choose_kind(config.input_shape, kinds, options["input_kind"], config.name)
    spatial = len(config.input_shape) - 1 if kind == "image" else 1
    blocks, last = _BUILDERS[config.name](resolved, spatial)

    view = _View(config.name, config.input_shape, kind)
    # The attention nodes take the zoo's mask; with none (depth 0), or in a ResNet, it is
    # refused, as the zoo's Frame refuses a keyword that none of its blocks takes.
    masked = config.name == "transformer" and bool(resolved.depth)
    spec: Spec = {
        "view": _ViewPadded(view, blocks["stem"]) if masked else view,
        **blocks,
        "features": node((_PoolReal if masked else _Pool)(options["pool"]), last),
    }
    if options["dropout"]:
        spec["dropout"] = Dropout(options["dropout"])
    spec["head"] = nn.Dense(config.num_classes, param_dtype=options.get("param_dtype", jnp.float32))
    return GraphModel(spec)
