import jax

from phosjax._compile import RUN_ONCE_COMPILER_OPTIONS, jit_run_once


def test_jit_run_once_compiles_at_o1_on_cpu_unless_xla_flags_set_a_level(monkeypatch):
    """init_group's program and morph's same_function each wrote this choice themselves."""
    seen = []
    monkeypatch.setattr(jax, "jit", lambda fn, **options: seen.append(options) or fn)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    for flags in ("--xla_force_host_platform_device_count=2", "--xla_backend_optimization_level=0"):
        monkeypatch.setenv("XLA_FLAGS", flags)
        assert jit_run_once(abs) is abs
    assert seen == [{"compiler_options": RUN_ONCE_COMPILER_OPTIONS}, {"compiler_options": None}]


def test_a_program_run_once_gives_what_it_gives_jitted():
    got = jit_run_once(lambda x: (x * 2.0).sum())(jax.numpy.arange(3.0))
    assert float(got) == 6.0
