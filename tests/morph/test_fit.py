"""`fit_config` (the config of a resized variable tree) and `measured_latency`."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax import morph
from phosjax.models import ModelConfig, build_model
from phosjax.morph import (
    _fit,
    _loop,
    channel_groups,
    expressible,
    fit_config,
    mask,
    measured_latency,
    once,
    shrink,
)
from tests.compiles import compiles_seen

CNN1D = ModelConfig("cnn1d", num_classes=5, input_shape=(40,))
TRANSFORMER = ModelConfig("transformer", num_classes=5, input_shape=(40,))


def _shapes(config: ModelConfig):
    x = jax.ShapeDtypeStruct((1, *config.input_shape), jnp.float32)
    return jax.eval_shape(config.build().init, jax.random.key(0), x)


def _with_option(config: ModelConfig, **options) -> ModelConfig:
    return config.replace(options={**dict(config.resolved().options), **options})


@pytest.mark.parametrize(
    "target",
    [
        CNN1D.replace(width=(12,)),
        _with_option(TRANSFORMER, mlp_features=24),
    ],
    ids=["stage_width", "integer_option"],
)
def test_fit_config_finds_the_widths_that_build_the_variables(target):
    base = CNN1D if target.name == "cnn1d" else TRANSFORMER
    assert fit_config(base, _shapes(target)) == target.resolved()


def test_fit_config_and_shrink_take_the_params_alone():
    """They said the params lacked every leaf ('params/...') of config's model."""
    model, x = CNN1D.replace(width=(6,)).build(), jnp.ones((1, 40))
    variables = model.init(jax.random.key(0), x)
    assert fit_config(CNN1D, variables["params"]).widths == (6,)
    groups = channel_groups(model, variables, x)
    alive = {name: np.arange(6) < 2 for name in groups.names}
    assert shrink(variables["params"], alive, groups, config=CNN1D).config.widths == (2,)


def test_fit_config_takes_real_arrays():
    target = CNN1D.replace(width=(6,))
    variables = target.build().init(jax.random.key(0), jnp.ones((1, 40)))
    assert fit_config(CNN1D, variables).widths == (6,)


def test_blocks_of_different_widths_get_one_stage_each():
    target = CNN1D.resolved().replace(depth=1, width=(7, 9, 11))
    fitted = fit_config(CNN1D, _shapes(target))
    assert (fitted.depth, fitted.widths) == (1, (7, 9, 11))


def test_telling_a_config_split_per_block_computes_the_same_compiles_one_program():
    # op by op, the models' init and applies compiled a program per op (24 for an mlp)
    base = ModelConfig("mlp", 5, (13,), depth=3, width=17)  # shapes no other test uses
    split = base.replace(depth=1, width=(17, 17, 17))
    assert _fit.variable_shapes(base) == _fit.variable_shapes(split)  # traced, kept
    with compiles_seen() as compiles:
        assert _fit.same_function(base, split)
    assert len(compiles) <= 1


@pytest.mark.parametrize(
    ("base", "target", "changed"),
    [
        (
            TRANSFORMER,
            _with_option(TRANSFORMER, num_heads=2),  # heads of another size
            "['params/blocks_0/attention/out/kernel', 'params/blocks_0/attention/qkv/bias'",
        ),
    ],
)
def test_variables_no_config_builds_are_an_error(base, target, changed):
    with pytest.raises(ValueError, match="cannot express these widths") as error:
        fit_config(base, _shapes(target))
    assert changed in str(error.value)


def test_many_changed_leaves_are_named_six_and_counted(monkeypatch):
    """It cut them with '...', without a count."""
    monkeypatch.setattr(_fit, "_candidates", lambda config: [])  # straight to the error
    deep = ModelConfig("mlp", num_classes=5, input_shape=(40,), depth=5, width=8)
    with pytest.raises(ValueError) as error:
        fit_config(deep, _shapes(deep.replace(width=16)))
    assert "'params/blocks_2/Dense_0/kernel'] and 7 more. The model's" in str(error.value)


def test_another_model_s_variables_are_named_so_not_widths_to_round():
    """A block fewer (or another model) was 'changed leaves ... cannot express these
    widths', advising expressible, which cannot help: the leaves themselves differ."""
    fewer = CNN1D.replace(depth=2)
    with pytest.raises(
        ValueError,
        match=r"^the variables are not of a 'cnn1d' model like config's, whatever its widths: "
        r"they lack its leaves \['params/blocks_2/Conv_0/bias', 'params/blocks_2/Conv_0/kernel'"
        r"\]; pass the config of the model they are of$",
    ):
        fit_config(CNN1D, _shapes(fewer))
    with pytest.raises(ValueError, match=r"they lack its leaves \[.*\] and hold the leaves \["):
        fit_config(CNN1D, _shapes(ModelConfig("mlp", 5, (40,))))


class _Clock:
    """A fake ``time.perf_counter``: consecutive calls are the starts and ends of calls."""

    def __init__(self, durations):
        self.readings = iter(np.cumsum([(0.0, d) for d in durations]))

    def perf_counter(self):
        return float(next(self.readings))


class _Spy:
    """A model that records the input shapes it is traced with."""

    def __init__(self, model):
        self.model, self.shapes = model, []

    def apply(self, variables, x):
        self.shapes.append(x.shape)
        return self.model.apply(variables, x)


def test_measured_latency_is_the_median_call_time_per_example(monkeypatch):
    durations = [0.01 * k for k in range(1, 20)] + [5.0]  # a slow outlier: mean != median
    spy = _Spy(build_model(CNN1D))
    monkeypatch.setattr(
        _loop, "time", types.SimpleNamespace(perf_counter=_Clock(durations).perf_counter)
    )
    monkeypatch.setattr(_loop, "build_model", {CNN1D: spy}.__getitem__)  # built from CNN1D
    variables = CNN1D.build().init(jax.random.key(0), jnp.ones((1, 40)))
    latency = measured_latency(CNN1D, variables, batch=7)
    assert latency == pytest.approx(np.median(durations) / 7)  # 0.105 s per call
    assert spy.shapes == [(7, 40)]  # one trace, on a batch of the given size


def test_measured_latency_of_a_real_model_is_a_positive_time():
    variables = CNN1D.build().init(jax.random.key(0), jnp.ones((1, 40)))
    assert 0 < measured_latency(CNN1D, variables, batch=4) < 1.0


def test_measured_latency_of_no_examples_is_an_error_naming_batch(monkeypatch):
    monkeypatch.setattr(_loop, "build_model", lambda config: pytest.fail("built"))
    for batch in (0, -2):  # no time per example: a ZeroDivisionError, a shape error
        with pytest.raises(
            ValueError, match=rf"^measured_latency batch must be a positive int, got {batch}$"
        ):
            measured_latency(CNN1D, {}, batch=batch)
    with pytest.raises(TypeError, match=r"^measured_latency batch must be a static positive int"):
        measured_latency(CNN1D, {}, batch=2.5)


def test_measured_latency_of_another_model_s_variables_names_them_not_a_flax_scope():
    """It raised flax's bare 'Could not find parameter named "kernel" in scope ...'."""
    mlp = ModelConfig("mlp", 5, (40,), width=4)
    variables = mlp.build().init(jax.random.key(0), jnp.ones((1, 40)))
    with pytest.raises(
        ValueError,
        match=r"^measured_latency: the model reads a variable that variables lack \(.*\); "
        r"its 'params' hold the modules \[.*\]: are they another model's\? pass this model's",
    ):
        measured_latency(CNN1D, variables, batch=1)
    with pytest.raises(ValueError, match=r"^measured_latency: variables hold no 'params' "):
        measured_latency(mlp, variables["params"], batch=1)
    with pytest.raises(  # it raised flax's ScopeParamShapeError, saying what to pass
        ValueError,
        match=r"^measured_latency: a variable has another shape than the model makes \(.*"
        r"\(40, 8\).*\); are the variables of another model, or of other widths\? pass",
    ):
        measured_latency(mlp.replace(width=8), variables, batch=1)


def test_expressible_with_the_config_of_another_model_is_refused_naming_a_leaf():
    """It kept every channel: no field of the other config sized the groups."""
    config = ModelConfig("resnet", 3, (4, 4, 1), width=8)
    model, x = config.build(), jnp.zeros((2, 4, 4, 1))
    groups = channel_groups(model, jax.eval_shape(model.init, jax.random.key(0), x), x)
    alive = {name: np.arange(8) < 2 for name in groups.names}
    with pytest.raises(
        ValueError,
        match=r"^expressible: the groups hold the leaf '.*blocks_0/.*', which the 'mlp' model "
        r"of config lacks \(its modules: \[.*'params/head'.*\]\); were the groups traced from "
        r"another model\? pass the config of the model they were traced from$",
    ):
        expressible(ModelConfig("mlp", 3, (16,), width=8), groups, alive)
    kept = expressible(config.replace(width=(4,)), groups, alive)  # other widths: its form
    assert {name: int(keep.sum()) for name, keep in kept.items()} == dict.fromkeys(groups.names, 2)


def test_expressible_scores_that_miss_or_misname_a_group_are_named():
    config = ModelConfig("resnet", 3, (4, 4, 1), width=8)
    model, x = config.build(), jnp.zeros((2, 4, 4, 1))
    groups = channel_groups(model, jax.eval_shape(model.init, jax.random.key(0), x), x)
    alive = {"blocks_0/conv_0": np.arange(8) < 2, "blocks_0/conv_1": np.arange(8) % 2 == 1}
    missing = r"^expressible scores has no entry for the groups \['blocks_0/conv_1'\] \(a config"
    with pytest.raises(ValueError, match=missing):  # was a bare KeyError: 'blocks_0/conv_1'
        expressible(config, groups, alive, {"blocks_0/conv_0": np.ones(8)})
    scores = {name: np.arange(8.0) for name in groups.names}
    misnamed = (
        r"^expressible scores names 'blocks_0/conv0', which is no channel group\. Did you "
        r"mean 'blocks_0/conv_0'"
    )
    with pytest.raises(ValueError, match=misnamed):
        expressible(config, groups, alive, {**scores, "blocks_0/conv0": np.ones(8)})
    short = r"^expressible scores\['blocks_0/conv_0'\] has shape \(3,\); the group has 8 channels"
    with pytest.raises(ValueError, match=short):
        expressible(config, groups, alive, {**scores, "blocks_0/conv_0": np.ones(3)})
    kept = expressible(config, groups, alive, scores)  # the best scored, the alive first
    assert {name: np.flatnonzero(keep).tolist() for name, keep in kept.items()} == {
        "blocks_0/conv_0": [0, 1, 6, 7],
        "blocks_0/conv_1": [1, 3, 5, 7],
    }


def test_blocks_tied_by_skips_are_pruned_through_the_stage_width():
    """choicenet's blocks compute the same split one stage per block, but a skip ties
    each block's width to the next, so only the stage width can express a prune."""
    config = ModelConfig("choicenet", num_classes=5, input_shape=(12,), width=16)
    model, x = config.build(), jnp.zeros((2, 12))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    alive = {g.name: np.arange(g.size) < 8 for g in groups.groups}
    kept = expressible(config, groups, alive)
    assert {name: int(keep.sum()) for name, keep in kept.items()} == {
        name: 8 for name in groups.names
    }
    dead_half = mask(variables, alive, groups)
    assert once(config, dead_half, threshold=0.5, cost="params").shrunk.config.width == (8,)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("config_cost", lambda c: morph.config_cost(c)),
        ("scale_widths", lambda c: morph.scale_widths(c, 2.0)),
        ("expand", lambda c: morph.expand(c, 100.0)),
        ("once", lambda c: morph.once(c, {})),
        ("fit_config", lambda c: morph.fit_config(c, {})),
        ("expressible", lambda c: morph.expressible(c, None, {})),
    ],
)
def test_a_model_name_for_the_config_names_the_function_and_what_to_pass(name, call):
    """scale_widths('mlp', 2.0) and the like raised "'str' object has no attribute
    'resolved'" (config_cost and once named build_model)."""
    with pytest.raises(TypeError, match=rf"^{name} takes a ModelConfig, got 'mlp' \(a str\)") as e:
        call("mlp")
    more = ", ..." if name != "config_cost" else ""  # the call's other arguments
    assert str(e.value).endswith(f"(ModelConfig('mlp', num_classes=10, input_shape=(40,)){more}).")
