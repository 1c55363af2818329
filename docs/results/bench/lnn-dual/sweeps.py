"""Table 1's lifted model (LNNClassifier, cross-entropy, lambda 10, rho 1e-3, float64) for a few
BCD sweeps on the first N MNIST training rows, with the code of the checkout given as the first
argument (a worktree of the commit to measure), so that two commits can be run alternately:

    python docs/results/bench/lnn-dual/sweeps.py WORKTREE ARCH N_ROWS SWEEPS

Prints one JSON line: seconds and X-step iterations per sweep, the final objective and accuracy.
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])

import cvx_fenchel  # noqa: E402
from cvx_fenchel.datasets import load_mnist  # noqa: E402
from cvx_fenchel.table1 import Settings, lifted_model  # noqa: E402

assert cvx_fenchel.__file__.startswith(sys.argv[1]), cvx_fenchel.__file__
arch, k, sweeps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
Xtr, ytr, _, _ = load_mnist("/work/shared/data/mnist", normalize=True, flatten=True)
t0 = time.perf_counter()
h = lifted_model(arch, 0, Settings(lam=10.0), Xtr[:k], ytr[:k], n_iter=sweeps).history_.epochs
print(json.dumps({"worktree": sys.argv[1], "arch": arch, "rows": k, "sweeps": sweeps,
                  "seconds_per_sweep": [round(e["time_step"], 2) for e in h[1:]],
                  "x_iterations_per_sweep": [e["x_iters"] for e in h[1:]],
                  "objective": h[-1]["objective"], "train_accuracy": h[-1]["train_accuracy"],
                  "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)
