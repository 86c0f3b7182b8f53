"""Path weights seen from a branch compiled apart with `nn.jit`: an error, never stale."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import phosjax as px
from phosjax.core import apply_checking_records
from phosjax.layers import Repeat


class Loss(nn.Module):
    """Raises an aux loss of 1 (so the recorded loss is the path weight)."""

    @nn.compact
    def __call__(self, x):
        px.aux_loss(self, "one", jnp.ones(()))
        return x


class Gated(nn.Module):
    """Runs ``branch`` inside a path weight ``sigmoid(logit)``, ``logit`` a param."""

    branch: nn.Module

    @nn.compact
    def __call__(self, x):
        logit = self.param("logit", nn.initializers.zeros, ())
        with px.path_weight(self, "branch", nn.sigmoid(logit)):
            return self.branch(x)


def _loss(model: nn.Module, logit: float) -> float:
    x = jnp.ones((2, 3))
    variables = model.init(jax.random.key(0), x)
    variables = {**variables, "params": {**variables["params"], "logit": jnp.asarray(logit)}}
    _, state = model.apply(variables, x, mutable=[px.AUX_LOSS])
    return float(px.aux_total(state.get(px.AUX_LOSS, {}))[0])


def test_a_branch_under_nn_jit_cannot_read_a_path_weight_opened_outside():
    # nn.jit reuses its first trace: the weight of the first call would be baked in.
    model = Gated(nn.jit(Loss)())
    with pytest.raises(ValueError, match=r"'branch' runs under nn.jit inside path_weight 'branch'"):
        _loss(model, 2.0)


def test_nested_path_weights_under_nn_jit_are_an_error_too():
    model = Gated(nn.jit(Gated)(Loss()))
    with pytest.raises(ValueError, match=r"runs under nn\.jit inside path_weight"):
        _loss(model, 2.0)


def test_nn_jit_around_the_owner_of_the_path_weight_follows_the_weight():
    model = nn.jit(Gated)(Loss())
    assert _loss(model, 0.0) == pytest.approx(0.5)
    assert _loss(model, 2.0) == pytest.approx(float(jax.nn.sigmoid(2.0)), rel=1e-6)


def test_a_branch_under_nn_jit_that_reads_no_path_weight_is_fine():
    model = Gated(nn.jit(nn.Dense)(3))
    assert _loss(model, 2.0) == 0.0


class Plain(nn.Module):
    """Runs ``branch`` outside any path weight, or inside a path weight ``weight``."""

    branch: nn.Module
    weight: float | None = None

    @nn.compact
    def __call__(self, x):
        if self.weight is None:
            return self.branch(x)
        with px.path_weight(self, "branch", self.weight):
            return self.branch(x)


def _aux_total(model: nn.Module) -> float:
    _, state = model.apply({}, jnp.ones((2, 3)), mutable=[px.AUX_LOSS])
    return float(px.aux_total(state[px.AUX_LOSS])[0])


def test_a_trace_nn_jit_made_outside_any_scope_is_not_reused_unscaled_inside_one():
    # The same nn.jit module at the same place, first traced outside any path weight:
    # nn.jit reuses that trace inside the scope without running the branch's Python code.
    branch = nn.jit(Loss)()
    assert _aux_total(Plain(branch)) == 1.0
    with pytest.raises(ValueError, match=r"1 aux loss\(es\) recorded inside path_weight 'branch'"):
        _aux_total(Plain(branch, weight=0.25))
    assert _aux_total(Plain(Loss(), weight=0.25)) == 0.25


class _ParentMade(nn.Module):
    """Hands ``Plain`` (weight 0.25) a branch made in its own compact, after a sibling
    of the same fields ran outside it; ``block`` makes both (a module class, jitted or not),
    ``lift`` (a Flax transform) lifts ``Plain``."""

    block: object
    lift: object = None

    @nn.compact
    def __call__(self, x):
        x = self.block(name="before")(x)
        owner = Plain if self.lift is None else self.lift(Plain)
        return owner(self.block(name="branch"), weight=0.25, name="owner")(x)


def test_a_branch_its_parent_made_is_not_reused_unscaled_from_a_sibling_s_nn_jit_trace():
    # The branch is the parent's submodule, so its aux loss records beside the owner of
    # the path weight, not beneath it; nn.jit reuses the trace of "before" (same fields,
    # no names fingerprinted) for it, running no Python: its loss counted 1, not 0.25.
    assert _aux_total(_ParentMade(Loss)) == 1.25
    with pytest.raises(
        ValueError, match=r"^1 aux loss\(es\) recorded inside path_weight 'branch' in owner were"
    ):
        _aux_total(_ParentMade(nn.jit(Loss)))


@pytest.mark.parametrize("lift", [nn.remat, nn.jit])
def test_a_lifted_owner_checks_the_branch_its_parent_made_too(lift):
    # Flax lifts the branch apart from the owner, into a root scope of its own, where its
    # aux loss records: the reused trace's loss counted 1, not 0.25, silently (total 2).
    assert _aux_total(_ParentMade(Loss, lift)) == 1.25
    with pytest.raises(
        ValueError,
        match=r"^1 aux loss\(es\) recorded inside path_weight 'branch' in owner were not "
        r"scaled by it \(\['branch/one'\]\)",
    ):
        _aux_total(_ParentMade(nn.jit(Loss), lift))


class _AfterAScan(nn.Module):
    """Runs a `Repeat` of `Loss` (2 layers), then ``branch``, inside a path weight 0.25."""

    branch: nn.Module

    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "branch", 0.25):
            return self.branch(Repeat(Loss(), 2)(x))


def test_a_scan_in_the_scope_hides_no_aux_loss_a_reused_nn_jit_trace_recorded_unscaled():
    # nn.scan traces its body twice: 2 raises, 1 record; counted together, that spare
    # raise hid the reused trace's record, whose 1 then counted unscaled (total 1.5).
    assert _aux_total(_AfterAScan(Loss())) == 0.75
    branch = nn.jit(Loss)()
    assert _aux_total(Plain(branch)) == 1.0  # a trace made outside any scope
    with pytest.raises(
        ValueError,
        match=r"^1 aux loss\(es\) recorded inside path_weight 'branch' in the top module were "
        r"not scaled by it \(\['branch/one'\]\): a module under nn.jit reused a trace",
    ):
        _aux_total(_AfterAScan(branch))


def test_an_aux_loss_sowed_directly_inside_a_scope_is_named_as_such():
    class Sows(nn.Module):
        @nn.compact
        def __call__(self, x):
            with px.path_weight(self, "branch", 0.25):
                self.sow(px.AUX_LOSS, "raw", jnp.ones(()))
            return x

    with pytest.raises(ValueError) as raised:
        _aux_total(Sows())
    assert str(raised.value) == (
        "1 aux loss(es) recorded inside path_weight 'branch' in the top module were not scaled "
        "by it (['raw']): a module under nn.jit reused a trace made outside the scope, with no "
        "path weight (apply nn.jit, or jax.jit, around the layer that owns the path weight "
        "instead), or sowed them into 'aux_loss' itself (raise them with phosjax.aux_loss "
        "instead)."
    )


def test_aux_losses_raised_in_a_scope_and_recorded_beside_it_are_all_counted():
    class TwoScopes(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = Loss(name="before")(x)
            with px.path_weight(self, "outer", 0.5):
                x = Loss(name="outer_loss")(x)
                with px.path_weight(self, "inner", 0.5):
                    x = Loss(name="inner_loss")(Loss(name="inner_loss_2")(x))
            return x

    _, state = TwoScopes().apply({}, jnp.ones(2), mutable=[px.AUX_LOSS])
    losses = {k: float(v["one"][0]) for k, v in state[px.AUX_LOSS].items()}
    assert losses == {"before": 1.0, "outer_loss": 0.5, "inner_loss": 0.25, "inner_loss_2": 0.25}


class _Weighted(nn.Module):
    weight: object

    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "branch", self.weight):
            return x


@pytest.mark.parametrize(
    "weight, error, message",
    [
        ("0.5", TypeError, r"a weight must be a number or an array of them, .*got '0.5' \(str\)"),
        ("half", TypeError, r"a weight must be a number or an array of them, .*got 'half' \(str"),
        (None, TypeError, r"a weight must be a number or an array of them, .*got None \(None"),
        (jnp.ones((2, 3)), ValueError, r"a weight must be a scalar .*got shape \(2, 3\)"),
    ],
)
def test_a_weight_that_is_no_scalar_number_names_the_path_weight(weight, error, message):
    # a string failed in JAX: "Value '0.5' with dtype <U3 is not a valid JAX array type",
    # "could not convert string to float: 'half'", "None is not a valid value for jnp.array"
    with pytest.raises(error, match=r"^path_weight 'branch' in the top module: " + message):
        _Weighted(weight).apply({}, jnp.ones((2, 3)), mutable=["path_weights"])


def test_apply_checking_records_checks_only_the_collections_mutable_lists():
    """A path weight opened outside any transform, with ``path_weights`` not mutable, was
    blamed on a lifted transform dropping it; the aux losses are still checked."""
    net, x = Gated(Loss()), jnp.ones(2)
    variables = net.init(jax.random.key(0), x)
    _, written = apply_checking_records(net.apply, variables, x, mutable=["aux_loss"])
    assert float(px.aux_total(written["aux_loss"])[0]) == 0.5
    dropped = nn.vmap(Loss, variable_axes={}, axis_size=2)
    with pytest.raises(ValueError, match="aux loss 'one' was raised but not recorded"):
        apply_checking_records(dropped().apply, {}, jnp.ones((2, 3)), mutable="aux_loss")


def test_apply_checking_records_checks_only_the_collections_a_deny_list_leaves_mutable():
    """With mutable=nn.DenyList(['path_weights']), the path weight it made immutable was
    blamed on a lifted transform dropping it."""
    net, x = Gated(Loss()), jnp.ones(2)
    variables = net.init(jax.random.key(0), x)
    kept = nn.DenyList(["path_weights"])
    _, written = apply_checking_records(net.apply, variables, x, mutable=kept)
    assert float(px.aux_total(written["aux_loss"])[0]) == 0.5 and "path_weights" not in written
    dropped = nn.vmap(Loss, variable_axes={}, axis_size=2)
    with pytest.raises(ValueError, match="aux loss 'one' was raised but not recorded"):
        apply_checking_records(dropped().apply, {}, jnp.ones((2, 3)), mutable=kept)


def test_a_per_example_path_weight_on_an_empty_batch_records_zero_not_nan():
    """The weight's batch mean over no example was NaN, and so was the aux loss it scaled
    (choicenet with per_example=True); both are now 0."""

    class Gated(nn.Module):
        @nn.compact
        def __call__(self, x):
            with px.path_weight(self, "branch", jnp.ones(x.shape[:1])):
                return Loss()(x)

    _, state = Gated().apply({}, jnp.ones((0, 3)), mutable=["aux_loss", "path_weights"])
    assert float(state["path_weights"]["branch"][0]) == 0.0
    assert float(state["aux_loss"]["Loss_0"]["one"][0]) == 0.0


class _Nested(nn.Module):
    inner: object

    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "outer", jnp.ones(3)), px.path_weight(self, "inner", self.inner):
            return Loss()(x)


def test_a_per_example_weight_inside_one_of_another_batch_is_refused_naming_both():
    # JAX's "mul got incompatible shapes for broadcasting: (3,), (2,)" named no path weight
    with pytest.raises(
        ValueError,
        match=r"^path_weight 'inner' in the top module: a weight of shape \(2,\), one per "
        r"example, inside path weights of shape \(3,\), one per example of a batch of 3: give",
    ):
        _Nested(jnp.ones(2)).apply({}, jnp.ones((3, 2)), mutable=["aux_loss"])
    _, state = _Nested(jnp.full(1, 0.5)).apply({}, jnp.ones((3, 2)), mutable=["aux_loss"])
    assert float(state["aux_loss"]["Loss_0"]["one"][0]) == 0.5  # a batch of 1: every example
