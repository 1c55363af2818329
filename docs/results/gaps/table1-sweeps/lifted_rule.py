r"""Table 1 gap probe, part 5: the report's lifted prediction rule (12) instead of the feed-forward rule.

``python docs/results/gaps/table1-sweeps/lifted_rule.py ARCH OUT.jsonl [SWEEPS ...]``: the trained
lifted model of Table 1 (``runs/reproduce/table1-full/lifted/ARCH-seed0.npz``, its lambda from the
file) scores the 10,000 MNIST test images by rule (12) with the weights fixed:

    y_hat = argmin_c  min_{X_1..X_L >= 0, T in simplex}  J_c,
    J_c = -log T_c + lambda_L ||T - X_L W_L - b_L||^2 + sum_{l<L} lambda_l ||X_{l+1} - X_l W_l - b_l||^2

(per test row; the label variable y on the simplex makes the cross-entropy term linear in y, so its
minimum is at a vertex: one convex problem per class c). Each J_c is minimised by BCD from the
feed-forward values (``lnn_x_step`` for X_1..X_L in order, then ``lnn_output_step`` with the
one-hot target of class c), the same exact steps as training; the problem is jointly convex in
(X, T) with block-separable constraints, so BCD tends to its minimum. One JSON line per SWEEPS
value (default 1 5 20): accuracy of rule (12), of the feed-forward rule, and the largest rise of
any row's J_c between sweeps (0 up to rounding: each step minimises its block).
"""
import json
import sys
import time

import numpy as np

from cvx_fenchel.baselines.lnn import feed_forward, lnn_output_step, lnn_x_step
from cvx_fenchel.datasets import load_mnist

arch, out = sys.argv[1], sys.argv[2]
sweeps_list = [int(s) for s in sys.argv[3:]] or [1, 5, 20]
d = np.load(f"runs/reproduce/table1-full/lifted/{arch}-seed0.npz")
lam0 = json.loads(str(d["config"]))["lam"]
n_w = len([k for k in d.files if k.startswith("W")])
Ws = [d[f"W{l}"] for l in range(n_w)]
bs = [d[f"b{l}"] for l in range(n_w)]
lam = [lam0] * n_w
L = n_w - 1
_, _, Xte, yte = load_mnist("/work/shared/data/mnist", normalize=True, flatten=True)
Xte = Xte.astype(np.float64)
hidden0, out0 = feed_forward(Xte, Ws, bs)
ff_acc = float((out0.argmax(1) == yte).mean())


def row_objective(Xs, T, c):
    ins, targets = [Xte, *Xs], [*Xs, T]
    J = -np.log(np.maximum(T[:, c], 1e-300))
    for l in range(L + 1):
        J = J + lam[l] * ((targets[l] - (ins[l] @ Ws[l] + bs[l])) ** 2).sum(axis=1)
    return J


t0 = time.perf_counter()
state = {}
for c in range(10):
    Y = np.zeros((len(yte), 10))
    Y[:, c] = 1.0
    state[c] = {"Y": Y, "Xs": [h.copy() for h in hidden0],
                "T": lnn_output_step(Y, out0, lam[L])}
done, Jc, rise = 0, None, 0.0
for K in sorted(sweeps_list):
    for c in range(10):
        st = state[c]
        J_old = row_objective(st["Xs"], st["T"], c)
        for _ in range(K - done):
            U_prev = Xte @ Ws[0] + bs[0]
            for l in range(1, L + 1):
                nxt = st["Xs"][l] if l < L else st["T"]
                st["Xs"][l - 1], _ = lnn_x_step(nxt, U_prev, Ws[l], bs[l], st["Xs"][l - 1], lam[l],
                                                lam[l - 1])
                U_prev = st["Xs"][l - 1] @ Ws[l] + bs[l]
            st["T"] = lnn_output_step(st["Y"], U_prev, lam[L])
        st["J"] = row_objective(st["Xs"], st["T"], c)
        rise = max(rise, float((st["J"] - J_old).max()))
    done = K
    Jc = np.stack([state[c]["J"] for c in range(10)], axis=1)
    rec = {"arch": arch, "lam": lam0, "sweeps": K, "lifted_rule_accuracy": float((Jc.argmin(1) == yte).mean()),
           "feed_forward_accuracy": ff_acc,
           "agree_with_feed_forward": float((Jc.argmin(1) == out0.argmax(1)).mean()),
           "max_rise_of_J": rise, "wall_s": round(time.perf_counter() - t0, 1)}
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
