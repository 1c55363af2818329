"""Table 1 gap probe, part 6: is the lifted model's plateau its optimum or BCD's start?

``python docs/results/gaps/table1-sweeps/warm_start.py N_ROWS SWEEPS LAMBDA OUT.jsonl``: the lifted
model 300 of ``table1.lifted_model`` (cross-entropy, simplex output step, rho 1e-3, float64) on the
first N_ROWS MNIST training rows, BCD started (a) from its Gaussian weights, as Table 1, and (b)
from the weights of a network trained by Adam (784-300-10, 5 epochs on the same rows, seed 0); the
test accuracy of the feed-forward network after every sweep, one JSON line per start. If BCD from
the good network falls to the plateau, the lifted objective itself prefers the poorer network (the
model); if it stays high, the plateau is where BCD from a random start stops (the optimisation).
"""
import json
import sys
import time

import numpy as np

from cvx_fenchel.baselines.lnn import LNNClassifier
from cvx_fenchel.baselines.torch_nets import TorchNetClassifier
from cvx_fenchel.datasets import load_mnist
from cvx_fenchel.history import History

rows, sweeps, lam, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
Xtr, ytr, Xte, yte = load_mnist("/work/shared/data/mnist", normalize=True, flatten=True)
Xtr, ytr = Xtr[:rows], ytr[:rows]
net = TorchNetClassifier("784-300-10", optimizer="adam", lr=1e-3, epochs=5, batch_size=100, seed=0)
net.fit(Xtr.astype(np.float32), ytr)
start_weights = [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.weights_]
net_acc = float(net.score(Xte.astype(np.float32), yte))
orig_fit_full = LNNClassifier._fit_full

for start in ("gaussian", "adam-net"):
    t0 = time.perf_counter()

    def fit_full(self, X, Y, y, X_test, y_test, n_iter, Ws, bs, xp):
        if start == "adam-net":  # replace the Gaussian draw in place
            for l, (W, b) in enumerate(start_weights):
                Ws[l], bs[l] = xp.asarray(W), xp.asarray(b)
        return orig_fit_full(self, X, Y, y, X_test, y_test, n_iter, Ws, bs, xp)
    LNNClassifier._fit_full = fit_full
    m = LNNClassifier(hidden=(300,), loss="cross_entropy", lam=lam, rho=1e-3, n_iter=sweeps, seed=0,
                      backend="numpy").fit(Xtr, ytr, X_test=Xte, y_test=yte)
    rec = {"start": start, "rows": rows, "lam": lam, "start_network_test_accuracy": net_acc,
           "test_accuracy": [round(e["test_accuracy"], 4) for e in m.history_.epochs],
           "train_accuracy": [round(e["train_accuracy"], 4) for e in m.history_.epochs],
           "objective": [round(e["objective"], 1) for e in m.history_.epochs],
           "wall_s": round(time.perf_counter() - t0, 1)}
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
