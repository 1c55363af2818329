"""Table 1 gap probe, part 4: one lambda per layer instead of one for the whole lifted model.

``python docs/results/gaps/table1-sweeps/lambda2.py ARCH N_ROWS SWEEPS OUT.jsonl LH,LO [LH,LO ...]``:
the lifted model of ``table1.lifted_model`` (cross-entropy, simplex output step, rho 1e-3,
float64, seed 0) trained on the first N_ROWS MNIST training rows with ``lam = (LH, ..., LH, LO)``
(LH on every hidden layer's divergence, LO on the output's, the report's lambda_1..lambda_L and
lambda_{L+1}), scored on the 10,000 test images (feed-forward rule) after SWEEPS sweeps; one JSON
line per pair appended to OUT.jsonl. The test set scores a diagnostic here (can any pair reach
the report's number?), not a choice of lambda: Table 1 keeps its validation search. A pair
argument ``std`` switches the pairs after it to inputs standardised with the training rows' pixel
mean and deviation (``cvx_fenchel.datasets.standardize``) instead of [0, 1]; ``init:S`` switches
them to Gaussian initial weights of standard deviation S (default 1/sqrt(fan-in)); ``nobias``
leaves the biases out of the ridge term for the pairs after it (the report penalises ``W`` only;
the library's W-step includes ``rho ||b||^2``).
"""
import json
import sys
import time

import numpy as np

from cvx_fenchel.baselines.lnn import LNNClassifier
from cvx_fenchel.datasets import load_mnist, standardize
from cvx_fenchel.table1 import ARCHS

arch, rows, sweeps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
Xtr, ytr, Xte, yte = load_mnist("/work/shared/data/mnist", normalize=True, flatten=True)
Xtr, ytr = Xtr[:rows], ytr[:rows]
hidden = ARCHS[arch]
std, init, bias_penalised = False, None, True
for pair in sys.argv[5:]:
    if pair == "nobias":  # the ridge on W only: lnn_w_step's system without rho on the bias entry
        import cvx_fenchel.baselines.lnn as lnn_mod

        def w_step_nobias(X, T, lam, rho, *, gamma=0.0, W0=None, b0=None, gram=None):
            gram = lnn_mod.lnn_gram(X) if gram is None else gram
            rhs = np.concatenate([X.T @ T, T.sum(axis=0, keepdims=True)], axis=0) * lam
            if gamma:
                rhs = rhs + gamma * np.concatenate([W0, b0[None, :]], axis=0)
            H = lam * gram + (rho + gamma) * np.eye(gram.shape[0])
            H[-1, -1] -= rho
            theta = np.linalg.solve(H, rhs)
            return theta[:-1], theta[-1]
        lnn_mod.lnn_w_step, bias_penalised = w_step_nobias, False
        continue
    if pair.startswith("init:"):
        init = float(pair[5:])
        continue
    if pair == "std":
        std, (Xtr, Xte) = True, standardize(Xtr, Xte)
        continue
    lh, lo = (float(v) for v in pair.split(","))
    t0 = time.perf_counter()
    m = LNNClassifier(hidden=hidden, loss="cross_entropy", lam=[lh] * len(hidden) + [lo], rho=1e-3,
                      n_iter=sweeps, seed=0, backend="numpy", init_scale=init).fit(Xtr, ytr)
    rec = {"arch": arch, "rows": rows, "sweeps": sweeps, "lam_hidden": lh, "lam_out": lo, "inputs": "standardised" if std else "unit",
           "init_std": init, "bias_in_ridge": bias_penalised,
           "test_accuracy": float((m.predict(Xte) == yte).mean()),
           "train_accuracy": float((m.predict(Xtr) == ytr).mean()),
           "wall_s": round(time.perf_counter() - t0, 1)}
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
