"""Table 1 gap probe: does the lifted model (Table 1's column "Our Model") gain from more BCD
sweeps than the 20 that ``cvx_fenchel.table1`` runs?

``python docs/results/gaps/table1-sweeps/probe.py ARCH SWEEPS LAMBDA OUT.jsonl [N_ROWS] [raw]``: the
lifted model of ``table1.lifted_model`` (cross-entropy, simplex output step, rho 1e-3, float64,
seed 0) on the full MNIST training set (or its first N_ROWS rows), scored on the 10,000 test
images after every sweep (feed-forward rule, as Table 1); one JSON line per sweep appended to
OUT.jsonl (sweep, test and train accuracy, objective, seconds), so a killed run keeps what it has.
``raw``: pixels 0..255 instead of [0, 1] (the input scale Table 1's networks may have seen; N_ROWS
0 for all rows).
"""
import json
import sys
import time

from cvx_fenchel.baselines.lnn import LNNClassifier
from cvx_fenchel.datasets import load_mnist
from cvx_fenchel.history import History
from cvx_fenchel.table1 import ARCHS

arch, sweeps, lam, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
raw = len(sys.argv) > 6 and sys.argv[6] == "raw"
Xtr, ytr, Xte, yte = load_mnist("/work/shared/data/mnist", normalize=not raw, flatten=True)
if raw:
    Xtr, Xte = Xtr.astype("float64"), Xte.astype("float64")
if len(sys.argv) > 5 and int(sys.argv[5]) > 0:
    Xtr, ytr = Xtr[:int(sys.argv[5])], ytr[:int(sys.argv[5])]
t0 = time.perf_counter()
seen = 0
orig = History.log_epoch


def log_epoch(self, **rec):  # write each sweep's record as it is logged
    global seen
    orig(self, **rec)
    with open(out, "a") as f:
        f.write(json.dumps({"arch": arch, "lam": lam, "rows": int(Xtr.shape[0]), "pixels": "raw" if raw else "unit",
                            "sweep": rec["epoch"],
                            "test_accuracy": rec.get("test_accuracy"),
                            "train_accuracy": rec.get("train_accuracy"), "objective": rec.get("objective"),
                            "x_iters": rec.get("x_iters"), "wall_s": round(time.perf_counter() - t0, 1)}) + "\n")


History.log_epoch = log_epoch
LNNClassifier(hidden=ARCHS[arch], loss="cross_entropy", lam=lam, rho=1e-3, n_iter=sweeps, seed=0,
              backend="numpy").fit(Xtr, ytr, X_test=Xte, y_test=yte)
