import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from tests.core.models import DEPTH, KINDS, Block, Stack

X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_init_returns_no_transient_collections(kind):
    variables = Stack(kind).init(jax.random.key(0), X)
    assert set(variables) == {"params", "knobs"}


def test_tags_store_nothing_unless_asked():
    model = Stack()
    variables = model.init(jax.random.key(0), X)
    out = model.apply(variables, X)
    assert isinstance(out, jax.Array)  # no state handed back
    out2, state = model.apply(variables, X, mutable=["params"])
    assert set(state) == {"params"}
    np.testing.assert_array_equal(out, out2)


def test_tag_records_exact_value():
    model = Stack()
    variables = model.init(jax.random.key(0), X)
    _, found = px.probe(model, variables, X, "blocks_0/pre_act")
    params = variables["params"]
    stem = X @ params["stem"]["kernel"] + params["stem"]["bias"]
    dense = params["blocks_0"]["dense"]
    np.testing.assert_allclose(
        found["blocks_0/pre_act"], stem @ dense["kernel"] + dense["bias"], rtol=1e-6
    )


class Nested(nn.Module):
    """Aux loss 1.0 inside a branch weighted 0.25 inside a branch weighted 0.5."""

    @nn.compact
    def __call__(self, x, w_outer=0.5, w_inner=0.25):
        with px.path_weight(self, "outer", w_outer):
            px.aux_loss(self, "before", jnp.ones(()))
            with px.path_weight(self, "inner", w_inner):
                px.aux_loss(self, "balance", jnp.ones(()))
        px.aux_loss(self, "outside", jnp.ones(()))
        return x


def _aux(x, w_outer=0.5, w_inner=0.25):
    _, state = Nested().apply({}, x, w_outer, w_inner, mutable=["aux_loss", "path_weights"])
    return px.aux_total(state["aux_loss"])[1], state["path_weights"]


@pytest.mark.parametrize("transform", ["eager", "jit"])
def test_nested_path_weights_multiply(transform):
    run = jax.jit(_aux) if transform == "jit" else _aux
    by_name, weights = run(jnp.zeros(()))
    assert float(by_name["balance"]) == 0.125
    assert float(by_name["before"]) == 0.5
    assert float(by_name["outside"]) == 1.0
    assert float(weights["outer"][0]) == 0.5 and float(weights["inner"][0]) == 0.25


def test_nested_path_weights_under_vmap():
    outer = jnp.array([0.5, 1.0, 0.0])
    by_name, weights = jax.vmap(lambda w: _aux(jnp.zeros(()), w, 0.25))(outer)
    np.testing.assert_array_equal(by_name["balance"], [0.125, 0.25, 0.0])
    np.testing.assert_array_equal(weights["outer"][0], outer)


class PerExample(nn.Module):
    @nn.compact
    def __call__(self, loss):
        with px.path_weight(self, "branch", jnp.array([1.0, 0.0, 0.5, 0.5])):
            px.aux_loss(self, "scalar", jnp.ones(()))
            px.aux_loss(self, "per_example", loss)
        return loss


def test_per_example_path_weights():
    loss = jnp.array([[1.0, 1.0], [4.0, 4.0], [2.0, 2.0], [0.0, 0.0]])
    _, state = PerExample().apply({}, loss, mutable=["aux_loss", "path_weights"])
    _, by_name = px.aux_total(state["aux_loss"])
    assert float(by_name["scalar"]) == 0.5  # mean of the weights
    assert float(by_name["per_example"]) == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert float(state["path_weights"]["branch"][0]) == 0.5


def test_a_per_example_loss_of_another_batch_size_names_the_loss_and_both_shapes():
    message = r"aux loss 'per_example' has shape \(3, 2\).*one per example, shape \(4,\)"
    with pytest.raises(ValueError, match=message):
        PerExample().apply({}, jnp.ones((3, 2)), mutable=["aux_loss"])


@pytest.mark.parametrize("batch", [1, 3])
def test_a_one_dim_per_example_loss_of_another_batch_size_is_refused(batch):
    # a (1,) loss would otherwise broadcast silently against the four per-example weights
    message = rf"aux loss 'per_example' has shape \({batch},\).*one per example, shape \(4,\)"
    with pytest.raises(ValueError, match=message):
        PerExample().apply({}, jnp.ones((batch,)), mutable=["aux_loss"])


def test_a_one_dim_per_example_loss_is_weighted_example_by_example():
    loss = jnp.array([1.0, 4.0, 2.0, 6.0])
    _, state = PerExample().apply({}, loss, mutable=["aux_loss"])
    _, by_name = px.aux_total(state["aux_loss"])
    assert float(by_name["per_example"]) == pytest.approx((1.0 + 0.0 + 1.0 + 3.0) / 4)


def _open_path_weight(module, name):
    with px.path_weight(module, name, 0.5):
        pass


RECORDERS = {
    "tag": lambda module, name: px.tag(module, name, jnp.ones(2)),
    "aux_loss": lambda module, name: px.aux_loss(module, name, jnp.ones(())),
    "note": lambda module, name: px.note(module, name, 1.0),
    "knob": lambda module, name: px.knob(module, name, 1.0),
    "path_weight": _open_path_weight,
}


@pytest.mark.parametrize("what", RECORDERS)
def test_a_name_holding_the_path_separator_is_refused(what):
    # it would become two path segments: inject, grad_of and tweak would silently miss it
    class Slashed(nn.Module):
        @nn.compact
        def __call__(self, x):
            RECORDERS[what](self, "pre/act")
            return x

    with pytest.raises(ValueError, match=rf"{what} name 'pre/act' must be .* without '/'"):
        Slashed().init(jax.random.key(0), jnp.ones(2))


class _Recorder(nn.Module):
    """Records ``h`` with `RECORDERS` ``[what]``."""

    what: str

    @nn.compact
    def __call__(self, x):
        RECORDERS[self.what](self, "h")
        return x


@pytest.mark.parametrize("what", RECORDERS)
def test_a_module_name_holding_the_path_separator_is_refused(what):
    # Flax takes the dict key "conv/3x3" as part of a name; the path would split there,
    # and inject, grad_of and tweak would silently miss the value (a zero gradient)
    class Net(nn.Module):
        def setup(self):
            self.convs = {"conv/3x3": _Recorder(what)}

        def __call__(self, x):
            return self.convs["conv/3x3"](x)

    with pytest.raises(ValueError, match=rf"{what} 'h' is in module 'convs_conv/3x3', .*Rename"):
        Net().init(jax.random.key(0), jnp.ones(2))


@pytest.mark.parametrize("what", RECORDERS)
def test_a_module_named_empty_is_refused(what):
    # Flax takes name=""; flatten dropped the empty segment at the top ('/T' became 'T'),
    # and no selector names one deeper ('a//T'), so tweak {"T": 10.0} and inject {"h": 0}
    # left the value as it was, with no error
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return _Recorder(what, name="")(x)

    with pytest.raises(ValueError) as refused:
        Net().init(jax.random.key(0), jnp.ones(2))
    assert str(refused.value) == (
        f"{what} 'h' is in module '', whose path segment '' is empty: phosjax joins path "
        f"segments with '/', so it could not find the {what} again. Rename that submodule "
        "(its name= or dict key) to a non-empty name."
    )


class Bf16Losses(nn.Module):
    """A bfloat16 aux loss outside any scope and inside two (float32 and bfloat16)."""

    @nn.compact
    def __call__(self, x):
        px.aux_loss(self, "outside", jnp.mean(x))
        with px.path_weight(self, "outer", 0.5), px.path_weight(self, "inner", x[:, 0]):
            px.aux_loss(self, "inside", jnp.mean(x, axis=-1))
        return x


@pytest.mark.parametrize("promotion", ["standard", "strict"])
def test_bfloat16_losses_and_activations_add_up_under_strict_dtype_promotion(promotion):
    # Equinox-style strict promotion: float32 weights times a bfloat16 loss raised
    x = jnp.array([[1.0, 3.0], [0.5, 0.5]], jnp.bfloat16)
    with jax.numpy_dtype_promotion(promotion):
        _, state = Bf16Losses().apply({}, x, mutable=["aux_loss"])
        total, by_name = px.aux_total(state["aux_loss"])
        penalty = px.regularize({"a": x, "b": (x, x)}, "*", lambda h: jnp.abs(h).mean())
    assert float(by_name["outside"]) == 1.25
    assert float(by_name["inside"]) == pytest.approx(0.5 * (1.0 * 2.0 + 0.5 * 0.5) / 2)
    assert float(total) == pytest.approx(1.25 + 0.5625)
    assert float(penalty) == 3 * 1.25


def test_path_weight_rejects_matrices():
    class Bad(nn.Module):
        @nn.compact
        def __call__(self, x):
            with px.path_weight(self, "branch", jnp.ones((2, 2))):
                return x

    with pytest.raises(ValueError, match=r"'branch'.*scalar or one per example.*\(2, 2\)"):
        Bad().apply({}, 0.0)


def test_current_path_weight_outside_scopes_is_one():
    assert float(px.current_path_weight()) == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_aux_total_adds_every_layer(kind):
    model = Stack(kind)
    variables = model.init(jax.random.key(0), X)
    _, state = model.apply(variables, X, mutable=["aux_loss"])
    _, found = px.probe(model, variables, X, "**/pre_act")
    expected = sum(float(jnp.sum(jnp.mean(jnp.abs(h), axis=(-2, -1)))) for h in found.values())
    total, by_name = px.aux_total(state["aux_loss"])
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert set(by_name) == {"activity"}
    assert len(found) == (1 if kind == "scan" else DEPTH)


class _Ensemble(nn.Module):
    """Three `Block` members made with nn.vmap, their aux losses kept per member."""

    @nn.compact
    def __call__(self, x):
        members = nn.vmap(
            Block,
            variable_axes=px.scan_axes(params=0),
            split_rngs={"params": True},
            in_axes=None,
            axis_size=3,
        )
        return members(name="members")(x)


def test_an_nn_vmap_ensemble_s_aux_total_and_regularize_sum_its_members():
    """aux_total and regularize add up the members, each as the member alone would; one
    total per member is jax.vmap(aux_total)."""
    variables = _Ensemble().init(jax.random.key(0), X)
    collections = ["aux_loss", "intermediates"]
    _, state = _Ensemble().apply(variables, X, mutable=collections)
    norm = lambda h: jnp.sqrt(jnp.sum(h**2))
    each, each_norm = [], []
    for i in range(3):  # each member alone: member i's slice of the variables
        alone = jax.tree.map(lambda a, i=i: a[i], {k: t["members"] for k, t in variables.items()})
        _, own = Block().apply(alone, X, mutable=collections)
        each.append(float(px.aux_total(own["aux_loss"])[0]))
        each_norm.append(float(px.regularize(own["intermediates"], "pre_act", norm)))
    assert len(set(each)) == 3  # the members differ: the check has teeth
    total, by_name = px.aux_total(state["aux_loss"])
    assert float(total) == pytest.approx(sum(each), rel=1e-6)
    assert float(by_name["activity"]) == pytest.approx(sum(each), rel=1e-6)
    per_member = jax.vmap(lambda aux: px.aux_total(aux)[0])(state["aux_loss"])
    np.testing.assert_allclose(per_member, each, rtol=1e-6)
    penalty = px.regularize(state["intermediates"], "**/pre_act", norm)
    assert float(penalty) == pytest.approx(sum(each_norm), rel=1e-6)


def test_note_reaches_blurb_collection_only_when_asked():
    class Noting(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.note(self, "fraction_positive", jnp.mean(x > 0))
            return x

    assert not isinstance(Noting().apply({}, X), tuple)
    _, state = Noting().apply({}, X, mutable=["blurb"])
    assert float(state["blurb"]["fraction_positive"][0]) == 0.5


def test_regularize_over_probed_values_and_params():
    model = Stack()
    variables = model.init(jax.random.key(0), X)
    _, found = px.probe(model, variables, X, "**/pre_act")
    l1 = px.regularize(found, "**/pre_act", lambda h: jnp.mean(jnp.abs(h)))
    assert float(l1) == pytest.approx(sum(float(jnp.mean(jnp.abs(h))) for h in found.values()))
    params = variables["params"]
    l2 = px.regularize(params, ["blocks_*/dense/kernel", "head/kernel"], lambda w: jnp.sum(w**2))
    expected = sum(float(jnp.sum(params[f"blocks_{i}"]["dense"]["kernel"] ** 2)) for i in range(3))
    expected += float(jnp.sum(params["head"]["kernel"] ** 2))
    assert float(l2) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(px.SelectorError, match=r"'\*\*/gamma' matched no path among .*nearest"):
        px.regularize(params, "**/gamma", jnp.sum)
    with pytest.raises(px.SelectorError, match="matched no param among"):
        px.regularize(params, "**/gamma", jnp.sum, what="param")


def test_regularize_refuses_an_fn_that_returns_no_scalar():
    """An elementwise fn (jnp.abs, no mean) summed to an array of one value's shape (or
    failed to broadcast between values of two shapes), naming neither; per layer of a
    scanned stack it summed to a scalar. It is refused, naming the path and the shape."""
    found = {"a": jnp.array([1.0, -3.0]), "b": jnp.array([2.0, 1.0])}
    with pytest.raises(ValueError, match=r"fn gave 'a' a value of shape \(2,\), not a scalar"):
        px.regularize(found, "*", jnp.abs)
    _, state = Stack("scan").apply(
        Stack("scan").init(jax.random.key(0), X), X, mutable=["intermediates"]
    )
    with pytest.raises(ValueError, match=r"fn gave 'blocks/Block_0/pre_act' a value of shape"):
        px.regularize(state["intermediates"], "**/pre_act", jnp.abs)
    # an fn with no return: "None is not a valid value for jnp.array", naming no path
    message = r"^regularize: fn gave '{}' None, not a number; return a scalar, e\.g\. "
    with pytest.raises(TypeError, match=message.format("a")):
        px.regularize(found, "*", lambda h: None)
    with pytest.raises(TypeError, match=message.format("blocks/Block_0/pre_act")):
        px.regularize(state["intermediates"], "**/pre_act", lambda h: None)


def test_regularize_reaches_boxed_params_by_their_arrays():
    """Params made with nn.with_partitioning are nn.Partitioned boxes; fn gets the array."""
    init = nn.with_partitioning(nn.initializers.ones, (None, "model"))
    dense = nn.Dense(3, kernel_init=init)
    params = dense.init(jax.random.key(0), jnp.ones((1, 4)))["params"]
    square = lambda p: px.regularize(p, "kernel", lambda w: jnp.sum(w**2))
    assert float(square(params)) == 12.0
    grads = jax.grad(square)(params)
    np.testing.assert_array_equal(nn.meta.unbox(grads)["kernel"], 2 * jnp.ones((4, 3)))


def test_regularize_counts_a_path_two_selectors_match_once():
    values = {"a": {"w": jnp.array([1.0, -3.0])}, "b": {"w": jnp.array([2.0])}}
    squares = lambda w: jnp.sum(w**2)
    assert float(px.regularize(values, ["**/w", "a/*"], squares)) == 14.0
    grads = jax.grad(lambda v: px.regularize(v, ["a/w", "**/w", "a/*"], squares))(values)
    np.testing.assert_allclose(grads["a"]["w"], [2.0, -6.0])
    np.testing.assert_allclose(grads["b"]["w"], [4.0])


class _Pairs(nn.Module):
    calls: int

    @nn.compact
    def __call__(self, x):
        for i in range(self.calls):
            px.tag(self, "pair", (x, x ** (3 - i)))  # a tuple-valued tag
        return x


@pytest.mark.parametrize(("calls", "expected"), [(1, 17.0), (2, 17.0 + 9.0)])
def test_regularize_gives_fn_each_call_of_a_tuple_valued_tag_whole(calls, expected):
    x = jnp.array([1.0, 2.0])
    _, state = _Pairs(calls).apply({}, x, mutable=["intermediates"])
    inner = lambda pair: jnp.vdot(pair[0], pair[1])  # <x, x**3> = 17, <x, x**2> = 9
    assert float(px.regularize(state["intermediates"], "pair", inner)) == expected
    if calls > 1:  # probe unwraps one call, so there a tuple reads as one value per call
        _, found = px.probe(_Pairs(calls), {}, x, "pair")
        assert float(px.regularize(found, "pair", inner)) == expected


class _Named(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.tag(self, "named", {"a": x, "b": 2 * x})  # a dict-valued tag
        return x


def test_regularize_gives_fn_a_dict_valued_tag_whole_from_its_collection_or_by_entry():
    x = jnp.array([1.0, 2.0])
    _, state = _Named().apply({}, x, mutable=["intermediates"])
    whole = px.regularize(state["intermediates"], "named", lambda d: d["a"] @ d["b"])
    assert float(whole) == 10.0  # <x, 2x>
    _, found = px.probe(_Named(), {}, x, "named")
    assert float(px.regularize(found, "named/*", jnp.sum)) == 9.0  # 3 + 6


class TagsX(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "x", 2 * x)


class TagNamedLikeChild(nn.Module):
    """Tags ``h`` after its submodule ``h`` tagged ``x``: paths ``h`` and ``h/x`` collide."""

    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", TagsX(name="h")(x) + 1)


def test_a_tag_named_like_a_submodule_that_recorded_is_refused():
    """The tag's record swallowed the submodule's subtree: probe returned
    ``{"h": ("x", value)}`` (the child's key as a first 'call'), 'h/x' was gone."""
    with pytest.raises(
        ValueError,
        match=r"Cannot record 'h' in 'intermediates': 'h' is also a submodule of the top "
        r"module, whose values there sit under 'h/'",
    ):
        px.probe(TagNamedLikeChild(), {}, X)
    np.testing.assert_array_equal(TagNamedLikeChild().apply({}, X), 2 * X + 1)  # not recorded


class RecordsNamedLikeAnEarlierChild(nn.Module):
    """Makes the submodule ``h`` (which records nothing), then records ``h``."""

    collection: str

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(3, name="h")(x)
        if self.collection == "path_weights":
            with px.path_weight(self, "h", 0.5):
                return x
        return px.tag(self, "h", x)


@pytest.mark.parametrize("collection", ["intermediates", "path_weights"])
def test_a_record_named_like_an_earlier_submodule_that_records_nothing_is_refused(collection):
    """Flax said only 'Duplicate use of scope name: "h"'; then the error said the
    submodule's values sat under 'h/', where it had none."""
    model = RecordsNamedLikeAnEarlierChild(collection)
    variables = model.init(jax.random.key(0), X)
    with pytest.raises(
        ValueError, match=rf"^Cannot record 'h' in '{collection}': 'h' is also a"
    ) as e:
        model.apply(variables, X, mutable=[collection])
    assert f"module, which recorded nothing in '{collection}' but holds the name" in str(e.value)
    assert "sit under" not in str(e.value)


class RecordsBeforeALaterChild(nn.Module):
    """Records ``h`` (a tag or an aux loss), then makes the submodule ``h`` (one without
    variables if ``parameterless``)."""

    collection: str
    parameterless: bool = False

    @nn.compact
    def __call__(self, x):
        if self.collection == "aux_loss":
            px.aux_loss(self, "h", x.sum())
        else:
            x = px.tag(self, "h", x)
        if self.parameterless:
            return nn.Dropout(0.5, deterministic=True, name="h")(x)
        return nn.Dense(3, name="h")(x)


@pytest.mark.parametrize("parameterless", [False, True])
@pytest.mark.parametrize("collection", ["intermediates", "aux_loss"])
def test_a_record_named_like_a_later_submodule_is_refused_naming_both(collection, parameterless):
    """init worked; the first call recording said only Flax's 'Could not create submodule
    "h" in Module RecordsBeforeALaterChild: Name in use', naming no record."""
    model = RecordsBeforeALaterChild(collection, parameterless)
    variables = model.init(jax.random.key(0), X)
    with pytest.raises(
        ValueError,
        match=rf"^Cannot record 'h' in '{collection}': 'h' is also a submodule of the top "
        r"module, made after the record, which Flax refuses to make once the record holds "
        r"the name\. Give the value or the submodule another name\.",
    ):
        model.apply(variables, X, mutable=[collection])
    model.apply(variables, X)  # not recorded: it runs


class RecordsBesideADictVariable(nn.Module):
    """Tags ``h``, then keeps a dict at ``h`` in another collection, as Flax allows."""

    @nn.compact
    def __call__(self, x):
        x = px.tag(self, "h", x)
        return x + self.variable("cache", "h", lambda: {"k": jnp.ones(())}).value["k"]


def test_a_record_named_like_a_dict_variable_in_another_collection_is_kept():
    """It was refused as a record named like a submodule made after it ('its 'cache' sit
    under 'h/''), the variable's dict taken for the submodule's variables."""
    model = RecordsBesideADictVariable()
    variables = model.init(jax.random.key(0), X)
    _, state = model.apply(variables, X, mutable=["intermediates"])
    np.testing.assert_array_equal(state["intermediates"]["h"][0], X)


def test_aux_total_of_the_whole_state_is_refused_not_summed():
    """Given the state of mutable=["aux_loss", "path_weights"], it added the path weights
    (0.5) to the loss (1.5, not 1.0), silently."""
    state = {
        "aux_loss": {"a": {"l1": (jnp.array(1.0),)}},
        "path_weights": {"branch_0": (jnp.array(0.5),)},
    }
    with pytest.raises(ValueError, match=r"takes the 'aux_loss' collection, state\['aux_loss'\]"):
        px.aux_total(state)
    assert float(px.aux_total(state["aux_loss"])[0]) == 1.0
    assert float(px.aux_total({"aux_loss": state["aux_loss"]})[0]) == 1.0  # alone: the same
    state = {"path_weights": state["path_weights"]}  # as apply hands back with no aux loss
    with pytest.raises(ValueError, match=r"pass state.get\('aux_loss', \{\}\) \(a total of 0\)"):
        px.aux_total(state)  # was 0.5, the path weight


def test_an_aux_loss_named_like_a_collection_is_added_up():
    """Since 689a04f aux_total took a top module's loss named 'intermediates' for a state
    of that collection, and refused it."""

    class Named(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.aux_loss(self, "intermediates", jnp.sum(x))
            return x

    _, state = Named().apply({}, jnp.ones(2), mutable=["aux_loss"])
    assert float(px.aux_total(state["aux_loss"])[0]) == 2.0


def test_the_losses_of_a_top_submodule_named_like_a_collection_are_added_up():
    """A top submodule named 'params' (or 'aux_loss' beside another) was taken for that
    collection, its losses refused as a state; one named like a collection of records
    ('path_weights') cannot be told from it: the error says to rename it."""
    losses = {"l1": (jnp.array(1.0),)}
    assert float(px.aux_total({"params": losses})[0]) == 1.0
    assert float(px.aux_total({"aux_loss": losses, "head": losses})[0]) == 2.0
    with pytest.raises(ValueError, match=r"params.*: the others would add up as losses\.$"):
        px.aux_total({"aux_loss": losses, "params": {"w": jnp.ones(2)}})
    with pytest.raises(ValueError, match=r"if 'path_weights' is a submodule of the top module, "):
        px.aux_total({"path_weights": losses})


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda: px.aux_total(None), r"^aux_total takes the 'aux_loss' collection .* got None"),
        (lambda: px.regularize(None, "**", jnp.sum), r"^regularize: values must be .* got None"),
        (  # an array summed as the value at path '', which '**' matched
            lambda: px.regularize(jnp.ones(3), "**", jnp.sum),
            r"^regularize: values must be .* got an ArrayImpl",
        ),
    ],
    ids=["aux_total", "regularize", "regularize_array"],
)
def test_loss_sums_given_no_tree_name_it(call, said):
    """None failed in jnp.sum ('sum requires ndarray or scalar arguments'); an array was
    summed as the value at path ''."""
    with pytest.raises(TypeError, match=said):
        call()


@pytest.mark.parametrize("value", [None, "big", {"a": 1.0}])
def test_an_aux_loss_that_is_no_number_is_named(value):
    """JAX's own errors named no loss: 'None is not a valid value for jnp.array', "Value
    'big' with dtype <U3 is not a valid JAX array type"."""

    class Raises(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.aux_loss(self, "l1", value)
            return x

    with pytest.raises(TypeError, match=r"^aux loss 'l1': a loss must be a number or an array"):
        Raises().apply({}, jnp.ones(2), mutable=["aux_loss"])


def test_a_complex_aux_loss_is_named_under_jit():
    """It was recorded, and jax.grad of the total loss said only 'grad requires
    real-valued outputs ... got complex64'."""

    class Raises(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.aux_loss(self, "l1", x.sum() * 1j)
            return x

    message = r"^aux loss 'l1': a loss must be real, got dtype complex64, .* abs\(\)"
    with pytest.raises(TypeError, match=message):
        jax.jit(lambda x: Raises().apply({}, x, mutable=["aux_loss"]))(jnp.ones(2))


@pytest.mark.parametrize("axis", ["0", 0.0, True])
def test_scan_axes_given_no_axis_names_the_collection(axis):
    """Flax's scan refused '0' and 0.0 with a bare AssertionError, and took True for 1."""
    with pytest.raises(TypeError, match=r"^scan_axes: the axis of 'params' must be an int "):
        px.scan_axes(params=axis)
    assert px.scan_axes(params=0, batch_stats=None)["batch_stats"] is None


def test_scan_axes_given_an_array_names_it_in_one_short_line():
    """The message held the array's whole repr, 7 lines."""
    with pytest.raises(TypeError) as error:
        px.scan_axes(params=np.zeros((40, 40)))
    assert str(error.value) == (
        "scan_axes: the axis of 'params' must be an int (0: one entry per iteration) or "
        "None, got array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape "
        "(40, 40), dtype float64)."
    )


def test_scan_axes_given_nn_broadcast_says_to_broadcast_the_collection_in_nn_scan():
    """nn.broadcast is for inputs: nn.scan failed on it with a bare AssertionError."""
    message = (
        "scan_axes: the axis of 'params' must be an int or None, got nn.broadcast, which "
        "nn.scan takes in in_axes alone; for variables every iteration shares, leave "
        "'params' out here and pass nn.scan(..., variable_broadcast='params') (under "
        "nn.vmap, which has no variable_broadcast, give params=None)."
    )
    with pytest.raises(TypeError) as raised:
        px.scan_axes(params=nn.broadcast)
    assert str(raised.value) == message

    class Members(nn.Module):  # params=None, as the message says: one Dense for both
        @nn.compact
        def __call__(self, x):
            axes = px.scan_axes(params=None)
            return nn.vmap(nn.Dense, variable_axes=axes, split_rngs={"params": False})(2)(x)

    variables = Members().init(jax.random.key(0), jnp.ones((3, 2)))
    assert jax.tree.map(jnp.shape, variables["params"]) == {
        "VmapDense_0": {"bias": (2,), "kernel": (2, 2)}
    }


@pytest.mark.parametrize(("typo", "meant"), [("param", "params"), ("knob", "knobs")])
def test_scan_axes_given_a_typo_of_a_collection_names_the_one_meant(typo, meant):
    """param=0 gave no error here; Flax's scan then said 'Tried to access "kernel" from
    collection "params" ... but the collection is empty'."""
    message = rf"^scan_axes: no collection is named '{typo}'; did you mean '{meant}'\? .*params, "
    with pytest.raises(ValueError, match=message):
        px.scan_axes(**{typo: 0})
    assert px.scan_axes(memory=0)["memory"] == 0  # a collection of the user's own
    # one numbered, a digit off 'knobs' or 'params', was refused as a typo of them
    assert px.scan_axes(knobs2=0, params1=None)["knobs2"] == 0


def test_probe_given_a_selector_without_the_input_says_so():
    """probe(model, variables, "**/h") took the selector for x: Dense on a str raised a
    bare IndexError ('tuple index out of range')."""
    dense = nn.Dense(2)
    variables = dense.init(jax.random.key(0), X)
    with pytest.raises(IndexError) as error:
        px.probe(dense, variables, "**/h")
    assert "probe(model, variables, x, '**/h')" in "".join(error.value.__notes__)


def test_variables_of_another_model_or_input_shape_are_said_so():
    """Flax's bare 'Could not find parameter named "kernel"' or 'the given initializer is
    expected to generate shape (5, 2)' was all probe, tweak, inject, grad_of and blurb said."""
    dense = nn.Dense(2)
    variables = dense.init(jax.random.key(0), X)
    other = {"params": {"conv": {"kernel": jnp.ones((1, 3, 2))}}}
    with pytest.raises(flax.errors.ScopeParamNotFoundError) as error:
        px.tweak(dense, other, X, {})
    assert (
        "(tweak: its 'params' hold the modules ['conv']: are they another model's?"
        in (error.value.__notes__)[-1]
    )
    with pytest.raises(flax.errors.ScopeParamShapeError) as error:
        px.probe(dense, variables, jnp.ones((2, 5)))
    said = "(probe: are the variables another model's, or of other widths, or is the input"
    assert error.value.__notes__[-1].startswith(said)


def test_this_model_s_params_without_its_batch_stats_are_not_said_another_model_s():
    """Since dcd1b20 the note asked 'are they another model's?' of the model's own params."""
    model = nn.BatchNorm(use_running_average=True)  # reads its batch_stats first
    variables = jax.eval_shape(model.init, jax.random.key(0), X)
    with pytest.raises(flax.errors.ScopeCollectionNotFound) as error:
        px.probe(model, {"params": variables["params"]}, X)
    assert error.value.__notes__[-1] == (
        "(probe: the variables hold the collections ['params'], not the one the model "
        "reads: pass all that model.init returns)"
    )


def test_an_empty_collection_the_model_reads_is_not_said_to_be_another_one():
    """It said the variables hold ['params'], "not the one the model reads": 'params'."""
    with pytest.raises(flax.errors.ScopeCollectionNotFound) as error:
        px.probe(nn.Dense(2), {"params": {}}, X)
    assert error.value.__notes__[-1] == (
        "(probe: its 'params' hold the modules []: are they another model's? pass this "
        "model's, e.g. model.init's)"
    )


class TagsAStr(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.tag(self, "kind", {"name": "gelu"})
        return px.tag(self, "h", 2 * x).sum()


def test_a_tagged_str_leaves_the_other_tags_reachable_and_is_named_where_asked_for():
    """inject, grad_of and tag_shapes failed on JAX's bare 'not a valid JAX type'."""
    x = jnp.ones(2)
    assert px.probe(TagsAStr(), {}, x, "kind")[1] == {"kind": {"name": "gelu"}}
    shapes = px.core.tag_shapes(TagsAStr(), {}, x)
    assert shapes["kind"] == {"name": "gelu"} and shapes["h"].shape == (2,)
    assert px.inject(TagsAStr(), {}, x, {"h": jnp.zeros(2)}) == 0
    _, grads = px.grad_of(lambda out: out, TagsAStr(), {}, x, wrt="h")
    np.testing.assert_array_equal(grads["h"], jnp.ones(2))
    message = r"^Cannot {} 'kind': the tagged value there holds 'gelu' \(a str\), not an array"
    with pytest.raises(TypeError, match=message.format("inject")):
        px.inject(TagsAStr(), {}, x, {"kind": {"name": jnp.zeros(())}})
    with pytest.raises(TypeError, match=message.format("differentiate with respect to")):
        px.grad_of(lambda out: out, TagsAStr(), {}, x, wrt="kind")


def test_tweak_of_a_tagged_str_does_not_say_px_inject_replaces_it():
    """tweak said "It matches tagged value 'kind', which is no knob: px.inject replaces
    it", where inject refuses a str; the other tags keep the hint."""
    with pytest.raises(px.SelectorError) as error:
        px.tweak(TagsAStr(), {}, jnp.ones(2), {"kind": 1.0})
    assert str(error.value) == "Selector 'kind' matched no knob: there are none."
    with pytest.raises(px.SelectorError, match="It matches tagged value 'h', which is no knob"):
        px.tweak(TagsAStr(), {}, jnp.ones(2), {"h": 1.0})
