"""The ``torch`` method of the speed bench: ``torch.func.vmap`` over K stacked models.

Optional: used only when ``torch`` is importable (it is not a dependency of phosjax).
The models mirror `phosjax.bench._speed_config.MODELS` layer for layer; the K models' params
are stacked with ``torch.func.stack_module_state`` and trained by one ``torch.optim.Adam``
(elementwise, so it equals K separate Adams). Runs on the device jax runs on (`device`).
"""

import importlib.util
import time
from collections.abc import Callable, Sequence
from typing import Any


def unavailable() -> str:
    """Why the torch method cannot run here ("" when it can)."""
    return "" if importlib.util.find_spec("torch") else "torch is not installed"


def device(backend: str, cuda: bool) -> str:
    """The torch device of the torch method when jax's backend is ``backend`` and torch
    has CUDA if ``cuda``: the same kind of device, so that its row compares with jax's
    (torch on a GPU against jax on the CPU compared the devices, not the methods).

    Examples:
      >>> device("cpu", cuda=True), device("gpu", cuda=True)
      ('cpu', 'cuda')
      >>> device("gpu", cuda=False)
      Traceback (most recent call last):
      ValueError: jax runs on gpu but this torch has no CUDA: its rates would be the CPU's; ...
    """
    if backend == "cpu":
        return "cpu"
    if backend != "gpu":
        raise ValueError(f"jax runs on {backend}; torch runs only on cpu or gpu here")
    if not cuda:
        raise ValueError(
            "jax runs on gpu but this torch has no CUDA: its rates would be the CPU's; "
            "install a CUDA build of torch to compare"
        )
    return "cuda"


def _model(name: str, torch: Any) -> Any:
    nn = torch.nn
    Module: Any = nn.Module

    class Lambda(Module):
        def __init__(self, fn: Callable[[Any], Any]) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x)

    class Residual(Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return x + self.inner(x)

    class Tokens(Module):
        def __init__(self) -> None:  # patches of 4 -> 32 features, learned positions
            super().__init__()
            self.embed = nn.Conv1d(1, 32, 4, stride=4)
            self.positions = nn.Parameter(torch.zeros(10, 32))

        def forward(self, x: Any) -> Any:
            return self.embed(x[:, None]).transpose(1, 2) + self.positions

    if name == "mlp":
        hidden = nn.Sequential(nn.Linear(100, 100), nn.ReLU())
        return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), Residual(hidden), nn.Linear(100, 10))
    if name == "cnn1d":
        layers = [m for c in (1, 25, 25) for m in (nn.Conv1d(c, 25, 3, 2, 1), nn.ReLU())]
        return nn.Sequential(
            Lambda(lambda x: x[:, None]), *layers, nn.Flatten(), nn.Linear(125, 10)
        )
    if name == "cnn2d":
        spec = [(1, 32, 1), (32, 64, 2), (64, 64, 2)]
        layers = [m for i, o, s in spec for m in (nn.Conv2d(i, o, 3, s, 1), nn.ReLU())]
        nchw = Lambda(lambda x: x.permute(0, 3, 1, 2))
        return nn.Sequential(nchw, *layers, Lambda(lambda x: x.mean((2, 3))), nn.Linear(64, 10))
    if name == "transformer":
        blocks = [
            nn.TransformerEncoderLayer(32, 4, 64, 0.0, "gelu", batch_first=True, norm_first=True)
            for _ in range(2)
        ]
        return nn.Sequential(Tokens(), *blocks, Lambda(lambda x: x.mean(1)), nn.Linear(32, 10))
    raise ValueError(f"no torch twin of model {name!r}")


def prepare(
    name: str,
    k: int,
    batch: int,
    steps: int,
    input_shape: Sequence[int],
    compute_dtype: str,
    backend: str,
) -> tuple[Callable[[], None], float]:
    """``(run, warm-up seconds)``: ``run()`` trains K models ``steps`` steps with
    torch.func.vmap on the device of jax's ``backend`` (`device`) and waits for it; one
    warm-up step is taken here."""
    import torch
    from torch.func import functional_call, stack_module_state, vmap
    from torch.nn.attention import SDPBackend, sdpa_kernel

    on = torch.device(device(backend, torch.cuda.is_available()))
    models = [_model(name, torch).to(on) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = models[0]
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
    x = torch.randn(k, batch, *input_shape, device=on)
    y = torch.randint(0, 10, (k, batch), device=on)
    low = compute_dtype == "bfloat16"

    def loss(p: Any, b: Any, xi: Any, yi: Any) -> Any:
        with torch.autocast(on.type, dtype=torch.bfloat16, enabled=low):
            logits = functional_call(base, (p, b), (xi,))
        return torch.nn.functional.cross_entropy(logits.float(), yi)

    grid_loss = vmap(loss)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        # Attention's fused CUDA kernels failed under vmap on an H200 (torch 2.11: "LSE is
        # not correctly aligned"); the plain one batches.
        with sdpa_kernel([SDPBackend.MATH]):
            grid_loss(params, buffers, x, y).sum().backward()
        optimizer.step()

    def train(n: int) -> None:
        for _ in range(n):
            step()
        if on.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    train(1)
    return lambda: train(steps), time.perf_counter() - start
