"""How `phosjax.morph`'s trace treats each jax primitive: which keep a dead channel's
zeros, which lose them or turn them into poles, which only move data, which it calls
into, and what to do instead of the unsupported ones that models often use."""

import numpy as np

ANY_ZERO = {"mul", "and"}
ALL_ZERO = {"add", "add_any", "sub", "max", "min", "or", "select_n", "clamp", "complex"}
FIRST_ZERO = {"div", "rem"}
SHIFTS = {"shift_left", "shift_right_arithmetic", "shift_right_logical"}
"""Bit shifts: zero where the shifted operand is (its first); a shift by 0 is no pole."""
KEEPS_ZERO = {
    "neg", "abs", "tanh", "sin", "tan", "sqrt", "cbrt", "square", "erf", "erf_inv", "sign",
    "floor", "ceil", "round", "real", "imag", "asinh", "atanh", "atan", "asin", "sinh", "expm1",
    "log1p", "convert_element_type", "copy", "copy_p", "reduce_precision", "stop_gradient", "conj",
    "bessel_i1e",
}  # fmt: skip
LOSES_ZERO = {
    "exp", "exp2", "log", "logistic", "cos", "cosh", "rsqrt", "is_finite",
    "not", "acos", "acosh", "lgamma", "digamma", "erfc", "nextafter", "atan2", "bessel_i0e",
}  # fmt: skip
BITCAST = "bitcast_convert_type"
"""Keeps a zero but a float's -0.0 as an integer, whose bits are not zero, or as a float
without a -0.0 (see `phosjax.morph._trace._bitcast_keeps_zero`)."""
COMPARE = {
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "gt": np.greater, "le": np.less_equal,
    "ge": np.greater_equal,
}  # fmt: skip
"""Comparisons: a bool's zero is False, so ``x > 1`` is zero where ``x`` is (see
`_Walker.compared`)."""
POWERS = {"integer_pow", "pow"}
POLE_AT_ZERO = {"rsqrt", "log", "lgamma", "digamma", "acosh"}
"""Ops that map a zero to inf or NaN: what they get from a dead channel is not zero."""
LAYOUT = {"convert_element_type", "copy", "copy_p", "reduce_precision"}
REDUCE = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
           "reduce_and", "reduce_or"}  # fmt: skip
WINDOW = {"reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window"}
CUMULATIVE = {"cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"}
SCATTERS = {"scatter", "scatter-add", "scatter-sub", "scatter-mul", "scatter-min", "scatter-max"}
"""``x.at[idx].set/add/...``: each is zero where the operand and the updates both are."""
DECOMPOSITIONS = {"svd", "eigh", "qr", "cholesky", "lu", "lu_pivots_to_permutation",
                  "triangular_solve", "custom_linear_solve"}  # fmt: skip
"""Matrix decompositions and solves (``jax.scipy.linalg.lu_solve``, ``cho_solve``,
``solve_triangular``; ``jnp.linalg.solve``, ``inv``: ``custom_linear_solve``): each output
entry depends on every entry of the operands."""
CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")
CALL_PRIMITIVES = {
    "jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
    "custom_vjp_call_jaxpr", "remat", "remat2", "checkpoint",
}  # fmt: skip


_WHILE_HINT = (
    "is a while loop (lax.while_loop, or lax.fori_loop with bounds that are not Python "
    "ints), whose number of steps phosjax.morph cannot know; write the loop with a fixed "
    "number of steps: lax.scan, nn.scan, nn.RNN, phosjax.layers.Repeat, lax.fori_loop with "
    "int bounds (a scan), or a Python for loop"
)
_RANDOM = ("random_fold_in", "random_split", "random_bits", "threefry2x32")
_RANDOM_HINT = (
    "draws random numbers (dropout, noise) in the traced call; trace the model as in "
    "inference (e.g. train=False, no dropout rng), where channels keep their zeros"
)
_KEYS = ("random_seed", "random_wrap", "random_unwrap")
_KEY_HINT = (
    "makes or reads a random key (jax.random.key, wrap_key_data, key_data: to draw random "
    "numbers, dropout or noise, or of a key the model stores) in the traced call, which "
    "phosjax.morph does not follow; trace the model as in inference (e.g. train=False, no "
    "dropout rng), and read a key it stores outside the traced call (pass what it gives in)"
)
UNSUPPORTED_HINTS = {
    "while": _WHILE_HINT,
    BITCAST: "bitcasts to a dtype of another width, which adds or removes "
    "an axis of its parts; bitcast to a dtype of the same width (float32 to int32)",
    "cond": "is a branch (lax.cond, lax.switch, nn.cond), which is not followed; compute "
    "both branches and pick with jnp.where",
    **dict.fromkeys(_RANDOM, _RANDOM_HINT),
    **dict.fromkeys(_KEYS, _KEY_HINT),
}
"""What the primitive is and what to do instead, for those models often use."""
