"""The blocks of the baseline zoo: dense, convolutional and residual.

Convolutions work on sequences ``(batch, length, channels)`` and images ``(batch,
height, width, channels)`` alike: the kernel gets one axis per spatial axis of the input.
As Flax's layers, each block takes ``dtype``, the computation dtype of its layers
(``None``: what the input and params promote to), and ``param_dtype``, the dtype its
params are stored in (float32).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import (
    CheckedFields,
    batch_norm,
    checked_size,
    checked_train,
    input_width,
)


def _window(size: int, x: jax.Array) -> tuple[int, ...]:
    return (size,) * (x.ndim - 2)


class DenseBlock(CheckedFields):
    """``x + relu(Dense(x))``: a residual hidden layer (plain when the widths differ).

    Tags ``pre_act``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import DenseBlock
      >>> y, _ = jax.eval_shape(DenseBlock(4).init_with_output, jax.random.key(0), jnp.ones((2, 4)))
      >>> y.shape
      (2, 4)
    """

    features: int
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = checked_size(self, "features")
        input_width(self, x)
        dense = nn.Dense(features, dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.relu(tag(self, "pre_act", dense(x)))
        return x + h if x.shape[-1] == features else h


class Layer(CheckedFields):
    """One layer: ``Dense`` (vectors) or a ``SAME`` convolution (sequences, images), then ReLU.

    Used as the zoo's stem and as the blocks of ``cnn1d`` and ``cnn2d``. Convolves with
    stride 2 when ``downsample``, else with ``stride``. Tags ``pre_act``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import Layer
      >>> def shape(layer, x):  # traced abstractly: nothing runs
      ...     return jax.eval_shape(layer.init_with_output, jax.random.key(0), x)[0].shape
      >>> shape(Layer(4, stride=2), jnp.ones((2, 8, 8, 1))), shape(Layer(4), jnp.ones((2, 3)))
      ((2, 4, 4, 4), (2, 4))
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    downsample: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = checked_size(self, "features")
        kernel_size, stride = checked_size(self, "kernel_size"), checked_size(self, "stride")
        input_width(self, x)
        dtypes = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        if x.ndim == 2:
            h = nn.Dense(features, **dtypes)(x)
        else:
            strides = _window(2 if self.downsample else stride, x)
            h = nn.Conv(features, _window(kernel_size, x), strides, **dtypes)(x)
        return nn.relu(tag(self, "pre_act", h))


class ResBlock(CheckedFields):
    """A residual block: conv-BN-ReLU-conv-BN plus the input, then ReLU (He et al. 2016).

    Where the width changes or the block downsamples, the shortcut is a 1x1 convolution
    with BatchNorm (``proj``). BatchNorm (`batch_norm`'s: the variance from the
    deviations) uses batch statistics and updates ``batch_stats`` when ``train``. Tags
    ``pre_act`` (the sum before the last ReLU).

    References:
      He et al., Deep Residual Learning for Image Recognition, https://arxiv.org/abs/1512.03385

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ResBlock
      >>> y, variables = jax.eval_shape(ResBlock(4, downsample=True).init_with_output,
      ...                               jax.random.key(0), jnp.ones((2, 8, 3)))
      >>> y.shape, sorted(variables)
      ((2, 4, 4), ['batch_stats', 'params'])
    """

    features: int
    kernel_size: int = 3
    downsample: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        checked_train(self, train)
        checked_size(self, "features")
        checked_size(self, "kernel_size")
        input_width(self, x)
        strides = _window(2 if self.downsample else 1, x)
        window = _window(self.kernel_size, x)
        dtypes = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        conv = functools.partial(nn.Conv, self.features, use_bias=False, **dtypes)
        norm = functools.partial(batch_norm, use_running_average=not train, momentum=0.9, **dtypes)
        h = conv(kernel_size=window, strides=strides, name="conv_0")(x)
        h = nn.relu(norm(name="norm_0")(h))
        h = norm(name="norm_1")(conv(kernel_size=window, name="conv_1")(h))
        shortcut = x
        if self.downsample or x.shape[-1] != self.features:
            proj = conv(kernel_size=_window(1, x), strides=strides, name="proj")
            shortcut = norm(name="proj_norm")(proj(x))
        return nn.relu(tag(self, "pre_act", h + shortcut))
