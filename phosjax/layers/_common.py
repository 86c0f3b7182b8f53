"""Helpers shared by the layer families: calling inner blocks, checking the blocks,
attributes and inputs they are given, and choosing dtypes (a knob's range is checked by
`phosjax.core.knob` itself, from its ``valid``)."""

import dataclasses
import functools
import inspect
import math
import numbers
import weakref
from typing import Any, ClassVar, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, callable_name, cut_repr
from phosjax._nearest import one_edit_apart
from phosjax.core._module_check import refuse_module_class
from phosjax.core._numbers import concrete_number

TRAIN_FLAGS = ("train", "training", "is_training", "deterministic", "use_running_average")
"""The call parameters that take the train flag: ``train``, ``training`` and
``is_training`` as is, Flax's ``deterministic`` (`flax.linen.Dropout`) and
``use_running_average`` (`flax.linen.BatchNorm`) as ``not train`` (`EVAL_FLAGS`)."""

EVAL_FLAGS = ("deterministic", "use_running_average")
"""The train flags that are true in evaluation."""


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
"""The kinds of parameter that can be passed positionally."""


def _parameters(call: Any, inputs: int) -> list[inspect.Parameter]:
    """The parameters of ``call`` after the ``inputs`` positional ones it is given; none
    when ``call`` has no signature (some builtins)."""
    try:
        parameters = list(inspect.signature(call).parameters.values())
    except (TypeError, ValueError):
        return []
    taken = 0
    while taken < min(inputs, len(parameters)) and parameters[taken].kind in _POSITIONAL:
        taken += 1
    return parameters[taken:]


def _find_train_parameter(
    call: Any, inputs: int, keywords: frozenset[str] = frozenset()
) -> tuple[str, bool] | None:
    """The parameter of ``call`` that takes the train flag when ``call`` gets ``inputs``
    positional arguments (``self`` counted) and the named ``keywords``, and whether it
    can be passed positionally (it comes right after the inputs); None when there is none.

    ``*args``/``**kwargs`` do not count: ``nn.Sequential`` would forward the flag to a layer
    that does not take it.

    Raises:
      TypeError: ``call`` takes several train flags, or requires a parameter that is none.
    """
    parameters = _parameters(call, inputs)
    flags = [p.name for p in parameters if p.name in TRAIN_FLAGS]
    name = callable_name(call, "__qualname__")
    if len(flags) > 1:
        raise TypeError(
            f"{name} takes both {flags[0]!r} and {flags[1]!r}; a block called "
            f"with the train flag must take one of {TRAIN_FLAGS}."
        )
    required = [
        p.name
        for p in parameters
        if p.name not in TRAIN_FLAGS
        and p.name not in keywords
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise TypeError(
            f"{name} requires the parameter {required[0]!r}, which phosjax cannot "
            f"pass: a block is called with its input(s), at most one of {TRAIN_FLAGS} and the "
            f"keywords its container is called with (rename a train flag to `train`, give "
            f"{required[0]!r} a default, or, in a phosjax container, pass it to its call)."
        )
    if not flags:
        return None
    first = parameters[0]
    return flags[0], first.name == flags[0] and first.kind in _POSITIONAL


_train_parameter = functools.lru_cache(maxsize=256)(_find_train_parameter)
"""`_find_train_parameter` cached, for module classes' ``__call__``."""


def _train_flag(
    block: Any, train: bool, inputs: int, keywords: frozenset[str]
) -> tuple[str, bool, bool] | None:
    """The flag to pass ``block`` in mode ``train``: its parameter's name, its value and
    whether it can go positionally; None when none is to be passed (see `train_args`)."""
    if isinstance(block, nn.Module):
        found = _train_parameter(type(block).__call__, 1 + inputs, keywords)
    else:  # functions need not be hashable, so no cache
        found = _find_train_parameter(block, inputs, keywords)
    if found is None:
        return None
    name, positional = found
    if name not in EVAL_FLAGS:
        return name, train, positional
    if getattr(block, name, None) is not None:  # fixed by the constructor (Flax merge_param)
        return None
    if isinstance(train, jax.core.Tracer):  # `not train` would read it as a Python bool
        raise _traced(f"{getattr(block, '__name__', type(block).__name__)}'s {name} (not train)")
    return name, not train, positional


def train_args(
    block: Any, train: bool, inputs: int = 1, keywords: frozenset[str] = frozenset()
) -> tuple[tuple[bool, ...], dict[str, bool]]:
    """The argument that tells ``block`` (a module or a function) the mode, as
    ``(args, kwargs)``.

    ``train`` for a block whose call names ``train`` (or ``training``, ``is_training``);
    ``not train`` for one that names ``deterministic`` or ``use_running_average`` (Flax's
    `Dropout`, `BatchNorm`), unless its constructor already set them; nothing for any
    other block. Positional when the parameter comes right after the ``inputs``
    positional inputs, so lifted blocks (``nn.remat``, ``nn.jit``) can mark it static with
    ``static_argnums``; by keyword otherwise.

    ``keywords`` are the other parameters the block will be given by name (a container's
    keywords, see `call_block`), which it may require.

    Raises:
      TypeError: the block takes several of these flags, or requires another parameter.

    Examples:
      >>> train_args(lambda x, train=False: x, True), train_args(lambda x, *, train: x, True)
      (((True,), {}), ((), {'train': True}))
      >>> import flax.linen as nn
      >>> train_args(nn.Dropout(0.5), True), train_args(nn.Dropout(0.5, deterministic=True), True)
      (((False,), {}), ((), {}))
      >>> train_args(lambda a, b, *, is_training=False: a, True, inputs=2)
      ((), {'is_training': True})
    """
    flag = _train_flag(block, train, inputs, keywords)
    if flag is None:
        return (), {}
    name, value, positional = flag
    return ((value,), {}) if positional else ((), {name: value})


def batch_train(train: bool, batch: Any) -> bool:
    """``train``, unless ``batch`` (an array or a tree of them) holds no example (a
    leading axis of size 0, known at trace time): training on none must change nothing,
    so the blocks run as in evaluation (a `flax.linen.BatchNorm` would average its
    running statistics over no example, NaN for good).

    Examples:
      >>> import numpy as np
      >>> batch_train(True, np.ones((2, 3))), batch_train(True, {"x": np.ones((0, 3))})
      (True, False)
    """
    empty = any(jnp.shape(leaf)[:1] == (0,) for leaf in jax.tree.leaves(batch))
    return False if empty else train


_OTHER_MASKS = ("flax.linen.normalization",)
"""The modules of Flax layers whose call's ``mask`` means something else than a
container's (the real tokens): `flax.linen.LayerNorm`'s, `flax.linen.BatchNorm`'s...
select the elements their statistics count, of the input's full shape (a subclass that
keeps their call too)."""

_PAIR_MASKS = ("flax.linen.attention",)
"""The modules of Flax layers whose call's ``mask`` is of query-key pairs ``(..., H, Lq,
Lk)``: `flax.linen.MultiHeadDotProductAttention`'s, `flax.linen.SelfAttention`'s."""

_FIRST_LAYER_KEYWORDS = ("flax.linen.combinators",)
"""The modules of Flax layers whose call passes its keywords to its first layer alone:
`flax.linen.Sequential`'s."""


def _call_module(block: Any) -> str | None:
    """The module ``block``'s call is defined in, when it is a Flax module: a subclass
    that keeps its parent's call (or a lifted one, ``nn.remat(nn.LayerNorm)``) reads its
    arguments as the parent does, one that overrides it as its own module says.

    Examples:
      >>> _call_module(nn.remat(nn.LayerNorm)()), _call_module(abs)
      ('flax.linen.normalization', None)
    """
    return type(block).__call__.__module__ if isinstance(block, nn.Module) else None


def takes_keyword(block: Any, name: str) -> bool:
    """Whether ``block`` (a module or a function) can be called with the keyword ``name``
    after its input: its call names it, or takes ``**kwargs``; not ``mask`` for Flax's
    normalization layers, whose ``mask`` (the elements their statistics count) is not a
    container's (the real tokens); `flax.linen.Sequential` when its first layer does (it
    passes its keywords to that one alone; a subclass overriding its call, as that call
    says). A module with a ``takes_keyword(name)`` method (a
    `phosjax.models.graph.GraphModel`, which passes its call's keywords on to its nodes)
    says itself.

    Examples:
      >>> from phosjax.layers import TransformerBlock
      >>> takes_keyword(TransformerBlock(2), "mask"), takes_keyword(nn.Dense(2), "mask")
      (True, False)
      >>> takes_keyword(lambda x, **options: x, "mask"), takes_keyword(nn.LayerNorm(), "mask")
      (True, False)
    """
    if not isinstance(block, nn.Module):  # functions need not be hashable, so no cache
        return _call_takes(block, 1, name)
    if name == "mask" and _call_module(block) in _OTHER_MASKS:
        return False
    if _call_module(block) in _FIRST_LAYER_KEYWORDS:  # a subclass's own call says itself
        return bool(block.layers) and takes_keyword(block.layers[0], name)
    if callable(getattr(block, "takes_keyword", None)):
        return bool(block.takes_keyword(name))
    return _call_takes_cached(type(block).__call__, 2, name)


def _call_takes(call: Any, inputs: int, name: str) -> bool:
    """Whether ``call``, given ``inputs`` positional arguments, takes the keyword ``name``
    (names it, or takes ``**kwargs``)."""
    return any(
        p.kind == p.VAR_KEYWORD
        or (p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        for p in _parameters(call, inputs)
    )


_call_takes_cached = functools.lru_cache(maxsize=256)(_call_takes)
"""`_call_takes` cached, for module classes' ``__call__`` (a container asks on every call)."""


class PassesKeywords:
    """A container whose call passes its extra keywords on to the blocks that take them
    (`call_block`): it says it takes a keyword only when one of its blocks (the attribute
    named ``blocks_field``) does, so a container inside another is given only those.

    Examples:
      >>> from phosjax.layers import Sequence, TransformerBlock
      >>> takes_keyword(Sequence([nn.Dense(2)]), "mask")
      False
      >>> takes_keyword(Sequence([Sequence([TransformerBlock(2)])]), "mask")
      True
    """

    blocks_field: ClassVar[str]

    def takes_keyword(self, name: str) -> bool:
        """Whether one of its blocks takes the call keyword ``name``."""
        return any(takes_keyword(block, name) for block in _contained(self))


def _contained(container: PassesKeywords) -> list[Any]:
    """``container``'s blocks (its attribute named ``blocks_field``), as a list."""
    blocks = getattr(container, container.blocks_field)
    return list(blocks) if isinstance(blocks, list | tuple) else [blocks]


def check_keywords(module: nn.Module, blocks: Any, keywords: dict[str, Any]) -> None:
    """Raises a TypeError when one of the ``keywords`` that ``module`` (a container) was
    called with is taken by none of its ``blocks`` (a block or a list of them), so a
    misspelled one does not go unused.

    Examples:
      >>> import flax.linen as nn
      >>> from phosjax.layers import Residual
      >>> check_keywords(Residual(nn.Dense(2)), nn.Dense(2), {"mask": None})
      Traceback (most recent call last):
      ...
      TypeError: Residual was called with the keyword 'mask', which none of its blocks takes ...
    """
    blocks = blocks if isinstance(blocks, list | tuple) else [blocks]
    for name in keywords:
        if not any(takes_keyword(block, name) for block in blocks):
            kinds = ", ".join(callable_name(b, "__qualname__") for b in blocks)
            kinds = kinds or "it has none"
            sequentials = [_first_layer_why(b) for b in blocks if _first_layer(b) is not b]
            firsts = [_first_layer(b) for b in blocks]
            norms = [type(b).__name__ for b in firsts if _call_module(b) in _OTHER_MASKS]
            why = "".join(f"; {said}" for said in sequentials) + (
                f"; {', '.join(norms)}'s own mask selects the elements its statistics count, "
                "of the input's full shape, not the real tokens: call it yourself to give one"
                if name == "mask" and norms
                else ""
            )
            taken = {k for b in blocks for k in _keywords_named(b) if takes_keyword(b, k)}
            own = _call_keywords(type(module).__call__, 2)  # 'train', misspelt, is meant too
            near = sorted(k for k in taken.union(own) - {name} if one_edit_apart(name, k))
            meant = f". Did you mean {' or '.join(map(repr, near))}?" if near else "."
            raise TypeError(
                f"{type(module).__name__} was called with the keyword {name!r}, which none of "
                f"its blocks takes ({kinds}); pass it to a container only when one of its "
                f"blocks' calls names it (or takes **kwargs){why}{meant}"
            )


def _keywords_named(block: Any) -> list[str]:
    """The keywords that ``block``'s call names after its input, the train flags left out
    (a container's: those its blocks' calls name), for a "did you mean" of a misspelt one.

    Examples:
      >>> from phosjax.layers import Sequence, TransformerBlock
      >>> _keywords_named(TransformerBlock(2)), _keywords_named(Sequence([TransformerBlock(2)]))
      (['mask'], ['mask'])
    """
    if isinstance(block, PassesKeywords):
        return [name for inner in _contained(block) for name in _keywords_named(inner)]
    first = _first_layer(block)
    call, inputs = (type(first).__call__, 2) if isinstance(first, nn.Module) else (first, 1)
    return [name for name in _call_keywords(call, inputs) if name not in TRAIN_FLAGS]


def _call_keywords(call: Any, inputs: int) -> list[str]:
    """The keywords that ``call`` names after its ``inputs`` positional arguments."""
    return [
        p.name
        for p in _parameters(call, inputs)
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _first_layer(block: Any) -> Any:
    """The layer a `flax.linen.Sequential` (one keeping Flax's call; nested ones too)
    passes its call's keywords to, its first; ``block`` itself for any other block or an
    empty Sequential.

    Examples:
      >>> _first_layer(nn.Sequential([nn.Sequential([nn.LayerNorm(), nn.relu])]))
      LayerNorm(...)
      >>> _first_layer(nn.Dense(2)).features
      2
    """
    while _call_module(block) in _FIRST_LAYER_KEYWORDS and block.layers:
        block = block.layers[0]
    return block


def _first_layer_why(block: Any) -> str:
    """Why a `flax.linen.Sequential`, whose call takes ``**kwargs``, takes no keyword its
    first layer does not: it passes them to that layer alone."""
    first = callable_name(_first_layer(block), "__qualname__")
    return f"{type(block).__name__} passes its keywords to its first layer alone, {first}"


def block_keywords(block: Any, x: Any, keywords: dict[str, Any]) -> dict[str, Any]:
    """Those of ``keywords`` (a container's extra call arguments) that ``block`` takes
    (see `takes_keyword`), as it reads them: Flax's attention layers
    (`flax.linen.MultiHeadDotProductAttention`, `flax.linen.SelfAttention`) read a
    ``mask`` as query-key pairs ``(..., H, Lq, Lk)``, so a padding mask of ``x``'s tokens
    (``(..., L)``, true: a real token) reaches them as ``(..., 1, 1, L)``, the keys every
    query may attend (as `phosjax.layers.MultiHeadSelfAttention` reads one); a subclass
    that overrides their call reads its ``mask`` as its own call says, so gets it as given.

    Examples:
      >>> x, real = jnp.ones((2, 3, 4)), jnp.array([[1, 1, 0], [1, 0, 0]])
      >>> block_keywords(nn.MultiHeadDotProductAttention(2), x, {"mask": real})["mask"].shape
      (2, 1, 1, 3)
      >>> block_keywords(nn.Dense(2), x, {"mask": real})
      {}
    """
    taken = {name: value for name, value in keywords.items() if takes_keyword(block, name)}
    mask = taken.get("mask")
    if mask is not None and _call_module(_first_layer(block)) in _PAIR_MASKS:
        tokens = jnp.shape(x)[:-1]
        if broadcasts_to(jnp.shape(mask), tokens) and len(tokens) >= 1:
            taken["mask"] = jnp.asarray(mask).astype(bool)[..., None, None, :]
    return taken


def call_block(block: nn.Module, x: jax.Array, train: bool, **keywords: Any) -> Any:
    """Calls ``block`` on ``x``, passing the train flag the way its ``__call__`` takes it
    (see `train_args`): positionally when it is the parameter after ``x``; and those of
    the ``keywords`` (a container's extra call arguments, such as an attention ``mask``)
    that its call takes, by keyword, as it reads them (see `block_keywords`). On an empty
    batch it runs as in evaluation (see `batch_train`).

    A block lifted with ``nn.remat`` (or ``nn.jit``) must declare the flag static, as
    ``nn.remat(Block, static_argnums=(2,))`` (``self``, ``x``, ``train``); otherwise it is
    traced and Python branches on it fail.

    Raises:
      TypeError: the block takes several train flags, or requires another parameter.

    Examples:
      >>> class Noisy:  # takes the flag the way flax.linen.Dropout does
      ...     def __call__(self, x, deterministic=None):
      ...         return x if deterministic else x + 1
      >>> [call_block(Noisy(), 0, train) for train in (True, False)]
      [1, 0]
      >>> call_block(lambda x, mask=1: x * mask, 3, True, mask=2, ignored=0)
      6
    """
    taken = block_keywords(block, x, keywords)
    train = batch_train(train, x)  # an empty batch leaves a BatchNorm's statistics as they are
    args, kwargs = train_args(block, train, keywords=frozenset(taken))
    return block(x, *args, **kwargs, **taken)


def check_block(block: Any, what: str, *, functions: bool = True) -> None:
    """Raises a TypeError when ``block`` (``what``, e.g. ``"Choice's branch 1"``) is no
    Flax module, nor a function when ``functions`` are allowed; a module class (a
    callable whose call builds a module) too.

    Examples:
      >>> check_block(abs, "Choice's branch 0")
      >>> check_block(3, "Choice's branch 1")
      Traceback (most recent call last):
      ...
      TypeError: Choice's branch 1 must be a Flax module or a function of the input, got 3 (an int).
    """
    refuse_module_class(block, what)
    if isinstance(block, nn.Module) or (functions and callable(block)):
        return
    expected = "a Flax module or a function of the input"
    expected = expected if functions else "a Flax module (wrap a function in one)"
    raise TypeError(f"{what} must be {expected}, got {cut_repr(block)} ({a_type(block)}).")


def check_blocks(module: nn.Module, name: str, one: str, *, functions: bool = True) -> None:
    """Raises a TypeError when ``module``'s attribute ``name`` is no list or tuple of
    blocks, naming a wrong one as ``one`` with its index (see `check_block`).

    Examples:
      >>> class Choice:
      ...     branches = [abs, 3]
      >>> check_blocks(Choice(), "branches", "branch")
      Traceback (most recent call last):
      ...
      TypeError: Choice's branch 1 must be a Flax module or a function of the input, got 3 (an int).
    """
    blocks, owner = getattr(module, name), type(module).__name__
    if not isinstance(blocks, list | tuple):
        raise TypeError(
            f"{owner} {name} must be a list or tuple of blocks, got {returned(blocks)}."
        )
    for i, block in enumerate(blocks):
        check_block(block, f"{owner}'s {one} {i}", functions=functions)


def broadcasts_to(shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` (a mask) has ``full``'s axes, each of its size or 1.

    Examples:
      >>> broadcasts_to((1, 5), (2, 5)), broadcasts_to((5,), (2, 5)), broadcasts_to((2, 4), (2, 5))
      (True, False, False)
    """
    return len(shape) == len(full) and all(
        size in (1, whole) for size, whole in zip(shape, full, strict=True)
    )


def pair_tokens(pairs: jax.Array) -> jax.Array:
    """The real tokens ``(..., L)`` of a per-pair attention mask ``pairs`` ``(..., H, L,
    L)`` (true or nonzero: the query, second to last axis, may attend the key; axes of
    size 1 broadcasting): with a query axis of size 1 (a mask of the keys), those some
    query may attend, in some head; else those that attend or are attended (a token that
    only attends is a real query: the padding neither attends nor is attended).

    Examples:
      >>> pair_tokens(jnp.array([[[1, 0, 0], [1, 1, 0], [0, 0, 0]]])).tolist()
      [True, True, False]
      >>> pair_tokens(jnp.tril(jnp.ones((1, 3, 3)), -1)).tolist()  # strictly causal
      [True, True, True]
    """
    pairs = jnp.asarray(pairs) != 0
    attended = pairs.any((-3, -2))
    return attended if pairs.shape[-2] == 1 else attended | pairs.any((-3, -1))


def fits_pairs(shape: tuple[int, ...], tokens: tuple[int, ...]) -> bool:
    """Whether a mask of ``shape`` is a per-pair attention mask ``(B, H, L, L)`` of a
    sequence's ``tokens`` ``(B, L)`` (axes of size 1 broadcasting, any ``H``).

    Examples:
      >>> fits_pairs((2, 4, 5, 5), (2, 5)), fits_pairs((1, 1, 1, 5), (2, 5))  # keys alone
      (True, True)
      >>> fits_pairs((2, 1, 5, 5), (2, 4)), fits_pairs((2, 5), (2, 5))  # a padding mask
      (False, False)
    """
    return (
        len(tokens) == 2
        and len(shape) == 4
        and broadcasts_to(shape, (tokens[0], shape[1], tokens[1], tokens[1]))
    )


def fits_tokens(shape: tuple[int, ...], tokens: tuple[int, ...]) -> bool:
    """Whether a mask of ``shape`` is a padding mask of ``tokens`` (axes of size 1
    broadcasting) or a per-pair attention mask of them (`fits_pairs`).

    Examples:
      >>> fits_tokens((1, 5), (2, 5)), fits_tokens((2, 1, 5, 5), (2, 5))  # padding, per pair
      (True, True)
      >>> fits_tokens((2, 4), (2, 5))
      False
    """
    return broadcasts_to(shape, tokens) or fits_pairs(shape, tokens)


def check_mask_dtype(owner: str, mask: jax.Array, attend: bool = False) -> None:
    """Raises a TypeError when ``mask``, ``owner``'s call ``mask`` (of keys to ``attend``,
    else of real tokens), holds floats: an additive mask (0: keep, ``-inf``: not) would read
    the other way round, and under ``jit`` its values cannot be seen, so its dtype decides.

    Examples:
      >>> check_mask_dtype("ActivityL1", jnp.array([True, False]))
      >>> check_mask_dtype("ActivityL1", jnp.array([0.0, -jnp.inf]))
      Traceback (most recent call last):
      ...
      TypeError: ActivityL1 mask must be booleans (or integers; nonzero: a real token), got a
      float32 one, which may be an additive mask (0: a real token, -inf: not) and would read
      the other way round: pass mask == 0 for an additive mask, mask != 0 for one of 0 and 1.
    """
    if not jnp.issubdtype(mask.dtype, jnp.floating):
        return
    kept = _kept(attend)
    maker = " (make_attention_mask(..., dtype=bool) makes one)" if attend else ""
    raise TypeError(
        f"{owner} mask must be booleans (or integers; nonzero: {kept}), got a {mask.dtype} "
        f"one, which may be an additive mask (0: {kept}, -inf: not) and would read the other "
        f"way round: pass mask == 0 for an additive mask, mask != 0 for one of 0 and 1{maker}."
    )


def _kept(attend: bool) -> str:
    """What a nonzero entry of a mask means: of keys to ``attend``, else of real tokens."""
    return "attend" if attend else "a real token"


def mask_array(owner: str, mask: Any, attend: bool = False) -> jax.Array:
    """``mask``, ``owner``'s call ``mask`` (of keys to ``attend``, else of real tokens), as
    an array.

    Raises:
      TypeError: it holds no numbers (a str), naming ``owner`` and what a mask holds.

    Examples:
      >>> mask_array("ActivityL1", [True, False]).tolist()
      [True, False]
      >>> mask_array("ActivityL1", "real")
      Traceback (most recent call last):
      ...
      TypeError: ActivityL1 mask must be booleans (or integers; nonzero: a real token), got
      'real' (a str).
    """
    try:
        return jnp.asarray(mask)
    except (TypeError, ValueError):  # JAX's names no layer: "Value 'real' with dtype <U4..."
        raise TypeError(
            f"{owner} mask must be booleans (or integers; nonzero: {_kept(attend)}), got "
            f"{cut_repr(mask)} ({a_type(mask)})."
        ) from None


def real_tokens(
    module: Any, mask: Any, tokens: tuple[int, ...], pairs: bool = False
) -> jax.Array | None:
    """``module``'s (a module, or its name) call ``mask`` (true or nonzero: a real token)
    as float32 weights of the ``tokens`` (the input's shape but its features), one per
    token; None when ``mask`` is None. With ``pairs``, ``mask`` may instead be a per-pair
    attention mask of a sequence's tokens ``(B, L)``, ``(B, H, L, L)`` (one a container
    passes along for its attention), its tokens read as attention reads them
    (`pair_tokens`).

    Raises:
      ValueError: ``mask`` does not broadcast to ``tokens`` (both shapes named).
      TypeError: ``mask`` holds floats (`check_mask_dtype`), or no numbers (`mask_array`).

    Examples:
      >>> real_tokens(nn.Dense(2), jnp.array([[1, 1, 0]]), (2, 3)).tolist()
      [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
      >>> real_tokens("ActivityL1", jnp.ones((2, 1, 3, 3), bool), (2, 3), pairs=True).tolist()
      [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if mask is None:
        return None
    owner = _owner_name(module)
    mask = mask_array(owner, mask)
    per_pair = pairs and fits_pairs(mask.shape, tokens)
    if not (per_pair or broadcasts_to(mask.shape, tokens)):
        pair = ""
        if pairs and len(tokens) == 2:
            pair = f" or per attention pair ({tokens[0]}, H, {tokens[1]}, {tokens[1]})"
        raise ValueError(
            f"{owner} mask must have the shape of the tokens {tokens} (the "
            f"input's but its features; true: a real token){pair}, axes of size 1 "
            f"broadcasting, but got {mask.shape}."
        )
    check_mask_dtype(owner, mask)
    mask = pair_tokens(mask) if per_pair else mask
    return jnp.broadcast_to(mask.astype(bool), tokens).astype(jnp.float32)


def _owner_name(module: Any) -> str:
    """``module``'s class name, as a mask's errors name it; a str as it is."""
    return module if isinstance(module, str) else type(module).__name__


def zero_padding(x: jax.Array, real: jax.Array | None) -> jax.Array:
    """``x`` ``(..., C)`` with the tokens that ``real`` (weights or booleans, ``x``'s shape
    but its features; nonzero: a real token) leaves out set to 0; ``x`` itself when
    ``real`` is None. A layer given a padding mask computes on this, so what padded tokens
    hold (an infinity, a NaN) reaches neither its outputs nor its gradients (a NaN times a
    zero cotangent is still a NaN).

    Examples:
      >>> x = jnp.array([[[1.0], [jnp.nan]]])
      >>> zero_padding(x, jnp.array([[1.0, 0.0]])).tolist()
      [[[1.0], [0.0]]]
      >>> jax.grad(lambda x: zero_padding(x, jnp.array([[1.0, 0.0]])).sum())(x).tolist()
      [[[1.0], [0.0]]]
    """
    if real is None:
        return x
    return jnp.where(jnp.asarray(real)[..., None] > 0, x, jnp.zeros((), x.dtype))


def zero_mask_padding(module: Any, x: jax.Array, keywords: dict[str, Any]) -> jax.Array:
    """``x`` as a container (``module``) called with ``keywords`` passes it on: with the
    tokens its ``mask`` keyword leaves out read as zeros (`zero_padding`) when that is a
    padding mask of them (``x``'s shape but its features, axes of size 1 broadcasting;
    true: a real token) or an attention mask of a sequence's ``(B, H, L, L)``, its
    padding as attention reads it (`pair_tokens`), so what they hold reaches no block
    that does not take the mask (a ``Dense`` before the attention), nor the container's
    own sums and gates; ``x`` as it is otherwise (no mask, another one).

    Raises:
      TypeError: the ``mask`` holds no numbers (a str: `mask_array`), naming ``module``.

    Examples:
      >>> x = jnp.array([[[1.0], [jnp.nan]]])
      >>> zero_mask_padding("Sequence", x, {"mask": jnp.array([[True, False]])}).tolist()
      [[[1.0], [0.0]]]
      >>> keys = jnp.array([[True, False]])[:, None, None, :]  # (B, 1, 1, L)
      >>> zero_mask_padding("Sequence", x, {"mask": keys}).tolist()
      [[[1.0], [0.0]]]
      >>> zero_mask_padding("Sequence", x, {}) is x
      True
    """
    mask, tokens = keywords.get("mask"), jnp.shape(x)[:-1]
    if mask is None or not tokens:
        return x
    mask = mask_array(_owner_name(module), mask)  # a str: named, not passed on
    if not fits_tokens(mask.shape, tokens):
        return x
    return zero_padding(x, real_tokens(module, mask, tokens, pairs=True))


def token_mean(values: jax.Array, real: jax.Array | None, kept: int = 0) -> jax.Array:
    """The mean of ``values`` ``(..., E)`` over the tokens, every axis but the first
    ``kept`` and the last: over the ``real`` ones (weights, ``values``' shape but its
    last axis) when given, zeros when there are none (or no tokens at all: an empty
    batch). The others do not count whatever they hold (an infinity, a NaN). Values
    and weights of low precision are summed in float32, as ``jnp.mean`` sums them.

    Examples:
      >>> values = jnp.array([[[1.0], [3.0], [8.0]]])  # one example, 3 tokens
      >>> token_mean(values, None, kept=1).tolist()
      [[4.0]]
      >>> token_mean(values, jnp.array([[1.0, 1, 0]])).tolist()  # the 3rd token padded
      [2.0]
      >>> token_mean(values.at[0, 2].set(jnp.inf), jnp.array([[1.0, 1, 0]])).tolist()
      [2.0]
      >>> token_mean(jnp.ones((0, 3)), None).tolist()  # no token: not NaN
      [0.0, 0.0, 0.0]
    """
    flat = values.reshape(*values.shape[:kept], math.prod(values.shape[kept:-1]), values.shape[-1])
    if real is None:
        mean = flat.mean(kept)
        return mean if flat.shape[kept] else jnp.zeros_like(mean)
    weights = real.reshape(*real.shape[:kept], math.prod(real.shape[kept:]), 1)
    weighted = jnp.where(weights > 0, flat * weights, 0)  # no 0 * inf
    summed = at_least_float32(weighted.dtype)  # as jnp.mean sums low precision values
    count = jnp.maximum(weights.sum(kept, dtype=summed), 1)
    return (weighted.sum(kept, dtype=summed) / count).astype(weighted.dtype)


def returned(y: Any) -> str:
    """What a block returned, for an error: its shape, or its type if it is no array.

    Examples:
      >>> returned(jnp.ones((2, 3))), returned((jnp.ones(2), jnp.ones(2)))
      ('(2, 3)', 'a tuple')
    """
    shape = getattr(y, "shape", None)
    return a_type(y) if shape is None else str(shape)


def apply_as_out(module: nn.Module, project: nn.Module, x: jax.Array) -> jax.Array:
    """``project`` (unbound, ``parent=None``) applied to ``x`` with ``module``'s params
    ``out``: made as its submodule ``"out"`` at init; afterwards applied to those params
    with no submodule made, since a graph model tags the output of a node holding
    ``module`` at ``<node>/out`` and Flax gives a name to one thing only."""
    if not module.has_variable("params", "out"):
        return cast(jax.Array, project.clone(parent=module, name="out")(x))
    kept: dict[str, Any] = {"params": module.get_variable("params", "out")}
    return cast(jax.Array, project.apply(kept, x))


def input_width(module: nn.Module, x: jax.Array, layout: str = "..., C") -> int:
    """The width of ``x``'s last axis (its features), for ``module`` that takes inputs laid
    out as ``layout``.

    Raises:
      ValueError: naming the layer, the layout and the shape when ``x`` has fewer axes
        than ``layout`` names (a scalar for ``"..., C"``), or another number of them
        when ``layout`` has no ``...`` (an image for ``"batch, length, channels"``).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> input_width(nn.Dense(3), jnp.ones((2, 5))), input_width(nn.Dense(3), jnp.ones(4))
      (5, 4)
      >>> input_width(nn.Dense(3), jnp.ones((2, 8, 8, 1)), "batch, length, channels")
      Traceback (most recent call last):
      ValueError: Dense needs inputs (batch, length, channels), got shape (2, 8, 8, 1).
    """
    axes = layout.split(", ")
    named = len([axis for axis in axes if axis != "..."])
    if x.ndim < named or ("..." not in axes and x.ndim != named):
        raise ValueError(f"{type(module).__name__} needs inputs ({layout}), got shape {x.shape}.")
    return int(x.shape[-1])


def check_shape(y: Any, expected: tuple[int, ...], what: str) -> None:
    """Raises a ValueError when ``y`` (the output of ``what``) is not an array of shape
    ``expected``.

    ``what`` says whose output it is and which shape it must have, e.g. ``"GatedSkip's
    block must keep the input shape"``.
    """
    if getattr(y, "shape", None) != expected:
        raise ValueError(f"{what} {expected}, but returned {returned(y)}.")


def checked_size(module: nn.Module, name: str, default: int | None = None) -> int:
    """``module``'s size attribute ``name`` (a width, a head count), or ``default`` when it
    is ``None``.

    Raises:
      ValueError: naming the attribute when it is no int >= 1 (a width of 0 read as
        ``width or default`` would silently be the default).
    """
    size = concrete_number(getattr(module, name))
    size = default if size is None else size
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
        owner = type(module).__name__
        raise ValueError(f"{owner} {name} must be an int >= 1, got {cut_repr(size)}")
    return int(size)


def checked_rate(module: nn.Module, name: str) -> float:
    """``module``'s rate attribute ``name`` (a dropout rate).

    Raises:
      ValueError: naming the attribute when it is no number in ``[0, 1)`` (Flax's
        `Dropout` takes a rate of 1 or more, or a negative one, without a word).
    """
    rate = concrete_number(getattr(module, name))
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= float(rate) < 1:
        owner = type(module).__name__
        raise ValueError(f"{owner} {name} must be a number in [0, 1), got {cut_repr(rate)}")
    return float(rate)


def checked_finite(module: nn.Module, name: str, shape: tuple[int, ...] = ()) -> Any:
    """``module``'s attribute ``name``, the initial value of a parameter of ``shape``: a
    number (or an array of them that broadcasts to ``shape``, as Flax's ``constant``
    initializer broadcasts it).

    Raises:
      ValueError: naming the attribute when it is no number nor numeric array, holds
        a NaN or an infinity (which would make the output NaN, or a gate stuck), or does
        not broadcast to ``shape`` (both shapes named). A traced value (the attribute set
        under a transform) is checked for its shape alone.

    Examples:
      >>> from phosjax.layers import LayerScale
      >>> checked_finite(LayerScale(jnp.ones(3)), "init_value", (3,)).shape
      (3,)
      >>> checked_finite(LayerScale(jnp.ones(2)), "init_value", (3,))
      Traceback (most recent call last):
      ValueError: LayerScale init_value must be a number or an array that broadcasts to the
      shape (3,) of the parameter it initializes, got one of shape (2,).
    """
    value, owner = getattr(module, name), type(module).__name__
    if not isinstance(value, jax.core.Tracer):
        numeric = isinstance(value, numbers.Real | np.ndarray | jax.Array) and jnp.issubdtype(
            np.asarray(value).dtype, jnp.number
        )
        if not numeric or not np.isfinite(np.asarray(value, float)).all():
            raise ValueError(f"{owner} {name} must be a finite number, got {cut_repr(value)}")
    try:
        fits = np.broadcast_shapes(np.shape(value), shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{owner} {name} must be a number or an array that broadcasts to the shape "
            f"{tuple(shape)} of the parameter it initializes, got one of shape {np.shape(value)}."
        )
    return value


def orthogonal(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """`flax.linen.initializers.orthogonal` drawn in at least float32 and cast to ``dtype``
    (its QR does not take bfloat16), for layers whose ``param_dtype`` may be bfloat16; a
    float64 one is drawn in float64, orthogonal to its own precision.

    Examples:
      >>> orthogonal(jax.random.key(0), (3, 3), jnp.bfloat16).dtype
      dtype(bfloat16)
    """
    drawn = at_least_float32(dtype)
    return nn.initializers.orthogonal()(key, shape, drawn).astype(dtype)


def layer_norm(**fields: Any) -> nn.LayerNorm:
    """`flax.linen.LayerNorm` with ``fields``, its variance the mean of the squared
    deviations from the mean: Flax's default, the mean square less the squared mean,
    cancels in float32 where a token's features share an offset large next to their
    spread (``x + 1000``: outputs off by about 1; ``x + 3000``: a variance of 0).

    Examples:
      >>> x = jnp.array([[3000.0, 3001.0]]); norm = layer_norm()
      >>> norm.apply(norm.init(jax.random.key(0), x), x).round(3).tolist()
      [[-1.0, 1.0]]
    """
    return nn.LayerNorm(use_fast_variance=False, **fields)


def batch_norm(**fields: Any) -> nn.BatchNorm:
    """`flax.linen.BatchNorm` with ``fields``, its batch variance from the deviations as
    `layer_norm`'s (Flax's default cancels in float32 where a channel's values share an
    offset large next to their spread: ``x + 3000`` gave outputs off by hundreds).

    Examples:
      >>> x = jnp.array([[3000.0], [3001.0]]); norm = batch_norm(use_running_average=False)
      >>> y, _ = norm.apply(norm.init(jax.random.key(0), x), x, mutable=["batch_stats"])
      >>> y.round(3).tolist()
      [[-1.0], [1.0]]
    """
    return nn.BatchNorm(use_fast_variance=False, **fields)


class Dropout(nn.Dropout):
    """`flax.linen.Dropout` dividing the kept values by ``1 - rate`` in float32 at least,
    then rounding once to the input's dtype: Flax's divides a bfloat16 input by ``1 - rate``
    rounded to bfloat16 (0.9 as 0.8984), so the kept values were 0.17% too large on
    average and the expectation biased. Its masks are Flax's (one key, one mask), and it
    is one call of the module, as Flax's (`flax.linen.intercept_methods`, and so
    `phosjax.core.blurb`, see its input and output, not a float32 call inside).

    Examples:
      >>> x = jnp.full((1, 4), 3.0, jnp.bfloat16); key = jax.random.key(0)
      >>> Dropout(0.1).apply({}, x, deterministic=False, rngs={"dropout": key}).tolist()
      [[3.328125, 3.328125, 3.328125, 3.328125]]
    """

    # Flax's call unwrapped, not a second call nested in this one; a staticmethod, which
    # Flax does not wrap as a method of the module
    _flax_call = staticmethod(inspect.unwrap(nn.Dropout.__call__))

    @nn.compact
    def __call__(
        self, inputs: Any, deterministic: bool | None = None, rng: jax.Array | None = None
    ) -> Any:
        dtype = jnp.result_type(inputs)
        if not jnp.issubdtype(dtype, jnp.floating):
            return self._flax_call(self, inputs, deterministic, rng)
        wide = jnp.asarray(inputs).astype(at_least_float32(dtype))
        return self._flax_call(self, wide, deterministic, rng).astype(dtype)


def is_float_dtype(value: Any) -> bool:
    """Whether ``value`` names a floating dtype (``jnp.bfloat16``, ``"float32"``...): not
    an array nor a number, which numpy reads as their dtype (`_names_a_dtype`).

    Examples:
      >>> is_float_dtype("bfloat16"), is_float_dtype(jnp.int32), is_float_dtype("bfloat")
      (True, False, False)
      >>> is_float_dtype(jnp.zeros(2)), is_float_dtype(1.0)
      (False, False)
    """
    return _names_a_dtype(value) and _is_float_dtype(value)


def _names_a_dtype(value: Any) -> bool:
    """Whether ``value`` is what names a dtype: a str, a scalar type or a `numpy.dtype`;
    an array or a number is none, though numpy reads it as its dtype.

    Examples:
      >>> _names_a_dtype(jnp.float32), _names_a_dtype("int8"), _names_a_dtype(np.float32(1))
      (True, True, False)
    """
    return isinstance(value, str | type | np.dtype)


def _dtype_shown(value: Any) -> str:
    """``value``, refused as a dtype, as an error names it: a dtype by its name (jnp.int32
    as 'int32'), anything else (an array, a number, a class numpy reads as 'object') as
    what it is.

    Examples:
      >>> _dtype_shown(jnp.int32), _dtype_shown("floot"), _dtype_shown(dict)
      ("'int32'", "'floot'", "<class 'dict'> (a type), not a dtype")
      >>> _dtype_shown(np.ones(2))
      'array([1., 1.]) (an ndarray), not a dtype'
    """
    try:
        dtype = jnp.dtype(value) if _names_a_dtype(value) else None
    except TypeError:  # a misspelt name
        return repr(value)
    a_class = isinstance(value, type) and not issubclass(value, np.generic)  # not np.object_
    if dtype is None or (a_class and dtype.kind == "O"):
        return f"{cut_repr(value)} ({a_type(value)}), not a dtype"
    return repr(dtype.name)


@functools.lru_cache(maxsize=64)
def _is_float_dtype(value: Any) -> bool:
    """`is_float_dtype` of a hashable ``value``, cached (a module checks its dtypes each
    time it is made)."""
    try:
        return value is not None and bool(jnp.issubdtype(jnp.dtype(value), jnp.floating))
    except TypeError:
        return False


class CheckedFields(nn.Module):
    """A module whose ``dtype`` (computation; ``None``: from the input) and
    ``param_dtype`` (storage) attributes must be floating dtypes, and whose attributes
    annotated ``bool`` (``causal``, ``use_bias``...) bools, checked when it is made: an
    integer dtype would round the parameters (a `LayerScale`'s scale of 1e-4 to 0) or
    fail deep inside Flax, a string flag (``causal="false"``) would read as true.

    Examples:
      >>> from phosjax.layers import LayerScale, MultiHeadSelfAttention
      >>> LayerScale(param_dtype=jnp.int32)
      Traceback (most recent call last):
      ValueError: LayerScale param_dtype must be a floating dtype (such as jnp.float32 or
      'bfloat16'), got 'int32'.
      >>> MultiHeadSelfAttention(2, causal="false")
      Traceback (most recent call last):
      TypeError: MultiHeadSelfAttention causal must be True or False, got 'false' (a str).
    """

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("dtype", "param_dtype"):
            value = getattr(self, name, None)
            if value is not None and not is_float_dtype(value):
                raise ValueError(
                    f"{owner} {name} must be a floating dtype (such as jnp.float32 or "
                    f"'bfloat16'), got {_dtype_shown(value)}."
                )
        for name in _flag_fields(type(self)):
            value = getattr(self, name)
            if not _is_flag(value):
                raise TypeError(
                    f"{owner} {name} must be True or False, got {cut_repr(value)} "
                    f"({a_type(value)})."
                )
        super().__post_init__()


def checked_train(module: nn.Module, train: Any, *, handed_on: bool = False) -> Any:
    """``module``'s call's ``train``, which must be True or False (a string ``"false"``
    would read as true). A traced flag (``jax.jit(model.apply)(variables, x, train=True)``)
    passes only when ``handed_on``: a container that hands it to its blocks, which may take
    it so; where the flag picks the mode it must be a Python bool.

    Examples:
      >>> from phosjax.layers import DropPath
      >>> checked_train(DropPath(0.5), "false")
      Traceback (most recent call last):
      TypeError: DropPath train must be True or False, got 'false' (a str).
    """
    if not _is_flag(train):
        raise TypeError(
            f"{type(module).__name__} train must be True or False, got {cut_repr(train)} "
            f"({a_type(train)})."
        )
    if isinstance(train, jax.core.Tracer) and not handed_on:
        raise _traced(f"{type(module).__name__} train")
    return train


def _traced(flag: str) -> TypeError:
    """The error of a traced ``flag`` (``"DropPath train"``) that must be a Python bool."""
    return TypeError(
        f"{flag} is traced, where it must be a Python bool (it picks the mode): mark it "
        'static where it is traced, jax.jit(model.apply, static_argnames="train"), '
        "nn.remat(Block, static_argnums=(2,)) (self, x, train), or "
        "nn.jit(Block, static_argnums=(2,)) for a block lifted with nn.jit."
    )


def _is_flag(value: Any) -> bool:
    """Whether ``value`` is a bool: Python's, numpy's, or a 0-d bool array (``jnp.array(True)``,
    a traced flag).

    Examples:
      >>> _is_flag(np.bool_(True)), _is_flag(jnp.array(False)), _is_flag(1)
      (True, True, False)
    """
    if isinstance(value, bool | np.bool_):
        return True
    array = isinstance(value, np.ndarray | jax.Array)
    return array and value.shape == () and value.dtype == np.bool_


_FLAG_FIELDS: "weakref.WeakKeyDictionary[type, tuple[str, ...]]" = weakref.WeakKeyDictionary()
"""Each `CheckedFields` class's fields annotated ``bool``, found once (a module is made
often: each bind clones it); weak, as ``nn.vmap`` and the like make a class per call."""


def _flag_fields(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s dataclass fields annotated ``bool``."""
    if cls not in _FLAG_FIELDS:
        fields = dataclasses.fields(cls)
        _FLAG_FIELDS[cls] = tuple(f.name for f in fields if f.type in (bool, "bool"))
    return _FLAG_FIELDS[cls]


def at_least_float32(*dtypes: Any) -> Any:
    """The dtype ``dtypes`` promote to, float32 at least: where a layer computes a part
    in float32 for bfloat16's and float16's sake (a softmax, a gate, a penalty), a
    float64 one keeps float64 (in float32 it would round them to float32's ~1e-7, which
    float64 checks such as finite differences see).

    Examples:
      >>> at_least_float32(jnp.bfloat16), at_least_float32(jnp.bfloat16, jnp.float16)
      (dtype('float32'), dtype('float32'))
    """
    return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def compute_dtype(dtype: Any, x: jax.Array) -> Any:
    """The dtype a layer computes in: its own ``dtype`` if set, else the input's."""
    if dtype is not None:
        return dtype
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
