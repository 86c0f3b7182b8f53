"""A tour of phosjax's core: tag, knob, aux_loss, path weights, probe, tweak, inject, grad_of.

Run: python examples/tour.py (each printed line is one step, explained by the comment
above its ``print`` in `main`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

import phosjax as px


class Block(nn.Module):
    """Dense -> tanh(h / T): tags its pre-activation ``pre_act``, declares the knob ``T``
    and raises an ``activity`` aux loss, the mean absolute pre-activation."""

    features: int

    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "pre_act", nn.Dense(self.features)(x))
        temperature = px.knob(self, "T", 1.0, doc="activation temperature", valid=px.Range(gt=0))
        px.aux_loss(self, "activity", jnp.mean(jnp.abs(h)))
        return jnp.tanh(h / temperature)


class TwoPaths(nn.Module):
    """Mixes a deep and a shallow branch; aux losses inside are scaled by the branch weight."""

    @nn.compact
    def __call__(self, x):
        gate = nn.sigmoid(self.param("gate", nn.initializers.zeros, ()))
        with px.path_weight(self, "deep_path", gate):
            deep = Block(8, name="deep_1")(Block(8, name="deep_0")(x))
        with px.path_weight(self, "shallow_path", 1 - gate):
            shallow = Block(8, name="shallow")(x)
        return nn.Dense(2, name="head")(gate * deep + (1 - gate) * shallow)


def main() -> None:
    model, x = TwoPaths(), jnp.linspace(-1, 1, 12).reshape(4, 3)
    variables = model.init(jax.random.key(0), x)
    # knobs: every px.knob the model declares, by path (one T per Block), with its doc.
    print("knobs:", {path: k.doc for path, k in px.knobs(model, x).items()})

    # probed: the values tagged 'pre_act' in any block, read off one forward pass.
    out, found = px.probe(model, variables, x, "**/pre_act")
    print("probed:", {path: value.shape for path, value in found.items()})

    # aux loss: each Block's 'activity' is scaled by the weight of the path it runs under;
    # the gate starts at sigmoid(0) = 0.5, so each branch counts half: the total is half
    # the sum of the three blocks' mean |pre_act|.
    _, state = model.apply(variables, x, mutable=["aux_loss", "path_weights"])
    total, by_name = px.aux_total(state["aux_loss"])
    by_name = {name: round(float(value), 4) for name, value in by_name.items()}
    print(f"aux loss total {float(total):.4f} (path-weighted), by name {by_name}")

    # tweaking: the same variables with knob T set to 5 in both deep blocks (a flatter
    # tanh), without retraining; the largest change of the logits is printed.
    hot = px.tweak(model, variables, x, {"deep_*/T": 5.0})
    print(
        "tweaking the deep branch's temperature moves the output by",
        round(float(jnp.abs(hot - out).max()), 4),
    )

    # injecting: the shallow block's tagged pre-activation replaced by zeros; everything
    # computed after it sees the zeros (here its tanh gives 0, so only the deep branch
    # reaches the head).
    zeroed = px.inject(model, variables, x, {"shallow/pre_act": jnp.zeros((4, 8))})
    print(
        "injecting zeros into the shallow branch moves the output by",
        round(float(jnp.abs(zeroed - out).max()), 4),
    )

    # loss: the gradient of a loss of the logits with respect to each tagged
    # pre-activation (not the params), printed as its norm per block.
    loss, grads = px.grad_of(lambda y: jnp.mean(y**2), model, variables, x, wrt="**/pre_act")
    print(
        f"loss {float(loss):.4f}; |dloss/dpre_act| per block:",
        {p: round(float(jnp.linalg.norm(g)), 5) for p, g in grads.items()},
    )


if __name__ == "__main__":
    main()
