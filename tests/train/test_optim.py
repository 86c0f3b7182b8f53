"""`make_optimizer`'s arguments: values that would train wrongly are refused by name."""

import jax.numpy as jnp
import pytest

from phosjax.train import make_optimizer


@pytest.mark.parametrize(
    "grad_clip, message",
    [
        (-1.0, r"must be > 0 \(a global norm\) or None \(no clipping\), got -1.0"),
        (0.0, r"must be > 0 .*, got 0.0"),
        (float("nan"), r"must be a number, got nan"),
        ("1", r"must be a number, got '1' \(str\)"),
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
