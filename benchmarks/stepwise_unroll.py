"""Steps per dispatch of the ``stepwise`` strategy: a one-cell CNN, 48 steps per chunk.

Run: ``python benchmarks/stepwise_unroll.py [--model cnn1d] [--rounds 25]``

Times, in this one run on the current backend, chunks of 48 steps of one cell (batch 128
from 256 synthetic examples shaped for the model), run as `run_group` runs them
(`Executor.run_steps`, strategy ``stepwise``, the unguarded step) with 1, 2 and 4 steps
per dispatch (`Executor`'s ``unroll``), and the speed bench's ``one_by_one``: its bare
compiled Adam step (fixed batch, no metrics) dispatched step after step.

The variants take turns over the rounds; it prints each unroll's compile seconds, then
µs per step (best and median) and each one's best over one step per dispatch and over
``one_by_one``.
"""

import argparse

from _rounds import add_model, add_rounds, print_table, time_rounds

STEPS = 48
UNROLLS = (1, 2, 4)


def variants(model_name: str) -> tuple[dict, dict]:
    """``(name -> a call that runs one chunk, name -> compile seconds)``, all compiled."""
    import jax

    from phosjax.bench._speed_config import SpeedConfig
    from phosjax.bench._speed_methods import setup_model, synthetic_data
    from phosjax.train import Cell, HParams, device_arrays, init_group, make_train_step, plan_groups
    from phosjax.train._strategy import Executor, compile_totals

    bench = setup_model(model_name, SpeedConfig(models=(model_name,), sizes=(1,), steps=STEPS))
    data = synthetic_data(bench.config, 128)
    hp = HParams(batch_size=128, steps=10**6)
    [group] = plan_groups([Cell(bench.config, data.name, hp, 0)])
    model = group.model.build()
    calls, compile_s = {}, {}
    for unroll in UNROLLS:
        executor = Executor("stepwise", 1, unroll=unroll)
        box = [executor.put_state(init_group(group, data))]
        arrays = executor.put_data(device_arrays(data))

        def run(executor=executor, box=box, arrays=arrays):
            box[0], metrics = executor.run_steps(
                "unroll", lambda: make_train_step(model, hp, guard=False), box[0], arrays, STEPS
            )
            return metrics

        before = compile_totals()[0]
        jax.block_until_ready(run())
        name = f"stepwise, {unroll} per dispatch"
        calls[name], compile_s[name] = run, compile_totals()[0] - before
    x, y = jax.device_put(data.x_train[:128]), jax.device_put(data.y_train[:128])
    bare = [jax.device_put(bench.states(1)[0])]

    def one_by_one():
        state = bare[0]
        for _ in range(STEPS):
            state = bench.compiled(state, x, y)
        bare[0] = state
        return state

    jax.block_until_ready(one_by_one())
    calls["one_by_one (bare step)"] = one_by_one
    return calls, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model(parser, "cnn1d")
    add_rounds(parser, 25)
    args = parser.parse_args()
    calls, compile_s = variants(args.model)
    for name, seconds in compile_s.items():
        print(f"compile {name}: {seconds:.2f} s")
    one = f"stepwise, {UNROLLS[0]} per dispatch"
    print_table(time_rounds(calls, args.rounds, STEPS), [one, "one_by_one (bare step)"])


if __name__ == "__main__":
    main()
