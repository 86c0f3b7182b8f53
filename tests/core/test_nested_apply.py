"""A model that applies another model inside its own call (a frozen teacher): what the
nested apply raises, opens, tags or declares is not the outer call's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import phosjax as px
from phosjax.core import (
    aux_losses_raised,
    check_aux_losses_kept,
    check_path_weights_kept,
    path_weights_opened,
)
from phosjax.core._blurb import ArraySpec


class Teacher(nn.Module):
    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "branch", 0.5):
            px.aux_loss(self, "l1", jnp.abs(x).mean())
        return px.tag(self, "out", nn.Dense(2)(x))


TEACHER = Teacher()
TEACHER_VARIABLES = TEACHER.init(jax.random.key(0), jnp.ones((1, 3)))


class Student(nn.Module):
    @nn.compact
    def __call__(self, x):
        soft = TEACHER.apply(TEACHER_VARIABLES, x)  # a frozen teacher: nothing mutable
        px.aux_loss(self, "own", jnp.abs(x).mean())
        return nn.Dense(2)(x) + soft


def test_a_nested_apply_raises_and_opens_nothing_for_the_outer_call():
    x = jnp.ones((4, 3))
    variables = Student().init(jax.random.key(1), x)
    with aux_losses_raised() as raised, path_weights_opened() as opened:
        _, state = Student().apply(variables, x, mutable=["aux_loss", "path_weights"])
    assert (list(raised), opened) == (["own"], {})
    check_aux_losses_kept(raised, state["aux_loss"])  # nothing taken as dropped
    check_path_weights_kept(opened, state.get("path_weights", {}))


def test_a_flax_without_the_apply_stack_counts_a_nested_apply_as_the_calls_own(monkeypatch):
    """`apply_depth` reads a private stack of Flax: where a Flax lacks it, every record is
    taken, as before nested applies were told apart (none lost, nothing raised)."""
    import types

    from phosjax.core import _record

    monkeypatch.setattr(_record, "linen_module", types.SimpleNamespace())
    x = jnp.ones((4, 3))
    variables = Student().init(jax.random.key(1), x)
    with aux_losses_raised() as raised:
        Student().apply(variables, x, mutable=["aux_loss"])
    assert (_record.apply_depth(), sorted(raised)) == (0, ["l1", "own"])


def test_a_lifted_transform_dropping_records_beside_a_nested_apply_is_still_refused():
    """The outer call's own drop is still refused beside a nested apply."""
    Members = nn.vmap(
        Teacher, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, axis_size=2
    )

    class Both(nn.Module):
        @nn.compact
        def __call__(self, x):
            TEACHER.apply(TEACHER_VARIABLES, x)
            return Members(name="members")(x)

    x = jnp.ones((4, 3))
    variables = Both().init(jax.random.key(1), x)
    with aux_losses_raised() as raised:
        _, state = Both().apply(variables, x, mutable=["aux_loss"])
    assert list(raised) == ["members/l1"]
    with pytest.raises(ValueError, match="aux loss 'members/l1' was raised but not recorded"):
        check_aux_losses_kept(raised, state)


@pytest.mark.parametrize(
    ("check", "collection"),
    [(check_aux_losses_kept, "aux_loss"), (check_path_weights_kept, "path_weights")],
)
def test_one_path_given_as_a_str_is_refused_not_split_into_characters(check, collection):
    # it said "aux loss 'm' was raised but not recorded", the str's first character
    with pytest.raises(
        TypeError,
        match=rf"^The paths written to '{collection}' must be a list of them; got the str "
        r"'members/l1' as the paths: give \['members/l1'\] for one path\.$",
    ):
        check("members/l1", {"members": {"l1": jnp.ones(())}})


class Tempered(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x / px.knob(self, "T", 1.0)


TEMPERED = Tempered()


class Gained(nn.Module):
    @nn.compact
    def __call__(self, x):
        soft = TEMPERED.apply(TEMPERED.init(jax.random.key(0), x), x)
        return soft * px.knob(self, "gain", 2.0)


def test_the_knobs_of_a_nested_apply_are_not_the_models():
    """Its 'T' was listed, and tweaking it blamed a lifted transform for dropping it."""
    x = jnp.ones(3)
    assert list(px.knobs(Gained(), x)) == ["gain"]
    variables = Gained().init(jax.random.key(1), x)
    with pytest.raises(
        px.SelectorError, match=r"^Selector 'T' matched no knob among 1; nearest: 'gain'\.$"
    ):
        px.tweak(Gained(), variables, x, {"T": 5.0})


class Doubled(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "soft", 2 * x)


DOUBLED = Doubled()


class Shifted(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", DOUBLED.apply({}, x) + 1)


def test_the_tags_of_a_nested_apply_are_not_taken_as_dropped_by_a_lifted_transform():
    """Probing 'soft' blamed a lifted transform for dropping it."""
    x = jnp.ones(3)
    with pytest.raises(
        px.SelectorError,
        match=r"^Selector 'soft' matched no tagged value among 1; nearest: 'h'\.$",
    ):
        px.probe(Shifted(), {}, x, "soft")
    assert px.probe(Shifted(), {}, x, "h")[1]["h"].tolist() == [3.0, 3.0, 3.0]


class Gelu(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.note(self, "activation", "gelu")
        return nn.gelu(x)


GELU = Gelu()


class Noted(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.note(self, "mean", x.mean())
        return GELU.apply({}, x)


def test_the_notes_of_a_nested_apply_are_not_the_models():
    """The blurb showed the teacher's activation=gelu as the model's own note."""
    assert px.blurb(Noted(), {}, jnp.ones(3)).root.notes == {"mean": 1.0}


class Widened(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(5, name="d")(x)


WIDENED = Widened()
WIDENED_VARIABLES = WIDENED.init(jax.random.key(0), jnp.ones(3))


class Narrowed(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="d")(WIDENED.apply(WIDENED_VARIABLES, x))


def test_the_modules_of_a_nested_apply_are_not_the_models_in_its_blurb():
    """The teacher's Dense 'd' (output 5) took the row of the model's own 'd' (output 2)."""
    variables = Narrowed().init(jax.random.key(1), jnp.ones(3))
    summary = px.blurb(Narrowed(), variables, jnp.ones(3))
    assert summary["d"].outputs == {"": ArraySpec((2,), "float32")}
    assert summary["d"].flops == 2 * 5 * 2 + 2
    assert list(summary.modules()) == ["", "d"]


class Distilling(nn.Module):
    """Reads its teacher's aux loss in a weighted branch of its own."""

    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "branch", 0.25):
            _, state = TEACHER.apply(TEACHER_VARIABLES, x, mutable=["aux_loss"])
            px.aux_loss(self, "own", jnp.ones(()))
        return state["aux_loss"]


def test_a_branch_weight_does_not_scale_the_losses_of_a_model_applied_inside_it():
    """The teacher's loss came out scaled by the student's branch weight, 0.25."""
    x = -jnp.ones((4, 3))
    teacher_losses, state = Distilling().apply({}, x, mutable=["aux_loss"])
    alone = TEACHER.apply(TEACHER_VARIABLES, x, mutable=["aux_loss"])[1]["aux_loss"]
    assert float(teacher_losses["l1"][0]) == float(alone["l1"][0]) == 0.5  # its own branch
    assert float(state["aux_loss"]["own"][0]) == 0.25
