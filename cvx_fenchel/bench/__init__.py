r"""``cvx-fenchel bench``: speed of the Fenchel trainer against Adam, measured in one run (issue 12).

Workloads (:func:`run_bench`):

``mlp``
    784-300-10, the ``original`` preset (Fig. 2 settings: batch 500, float32, caps 50 X / 30 W).
``lenet5``
    LeNet-5, the ``original`` preset (Fig. 3 settings).
``steps``
    each subproblem kind's MNIST-scale instance, fast path against scipy's L-BFGS-B at equal
    objective (:mod:`.steps`, shared with ``verification/speed.py``).

For ``mlp``/``lenet5`` one process times ``BCDTrainer.train_batch`` on ``N`` batches after a
warm-up batch and the Adam baseline (torch, same architecture and device, batch 100 and 500), and
reports seconds per batch and per epoch (extrapolated), the split by step with inner iterations
(mean, max, fraction at the cap), nominal FLOPs and achieved GFLOP/s of each step against a
float32 GEMM peak timed in the same run, the ratio Fenchel/Adam, and the host synchronisations
of one batch counted on the CPU (:mod:`.syncs`). Modules: :mod:`.workloads` (the measurements),
:mod:`.run` (the run, JSON and Markdown), :mod:`.syncs` (the counting namespace), :mod:`.steps`.

The package imports nothing heavy itself: :mod:`.steps` is imported by ``verification`` without
the trainer (the import contract in ``pyproject.toml``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_bench", "write_bench", "bench_markdown", "WORKLOADS"]

WORKLOADS = ("mlp", "lenet5", "steps")


def __getattr__(name: str) -> Any:
    if name in ("run_bench", "write_bench", "bench_markdown"):
        from . import run
        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
