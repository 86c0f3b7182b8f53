"""Small models shared by the core tests: plain, scanned and rematerialized stacks; pytree tags."""

import flax.linen as nn
import jax.numpy as jnp

import phosjax as px

WIDTH = 4
DEPTH = 3


class Block(nn.Module):
    """Dense -> tag "pre_act" -> tanh(h / T), with T a knob."""

    features: int = WIDTH

    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "pre_act", nn.Dense(self.features, name="dense")(x))
        temperature = px.knob(self, "T", 1.0, doc="activation temperature")
        px.aux_loss(self, "activity", jnp.mean(jnp.abs(h)))
        return px.tag(self, "out", jnp.tanh(h / temperature))


class ScanBlock(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return Block()(x), None


class Stack(nn.Module):
    """``DEPTH`` blocks, as separate modules, one remat'd module each, or one nn.scan."""

    kind: str = "plain"

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(WIDTH, name="stem")(x)
        if self.kind == "scan":
            scanned = nn.scan(
                ScanBlock,
                variable_axes=px.scan_axes(params=0),  # as the README says
                split_rngs={"params": True},
                length=DEPTH,
            )
            x, _ = scanned(name="blocks")(x, None)
        else:
            block = nn.remat(Block) if self.kind == "remat" else Block
            for i in range(DEPTH):
                x = block(name=f"blocks_{i}")(x)
        return nn.Dense(2, name="head")(x)


class Pytrees(nn.Module):
    """Tags a dict and a tuple; returns sum(a**2) + sum(sin(b)) + sum(first * second)."""

    @nn.compact
    def __call__(self, x):
        d = px.tag(self, "d", {"a": x, "b": 2 * x})
        first, second = px.tag(self, "pair", (x, 3 * x))
        return jnp.sum(d["a"] ** 2) + jnp.sum(jnp.sin(d["b"])) + jnp.sum(first * second)


KINDS = ("plain", "remat", "scan")


def pre_act_path(kind: str) -> str:
    return "blocks/Block_0/pre_act" if kind == "scan" else "blocks_1/pre_act"
