"""The registry: names, errors, user blocks, plugins by import and by entry point."""

import dataclasses
import importlib
import importlib.metadata
import itertools
import json
import pathlib
import re
import sys
import textwrap
import tomllib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import phosjax as px
from phosjax.models import (
    ENTRY_POINT_GROUP,
    ModelConfig,
    build_model,
    import_models,
    model_spec,
    param_count,
    register_model,
    registered_models,
)

ZOO = ["choicenet", "cnn1d", "cnn2d", "gru", "logreg", "mlp", "moenet", "resnet", "transformer"]


class Doubling(nn.Module):
    """A user block taking ``(x, train)`` positionally: doubles its output when training."""

    features: int

    @nn.compact
    def __call__(self, x, train):
        h = px.tag(self, "pre_act", nn.Dense(self.features)(x))
        return 2 * h if train else h


class TooWide(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features + 1)(x)


class NamedWidth(nn.Module):
    """A block whose width field is not ``features``: the frame cannot give it."""

    width: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.width)(x)


def test_the_zoo_is_registered():
    assert set(ZOO) <= set(registered_models())
    assert registered_models() == sorted(registered_models())


def test_unknown_name_lists_nearest_and_all_names():
    with pytest.raises(ValueError, match=r"unknown model 'mpl'\. Did you mean 'mlp'\?") as info:
        build_model(ModelConfig("mpl", num_classes=2, input_shape=(4,)))
    assert all(name in str(info.value) for name in ZOO)


@pytest.mark.parametrize("name, kind", [(3, "an int"), (None, "a NoneType"), (["mlp"], "a list")])
def test_a_model_name_that_is_no_str_is_named(name, kind):
    # 3 and None failed with "'int' object has no attribute 'casefold'", a list unhashable.
    message = r"^model_spec takes a registered model's name \(a str\), such as 'mlp', got "
    with pytest.raises(TypeError, match=message + re.escape(f"{name!r} ({kind})") + "$"):
        model_spec(name)


@pytest.mark.parametrize("key", ["features", "downsample", "name"])
def test_a_frame_model_option_the_frame_sets_itself_is_refused(registry, key):
    message = (
        rf"^register_model\('framed', \.\.\.\): option '{key}' would be ignored: the frame sets "
        r"the blocks' and stem's features, downsample, name, parent itself \(features: the "
        r"stage's width, from width=\); give it another name$"
    )
    with pytest.raises(ValueError, match=message):
        register_model("framed", Doubling, width=4, options={key: 8})
    assert "framed" not in registered_models()
    register_model("built", build=lambda config: nn.Dense(2), options={"features": 8})  # free


def test_registering_a_name_twice_is_an_error(registry):
    with pytest.raises(ValueError, match=r"model 'mlp' is already registered \(by phosjax"):
        register_model("mlp", Doubling)


@pytest.mark.parametrize(
    ("block", "arguments", "message"),
    [
        (None, {}, r"model 'bad' has no blocks: depth must be 0, got 1"),
        (
            Doubling,
            {"width": 0},
            r"model 'bad': width must be an int >= 1 or a list .*got \(0,\)",
        ),
        (
            Doubling,
            {"width": 16.0},
            r"model 'bad': width must be an int >= 1 or a list .*got \(16.0,\)",
        ),
        (Doubling, {"depth": -1}, r"model 'bad': depth must be an int >= 0, got -1"),
        (
            Doubling,
            {"options": {"pool": "median"}},
            r"model 'bad': option pool must be one of .*'median'",
        ),
        (
            Doubling,
            {"options": {"dropout": 1}},
            r"model 'bad': option dropout must be a number in \[0, 1\)",
        ),
    ],
)
def test_defaults_that_do_not_make_a_model_are_refused_and_leave_the_name_free(
    registry, block, arguments, message
):
    with pytest.raises(ValueError, match=r"^register_model\('bad', \.\.\.\): " + message):
        register_model("bad", block, **arguments)
    assert "bad" not in registered_models()
    register_model("bad", Doubling, width=2, input_kinds=["vector"])  # the corrected call
    assert ModelConfig("bad", num_classes=2, input_shape=(3,)).resolved().width == (2,)


@pytest.mark.parametrize(
    ("block", "arguments"), [(NamedWidth, {}), (nn.Dense, {"stem": NamedWidth, "depth": 0})]
)
def test_an_argument_the_frame_does_not_give_must_be_in_the_config_options(
    registry, block, arguments
):
    """Registered (a plugin whose configs give it, options={'width': 8}, was refused at
    import); a config without it is refused naming it, not Python's bare "missing 1
    required positional argument" once built."""
    register_model("named", block, **arguments)
    role = "stem" if "stem" in arguments else "block"
    with pytest.raises(
        ValueError,
        match=rf"^model 'named': its {role} 'NamedWidth' needs width, which neither the frame "
        r"gives \(only features: the stage's width\) nor the config's options; give "
        r"options=\{'width': \.\.\.\}, or rename it features, or give it a default",
    ):
        ModelConfig("named", num_classes=2, input_shape=(3,)).resolved()
    config = ModelConfig("named", 2, (3,), width=8, options={"width": 8})
    assert param_count(config) > 0


class NeedsDropout(nn.Module):
    """A block that needs ``dropout``, an option the frame keeps for itself."""

    features: int
    dropout: float

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features)(x)


def test_an_argument_the_frame_keeps_for_itself_is_refused_at_registration(registry):
    """A block or stem needing dropout, which the frame never passes on, was registered and
    refused only once a config resolved, though none could build it; a block of a model of
    no blocks by default (depth 0, which builds) is refused where a config gives a depth."""
    kept = (
        r"needs dropout, which the frame keeps for itself \(it passes none of input_kind, "
        r"pool, dropout on\); give it a default in the {}, or rename it$"
    )
    for role, arguments in (("block", {}), ("stem", {"block": nn.Dense, "stem": NeedsDropout})):
        with pytest.raises(
            ValueError,
            match=rf"^register_model\('kept', \.\.\.\): model 'kept': its {role} 'NeedsDropout' "
            + kept.format(role),
        ):
            register_model("kept", **({"block": NeedsDropout} | arguments))
        assert "kept" not in registered_models()
    register_model("kept", NeedsDropout, depth=0)
    assert ModelConfig("kept", 2, (3,)).resolved().depth == 0
    with pytest.raises(
        ValueError, match=r"^model 'kept': its block 'NeedsDropout' " + kept.format("block")
    ):
        ModelConfig("kept", 2, (3,), width=4, depth=1).resolved()


@pytest.mark.parametrize("name", ["", 3, None])
def test_a_name_that_is_not_a_non_empty_string_is_refused(registry, name):
    with pytest.raises(TypeError, match=r"^register_model: name must be a non-empty string"):
        register_model(name, Doubling)
    assert registered_models() == sorted(registered_models())  # still lists (3 broke sorting)
    assert name not in registry


@pytest.mark.parametrize("argument", ["block", "stem", "build"])
def test_a_block_stem_or_build_that_is_not_callable_is_refused(registry, argument):
    with pytest.raises(TypeError, match=rf"^register_model\('bad', \.\.\.\): {argument} must be"):
        register_model("bad", **{argument: "Dense"})
    assert "bad" not in registered_models()


@pytest.mark.parametrize("argument", ["block", "stem"])
def test_a_module_instance_instead_of_its_class_is_refused(registry, argument):
    # calling an instance runs it: the model failed at init with an unbound-module error
    with pytest.raises(
        TypeError, match=rf"{argument} must be .* got an instance of Dense; pass the class Dense "
    ):
        register_model("bad", **{argument: nn.Dense(4)}, width=4)
    assert "bad" not in registered_models()


class NoTrain(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes)(x)


class AnyFlags(NoTrain):
    @nn.compact
    def __call__(self, x, **flags):
        return nn.Dense(self.num_classes)(x)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: NoTrain(c.num_classes), r"returned NoTrain, whose __call__ takes no train"),
        (lambda c: nn.Dense, r"returned <class 'flax.linen.linear.Dense'>, not a Flax module"),
    ],
)
def test_a_build_whose_module_cannot_be_trained_is_an_error_naming_the_model(
    registry, build, message
):
    register_model("bad", build=build)
    with pytest.raises(TypeError, match=rf"^model 'bad': its build {message}"):
        ModelConfig("bad", num_classes=2, input_shape=(3,)).build()


def test_a_build_whose_module_takes_train_or_any_keyword_is_built(registry, rbg_key):
    register_model("flags", build=lambda c: AnyFlags(c.num_classes))
    model = ModelConfig("flags", num_classes=2, input_shape=(3,)).build()
    variables = model.init(rbg_key, jnp.ones((1, 3)))
    assert model.apply(variables, jnp.ones((1, 3)), train=True).shape == (1, 2)


@pytest.mark.parametrize("key", [1, "", None])
def test_an_option_name_that_is_not_a_string_is_refused(registry, key):
    # an int key registered, then broke the model's option errors (sorting str with int)
    with pytest.raises(TypeError, match=rf"option names must be non-empty strings .*got {key!r}"):
        register_model("bad", Doubling, options={key: 2, "size": 3})
    assert "bad" not in registered_models()


def test_one_input_kind_may_be_a_string(registry):
    assert register_model("one_kind", Doubling, input_kinds="sequence").input_kinds == ("sequence",)
    with pytest.raises(ValueError, match=r"input kind 'vectors' is not one of \('vector'"):
        register_model("bad_kind", Doubling, input_kinds="vectors")


def test_an_input_kind_given_a_list_is_named_in_one_short_line(registry):
    """The message held the whole list, 40 names (as a config's input_kind option did)."""
    with pytest.raises(ValueError) as error:
        register_model("bad_kind", Doubling, input_kinds=[["image"] * 40])
    assert str(error.value) == (
        "model 'bad_kind': input kind ['image', 'image', 'image', 'image', 'image', 'image', "
        "'ima… is not one of ('vector', 'sequence', 'image')"
    )


def test_input_kinds_given_a_number_is_refused_and_an_array_of_kinds_taken(registry):
    """3 failed with "'int' object is not iterable", an array of kinds with "The truth value
    of an array with more than one element is ambiguous"."""
    with pytest.raises(TypeError) as raised:
        register_model("bad", Doubling, input_kinds=3)
    assert str(raised.value) == (
        "model 'bad': input_kinds must be a kind or a list of them, from ('vector', 'sequence', "
        "'image'), or None for whatever the input shape is, got 3 (an int)"
    )
    assert "bad" not in registered_models()
    spec = register_model("arrayed", Doubling, input_kinds=np.array(["image", "sequence"]))
    assert spec.input_kinds == ("image", "sequence")


def test_no_input_kinds_is_an_error_not_any_kind(registry):
    with pytest.raises(ValueError, match=r"model 'bad': input_kinds is empty; list the kinds"):
        register_model("bad", Doubling, input_kinds=[])
    assert "bad" not in registered_models()


def test_no_default_width_is_allowed_when_a_config_gives_one(registry):
    register_model("widthless", Doubling, depth=2, width=(), input_kinds=["sequence"])
    config = ModelConfig("widthless", num_classes=2, input_shape=(3, 1))
    with pytest.raises(ValueError, match=r"model 'widthless': depth 2 needs at least one stage"):
        config.resolved()
    assert config.replace(width=4).resolved().width == (4,)


def test_a_numpy_array_of_default_widths_is_one_width_per_stage(registry):
    spec = register_model("arrayed", Doubling, width=np.array([3, 5]), input_kinds=["vector"])
    assert spec.width == (3, 5) and all(type(width) is int for width in spec.width)
    config = ModelConfig("arrayed", num_classes=2, input_shape=(4,)).resolved()
    assert config.width == (3, 5) and json.dumps(config.to_dict()["width"]) == "[3, 5]"


class Embedder(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(2)(nn.Embed(50, 4)(x).mean(1))


def test_param_count_takes_the_input_dtype_of_a_model_that_embeds_tokens(registry):
    register_model("tokens", build=lambda config: Embedder())
    config = ModelConfig("tokens", num_classes=2, input_shape=(6,))
    assert param_count(config, jnp.int32) == 50 * 4 + (4 * 2 + 2)
    with pytest.raises(ValueError, match="Input type must be an integer"):
        param_count(config)  # float32 by default, which nn.Embed refuses


def test_a_user_block_is_built_into_the_frame(registry, rbg_key):
    register_model("doubling", Doubling, depth=2, width=(3, 5), input_kinds=["vector"])
    model = build_model(ModelConfig("doubling", num_classes=2, input_shape=(4,)))
    x = jnp.ones((2, 4))
    variables = model.init(rbg_key, x)
    assert jax.tree.map(jnp.shape, variables["params"]["blocks_2"]) == {
        "Dense_0": {"kernel": (3, 5), "bias": (5,)}
    }
    _, found = px.probe(model, variables, x, "blocks_*/pre_act")
    assert sorted(found) == [f"blocks_{i}/pre_act" for i in range(4)]
    # train reaches the block: each of the 4 blocks doubles, the head is linear.
    head = variables["params"]["head"]
    logits_eval = model.apply(variables, x)
    logits_train = model.apply(variables, x, train=True)
    scaled = (logits_eval - head["bias"]) * 16 + head["bias"]
    assert jnp.allclose(logits_train, scaled, rtol=1e-5)


def test_a_flax_dropout_block_drops_exactly_in_training(registry, rbg_key):
    register_model("dropping", lambda features: nn.Dropout(0.5), stem=nn.Dense, width=64)
    model = build_model(ModelConfig("dropping", num_classes=2, input_shape=(4,)))
    x = jnp.ones((2, 4))
    variables = model.init(rbg_key, x)
    rngs = {"dropout": jax.random.key(1)}
    _, found = px.probe(model, variables, x, ["stem/out", "blocks_0/out"], rngs=rngs)
    np.testing.assert_array_equal(found["blocks_0/out"], found["stem/out"])
    _, found = px.probe(model, variables, x, "*/out", train=True, rngs=rngs)
    dropped = np.asarray(found["blocks_0/out"]) == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(found["blocks_0/out"][~dropped], 2 * found["stem/out"][~dropped])


class Regularized(nn.Module):
    """A block with its own ``dropout``, which the frame's ``dropout`` must not set."""

    features: int
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dropout(self.dropout, deterministic=not train)(nn.Dense(self.features)(x))


def test_frame_options_go_only_to_the_frame(registry):
    register_model("regularized", Regularized, width=4, input_kinds=["vector"])
    model = build_model(ModelConfig("regularized", 2, (4,)))
    assert (model.blocks[0].dropout, model.dropout) == (0.3, 0.0)
    model = build_model(ModelConfig("regularized", 2, (4,), options={"dropout": 0.5}))
    assert (model.blocks[0].dropout, model.dropout) == (0.3, 0.5)


def test_a_block_factory_without_features_or_name_is_accepted(registry, rbg_key):
    register_model("seq", lambda: nn.Sequential([nn.Dense(6), nn.relu]), stem=nn.Dense, width=6)
    model = build_model(ModelConfig("seq", num_classes=2, input_shape=(3,)))
    variables = model.init(rbg_key, jnp.ones((1, 3)))
    assert sorted(variables["params"]) == ["blocks_0", "head", "stem"]
    assert variables["params"]["blocks_0"]["layers_0"]["kernel"].shape == (6, 6)


def test_a_block_of_the_wrong_width_names_block_and_shapes(registry, rbg_key):
    register_model("too_wide", TooWide, width=8)
    model = build_model(ModelConfig("too_wide", num_classes=2, input_shape=(8,)))
    message = r"block 'blocks_0' \(TooWide\) maps \(2, 8\) to \(2, 9\); the frame expects \(2, 8\)"
    with pytest.raises(ValueError, match=message):
        model.init(rbg_key, jnp.ones((2, 8)))


class Flattening(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features)(x.reshape(x.shape[0], -1))


def test_a_block_that_changes_rank_is_an_error(registry, rbg_key):
    register_model("flattening", Flattening, width=4)
    model = build_model(ModelConfig("flattening", num_classes=2, input_shape=(6, 3)))
    expected = r"\(Flattening\) maps \(2, 6, 3\) to \(2, 4\); the frame expects \(2, \*, 4\)"
    with pytest.raises(ValueError, match=expected):
        model.init(rbg_key, jnp.ones((2, 6, 3)))


def test_a_stem_without_a_width_is_an_error_naming_the_model(registry):
    register_model("stem_only", stem=nn.Dense, depth=0, width=())
    config = ModelConfig("stem_only", num_classes=3, input_shape=(5,))
    with pytest.raises(
        ValueError, match=r"model 'stem_only': its stem needs a width .* got width=\(\)"
    ):
        config.resolved()
    model = build_model(config.replace(width=(4,)))
    assert jax.eval_shape(model.init, jax.random.key(0), jnp.ones((2, 5)))["params"]["stem"]


def test_unknown_options_list_the_accepted_ones():
    config = ModelConfig("cnn1d", num_classes=2, input_shape=(40,), options={"strid": 1})
    with pytest.raises(ValueError, match=r"no option\(s\) \['strid'\]; it takes \[.*'stride'"):
        build_model(config)


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({"dropuot": 0.1}, r"\]\. Did you mean 'dropout'\?$"),
        (
            {"strid": 1, "kernel": 5},
            r"\]\. Did you mean 'kernel_size' for 'kernel', 'stride' for 'strid'\?$",
        ),
        ({"zzz": 1}, r"'stride'\]$"),
    ],
)
def test_a_misspelt_option_gets_a_did_you_mean(options, hint):
    config = ModelConfig("cnn1d", num_classes=2, input_shape=(40,), options=options)
    with pytest.raises(ValueError, match=hint):
        config.resolved()


@pytest.mark.parametrize(
    ("model", "option", "value"),
    [("cnn1d", "kernel_size", 0), ("cnn1d", "stride", 1.5), ("transformer", "num_heads", True)],
)
def test_a_count_option_must_be_a_positive_int(model, option, value):
    config = ModelConfig(model, num_classes=2, input_shape=(40,), options={option: value})
    with pytest.raises(ValueError, match=rf"model '{model}': option {option} must be an int >= 1"):
        config.resolved()
    assert dict(config.replace(options={option: 2}).resolved().options)[option] == 2


@pytest.mark.parametrize(
    ("model", "option", "value"),
    [("transformer", "causal", "yes"), ("choicenet", "per_example", 2)],
)
def test_a_yes_no_option_must_be_a_bool(model, option, value):
    config = ModelConfig(model, num_classes=2, input_shape=(40,), options={option: value})
    message = rf"model '{model}': option {option} takes true or false, got {value!r}"
    with pytest.raises(ValueError, match=message):
        config.resolved()
    for flag in (True, np.bool_(False), json.loads("true"), yaml.safe_load("false")):
        assert dict(config.replace(options={option: flag}).resolved().options)[option] == flag


class _Noisy(nn.Module):
    """A user block with a number option, ``rate: float``."""

    features: int
    rate: float = 0.1

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dropout(self.rate, deterministic=not train)(nn.Dense(self.features)(x))


def test_a_number_option_of_a_user_block_must_be_a_number(registry):
    """``rate: "high"`` built and initialized, and failed only once it trained."""
    register_model("user_noisy", _Noisy, width=4)
    config = ModelConfig("user_noisy", num_classes=2, input_shape=(5,), options={"rate": "high"})
    with pytest.raises(ValueError, match=r"option rate takes a number \(float\), got 'high'"):
        config.resolved()
    for rate in (0, 0.5, np.float32(0.5), None):
        assert dict(config.replace(options={"rate": rate}).resolved().options)["rate"] == rate


def test_an_int_given_for_a_float_option_is_that_float_and_other_types_stay(registry):
    """``dropout: 0`` resolved to ``0``, the default ``0.0`` to ``0.0``: one model whose
    configs wrote apart (a bench gave it two ids and trained it twice). A float default
    (the frame's, a registered one) or a ``float`` annotation makes an int that float;
    bools, int options and strings keep theirs."""
    register_model("user_noisy", _Noisy, width=4)  # rate: float = 0.1
    register_model("user_built", build=lambda c: AnyFlags(c.num_classes), options={"scale": 1.5})
    given = {
        "mlp": {"dropout": 0, "pool": "mean"},
        "user_noisy": {"rate": 0, "dropout": 0.0},
        "user_built": {"scale": 2},
        "transformer": {"dropout_rate": 0, "causal": True, "num_heads": 2, "patch_size": 4},
    }
    typed = {
        name: {
            k: (v, type(v).__name__)
            for k, v in ModelConfig(name, 2, (8,), options=options).resolved().options
            if k in options
        }
        for name, options in given.items()
    }
    assert typed == {
        "mlp": {"dropout": (0.0, "float"), "pool": ("mean", "str")},
        "user_noisy": {"rate": (0.0, "float"), "dropout": (0.0, "float")},
        "user_built": {"scale": (2.0, "float")},
        "transformer": {
            "dropout_rate": (0.0, "float"),
            "causal": (True, "bool"),
            "num_heads": (2, "int"),
            "patch_size": (4, "int"),
        },
    }
    spelled = ModelConfig("mlp", 2, (8,), options={"dropout": 0}).resolved().to_dict()
    assert json.dumps(spelled) == json.dumps(ModelConfig("mlp", 2, (8,)).resolved().to_dict())


def test_an_int_beyond_a_floats_range_for_a_float_option_names_the_option():
    """float(10**400) raised a bare OverflowError: 'int too large to convert to float'."""
    config = ModelConfig("transformer", 2, (8,), options={"dropout_rate": 10**400})
    with pytest.raises(ValueError) as raised:
        config.resolved()
    assert str(raised.value) == (
        "model 'transformer': option dropout_rate must be a float within float64's range "
        "(about 1.8e308), got 10000000000000000000000000000000000000000000000000000000000…"
    )


class _Scaled(nn.Module):
    """A user block with a number option, ``scale: float``, whose default is an int."""

    features: int
    scale: float = 1

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.features)(x) * self.scale


def test_a_float_option_registered_at_an_int_stays_an_int_and_resolves_again(registry):
    """``register_model(..., options={"scale": 2})`` for a block's ``scale: float``: its
    int default resolved to ``2.0``, which the count check of that int default then
    refused (``option scale must be an int >= 1 (its default is 2), got 2.0``): the
    resolved config, recorded, no longer resolved nor built, and a bench of it made
    before was refused as edited. An option whose default is an int keeps an int."""
    register_model("user_scaled", _Scaled, width=4, options={"scale": 2})
    configs = [ModelConfig("user_scaled", 2, (8,), options=o) for o in ({}, {"scale": 3})]
    resolved = [config.resolved() for config in configs]
    typed = [
        (v, type(v).__name__) for config in resolved for k, v in config.options if k == "scale"
    ]
    assert typed == [(2, "int"), (3, "int")]
    assert [config.resolved() for config in resolved] == resolved


def test_an_int_given_for_a_float_option_registered_at_int_0_is_that_float(registry):
    """``options={"scale": 0}`` for a block's ``scale: float``: 0 is no count (which
    must stay an int), yet ``scale: 1`` stayed ``1``, apart from ``1.0``, one model under
    two ids in a bench; every int there is its float, the default too."""
    register_model("user_scaled", _Scaled, width=4, options={"scale": 0})
    given = [{}, {"scale": 1}, {"scale": 1.0}]
    resolved = [ModelConfig("user_scaled", 2, (8,), options=o).resolved() for o in given]
    typed = [(v, type(v).__name__) for c in resolved for k, v in c.options if k == "scale"]
    assert typed == [(0.0, "float"), (1.0, "float"), (1.0, "float")]
    assert [config.resolved() for config in resolved] == resolved


def test_an_int_given_for_a_float_option_whose_blocks_default_is_an_int_is_that_float(registry):
    """``scale: float = 1`` in a block: ``scale: 2`` resolved to ``2``, apart from
    ``2.0``, though the model fills in no int default there (as ``options={"scale": 2}``
    in `register_model` does, which stays an int)."""
    register_model("user_scaled", _Scaled, width=4)
    given = [ModelConfig("user_scaled", 2, (8,), options={"scale": s}) for s in (2, 2.0)]
    typed = [(v, type(v).__name__) for c in given for k, v in c.resolved().options if k == "scale"]
    assert typed == [(2.0, "float"), (2.0, "float")]


def test_an_option_given_at_its_blocks_int_default_of_a_float_is_the_model_without_it(registry):
    """``scale: 1`` for a block's ``scale: float = 1`` resolves to ``1.0``, which was
    compared with the int default by type and kept: the model built without it got
    other ids, and a bench trained it again."""
    register_model("user_scaled", _Scaled, width=4)
    spec = model_spec("user_scaled")
    given = ({}, {"scale": 1}, {"scale": 1.0}, {"scale": 2})
    configs = [spec.resolve(ModelConfig("user_scaled", 2, (8,), options=o)) for o in given]
    left = [dict(spec.without_defaults_given(c).options).get("scale") for c in configs]
    assert left == [None, None, None, 2.0]


class _MaybeScaled(nn.Module):
    """A user block whose number option, ``scale: float | None``, may be left unset."""

    features: int
    scale: float | None = None

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.features)(x) * (1.0 if self.scale is None else self.scale)


def test_an_int_given_for_a_float_or_none_option_is_that_float(registry):
    """``scale: 2`` for a block's ``scale: float | None`` (or one annotated so in text, as
    ``from __future__ import annotations`` leaves it) stayed ``2``, apart from ``2.0``:
    one model under two ids, trained twice by a bench."""
    register_model("user_maybe", _MaybeScaled, width=4)

    def maybe_text(features: int, scale: "float | None" = None) -> nn.Module:
        return _MaybeScaled(features, scale)

    register_model("user_maybe_text", maybe_text, width=4)
    typed = [
        (v, type(v).__name__)
        for name in ("user_maybe", "user_maybe_text")
        for s in (2, 2.0, None)
        for k, v in ModelConfig(name, 2, (8,), options={"scale": s}).resolved().options
        if k == "scale"
    ]
    assert typed == [(2.0, "float"), (2.0, "float"), (None, "NoneType")] * 2


class _Stem(nn.Module):
    """A stem whose ``kernel_size`` defaults to 7 (`_Block`'s to 3)."""

    features: int
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.features)(x)


class _Block(_Stem):
    kernel_size: int = 3
    rate: float = 0.1


def test_options_given_at_the_default_of_every_module_taking_them_are_one_model(registry):
    """``causal: false`` (the transformer block's own default), ``param_dtype: float32``:
    the model built without them, yet a bench gave each other ids and trained it again.
    `without_defaults_given` leaves them out; an option that a stem and a block take at
    other defaults (7 and 3) is the same model as without it at neither."""
    register_model("user_two", _Block, stem=_Stem, width=4)
    cases = {
        ("transformer", "causal", False): {},
        ("transformer", "causal", True): {"causal": True},
        ("mlp", "param_dtype", "float32"): {},
        ("mlp", "param_dtype", jnp.float32): {},
        ("mlp", "dtype", None): {},
        ("mlp", "dtype", "float32"): {"dtype": "float32"},
        ("user_two", "rate", 0.1): {},
        ("user_two", "rate", 0): {"rate": 0.0},  # not the default 0.1
        ("user_two", "kernel_size", 3): {"kernel_size": 3},  # the stem's is 7
        ("user_two", "kernel_size", 7): {"kernel_size": 7},
    }
    kept = {}
    for name, key, value in cases:
        spec = model_spec(name)
        given = spec.resolve(ModelConfig(name, 2, (8,), options={key: value}))
        alone = dict(spec.resolve(ModelConfig(name, 2, (8,))).options)
        left = dict(spec.without_defaults_given(given).options)
        kept[name, key, value] = {k: v for k, v in left.items() if alone.get(k, left) != v}
    assert kept == cases


class _HalfBlock(nn.Module):
    """A block that stores its params in bfloat16 unless told otherwise."""

    features: int
    param_dtype: Any = jnp.bfloat16

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.features, param_dtype=self.param_dtype)(x)


def test_param_dtype_given_at_a_blocks_default_is_kept_where_the_heads_is_float32(registry):
    """``param_dtype: bfloat16`` given to a model whose block defaults to it was left out
    of its ids as the block's default, yet the head (float32 unless given) then stores its
    params in bfloat16: another model, of the ids of the one without it, whose cells a
    bench of both dropped. It is kept; the block's float32 default differs from none."""
    register_model("user_half", _HalfBlock, width=4)
    spec = model_spec("user_half")
    heads, kept = [], []
    for options in ({}, {"param_dtype": "bfloat16"}):
        config = spec.resolve(ModelConfig("user_half", 2, (8,), options=options))
        init = jax.eval_shape(build_model(config).init, jax.random.key(0), jnp.ones((1, 8)))
        heads.append(str(init["params"]["head"]["kernel"].dtype))
        kept.append(dict(spec.without_defaults_given(config).options).get("param_dtype"))
    assert (heads, kept) == (["float32", "bfloat16"], [None, "bfloat16"])


def test_an_option_at_its_stems_default_is_left_out_at_depth_0_whatever_the_blocks(registry):
    """``param_dtype: float32`` at depth 0 (no blocks) is the stem's and the head's own
    default, but was kept as other than the unbuilt block's bfloat16: the same model as
    without it got other ids; with blocks it is another model, kept."""
    register_model("user_half_stem", _HalfBlock, stem=nn.Dense, width=4)
    spec = model_spec("user_half_stem")
    kept, params = [], []
    for depth, options in itertools.product((0, 1), ({}, {"param_dtype": "float32"})):
        config = spec.resolve(ModelConfig("user_half_stem", 2, (8,), depth=depth, options=options))
        kept.append(dict(spec.without_defaults_given(config).options).get("param_dtype"))
        init = jax.eval_shape(build_model(config).init, jax.random.key(0), jnp.ones((1, 8)))
        params.append(sorted({str(a.dtype) for a in jax.tree.leaves(init)}))
    assert kept == [None, None, None, "float32"]
    assert params == [["float32"], ["float32"], ["bfloat16", "float32"], ["float32"]]


def _write_plugin(tmp_path, monkeypatch, module: str, model: str) -> None:
    source = f"""
        import flax.linen as nn
        from phosjax.models import register_model
        register_model({model!r}, stem=nn.Dense, depth=0, width=3)
    """
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_import_models_returns_the_names_a_module_registers(registry, tmp_path, monkeypatch):
    _write_plugin(tmp_path, monkeypatch, "user_models_a", "user_a")
    assert import_models("user_models_a") == ["user_a"]
    assert "user_a" in registered_models()
    with pytest.raises(ModuleNotFoundError, match="cannot import 'no_such_models'"):
        import_models("no_such_models")


def _fake_entry_points(monkeypatch, *fakes: importlib.metadata.EntryPoint) -> None:
    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [fake for fake in fakes if fake.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@dataclasses.dataclass
class CountingEntryPoint:
    """An entry point that counts how often it is loaded."""

    name: str
    value: str
    group: str = ENTRY_POINT_GROUP
    loads: int = 0

    def load(self) -> object:
        self.loads += 1
        return importlib.import_module(self.value)


def test_entry_points_are_loaded_when_listing_and_only_once(registry, tmp_path, monkeypatch):
    _write_plugin(tmp_path, monkeypatch, "user_models_b", "user_b")
    entry_point = CountingEntryPoint("user", "user_models_b")
    _fake_entry_points(monkeypatch, entry_point)
    assert "user_b" not in registry
    assert "user_b" in registered_models()
    assert "user_b" in registered_models()
    assert entry_point.loads == 1


def test_the_readme_s_entry_point_registers_the_models_of_the_module_it_names(
    registry, tmp_path, monkeypatch
):
    """The README's ``pyproject.toml`` lines, as installed, register the models."""
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    toml = re.search(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert toml, "README.md shows no pyproject.toml entry point"
    declared = tomllib.loads(toml.group(1))["project"]["entry-points"][ENTRY_POINT_GROUP]
    ((name, module),) = declared.items()
    *packages, last = module.split(".")
    folder = tmp_path.joinpath(*packages)
    folder.mkdir(parents=True)
    for depth in range(len(packages)):
        (tmp_path.joinpath(*packages[: depth + 1]) / "__init__.py").write_text("")
        monkeypatch.delitem(sys.modules, ".".join(packages[: depth + 1]), raising=False)
    monkeypatch.delitem(sys.modules, module, raising=False)
    source = "import flax.linen as nn\nfrom phosjax.models import register_model\n"
    (folder / f"{last}.py").write_text(
        source + "register_model('readme_plugin', stem=nn.Dense, depth=0, width=3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, _entry_point(name, module))
    assert "readme_plugin" in registered_models()


def test_entry_points_are_loaded_when_a_name_is_missing(registry, tmp_path, monkeypatch, rbg_key):
    _write_plugin(tmp_path, monkeypatch, "user_models_c", "user_c")
    _fake_entry_points(monkeypatch, _entry_point("user", "user_models_c"))
    model = build_model(ModelConfig("user_c", num_classes=2, input_shape=(5,)))
    assert model.init(rbg_key, jnp.ones((1, 5)))["params"]["stem"]["kernel"].shape == (5, 3)


def test_a_broken_entry_point_is_named(registry, monkeypatch):
    _fake_entry_points(monkeypatch, _entry_point("broken", "no_such_plugin_module"))
    with pytest.raises(ImportError, match=r"entry point 'broken' \(no_such_plugin_module\)"):
        registered_models()


def test_a_plugin_that_fails_halfway_is_undone_and_fails_every_time(
    registry, tmp_path, monkeypatch
):
    source = """
        import flax.linen as nn
        from phosjax.models import register_model
        register_model("user_d", stem=nn.Dense, depth=0, width=3)
        register_model("mlp", stem=nn.Dense, depth=0, width=3)  # taken: fails halfway
    """
    (tmp_path / "user_models_d.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, _entry_point("half", "user_models_d"))
    for _ in range(2):
        with pytest.raises(ImportError, match=r"'half' \(user_models_d\) .* 'mlp' is already"):
            registered_models()
        assert "user_d" not in registry


def test_a_models_check_runs_when_a_config_resolves_not_on_the_stand_in_shape():
    seen = []

    def check(config):
        seen.append(config.input_shape)
        if dict(config.options)["size"] > config.input_shape[0]:
            raise ValueError(f"model {config.name!r}: option size is too large")

    register_model("test_checked", Doubling, options={"size": 2}, check=check)
    assert seen == []  # registering resolves a stand-in (1,) input, unchecked
    assert ModelConfig("test_checked", 2, (3,)).resolved().input_shape == (3,)
    with pytest.raises(ValueError, match=r"model 'test_checked': option size is too large"):
        ModelConfig("test_checked", 2, (1,)).resolved()
    assert seen == [(3,), (1,)]  # each config's own input shape
    with pytest.raises(TypeError, match=r"check must be a function of the resolved ModelConfig"):
        register_model("test_checked_bad", Doubling, check=3)


def test_param_count_of_a_built_module_names_itself_and_the_type_not_the_module_repr():
    """It said 'build_model takes a ModelConfig, got Frame(\n    # attributes ...' (the
    module's whole repr, dozens of lines)."""
    from phosjax.models import param_count

    module = ModelConfig("mlp", 3, (4,)).build()
    with pytest.raises(TypeError, match=r"^param_count takes a ModelConfig, got a Frame: pass "):
        param_count(module)


@pytest.mark.parametrize(("module", "shown"), [(["json"], "a list"), ("", "a str")])
def test_import_models_of_no_module_name_names_what_it_got(module, shown):
    """A list raised AttributeError "'list' object has no attribute 'startswith'"; '',
    importlib's "Empty module name"."""
    from phosjax.models import import_models

    with pytest.raises(
        TypeError, match=rf"^import_models takes one module's dotted name, .*{shown}"
    ):
        import_models(module)


def test_import_models_of_an_array_names_it_in_one_short_line():
    """The message held the array's whole repr, 7 lines."""
    from phosjax.models import import_models

    with pytest.raises(TypeError) as error:
        import_models(np.zeros((40, 40)))
    assert str(error.value) == (
        "import_models takes one module's dotted name, e.g. 'mypkg.models', got "
        "array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… "
        "(shape (40, 40), dtype float64) (an ndarray); call it once per module"
    )


def test_a_module_that_fails_halfway_is_undone_and_imports_once_fixed(
    registry, tmp_path, monkeypatch
):
    """A failed import left its first model registered: importing the fixed module said
    that model's name was taken (by the module itself). A module it imported whole stays
    imported, so its model stays registered: importing again does not run it."""
    (tmp_path / "user_models_f.py").write_text(
        "import flax.linen as nn\nfrom phosjax.models import register_model\n"
        "register_model('user_f', stem=nn.Dense, depth=0, width=3)\n"
    )
    source = """
        import flax.linen as nn
        import user_models_f
        from phosjax.models import register_model
        register_model("user_e", stem=nn.Dense, depth=0, width=3)
        if BROKEN:
            raise RuntimeError("a bug after the first registration")
    """
    (tmp_path / "user_models_e.py").write_text("BROKEN = True\n" + textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("user_models_e", "user_models_f"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(RuntimeError, match="a bug after the first registration"):
        import_models("user_models_e")
    assert "user_e" not in registry and registry["user_f"].module == "user_models_f"
    (tmp_path / "user_models_e.py").write_text("BROKEN = False\n" + textwrap.dedent(source))
    importlib.invalidate_caches()
    assert import_models("user_models_e") == ["user_e"]
    assert registry["user_e"].module == "user_models_e"


def test_a_module_that_fails_after_registering_through_a_helper_is_undone(
    registry, tmp_path, monkeypatch
):
    """A model registered by a helper function of another module (imported whole) was
    kept when the module calling it failed: importing the fixed module said its name was
    taken (by the helper's module), though importing it again calls the helper again."""
    (tmp_path / "user_helper_h.py").write_text(
        "import flax.linen as nn\nfrom phosjax.models import register_model\n"
        "def dense(name):\n    register_model(name, stem=nn.Dense, depth=0, width=3)\n"
    )
    source = "import user_helper_h\nuser_helper_h.dense('user_g')\nif BROKEN:\n    raise KeyError\n"
    (tmp_path / "user_models_g.py").write_text("BROKEN = True\n" + source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("user_models_g", "user_helper_h"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(KeyError):
        import_models("user_models_g")
    assert "user_g" not in registry and "user_helper_h" in sys.modules
    (tmp_path / "user_models_g.py").write_text("BROKEN = False\n" + source)
    importlib.invalidate_caches()
    assert import_models("user_models_g") == ["user_g"]
    assert registry["user_g"].module == "user_helper_h"


def test_a_failed_plain_import_says_so_and_import_models_drops_what_it_left(
    registry, tmp_path, monkeypatch
):
    """A plain import that failed after registering left the name taken: importing the
    fixed module said only that it was taken (by the module itself)."""
    source = "import flax.linen as nn\nfrom phosjax.models import register_model\n"
    source += "register_model('user_i', stem=nn.Dense, depth=0, width=3)\nif BROKEN:\n"
    source += "    raise KeyError\n"
    (tmp_path / "user_models_i.py").write_text("BROKEN = True\n" + source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_models_i", raising=False)
    with pytest.raises(KeyError):
        importlib.import_module("user_models_i")
    (tmp_path / "user_models_i.py").write_text("BROKEN = False\n" + source)
    importlib.invalidate_caches()
    hint = r"if an import of user_models_i failed .*\.import_models\('user_models_i'\)"
    with pytest.raises(ValueError, match=rf"'user_i' is already registered .*; {hint}"):
        importlib.import_module("user_models_i")
    assert import_models("user_models_i") == ["user_i"]
    with pytest.raises(ValueError, match=r"\(by phosjax.models._zoo\); pick another"):
        register_model("mlp", Doubling)


def test_a_name_unregistered_leaves_no_module_behind(registry, tmp_path, monkeypatch):
    """A name undone by a failed import, or dropped by `import_models` before importing
    again, kept which module registered it for good (no public call reads that entry once
    the name is gone: what is seen is that the name is gone and free to register again)."""
    source = "import flax.linen as nn\nfrom phosjax.models import register_model\n"
    source += "register_model('user_j', stem=nn.Dense, depth=0, width=3)\nraise KeyError\n"
    (tmp_path / "user_models_j.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_models_j", raising=False)
    with pytest.raises(KeyError):
        import_models("user_models_j")
    assert "user_j" not in registered_models()
    with pytest.raises(KeyError):
        importlib.import_module("user_models_j")  # a plain import: not undone
    taken = (
        r"^model 'user_j' is already registered \(by user_models_j\); if an import of "
        r"user_models_j failed .* import it with phosjax\.models\.import_models\("
        r"'user_models_j'\), .* pick another name\.$"
    )
    with pytest.raises(ValueError, match=taken):
        register_model("user_j", stem=nn.Dense, depth=0, width=3)
    fixed = source.replace("'user_j'", "'user_k'").replace("raise KeyError\n", "")
    (tmp_path / "user_models_j.py").write_text(fixed)  # registers another name now
    importlib.invalidate_caches()
    assert import_models("user_models_j") == ["user_k"]
    assert "user_j" not in registered_models() and "user_k" in registered_models()
    register_model("user_j", stem=nn.Dense, depth=0, width=3)  # free again, and now ours
    assert model_spec("user_j").module == __name__


@pytest.mark.parametrize(
    ("kind", "viewed"), [(None, (8, 3)), ("sequence", (8, 3)), ("vector", (24,))]
)
def test_a_model_of_any_input_kind_views_a_volume_as_the_frame_does(registry, kind, viewed):
    # It refused an input of 4 axes: "has 4 axes; the frame takes (features,), ...", no
    # longer true: the frame views one as a sequence or a vector, as the zoo's models do.
    register_model("any_kind", Doubling, width=4)  # input_kinds=None: whatever the input is
    options = {} if kind is None else {"input_kind": kind}
    x = jax.random.normal(jax.random.key(0), (2, 2, 2, 2, 3))
    volume = build_model(ModelConfig("any_kind", 3, (2, 2, 2, 3), options=options))
    flat = build_model(ModelConfig("any_kind", 3, viewed))
    variables = flat.init(jax.random.key(1), x.reshape(2, *viewed))
    np.testing.assert_allclose(
        volume.apply(variables, x), flat.apply(variables, x.reshape(2, *viewed)), rtol=1e-6
    )
    image = ModelConfig("any_kind", 3, (2, 2, 2, 3), options={"input_kind": "image"})
    with pytest.raises(
        ValueError,
        match=r"^model 'any_kind' does not take input_kind 'image'; it takes sequence, vector$",
    ):
        build_model(image)


class _Scalar(nn.Module):
    """A user model of a scalar example, ``x`` of shape ``(batch,)``."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(self.num_classes)(x[:, None])


def test_a_scalar_example_is_a_build_model_s_to_take(registry):
    # ModelConfig takes input_shape () (random_dataset makes such data): a model built by
    # a function of its config may take it (a frame model refuses it, saying to use (1,):
    # test_zoo's test_an_input_of_no_axes_is_told_what_the_frame_takes_volumes_too).
    register_model("scalar_user", build=lambda config: _Scalar(config.num_classes))
    model = build_model(ModelConfig("scalar_user", 3, ()))
    assert jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.ones(2))[0].shape == (2, 3)
