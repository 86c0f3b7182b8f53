"""`make_optimizer`'s arguments: values that would train wrongly are refused by name."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from phosjax.train import OPTIMIZERS, HParams, make_optimizer
from phosjax.train._optim import clip_by_global_norm


@pytest.mark.parametrize(
    "grad_clip, message",
    [
        (-1.0, r"must be > 0 \(a global norm\) or None \(no clipping\), got -1.0"),
        (0.0, r"must be > 0 .*, got 0.0"),
        (float("nan"), r"must be a number, got nan"),
        ("one", r"must be a number, got 'one' \(str\)"),
    ],
)
def test_a_grad_clip_that_is_no_positive_norm_is_refused_by_name(grad_clip, message):
    """A negative clip turned each clipped gradient around (the update climbed the loss)."""
    with pytest.raises(ValueError, match=r"make_optimizer grad_clip " + message):
        make_optimizer("sgd", learning_rate=0.1, grad_clip=grad_clip)


def test_a_positive_grad_clip_scales_the_gradient_to_that_norm():
    tx = make_optimizer("sgd", learning_rate=0.1, grad_clip=1)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(params), params)
    assert [round(u, 6) for u in updates["w"].tolist()] == [-0.06, -0.08]


def test_a_bfloat16_gradient_is_clipped_by_its_norm_summed_in_float32():
    # its norm was summed in bfloat16 (64.5 for 64.631), and the clipped gradient's norm
    # came out 1.0024 for a clip of 1
    grads = {"w": jax.random.normal(jax.random.key(0), (4097,)).astype(jnp.bfloat16)}
    clip = clip_by_global_norm(1.0)
    clipped, _ = clip.update(grads, clip.init(None))
    assert clipped["w"].dtype == jnp.bfloat16
    assert abs(np.linalg.norm(np.asarray(clipped["w"], np.float64)) - 1) < 1e-3


@pytest.mark.parametrize(
    "option, message",
    [
        ({"learning_rate": -0.1}, r"learning_rate must be >= 0, got -0.1"),
        ({"weight_decay": -1}, r"weight_decay must be >= 0 \(0: none\), got -1.0"),
        ({"momentum": 1.5}, r"momentum must lie in \[0, 1\], got 1.5"),
        ({"learning_rate": "fast"}, r"learning_rate must be a number, got 'fast' \(str\)"),
    ],
)
def test_a_value_hparams_would_refuse_is_refused_by_name(option, message):
    """A negative learning rate had made every update climb the loss."""
    with pytest.raises(ValueError, match=r"make_optimizer " + message):
        make_optimizer("momentum", **option)


@pytest.mark.parametrize(
    "option, shown",
    [
        ({"learning_rate": 1e39}, r"learning_rate 1e\+39"),
        ({"weight_decay": "1e300"}, r"weight_decay 1e\+300"),
    ],
)
def test_a_value_beyond_float32_is_refused_as_a_group_refuses_it(option, shown):
    """The state held learning_rate 1e39 as inf, and each update was -inf."""
    message = rf"^make_optimizer {shown} lies beyond float32's range, the dtype the opt"
    with pytest.raises(ValueError, match=message + r".*; give a number between -3.40282e\+38 and"):
        make_optimizer("sgd", **option)


def test_a_value_given_as_a_string_spelling_a_float_is_that_float_as_in_a_bench_config():
    # YAML reads 1e-3 (no dot) as the string '1e-3': HParams and make_optimizer refused
    # it, while a bench config read it as 0.001
    hp = HParams(learning_rate="1e-3", weight_decay="0", momentum="5e-1", grad_clip="1")
    assert (hp.learning_rate, hp.weight_decay, hp.momentum, hp.grad_clip) == (1e-3, 0, 0.5, 1)
    assert HParams(learning_rate="1e-3") == HParams(learning_rate=1e-3)
    tx = make_optimizer("sgd", learning_rate="0.5", grad_clip="10")
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    assert updates["w"].tolist() == [-0.5, -0.5]


def test_a_jax_array_value_is_taken_as_a_grids_traced_one_is():
    tx = make_optimizer("sgd", learning_rate=jnp.asarray(0.5))
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    assert updates["w"].tolist() == [-0.5, -0.5]


@pytest.mark.parametrize(
    "learning_rate, message",
    [
        (jnp.asarray(-0.1), r"must be >= 0, got -0.1"),
        (jnp.asarray([0.1, 0.2]), r"must be a number, got Array\(\[0.1, 0.2\]"),
    ],
)
def test_a_concrete_jax_array_is_checked_as_a_number_is(learning_rate, message):
    """Only a traced value can go unchecked: -0.1 climbed the loss, and [0.1, 0.2] scaled
    each param's two columns by another rate."""
    with pytest.raises(ValueError, match=r"^make_optimizer learning_rate " + message):
        make_optimizer("sgd", learning_rate=learning_rate)


def test_a_traced_value_of_several_numbers_is_refused_by_name_and_shape():
    def init(rates):
        return make_optimizer("sgd", learning_rate=rates).init({"w": jnp.zeros(2)})

    with pytest.raises(ValueError, match=r"^make_optimizer learning_rate must be one number, "):
        jax.jit(init)(jnp.asarray([0.1, 0.2]))
    rates = jnp.asarray([0.1, 0.2])
    state = jax.jit(jax.vmap(init))(rates)  # a grid's per-cell values: vmapped
    assert (state.hyperparams["learning_rate"] == rates).all()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_updates_keep_the_state_of_bfloat16_params_in_its_dtypes(name):
    """A grid's per-cell values are float32 arrays: they promoted the update of bfloat16
    params, and the moments with it, which the engine's scan over a chunk's steps refused
    (a model storing its params in bfloat16 could not train with adam or momentum)."""
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    values = {"learning_rate": 1e-2, "weight_decay": 1e-3, "momentum": 0.9}
    tx = make_optimizer(name, **{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
    state = tx.init(params)

    def step(carry, _):
        params, state = carry
        updates, state = tx.update({"w": jnp.ones(3, jnp.bfloat16)}, state, params)
        return (optax.apply_updates(params, updates), state), None

    (moved, after), _ = jax.lax.scan(step, (params, state), length=2)
    dtypes = lambda tree: [leaf.dtype for leaf in jax.tree.leaves(tree)]
    assert dtypes(after) == dtypes(state)
    assert moved["w"].dtype == jnp.bfloat16 and float(moved["w"][0]) < 1


def test_numpy_float64_gradients_are_clipped_without_a_warning_on_each_update():
    # without x64, casting back to their float64 dtype warned "float64 ... not available"
    clip = clip_by_global_norm(1.0)
    clipped, _ = clip.update({"w": np.array([3.0, 4.0])}, clip.init(None))
    assert clipped["w"].tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize(
    "option, message",
    [
        (
            {"learning_rate": [1e-3] * 40},
            "HParams learning_rate must be a number, got [0.001, 0.001, ",
        ),
        ({"steps": [10] * 40}, "HParams steps must be an int, got [10, 10, 10, "),
        ({"optimizer": ["adam"] * 40}, "HParams optimizer ['adam', 'adam', 'adam', "),
    ],
)
def test_a_long_value_is_shown_cut_to_one_short_line(option, message):
    """A list of 40 values (or an optax transformation's repr) was printed whole."""
    with pytest.raises(ValueError) as error:
        HParams(**option)
    shown = str(error.value)
    assert shown.startswith(message), shown
    assert "…" in shown and len(shown) < 200, shown


SCHEDULE_TOLD = (
    r"learning_rate must be a number \(the peak rate\), got a function <function .*: the "
    r"engine schedules each cell's rate itself; give its peak as learning_rate and its shape "
    r"as lr_schedule \(one of \('constant', 'cosine', 'linear'\)\) and warmup_steps\.$"
)


@pytest.mark.parametrize(
    "build",
    [
        lambda rate: HParams(learning_rate=rate),
        lambda rate: make_optimizer("adam", learning_rate=rate),
    ],
)
def test_an_optax_schedule_as_learning_rate_is_told_to_give_the_peak_and_lr_schedule(build):
    with pytest.raises(ValueError, match=SCHEDULE_TOLD):
        build(optax.cosine_decay_schedule(1e-3, 100))


FAMILY_TOLD = (
    " must be an optimizer family's name, one of ('adam', 'adamw', 'sgd', 'momentum'), got "
    "{shown}: the engine builds the family's optax chain itself (make_optimizer), each cell's "
    "learning_rate, weight_decay and momentum in its state, so that one compiled update serves "
    "a group; give the family's name and grad_clip, lr_schedule and warmup_steps."
)


@pytest.mark.parametrize(
    "build, error, where",
    [
        (lambda tx: HParams(optimizer=tx), ValueError, "HParams optimizer"),
        (make_optimizer, TypeError, "make_optimizer: name"),  # its TypeError for a non-str
    ],
)
def test_an_optax_transformation_as_optimizer_is_told_to_give_a_familys_name(build, error, where):
    """make_optimizer said only 'got a value of type GradientTransformationExtraArgs'."""
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3))
    with pytest.raises(error) as raised:
        build(tx)
    assert str(raised.value) == where + FAMILY_TOLD.format(shown="an optax transformation")


@pytest.mark.parametrize(
    "build, error, where",
    [
        (lambda tx: HParams(optimizer=tx), ValueError, "HParams optimizer"),
        (make_optimizer, TypeError, "make_optimizer: name"),
    ],
)
def test_an_optax_factory_as_optimizer_is_told_to_give_a_familys_name(build, error, where):
    """HParams(optimizer=optax.adam) was told to give a number, the peak rate."""
    with pytest.raises(error) as raised:
        build(optax.adam)
    shown = str(raised.value)
    assert shown.startswith(where + " must be an optimizer family's name"), shown
    assert shown.endswith(FAMILY_TOLD.split("{shown}")[1]), shown


@pytest.mark.parametrize(
    "build, error, where",
    [
        (lambda tx: HParams(optimizer=tx), ValueError, "HParams optimizer"),
        (make_optimizer, TypeError, "make_optimizer: name"),
    ],
)
def test_optax_multisteps_as_optimizer_is_told_to_give_a_familys_name(build, error, where):
    """optax.MultiSteps (gradient accumulation) is no GradientTransformation: HParams said
    only '<optax...MultiSteps object at 0x...>: expected one of', make_optimizer 'got a
    value of type MultiSteps', neither that the engine builds the optimizer itself."""
    shown = "an optax transformation (optax.MultiSteps)"
    with pytest.raises(error) as raised:
        build(optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4))
    assert str(raised.value) == where + FAMILY_TOLD.format(shown=shown)


def test_an_optax_transformation_as_learning_rate_is_told_to_give_the_peak():
    """It was told to give an optimizer family's name."""
    with pytest.raises(ValueError) as raised:
        HParams(learning_rate=optax.adam(1e-3))
    assert str(raised.value).startswith(
        "HParams learning_rate must be a number (the peak rate), got an optax transformation: "
        "the engine schedules each cell's rate itself;"
    ), raised.value


@pytest.mark.parametrize(
    "build, where",
    [
        (lambda clip: HParams(grad_clip=clip), "HParams"),
        (lambda clip: make_optimizer("sgd", grad_clip=clip), "make_optimizer"),
    ],
)
def test_an_optax_clip_as_grad_clip_is_told_to_give_the_norm(build, where):
    """It was told only 'must be a number, got GradientTransformation(init=<function
    init_empty_state...', not that None is no clipping nor that the engine clips itself."""
    with pytest.raises(ValueError) as raised:
        build(optax.clip_by_global_norm(1.0))
    assert str(raised.value) == (
        f"{where} grad_clip must be a number (a global norm) or None (no clipping), got an "
        "optax transformation: the engine clips the gradients itself, first in the family's "
        "optax chain (make_optimizer); give the norm, as to optax.clip_by_global_norm."
    )


@pytest.mark.parametrize(
    "build, where",
    [
        (lambda **kw: HParams(**kw), "HParams"),
        (lambda **kw: make_optimizer("adamw", **kw), "make_optimizer"),
    ],
)
@pytest.mark.parametrize("name", ["weight_decay", "momentum"])
def test_a_schedule_as_weight_decay_or_momentum_is_told_to_give_one_number(build, where, name):
    """It was told only that it 'must be a number', not that the rate alone is scheduled."""
    with pytest.raises(ValueError) as raised:
        build(**{name: optax.constant_schedule(1e-4)})
    assert str(raised.value).startswith(f"{where} {name} must be a number, got a function <")
    assert str(raised.value).endswith(
        f"…: the engine holds each cell's {name} constant through the run (only the learning "
        "rate follows a schedule: lr_schedule, one of ('constant', 'cosine', 'linear'), and "
        f"warmup_steps); give {name} as one number."
    ), raised.value
