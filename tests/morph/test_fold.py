"""fold: a dead channel with a zero BatchNorm scale and a nonzero shift outputs a constant;
the shrunk model keeps it (in the next layer's bias, or by keeping the channel)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.morph import alive_channels, channel_groups, fold, mask, shrink
from tests.morph.test_shrink import PlainCNN, _grouped


def _network(conv: nn.Module | None, hidden: int) -> nn.Sequential:
    """A layer, BatchNorm, relu and a conv (or Dense) of ``hidden`` channels, reading it."""
    first = nn.Conv(hidden, (3,), padding="VALID") if conv else nn.Dense(hidden)
    last = conv if conv else nn.Dense(3)
    return nn.Sequential([first, nn.BatchNorm(use_running_average=True), nn.relu, last])


def _with_dead_scales(variables, dead, shift, scale=0.0):
    """``variables`` with BatchNorm scale ``scale`` and shift ``shift`` on the ``dead``
    channels."""
    bn = dict(variables["params"]["layers_1"])
    dead = np.asarray(dead)
    bn["scale"] = bn["scale"].at[dead].set(scale)
    bn["bias"] = bn["bias"].at[dead].set(shift)
    return {**variables, "params": {**variables["params"], "layers_1": bn}}


CASES = {
    "mlp": (None, (6, 5)),
    "cnn, valid padding": (nn.Conv(4, (3,), padding="VALID"), (6, 9, 2)),
    "cnn, same padding": (nn.Conv(4, (3,), padding="SAME"), (6, 9, 2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_shrunk_model_computes_what_the_model_with_dead_scales_at_zero_computes(case):
    conv, shape = CASES[case]
    model = _network(conv, hidden=8)
    x = jax.random.normal(jax.random.key(1), shape)
    variables = _with_dead_scales(model.init(jax.random.key(0), x), [1, 4, 6], [0.7, -0.3, 1.2])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")
    assert alive["layers_0"].tolist() == [True, False, True, True, False, True, False, True]

    folded = fold(model, variables, alive, groups, x)
    small = shrink(folded.variables, folded.alive, groups)
    width = small.widths["layers_0"]
    got = _network(conv and conv.clone(), hidden=width).apply(small.variables, x)

    np.testing.assert_allclose(got, model.apply(variables, x), rtol=1e-5, atol=1e-5)
    # relu(-0.3) is zero: always dropped; 0.7 and 1.2 are folded, except where a 'SAME'
    # conv's border sees fewer of their taps than its interior: those are kept
    assert width == (7 if case == "cnn, same padding" else 5)


def test_a_kept_dead_channel_outputs_its_constant_as_with_its_scale_at_zero():
    """A 'SAME' conv keeps the dead channels: their scales, 1e-3, below the threshold,
    stayed, so the model was not the one with the dead scales at zero (off by ~1e-3)."""
    conv = nn.Conv(4, (3,), padding="SAME")
    model = _network(conv, hidden=8)
    x = jax.random.normal(jax.random.key(1), (6, 9, 2))
    initial = model.init(jax.random.key(0), x)
    variables = _with_dead_scales(initial, [1, 6], [0.7, 1.2], scale=1e-3)
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(model, variables, alive, groups, x)

    assert folded.alive["layers_0"].all()
    at_zero = _with_dead_scales(initial, [1, 6], [0.7, 1.2])
    np.testing.assert_allclose(
        model.apply(folded.variables, x), model.apply(at_zero, x), rtol=1e-6, atol=1e-6
    )


def test_a_consumer_that_is_not_a_dense_or_conv_keeps_the_nonzero_dead_channels():
    class Einsum(nn.Module):  # a kernel read by jnp.einsum: fold cannot see its input
        @nn.compact
        def __call__(self, h):
            return jnp.einsum("bi,io->bo", h, self.param("w", nn.initializers.ones, (8, 3)))

    model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True), nn.relu, Einsum()])
    x = jax.random.normal(jax.random.key(1), (6, 5))
    variables = _with_dead_scales(model.init(jax.random.key(0), x), [1, 4], [0.7, 0.0])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(model, variables, alive, groups, x)

    assert folded.alive["layers_0"].tolist() == [True] * 8


def test_a_bare_apply_function_is_refused_naming_what_fold_needs():
    """A callable got as far as apply's AttributeError (no attribute 'apply')."""
    model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model.apply, variables, x)
    with pytest.raises(TypeError, match=r"model is a \w+, not a flax\.linen Module"):
        fold(model.apply, variables, {"layers_0": [True, False, True]}, groups, x)
    with pytest.raises(TypeError, match=r"^fold: model is an ArrayImpl, not a"):  # 'a ArrayImpl'
        fold(x, variables, {"layers_0": [True, False, True]}, groups, x)  # arguments swapped


def test_a_module_class_given_for_the_model_is_refused_saying_to_pass_an_instance():
    """channel_groups called the class as an ``apply``: "__init__() takes 2 positional
    arguments but 3 were given" (nn.Dense: "is not a valid JAX type", from inside
    jax's trace); fold said "model is a type"."""
    model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    with pytest.raises(TypeError) as error:
        channel_groups(nn.Sequential, variables, x)
    assert str(error.value) == (
        "channel_groups: model is the class Sequential, not a module: pass an instance, "
        "Sequential(...)."
    )
    with pytest.raises(TypeError) as error:
        fold(nn.Sequential, variables, {"layers_0": [True, False, True]}, groups, x)
    assert str(error.value) == (
        "fold: model is the class Sequential, not a module: pass an instance, Sequential(...)."
    )


def test_fold_without_example_inputs_says_to_pass_them():
    """It was Flax's own 'Dense.__call__() missing 1 required positional argument'."""
    model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    message = (
        r"^fold: no example inputs given, and the model cannot run without them \(.*'inputs'\); "
        r"pass them after groups, as model.apply takes them: fold\(model, variables, alive, "
        r"groups, x\)"
    )
    with pytest.raises(TypeError, match=message):
        fold(model, variables, {"layers_0": [True, False, True]}, groups)
    # inputs given by keyword, another TypeError: said 'no example inputs given' (false)
    with pytest.raises(TypeError) as error:
        fold(model, variables, {"layers_0": [True, False, True]}, groups, inputs=x, train=False)
    assert str(error.value) == "Dense.__call__() got an unexpected keyword argument 'train'"


def test_fold_on_an_input_of_another_shape_than_the_variables_were_made_for_names_it():
    """It was Flax's bare ScopeParamShapeError, as channel_groups' was."""
    model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    with pytest.raises(ValueError) as error:
        fold(model, variables, {"layers_0": [True, False, True]}, groups, jnp.ones((2, 5)))
    assert str(error.value).startswith("fold: a variable has another shape than the model makes (")
    assert str(error.value).endswith("(given: (2, 5))? pass inputs shaped as those model.init got")


def test_a_subclass_of_dense_that_adds_an_activation_keeps_the_nonzero_dead_channels():
    """Its bias sits inside the tanh: fold added act(shift) * W to it, which is not exact."""

    class TanhDense(nn.Dense):
        def __call__(self, inputs):
            return jnp.tanh(super().__call__(inputs))

    model = nn.Sequential(
        [nn.Dense(8), nn.BatchNorm(use_running_average=True), nn.relu, TanhDense(3)]
    )
    x = jax.random.normal(jax.random.key(1), (6, 5))
    variables = _with_dead_scales(model.init(jax.random.key(0), x), [1, 4], [0.7, -0.3])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(model, variables, alive, groups, x)

    assert folded.alive["layers_0"].tolist() == [True] * 8
    np.testing.assert_allclose(
        model.apply(folded.variables, x), model.apply(variables, x), rtol=1e-5, atol=1e-6
    )


def test_a_layer_without_a_bias_keeps_only_the_dead_channels_with_a_nonzero_output():
    """Conv-BN nets read BatchNorm outputs with bias-free layers: a dead channel whose
    relu(shift) is zero is dropped there too (all dead channels were kept)."""
    model = nn.Sequential(
        [nn.Dense(8), nn.BatchNorm(use_running_average=True), nn.relu, nn.Dense(3, use_bias=False)]
    )
    x = jax.random.normal(jax.random.key(1), (6, 5))
    variables = _with_dead_scales(model.init(jax.random.key(0), x), [1, 4], [0.7, -0.3])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(model, variables, alive, groups, x)
    small = shrink(folded.variables, folded.alive, groups)

    assert folded.alive["layers_0"].tolist() == [True] * 4 + [False] + [True] * 3
    narrow = nn.Sequential(
        [nn.Dense(7), nn.BatchNorm(use_running_average=True), nn.relu, nn.Dense(3, use_bias=False)]
    )
    np.testing.assert_allclose(
        narrow.apply(small.variables, x), model.apply(variables, x), rtol=1e-5, atol=1e-5
    )


def test_a_cnn_with_a_residual_pair_a_depthwise_conv_and_a_flatten_head_folds_exactly():
    """PlainCNN (tests/morph/test_shrink.py): dead channels reach 'SAME' convs (kept), a
    residual add and a depthwise conv (tied), a concatenation and a flattened head."""
    model = PlainCNN()
    x, variables, groups = _grouped(model, (2, 5, 5, 2))
    alive = {"conv0": [1, 0, 1, 1, 0, 1], "conv1": [0, 1, 1, 0, 1], "side": [1, 1, 1]}

    folded = fold(model, variables, alive, groups, x)
    small = shrink(folded.variables, folded.alive, groups)

    widths = (small.widths["conv0"], small.widths["conv1"])
    assert widths == (6, 3)  # conv0's dead channels reach conv1, a 'SAME' 3x3 conv
    np.testing.assert_allclose(
        PlainCNN(widths=widths).apply(small.variables, x),
        model.apply(mask(variables, alive, groups, keep_biases=True), x),
        rtol=1e-5,
        atol=1e-5 * float(np.abs(model.apply(variables, x)).max()),
    )


class ConvBN(nn.Module):
    """Bias-free 'VALID' convs (or Dense layers), each followed by a BatchNorm: the dead
    channels of the first reach a bias-free layer, whose BatchNorm takes their constant."""

    widths: tuple[int, int] = (8, 6)
    conv: bool = True
    bias: bool = False

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            conv = nn.Conv(width, (3,), padding="VALID", use_bias=self.bias) if self.conv else None
            x = (conv or nn.Dense(width, use_bias=self.bias))(x)
            x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


def _with_running_stats(variables, key):
    """``variables`` with random running means and variances (not the initial 0 and 1)."""
    keys = iter(jax.random.split(key, 2 * len(variables["batch_stats"])))
    stats = {
        name: {
            "mean": jax.random.normal(next(keys), bn["mean"].shape),
            "var": jax.random.uniform(next(keys), bn["var"].shape, minval=0.5, maxval=2.0),
        }
        for name, bn in variables["batch_stats"].items()
    }
    return {**variables, "batch_stats": stats}


def _dead_in_first_norm(variables, dead, shift):
    bn = dict(variables["params"]["BatchNorm_0"])
    bn["scale"] = bn["scale"].at[np.asarray(dead)].set(0.0)
    bn["bias"] = bn["bias"].at[np.asarray(dead)].set(shift)
    return {**variables, "params": {**variables["params"], "BatchNorm_0": bn}}


def _fold_shrink_and_mask(model: nn.Module, x: jax.Array):
    """``model`` with channels 1, 4, 6 of its first BatchNorm dead (shifts 0.7, -0.3, 1.2),
    folded and shrunk; and the masked model's output on ``x``, which the shrunk one must give."""
    initial = _with_running_stats(model.init(jax.random.key(0), x), jax.random.key(2))
    variables = _dead_in_first_norm(initial, [1, 4, 6], [0.7, -0.3, 1.2])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")
    folded = fold(model, variables, alive, groups, x)
    small = shrink(folded.variables, folded.alive, groups)
    return small, model.apply(mask(variables, alive, groups, keep_biases=True), x)


@pytest.mark.parametrize(
    "conv, bias",
    [(True, False), (False, False), (True, True)],
    ids=["conv-bn cnn", "dense-bn mlp", "conv-bn cnn with biases"],
)
def test_a_bias_free_layer_followed_by_batchnorm_folds_into_its_running_mean(conv, bias):
    """The dead channels with a nonzero relu(shift) were kept (width 7 of 8, not 5): the
    layer reading them has no bias; its BatchNorm's running mean now takes the constant
    (a layer with a bias takes it in its bias, as before)."""
    model = ConvBN(conv=conv, bias=bias)
    x = jax.random.normal(jax.random.key(1), (6, 9, 2) if conv else (6, 5))
    small, reference = _fold_shrink_and_mask(model, x)

    widths = (small.widths["Conv_0" if conv else "Dense_0"], 6)
    assert widths[0] == 5  # relu(-0.3) is zero, 0.7 and 1.2 are folded: all 3 dropped
    np.testing.assert_allclose(
        ConvBN(widths, conv, bias).apply(small.variables, x), reference, rtol=1e-6, atol=1e-6
    )


class Between(nn.Module):
    """A bias-free 'VALID' conv reading dead channels, its output reshaped (the channel axis
    kept) or added to a second one's on its way to a BatchNorm."""

    widths: tuple[int, int] = (8, 6)
    between: str = "reshape"

    @nn.compact
    def __call__(self, x):
        def conv(width):
            return nn.Conv(width, (3,), padding="VALID", use_bias=False)

        h = nn.relu(nn.BatchNorm(use_running_average=True)(conv(self.widths[0])(x)))
        y = conv(self.widths[1])(h)
        y = y.reshape(*y.shape[:2], 1, -1) if self.between == "reshape" else y + conv(6)(h)
        y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
        return nn.Dense(3)(y.reshape(y.shape[0], -1))


@pytest.mark.parametrize("between", ["reshape", "add"])
def test_a_bias_free_layer_whose_output_is_reshaped_or_added_folds_into_the_batchnorm(between):
    """Only an output handed to the BatchNorm as it is was seen: reshaped, or added to
    another bias-free layer's, its dead inputs with a nonzero constant were kept (width 7
    of 8, not 5); the running mean now takes the constant (added up over the layers)."""
    model = Between(between=between)
    x = jax.random.normal(jax.random.key(1), (6, 9, 2))
    small, reference = _fold_shrink_and_mask(model, x)

    assert small.widths["Conv_0"] == 5  # relu(-0.3) is zero, 0.7 and 1.2 are folded
    np.testing.assert_allclose(
        Between((5, 6), between).apply(small.variables, x), reference, rtol=1e-6, atol=1e-6
    )


def test_a_batchnorm_input_read_elsewhere_too_keeps_the_dead_channels_exactly():
    """The constant is in the BatchNorm's input and in the residual beside it: a running
    mean would take it from the BatchNorm only, so the channels are kept."""

    class ReadTwice(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Dense(8, use_bias=False)(x)))
            y = nn.Dense(4, use_bias=False)(h)
            return nn.BatchNorm(use_running_average=True)(y) + y

    model = ReadTwice()
    x = jax.random.normal(jax.random.key(1), (6, 5))
    initial = _with_running_stats(model.init(jax.random.key(0), x), jax.random.key(2))
    variables = _dead_in_first_norm(initial, [1, 4, 6], [0.7, -0.3, 1.2])
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(model, variables, alive, groups, x)

    assert folded.alive["Dense_0"].tolist() == [True] * 4 + [False] + [True] * 3
    np.testing.assert_allclose(
        model.apply(folded.variables, x),
        model.apply(mask(variables, alive, groups, keep_biases=True), x),
        rtol=1e-6,
        atol=1e-6,
    )


def test_folding_in_training_mode_keeps_both_modes_exact():
    """Folded with the batch statistics (``mutable``): the batch mean takes the constant,
    and the running mean, lowered by it, serves inference."""

    def mlp(hidden, train):
        def norm():
            return nn.BatchNorm(use_running_average=not train)

        return nn.Sequential(
            [nn.Dense(hidden), norm(), nn.relu, nn.Dense(4, use_bias=False), norm(), nn.Dense(2)]
        )

    x = jax.random.normal(jax.random.key(1), (16, 5))
    variables = _with_dead_scales(
        mlp(8, False).init(jax.random.key(0), x), [1, 4, 6], [0.7, -0.3, 1.2]
    )
    groups = channel_groups(mlp(8, False), variables, x)
    alive = alive_channels(groups, variables, source="gamma")

    folded = fold(mlp(8, True), variables, alive, groups, x, mutable=["batch_stats"])
    small = shrink(folded.variables, folded.alive, groups)

    assert small.widths["layers_0"] == 5
    reference = mask(variables, alive, groups, keep_biases=True)
    for train, mutable in [(True, ["batch_stats"]), (False, False)]:
        got = mlp(5, train).apply(small.variables, x, mutable=mutable)
        want = mlp(8, train).apply(reference, x, mutable=mutable)
        np.testing.assert_allclose(got[0] if train else got, want[0] if train else want, atol=1e-6)


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="b")(nn.relu(nn.Dense(3, name="a")(x)))


_TEACHER = _Net()
_X = jnp.ones((2, 4)) * jnp.arange(4.0)
_TEACHER_VARIABLES = _TEACHER.init(jax.random.key(5), _X)


class _Distilled(nn.Module):
    """_Net, plus a frozen teacher of the same layers applied inside its call."""

    @nn.compact
    def __call__(self, x):
        soft = _TEACHER.apply(_TEACHER_VARIABLES, x)
        return nn.Dense(2, name="b")(nn.relu(nn.Dense(3, name="a")(x))) + 0 * soft


def test_a_model_applied_inside_the_call_is_not_taken_for_its_consumers():
    """The teacher's 'b' calls counted as the model's: the dead channel stayed unfolded."""
    folded = {}
    for model in (_Net(), _Distilled()):
        params = model.init(jax.random.key(0), _X)["params"]
        a = {
            "kernel": params["a"]["kernel"].at[:, 1].set(0.0),
            "bias": params["a"]["bias"].at[1].set(0.7),
        }
        variables = {"params": {**params, "a": a}}
        groups = channel_groups(model, variables, _X)
        folded[model] = fold(model, variables, {"a": [True, False, True]}, groups, _X)
        assert folded[model].alive["a"].tolist() == [True, False, True]
    net, distilled = folded.values()
    jax.tree.map(np.testing.assert_array_equal, distilled.variables, net.variables)
