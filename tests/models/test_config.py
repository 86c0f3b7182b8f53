"""`ModelConfig`: normalization, JSON round trip, defaults and their checks."""

import json
import re

import numpy as np
import pytest
import yaml

from phosjax.models import FRAME_OPTIONS, ModelConfig, build_model


def test_lists_and_option_dicts_are_normalized_so_equal_configs_hash_equal():
    a = ModelConfig("cnn1d", 10, [40], width=[8, 16], options={"stride": 1, "pool": "max"})
    b = ModelConfig("cnn1d", 10, (40,), width=(8, 16), options=(("pool", "max"), ("stride", 1)))
    assert a == b and hash(a) == hash(b)
    assert a.input_shape == (40,) and a.width == (8, 16)
    assert a.options == (("pool", "max"), ("stride", 1))


def test_json_round_trip_keeps_nested_option_tuples():
    config = ModelConfig("mlp", 3, (4,), depth=2, width=5, options={"sizes": ((1, 2), (3,))})
    data = json.loads(json.dumps(config.to_dict()))
    assert data["options"] == {"sizes": [[1, 2], [3]]} and data["width"] == 5
    assert ModelConfig.from_dict(data) == config


def test_bad_fields_and_options_are_errors():
    with pytest.raises(ValueError, match=r"no field 'widht'\. Did you mean 'width'\? Its fi"):
        ModelConfig.from_dict({"name": "mlp", "num_classes": 2, "input_shape": [4], "widht": 3})
    with pytest.raises(ValueError, match=r"no field 2, True\. Its fields: "):  # YAML's 2:, on:
        ModelConfig.from_dict({"name": "mlp", "num_classes": 2, "input_shape": [4], 2: 2, True: 1})
    with pytest.raises(ValueError, match=r"needs the field\(s\) \['num_classes'\]; got"):
        ModelConfig.from_dict({"name": "mlp", "input_shape": [4]})
    with pytest.raises(ValueError, match=r"an option is given twice in \['pool', 'pool'\]"):
        ModelConfig("mlp", 2, (4,), options=(("pool", "max"), ("pool", "mean")))
    with pytest.raises(TypeError, match=r"ModelConfig 'mlp': option nested must not be a mapping"):
        ModelConfig("mlp", 2, (4,), options={"nested": {"a": 1}})
    with pytest.raises(TypeError, match=r"option sizes must not be a mapping .* got \{'a': 1\}"):
        ModelConfig("mlp", 2, (4,), options={"sizes": [1, {"a": 1}]})


@pytest.mark.parametrize(("data", "shown"), [(None, "None (a NoneType)"), ("mlp", "'mlp' (a str)")])
def test_from_dict_of_no_mapping_names_what_it_got(data, shown):
    """An empty YAML file raised "'NoneType' object is not iterable"; a model's name said
    it had no fields ['l', 'm', 'p']."""
    match = f"ModelConfig.from_dict takes a mapping of its fields, as to_dict gives, got {shown}"
    with pytest.raises(TypeError, match="^" + re.escape(match)):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize("options", [["pool"], "pool=max", 3, [("pool", "max", 1)]])
def test_options_that_are_not_a_mapping_or_pairs_are_errors_naming_them(options):
    match = r"ModelConfig 'mlp': options must be a mapping such as \{'pool': 'max'\} or \(key"
    with pytest.raises(ValueError, match=match):
        ModelConfig("mlp", 2, (4,), options=options)


def test_an_empty_options_entry_in_yaml_is_no_options():
    data = yaml.safe_load("name: mlp\nnum_classes: 2\ninput_shape: [4]\noptions:\n")
    assert data["options"] is None
    assert ModelConfig.from_dict(data) == ModelConfig("mlp", 2, (4,))


def test_resolved_fills_every_default():
    resolved = ModelConfig("mlp", 10, (40,)).resolved()
    assert resolved == ModelConfig("mlp", 10, (40,), depth=1, width=(100,), options=FRAME_OPTIONS)
    cnn1d = ModelConfig("cnn1d", 10, (40,), options={"stride": 1}).resolved()
    expected = {**FRAME_OPTIONS, "kernel_size": 3, "pool": "flatten", "stride": 1}
    assert dict(cnn1d.options) == expected
    assert (cnn1d.depth, cnn1d.width) == (3, (25,))


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("logreg", {"depth": 1}, r"model 'logreg' has no blocks: depth must be 0, got 1"),
        ("mlp", {"depth": -1}, r"model 'mlp': depth must be an int >= 0, got -1"),
        (
            "mlp",
            {"width": (8, 0)},
            r"model 'mlp': width must be an int >= 1 or a list .*got \(8, 0\)",
        ),
        ("mlp", {"width": ()}, r"model 'mlp': depth 1 needs at least one stage width"),
        ("mlp", {"width": 16.5}, r"'mlp': width must be an int >= 1 or a list .*got 16\.5$"),
        ("mlp", {"width": [16.5]}, r"'mlp': width must be an int >= 1 or a list .*got \(16\.5,\)$"),
        ("mlp", {"depth": 2.5}, r"model 'mlp': depth must be an int >= 0, got 2\.5$"),
        ("mlp", {"depth": [2]}, r"model 'mlp': depth must be an int >= 0, got \[2\]$"),
    ],
)
def test_resolving_checks_sizes(name, changes, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(name, 10, (40,), **changes))


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("logreg", {"width": 5}, r"'logreg': .* it reads no width, so width=\(5,\) would be"),
        ("mlp", {"depth": 0, "width": (16, 32)}, r"only its stem reads .* give width=\(16,\)"),
        ("cnn1d", {"depth": 0, "width": 8}, r"it reads no width, .* or a depth >= 1"),
        (
            "transformer",
            {"width": (8, 16)},
            r"'transformer': its block TransformerBlock takes no features, so every stage "
            r"keeps one width: width=\(8, 16\) would .* give width=\(8,\)",
        ),
    ],
)
def test_widths_a_model_would_not_read_are_errors(name, changes, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(name, 10, (40,), **changes))


def test_default_widths_a_model_does_not_read_are_dropped():
    assert ModelConfig("cnn2d", 10, (8, 8, 1), depth=0).resolved().width == ()
    assert ModelConfig("mlp", 10, (40,), depth=0).resolved().width == (100,)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_classes": "2"}, r"ModelConfig 'mlp': num_classes must be a positive int, got '2'"),
        ({"num_classes": True}, r"num_classes must be a positive int, got True"),
        ({"input_shape": "40"}, r"ModelConfig 'mlp': input_shape must be one example's shape"),
        ({"input_shape": (4, 0)}, r"input_shape must be .* got \(4, 0\)"),
    ],
)
def test_bad_fields_are_errors_that_name_them(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{"name": "mlp", "num_classes": 2, "input_shape": (4,), **fields})


def test_a_long_bad_num_classes_is_shown_cut():
    with pytest.raises(ValueError, match=r"got array\(\[ +0, +1, .*… \(shape \(500,\)") as error:
        ModelConfig("mlp", np.arange(500), (4,))
    assert len(str(error.value)) < 200


def test_an_int_input_shape_is_one_axis():
    assert ModelConfig("mlp", 2, 40) == ModelConfig("mlp", 2, (40,))
    assert build_model(ModelConfig("mlp", 2, 40)).input_shape == (40,)


def test_a_numpy_input_shape_is_read_as_python_ints():
    config = ModelConfig("mlp", 2, np.array([8, 8, 1]))
    assert config == ModelConfig("mlp", 2, (8, 8, 1))
    assert all(type(n) is int for n in config.input_shape)
    assert ModelConfig("mlp", 2, np.int64(40)).input_shape == (40,)
    with pytest.raises(ValueError, match=r"input_shape must be one example's shape"):
        ModelConfig("mlp", 2, np.array([[8, 8]]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"depth": True}, r"model 'mlp': depth must be an int >= 0, got True"),
        (
            {"width": (8, True)},
            r"model 'mlp': width must be an int >= 1 or a list .*got \(8, True\)",
        ),
        ({"options": {"dropout": 1.5}}, r"option dropout must be a number in \[0, 1\), got 1.5"),
        ({"options": {"dropout": -0.5}}, r"option dropout must be a number in \[0, 1\), got -0.5"),
        ({"options": {"dropout": "0.1"}}, r"option dropout must be a number in \[0, 1\)"),
        ({"options": {"pool": "avg"}}, r"option pool must be one of \('mean', .*got 'avg'"),
    ],
)
def test_resolving_checks_options_and_rejects_bools(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig("mlp", 10, (40,), **changes).resolved()


def test_numpy_integers_become_plain_ints_that_json_writes():
    config = ModelConfig("mlp", np.int64(10), (np.int64(40),), np.int64(2), [np.int64(64)])
    assert json.loads(json.dumps(config.resolved().to_dict()))["width"] == [64]
    assert ModelConfig("mlp", 10, (40,), width=np.int32(8)).widths == (8,)
    widths = ModelConfig("mlp", 10, (40,), width=np.array([16, 32])).resolved().width
    assert widths == (16, 32) and json.dumps(widths) == "[16, 32]"


def test_jax_integers_become_plain_ints_as_numpy_ones_do():
    """A JAX scalar or array was refused as num_classes, depth or width (width must be an
    int >= 1 ..., got Array(8, dtype=int32)), where numpy's were read as Python ints."""
    import jax.numpy as jnp

    config = ModelConfig("mlp", jnp.int32(10), jnp.array([40]), jnp.int32(2), jnp.array([16, 32]))
    assert config == ModelConfig("mlp", 10, (40,), 2, (16, 32))
    assert json.loads(json.dumps(config.resolved().to_dict()))["width"] == [16, 32]
    assert ModelConfig("mlp", 10, (40,), width=jnp.int32(8)).widths == (8,)
    with pytest.raises(
        ValueError, match=r"num_classes must be a positive int, got Array\(3\., dtype=float32\)"
    ):
        ModelConfig("mlp", jnp.float32(3), (40,))


def test_a_traced_width_or_num_classes_is_named_as_no_int():
    """A JAX array's numbers are read as Python ints now, and a traced one's (a config
    made under jax.jit) failed reading them with a bare TracerArrayConversionError."""
    import jax
    import jax.numpy as jnp

    made = [
        lambda v: ModelConfig("mlp", 3, (4,), width=v).resolved(),
        lambda v: ModelConfig("mlp", v, (4,)),
    ]
    for make in made:
        with pytest.raises(ValueError, match=r"must be .*int.*, got JitTracer\(int32\[\]\)"):
            jax.jit(make)(jnp.int32(4))


def test_numpy_scalar_options_become_plain_values_that_json_writes():
    options = {"dropout": np.float32(0.25), "pool": np.str_("max")}
    config = ModelConfig("cnn1d", 10, (40,), options=options).resolved()  # pools a sequence
    assert json.loads(json.dumps(config.to_dict()))["options"]["dropout"] == 0.25
    flag = dict(ModelConfig("choicenet", 2, (4,), options={"per_example": np.bool_(True)}).options)
    assert type(flag["per_example"]) is bool


def test_dtype_options_given_as_types_are_their_names_that_json_writes():
    """options={"dtype": jnp.bfloat16} was kept as the type: to_dict could not be written
    as JSON, and the config differed from (hashed unlike) the one naming 'bfloat16'."""
    import jax.numpy as jnp

    options = {"dtype": jnp.bfloat16, "param_dtype": np.dtype("float32")}
    config = ModelConfig("mlp", 2, (4,), options=options)
    named = ModelConfig("mlp", 2, (4,), options={"dtype": "bfloat16", "param_dtype": "float32"})
    assert config == named and hash(config) == hash(named)
    assert json.loads(json.dumps(config.to_dict()))["options"]["dtype"] == "bfloat16"
    assert dict(ModelConfig("mlp", 2, (4,), options={"dtype": float}).options)["dtype"] is float


def test_array_options_become_plain_values_that_json_writes():
    """An array option was kept as the array: the config could not be hashed ('unhashable
    type: numpy.ndarray') nor written as JSON, and a 0-d one was refused as a rate."""
    import jax.numpy as jnp

    options = {"dropout": jnp.float32(0.5), "sizes": np.array([[1, 2], [3, 4]])}
    config = ModelConfig("mlp", 2, (4,), options=options)
    assert dict(config.options) == {"dropout": 0.5, "sizes": ((1, 2), (3, 4))}
    assert hash(config) == hash(ModelConfig("mlp", 2, (4,), options=dict(config.options)))
    assert json.loads(json.dumps(config.to_dict()))["options"]["sizes"] == [[1, 2], [3, 4]]


def test_replace_of_no_field_names_the_fields_and_where_an_option_goes():
    """It raised dataclasses' "__init__() got an unexpected keyword argument 'dropout'"."""
    config = ModelConfig("mlp", 2, (4,))
    with pytest.raises(TypeError, match=r"^ModelConfig has no field 'widht'\. Did you mean "):
        config.replace(widht=3)
    with pytest.raises(TypeError, match=r"'dropout' \(an option such as 'dropout' goes in opt"):
        config.replace(dropout=0.5)


def test_a_model_option_given_as_a_field_is_told_alike_by_every_way_in():
    """The constructor, replace and from_dict each said it in their own words, and
    from_dict without where an option goes."""
    config = ModelConfig("mlp", 2, (4,))
    messages = []
    for make, error in [
        (lambda: ModelConfig("mlp", 2, (4,), dropout=0.1), TypeError),
        (lambda: config.replace(dropout=0.1), TypeError),
        (lambda: ModelConfig.from_dict({**config.to_dict(), "dropout": 0.1}), ValueError),
    ]:
        with pytest.raises(error) as raised:
            make()
        messages.append(str(raised.value))
    assert messages == 3 * [
        "ModelConfig has no field 'dropout' (an option such as 'dropout' goes in options="
        "{'dropout': ...}). Its fields: name, num_classes, input_shape, depth, width, options."
    ]
    assert config.replace(width=3).width == 3


@pytest.mark.parametrize("name", [None, "", 3])
def test_a_name_that_is_no_str_is_named_when_the_config_is_made(name):
    """ModelConfig(None, ...) was made; building it raised AttributeError "'NoneType'
    object has no attribute 'casefold'"."""
    with pytest.raises(
        ValueError,
        match=rf"^ModelConfig name must be a registered model's name, such as 'mlp', got {name!r}$",
    ):
        ModelConfig(name, 2, (4,))


LONG = list(range(1000))  # a value whose whole repr would run to thousands of characters


@pytest.mark.parametrize(
    "config, shown",
    [
        (lambda: ModelConfig(tuple(LONG), 3, (5,)), "(0, 1, 2"),
        (lambda: ModelConfig("mlp", 3, [0, *LONG]), "[0, 0, 1, 2"),
        (lambda: ModelConfig("mlp", 3, (5,), options=LONG), "[0, 1, 2"),
        (lambda: ModelConfig.from_dict(LONG), "[0, 1, 2"),
        (lambda: build_model(ModelConfig("mlp", 3, (5,), width=[0, *LONG])), "(0, 0, 1, 2"),
        (lambda: build_model(ModelConfig("mlp", 3, (5,), depth=-(10**999))), "-1000000"),
        (lambda: build_model(ModelConfig("mlp", 3, (5,), options={"pool": LONG})), "(0, 1, 2"),
        (lambda: build_model(ModelConfig("mlp", 3, (5,), options={"dropout": LONG})), "(0, 1, 2"),
        (lambda: build_model(ModelConfig("mlp", 3, (5,), options={"dtype": LONG})), "(0, 1, 2"),
    ],
)
def test_a_config_error_cuts_a_long_value_it_shows(config, shown):
    with pytest.raises((TypeError, ValueError)) as caught:
        config()
    got = re.search(r"got (\S.*?…)", str(caught.value))
    assert got is not None and got.group(1).startswith(shown)
    assert len(got.group(1)) == 60 and len(str(caught.value)) < 300
