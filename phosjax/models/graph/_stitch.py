"""Model stitching: the front of one model, an adapter, the back of another.

Stitching asks whether two networks' hidden representations at some layers carry the
same information up to a simple map (Lenc & Vedaldi 2015; Bansal, Nakkiran & Barak 2021,
"Revisiting model stitching", arXiv 2106.07682). The default adapter is a 1x1
convolution (a Dense layer for ``(batch, features)``), initialised in closed form by
least squares and then, optionally, trained with everything else frozen (`train_only`).
"""

from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from phosjax._callables import a_type, cut_repr
from phosjax.core import select
from phosjax.layers._common import broadcasts_to, check_mask_dtype, mask_array
from phosjax.models.graph._model import GraphModel
from phosjax.models.graph._spec import SEP, GraphError, as_selectors, listing, node
from phosjax.models.graph._surgery import (
    Variables,
    _graph,
    check_variables,
    extract,
    merge,
    rewire,
)

ADAPTER = "adapter"
"""The path of the adapter node in a stitched model."""


def _check_adaptable(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> None:
    """Raises a `GraphError` unless a 1x1 adapter maps activations of ``shape_a`` to
    ``shape_b``: ``(batch, ..., channels)`` shapes that differ only in their channels.

    Examples:
      >>> _check_adaptable((4,), (4,))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Cannot stitch activations of shape (4,) to (4,): ...
      no batch axis (one value for the whole batch, such as a constant node's).
    """
    flat = next((shape for shape in (shape_a, shape_b) if len(shape) < 2), None)
    if flat is not None:
        raise GraphError(
            f"Cannot stitch activations of shape {shape_a} to {shape_b}: a 1x1 adapter "
            f"needs (batch, ..., channels) shapes, and {flat} has no batch axis (one value "
            "for the whole batch, such as a constant node's)."
        )
    if shape_a[:-1] != shape_b[:-1]:
        raise GraphError(
            f"Cannot stitch activations of shape {shape_a} to {shape_b}: a 1x1 adapter "
            "needs (batch, ..., channels) shapes that differ only in their channels."
        )


def default_adapter(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], dtype: Any = None
) -> nn.Module:
    """A Dense layer for ``(batch, features)``, a 1x1 convolution for ``(batch, ...,
    channels)``, mapping activations of ``shape_a`` to ``shape_b``; it computes in
    ``dtype`` (`stitch` gives ``b``'s at the cut where the params would promote to
    another: a bfloat16 back half gets bfloat16) or, when None, in the dtype its input
    and float32 params promote to.

    Raises:
      GraphError: the shapes differ in anything but their channels.

    Examples:
      >>> default_adapter((8, 20, 4), (8, 20, 6))
      Conv(
          # attributes
          features = 6
          kernel_size = (1,)
          ...
      >>> default_adapter((8, 4), (8, 6), jnp.bfloat16).dtype
      <class 'jax.numpy.bfloat16'>
    """
    _check_adaptable(shape_a, shape_b)
    if len(shape_a) == 2:
        return nn.Dense(shape_b[-1], dtype=dtype)
    return nn.Conv(shape_b[-1], (1,) * (len(shape_a) - 2), dtype=dtype)


def _adapter_dtype(h_a: jax.Array, h_b: jax.Array) -> Any:
    """The dtype the default adapter computes in: that of ``h_b`` (``b``'s activation at
    the cut) where its float32 params would promote ``h_a`` to another, else None, so a
    stitched model run in mixed precision (params and input cast) computes it in that.

    Examples:
      >>> f32, bf16 = jnp.ones(2), jnp.ones(2, jnp.bfloat16)
      >>> _adapter_dtype(f32, bf16), _adapter_dtype(bf16, bf16), _adapter_dtype(bf16, f32)
      (dtype(bfloat16), dtype(bfloat16), None)
    """
    promoted = jnp.promote_types(h_a.dtype, jnp.float32)
    return None if promoted == h_b.dtype else h_b.dtype


def _activation(
    model: GraphModel, variables: Variables, layer: str, x: Any, side: str, mask: Any = None
) -> jax.Array:
    """What ``model``, stitch's ``side`` (``"a"`` or ``"b"``), computes at ``layer`` on
    ``x`` (and ``mask``, where one of its nodes takes it); an error says which model ``x``
    was fed to (a `GraphError` in its message, any other in a note, its type kept).

    Examples:
      >>> from phosjax.models.graph import Input
      >>> two = GraphModel({"x": Input(), "y": Input(), "s": node(inputs=("x", "y"), combine=max)})
      >>> _activation(two, {}, "s", jnp.ones(2), "b")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: stitch's x, fed to b (up to its 's'): The graph ...
    """
    try:
        keywords = {} if mask is None or not model.takes_keyword("mask") else {"mask": mask}
        out: Any = model.apply(variables, x, outputs=[layer], **keywords)  # Any: a union
    except GraphError as error:
        raise GraphError(f"stitch's x, fed to {side} (up to its {layer!r}): {error}") from None
    except Exception as error:
        error.add_note(f"(raised feeding stitch's x to {side}, up to its {layer!r})")
        raise
    return out[layer]


def fit_adapter(
    h_a: jax.Array, h_b: jax.Array, real: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Parameters ``{"kernel", "bias"}`` of the 1x1 adapter (see `default_adapter`) that
    best maps ``h_a`` to ``h_b`` in the least-squares sense (`jnp.linalg.lstsq`; every
    position of every example is one sample; only those ``real`` keeps, when given: a
    padding mask of the positions, ``h_a.shape[:-1]``, axes of size 1 broadcasting;
    true: a real token), solved in at least float32 (lstsq takes no bfloat16 or float16).

    Raises:
      GraphError: the shapes differ in anything but their channels (both named), so the
        positions of ``h_a`` and ``h_b`` do not pair up, or ``real`` has not the shape
        of the positions (both named).
      TypeError: ``real`` holds floats, which may be an additive mask (0: real, ``-inf``:
        not; pass ``real == 0`` for one, `phosjax.layers`).

    Examples:
      >>> h_a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> fitted = fit_adapter(h_a, 2 * h_a[:, :1] + 1)
      >>> jnp.round(fitted["kernel"], 3).tolist(), jnp.round(fitted["bias"], 3).tolist()
      ([[2.0], [0.0]], [1.0])
      >>> padded = jnp.concatenate([h_a, jnp.array([[5.0, 5.0]])])  # a 4th row, padded
      >>> target = jnp.concatenate([2 * h_a[:, :1] + 1, jnp.array([[-99.0]])])
      >>> fitted = fit_adapter(padded, target, jnp.array([True, True, True, False]))
      >>> jnp.round(fitted["kernel"], 3).tolist(), jnp.round(fitted["bias"], 3).tolist()
      ([[2.0], [0.0]], [1.0])
    """
    _check_adaptable(h_a.shape, h_b.shape)
    c_a, c_b = h_a.shape[-1], h_b.shape[-1]
    dtype = jnp.promote_types(jnp.result_type(h_a, h_b), jnp.float32)
    rows = h_a.reshape(-1, c_a).astype(dtype)
    design = jnp.concatenate([rows, jnp.ones((rows.shape[0], 1), dtype)], axis=1)
    target = h_b.reshape(-1, c_b).astype(dtype)
    if real is not None:  # a zero row (its target zero too) leaves the solution as it is
        real = mask_array("fit_adapter", real)
        if not broadcasts_to(real.shape, h_a.shape[:-1]):
            raise GraphError(
                f"fit_adapter: the padding mask has shape {real.shape}, but the "
                f"activations' positions are {h_a.shape[:-1]} (axes of size 1 broadcasting)."
            )
        check_mask_dtype("fit_adapter", real)
        kept = jnp.broadcast_to(real.astype(bool), h_a.shape[:-1]).reshape(-1, 1)
        design, target = jnp.where(kept, design, 0), jnp.where(kept, target, 0)
    solution = jnp.linalg.lstsq(design, target)[0]
    kernel = solution[:-1].reshape((1,) * (h_a.ndim - 2) + (c_a, c_b))
    return {"kernel": kernel, "bias": solution[-1]}


def _shapes(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: tuple(np.shape(leaf)), tree)  # a Python float: ()


def _check_adapter(made: Any, h_a: Any, h_b: Any, layer_a: str, layer_b: str) -> None:
    """Raises a `GraphError` unless ``made``, the adapter's output on ``h_a``, has the
    shapes of ``h_b``, what ``b`` computes at ``layer_b`` (dtypes may differ).

    Examples:
      >>> _check_adapter(jnp.ones((8, 5)), jnp.ones((8, 4)), jnp.ones((8, 6)), "act1", "h1")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: stitch: the adapter maps a's 'act1' of shape ...
    """
    if _shapes(made) != _shapes(h_b):
        raise GraphError(
            f"stitch: the adapter maps a's {layer_a!r} of shape {_shapes(h_a)} to shape "
            f"{_shapes(made)}, but b's {layer_b!r} has shape {_shapes(h_b)}; give an adapter "
            "whose output has the shape of b's layer."
        )


def _given_adapter(adapter: Any, h_a: Any, layer_a: str, key: jax.Array | None) -> tuple[Any, Any]:
    """The variables of a given ``adapter`` (a Flax module, initialised with ``key``; a
    function has none) and the shapes it makes of ``h_a``, a's activation at ``layer_a``;
    a `GraphError` for anything else, and a note naming the adapter and ``h_a``'s shape
    on an error it raises.

    Examples:
      >>> _given_adapter(lambda h: 2 * h, jnp.ones((8, 4)), "act1", None)
      ({}, ShapeDtypeStruct(shape=(8, 4), dtype=float32))
    """
    if not isinstance(adapter, nn.Module) and (not callable(adapter) or isinstance(adapter, type)):
        raise GraphError(
            f"stitch's adapter is {cut_repr(adapter)} (of type {type(adapter).__name__}), "
            "not a Flax module instance or a function from a's activations to b's; give e.g. "
            "nn.Conv(16, (1,)) or lambda h: h."
        )
    try:
        if isinstance(adapter, nn.Module):
            variables = adapter.init(jax.random.key(0) if key is None else key, h_a)
            return variables, jax.eval_shape(adapter.apply, variables, h_a)
        return {}, jax.eval_shape(adapter, h_a)
    except Exception as error:
        error.add_note(
            f"(raised running stitch's adapter on a's {layer_a!r} of shape {_shapes(h_a)})"
        )
        raise


def _check_arrays(h_a: Any, h_b: Any, layer_a: str, layer_b: str) -> None:
    """Raises a `GraphError` unless ``h_a`` and ``h_b``, what ``a`` computes at ``layer_a``
    and ``b`` at ``layer_b``, are arrays, which the default adapter maps.

    Examples:
      >>> _check_arrays({"p": jnp.ones((8, 4))}, jnp.ones((8, 4)), "split", "h1")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: stitch: a's 'split' computes a dict ...
    """
    for side, layer, h in (("a", layer_a, h_a), ("b", layer_b, h_b)):
        if not isinstance(h, jax.Array | np.ndarray):
            raise GraphError(
                f"stitch: {side}'s {layer!r} computes {a_type(h)} (shapes "
                f"{_shapes(h)}), not an array, which the default 1x1 adapter maps; cut at a "
                "node that computes an array, or give an adapter that takes and makes these."
            )


def _check_shared_inputs(a: GraphModel, back: GraphModel, layer_b: str) -> None:
    """Raises a `GraphError` when ``back`` (b from ``layer_b`` on) reads an input node
    of ``b`` that ``a`` has not: the stitched model feeds such inputs from ``a``'s."""
    a_inputs = _graph(a).inputs
    for path in _graph(back).inputs:
        if path != layer_b and path not in a_inputs:
            raise GraphError(
                f"stitch: b from {layer_b!r} on still reads b's input node {path!r} (a "
                f"connection that skips over {layer_b!r}), but a has no input node {path!r} "
                f"(a's input nodes: {listing(a_inputs)}); give both models the same input "
                f"node names, or cut b at a node after which nothing reads {path!r}."
            )


def stitch(
    a: GraphModel,
    vars_a: Variables,
    layer_a: str,
    b: GraphModel,
    vars_b: Variables,
    layer_b: str,
    adapter: nn.Module | None = None,
    *,
    x: Any,
    key: jax.Array | None = None,
    mask: Any = None,
) -> tuple[GraphModel, dict[str, Any]]:
    """``a`` up to ``layer_a``, an adapter, then ``b`` from ``layer_b`` on.

    The stitched model has groups ``a`` (the front of ``a``), ``adapter`` and ``b``
    (the back of ``b``, whose ``layer_b`` now passes the adapter's output on); its
    outputs are ``b``'s, e.g. ``"b/logits"``, and its inputs are ``a``'s, prefixed
    (``"a/input"``; where the back of ``b`` still reads an input node of ``b``, it reads
    ``a``'s of the same name, which the front keeps even when ``layer_a`` does not need it).

    Where a connection of ``b`` skips over ``layer_b`` (e.g. a residual block cut between
    its convolutions), the back of ``b`` also holds the front nodes that connection
    needs, and the stitched model computes them from the input as well.

    Args:
      a, vars_a, layer_a: the front model, its variables and the layer to cut after.
      b, vars_b, layer_b: the back model, its variables and the layer it restarts from.
      adapter: a Flax module or a function (``lambda h: h``: none) mapping ``a``'s
        activations to ``b``'s; default: a 1x1 convolution or Dense layer fitted by least
        squares on ``x`` (`fit_adapter`, float32 params) that hands the back half ``b``'s
        dtype at ``layer_b`` on ``x`` (bfloat16 for a back half that computes bfloat16;
        otherwise it computes in the dtype its input and params promote to, so bfloat16
        when the stitched model runs in mixed precision).
      x: a batch of inputs of ``a`` and ``b``: it fixes the adapter's shapes and, for the
        default adapter, is the regression data (a few hundred examples).
      key: initialises a given ``adapter`` module (default ``jax.random.key(0)``).
      mask: ``x``'s padding mask (booleans or integers, true: a real token; a float one
        is a TypeError, as in `phosjax.layers`), given to ``a`` and ``b`` where one
        of their nodes takes it; the default adapter is fitted on the real tokens only
        (the positions of ``a``'s ``layer_a`` that it keeps, its shape but the channels,
        axes of size 1 broadcasting): padded ones, whatever they hold, do not change it.
        The stitched model takes it as ``a`` and ``b`` do (``model.apply(variables, x,
        mask=mask)``).

    Returns:
      ``(model, variables)``; the model returns ``b/<node>`` alone where ``b`` has
      ``returns=<node>`` computed from ``layer_b`` (not when cut after it, even where a
      connection that skips over the cut keeps that node in the back of ``b``).

    Raises:
      GraphError: ``layer_a`` or ``layer_b`` is not a node of its model (which one is
        named), no ``adapter`` is given and one of them computes no array (a dict, a
        tuple: named) or their shapes differ in more than channels (both named), a given
        ``adapter`` is no module instance or function, or its output has not the shape of
        ``b``'s ``layer_b`` (both named), the back of ``b`` reads an input node that ``a``
        lacks, or ``vars_a`` or ``vars_b`` are not what ``init`` makes (the params alone,
        None: `check_variables`). An ``x`` that ``a`` or ``b`` cannot take is an error
        naming which model (in a `GraphError`'s message, in a note of any other error);
        an error a given ``adapter`` raises on ``a``'s activation gets a note saying so.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel
      >>> net = GraphModel({"hidden": nn.Dense(3), "logits": nn.Dense(2)}, returns="logits")
      >>> x = jnp.sin(jnp.arange(40.0)).reshape(8, 5)  # 8 examples fit the adapter
      >>> vars_a, vars_b = net.init(jax.random.key(1), x), net.init(jax.random.key(2), x)
      >>> model, variables = stitch(net, vars_a, "hidden", net, vars_b, "hidden", x=x)
      >>> model.nodes, model.returns
      (('a/input', 'a/hidden', 'adapter', 'b/hidden', 'b/logits'), 'b/logits')
      >>> variables["params"]["adapter"]["kernel"].shape, model.apply(variables, x).shape
      ((3, 3), (8, 2))
    """
    if mask is not None:
        check_mask_dtype("stitch", mask_array("stitch", mask))
    for model, variables, layer, side in ((a, vars_a, layer_a, "a"), (b, vars_b, layer_b, "b")):
        graph = _graph(model, f"stitch's {side}")
        graph.check_nodes([layer], f"stitch's layer_{side} (a node of {side})")
        check_variables(variables, graph.nodes, "stitch", f"vars_{side}")
    h_a = _activation(a, vars_a, layer_a, x, "a", mask)
    if adapter is None:
        h_b = _activation(b, vars_b, layer_b, x, "b", mask)
        _check_arrays(h_a, h_b, layer_a, layer_b)
        try:
            adapter = default_adapter(h_a.shape, h_b.shape, _adapter_dtype(h_a, h_b))
        except GraphError as error:
            raise GraphError(
                f"stitch: a's {layer_a!r} to b's {layer_b!r}: {error} Cut at layers whose "
                "shapes do, or give an adapter (a module from a's shape to b's)."
            ) from None
        try:
            adapter_vars: Mapping[str, Any] = {"params": fit_adapter(h_a, h_b, mask)}
        except GraphError as error:
            raise GraphError(
                f"stitch's mask, for a's {layer_a!r} of shape {h_a.shape}: {error} Give a "
                "mask of its positions (true: a real token), or cut at a layer that keeps "
                "x's tokens."
            ) from None
    else:
        adapter_vars, made = _given_adapter(adapter, h_a, layer_a, key)
        h_b = jax.eval_shape(lambda: _activation(b, vars_b, layer_b, x, "b", mask))
        _check_adapter(made, h_a, h_b, layer_a, layer_b)
    back = extract(b, vars_b, inputs=[layer_b])
    _check_shared_inputs(a, back[0], layer_b)
    skipped = [p for p in _graph(back[0]).inputs if p != layer_b]  # b's inputs its back reads
    front = extract(a, vars_a, outputs=[layer_a, *skipped])
    nodes = {ADAPTER: node(adapter, inputs=SEP + f"a{SEP}{layer_a}")}
    model, variables = merge({"a": front, "b": back}, nodes)
    model = rewire(model, f"b{SEP}{layer_b}", ADAPTER)
    for path in skipped:
        model = rewire(model, f"b{SEP}{path}", f"a{SEP}{path}")
    for collection, tree in adapter_vars.items():
        variables.setdefault(collection, {})[ADAPTER] = tree
    if b.returns is not None and layer_b in _graph(b).needed([b.returns]):  # not cut after it
        model = model.clone(returns=f"b{SEP}{b.returns}")  # b's logits, as b returns them
    return model, variables


def train_only(
    optimizer: optax.GradientTransformation, selectors: str | Iterable[str]
) -> optax.GradientTransformation:
    """``optimizer`` on the parameters whose paths ``selectors`` match; the others stay
    frozen (zero updates), via `optax.multi_transform`.

    Raises:
      TypeError: ``optimizer`` has no ``init`` and ``update`` (a function that makes one,
        ``optax.adam`` not called, says so).
      GraphError: ``selectors`` are not a str or an iterable of them, or none (which
        would freeze every parameter).
      SelectorError: (at ``init``) a selector matches no parameter.

    Examples:
      >>> params = {"adapter": {"kernel": jnp.ones(2)}, "b": {"kernel": jnp.ones(2)}}
      >>> opt = train_only(optax.sgd(1.0), "adapter/**")
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, _ = opt.update(grads, opt.init(params), params)
      >>> updates["adapter"]["kernel"].tolist(), updates["b"]["kernel"].tolist()
      ([-1.0, -1.0], [0.0, 0.0])
    """
    if not all(callable(getattr(optimizer, m, None)) for m in ("init", "update")):
        made = ", which makes one: call it" if callable(optimizer) else ""
        raise TypeError(
            "train_only's optimizer must be an optax GradientTransformation, such as "
            f"optax.adam(1e-3), got {cut_repr(optimizer)} ({a_type(optimizer)}){made}."
        )
    selectors = as_selectors(selectors, "train_only's selectors", "adapter/**", "parameter")

    def labels(params: Any) -> Any:
        leaves = jax.tree_util.tree_leaves_with_path(params)
        paths = [jax.tree_util.keystr(path, simple=True, separator=SEP) for path, _ in leaves]
        chosen = {p for s in selectors for p in select(paths, s, what="parameter")}
        names = ["train" if p in chosen else "freeze" for p in paths]
        return jax.tree.unflatten(jax.tree.structure(params), names)

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)
