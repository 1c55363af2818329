"""Capture the three X-steps of the last of 8 BCD sweeps of Table 1's lifted model 500-200-100
(lambda 10, first 5,000 MNIST training rows) to /tmp/lnncaps.pkl, for xstep.py."""
import pickle

import cvx_fenchel.baselines.lnn as L
from cvx_fenchel.datasets import load_mnist
from cvx_fenchel.table1 import Settings, lifted_model

Xtr, ytr, _, _ = load_mnist("/work/shared/data/mnist", normalize=True, flatten=True)
caps = []
orig = L.lnn_x_step


def cap(*a, **k):
    caps.append((a, k))
    return orig(*a, **k)


L.lnn_x_step = cap
lifted_model("500-200-100", 0, Settings(lam=10.0), Xtr[:5000], ytr[:5000], n_iter=8)
pickle.dump(caps[-3:], open("/tmp/lnncaps.pkl", "wb"))
