"""What each part of a train step costs: the speed bench's bare MLP step, parts added.

Run: ``python benchmarks/step_costs.py``

Times, in this one run on the current backend, chunks of 100 steps (one `jax.lax.scan`
each, one MLP 40-100-100-10, batch 128 from 4,000 synthetic MNIST-1D-shaped examples,
Adam) of the bench's bare step (one fixed batch, loss only) with parts of the engine's
step added one at a time:

* ``+ gather in each step``: each step gathers its batch by index from the train split;
* ``+ gather before the scan``: the chunk's batches gathered in one gather, sliced per step;
* ``+ loss``, ``+ loss, accuracy``, ``+ loss, grad_norm``, ``+ loss, grad_norm in one``,
  ``+ all metrics``: the gather before the scan (as the engine does), and these per-step
  outputs (``accuracy``: the engine's, `phosjax.train._step.correct`, NaN where a logit
  is; ``grad_norm``: the gradient's global norm, by `optax.tree.norm`, one
  reduction per leaf, or "in one" reduction over the leaves concatenated, as the engine
  computes it, `phosjax.train._reduce.global_norm`);
* ``+ injected hyperparameters``: the gather before the scan and the engine's optimizer
  (`make_optimizer`: learning rate and weight decay in the optimizer state).

The variants take turns over the rounds; it prints µs per step (best and median) and each
one's best over the bare step's.
"""

import argparse

from _rounds import print_table, time_rounds

STEPS, ROUNDS = 100, 60


def variants() -> dict:
    """name -> a call that runs one chunk."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from phosjax.bench._speed_config import MODELS
    from phosjax.train._optim import make_optimizer
    from phosjax.train._reduce import global_norm
    from phosjax.train._step import correct

    model = MODELS["mlp"].build()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4000, 40)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 4000).astype(np.int32))
    idx = jnp.asarray(rng.integers(0, 4000, (STEPS, 128)).astype(np.int32))
    params = model.init(jax.random.key(0), x[:1], train=False)["params"]

    def chunk(tx, gather: str, outputs: tuple[str, ...]):
        def loss(p, xb, yb):
            logits = model.apply({"params": p}, xb, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

        def body(carry, batch):
            p, opt = carry
            if gather == "none":
                xb, yb = x[:128], y[:128]
            elif gather == "each":
                xb, yb = x[batch], y[batch]
            else:
                xb, yb = batch
            (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(p, xb, yb)
            known = {
                "loss": lambda: value,
                "accuracy": lambda: jnp.mean(correct(logits, yb)),
                "grad_norm": lambda: optax.tree.norm(grads),
                "grad_norm, one reduction": lambda: global_norm(grads),
            }
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), {k: known[k]() for k in outputs}

        def run(carry):
            return jax.lax.scan(body, carry, (x[idx], y[idx]) if gather == "before" else idx)

        return functools.partial(jax.jit(run), (params, tx.init(params)))

    adam, injected = optax.adam(1e-3), make_optimizer("adam", learning_rate=1e-3)
    calls = {
        "bare": chunk(adam, "none", ()),
        "+ gather in each step": chunk(adam, "each", ()),
        "+ gather before the scan": chunk(adam, "before", ()),
        "+ loss": chunk(adam, "before", ("loss",)),
        "+ loss, accuracy": chunk(adam, "before", ("loss", "accuracy")),
        "+ loss, grad_norm": chunk(adam, "before", ("loss", "grad_norm")),
        "+ loss, grad_norm in one": chunk(adam, "before", ("loss", "grad_norm, one reduction")),
        "+ all metrics": chunk(adam, "before", ("loss", "accuracy", "grad_norm, one reduction")),
        "+ injected hyperparameters": chunk(injected, "before", ()),
    }
    return calls


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help
    print_table(time_rounds(variants(), ROUNDS, STEPS), ["bare"])


if __name__ == "__main__":
    main()
