# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Lifted networks of 2018 versus Fenchel lifted networks
#
# *Notebook 5 of 6 (about 15 minutes). Uses notebooks 1-3.*
#
# The **lifted neural network** of Askari, Negiar, Sambharya and El Ghaoui (2018) came first. It
# also writes ReLU as an argmin, `relu(u) = argmin_{v >= 0} (v - u)^2`, and penalises
# `lambda ||X_{l+1} - (X_l W_l + b_l)||^2` with `X_{l+1} >= 0`. The Fenchel lifted network (2020)
# replaces that square by the Fenchel-Young divergence `B`. Both penalties vanish exactly on
# `v = relu(u)`; this notebook shows where they differ, solves the 2018 model's two special
# subproblems (non-negative least squares and a simplex-constrained cross-entropy step) in CVXPY
# and by their fast paths, and uses the 2018 model as it was meant to be used: to initialise a
# standard network.

# %%
import time
import warnings

import cvxpy as cp
import matplotlib.pyplot as plt
import numpy as np

from cvx_fenchel import FenchelClassifier
from cvx_fenchel.activations import LiftedPenalty, TaylorPenalty, get_activation
from cvx_fenchel.baselines.lnn import LNNClassifier
from cvx_fenchel.bcd import adam_step
from cvx_fenchel.cvx import solve
from cvx_fenchel.datasets import load_mnist, one_hot
from cvx_fenchel.errors import ConvergenceWarning
from cvx_fenchel.losses import get_loss, softmax
from cvx_fenchel.network import make_network
from cvx_fenchel.subproblems import LNNX, LNNSimplexCE

np.set_printoptions(precision=4, suppress=True)
warnings.filterwarnings("ignore", message="The problem includes expressions that don't support CPP")
warnings.filterwarnings("ignore", category=ConvergenceWarning)   # capped BCD steps, as in training
relu = get_activation("relu")
lifted, taylor = LiftedPenalty(), TaylorPenalty()

# %% [markdown]
# ## 1. Three penalties for one ReLU
#
# | penalty | formula | argmin over `v >= 0` | convexity |
# |---|---|---|---|
# | lifted network 2018 | `(v - u)^2` | `relu(u)` | jointly convex |
# | Taylor et al. 2016 | `(v - relu(u))^2` | `relu(u)` | convex in `v`, **not** in `u` |
# | Fenchel 2020 (`2B`, the original code's scale) | `v^2 + max(u,0)^2 - 2uv` | `relu(u)` | biconvex |
#
# All three have the same minimiser in `v`. They differ as functions of `u`, and `u = X W + b` is
# what the **W-step** moves. Take a unit that is off, `v = 0`, and a unit that is on, `v = 1`:

# %%
u = np.linspace(-3, 3, 601)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
v_grid = np.linspace(0, 3, 301)
for name, pen in (("2018: (v-u)^2", lambda v, u: lifted.value(v, u)),
                  ("Taylor: (v-relu u)^2", lambda v, u: taylor.value(v, u)),
                  ("Fenchel: 2B(v,u)", lambda v, u: 2 * relu.divergence(v, u))):
    axes[0].plot(v_grid, pen(v_grid, np.full_like(v_grid, -1.0)), label=name)
    for ax, v0 in zip(axes[1:], (0.0, 1.0)):
        ax.plot(u, pen(np.full_like(u, v0), u), label=name)
axes[0].set_title("as a function of v, for u = -1")
axes[0].set_xlabel("v (v >= 0)")
for ax, v0 in zip(axes[1:], (0.0, 1.0)):
    ax.set_title(f"as a function of u, for v = {v0:g}")
    ax.set_xlabel("u (the pre-activation X W + b)")
    ax.set_ylim(0, 6)
for ax in axes:
    ax.set_ylabel("penalty")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

pen_at = {"2018": float(lifted.value(0.0, -3.0)), "Taylor": float(taylor.value(0.0, -3.0)),
          "Fenchel 2B": float(2 * relu.divergence(np.array(0.0), np.array(-3.0)))}
print("penalty of an 'off' unit (v = 0) whose pre-activation is u = -3:", pen_at)
assert pen_at["2018"] == 9.0 and pen_at["Fenchel 2B"] == 0.0 and pen_at["Taylor"] == 0.0

# %% [markdown]
# **What to see.** Left: in `v` (what an X-step sees) the three penalties are convex with the same
# minimiser `v = relu(-1) = 0`. Middle: for a unit that is off (`v = 0`) the 2018 penalty `u^2`
# pulls every negative pre-activation back to `0`, while the Fenchel penalty and Taylor's (the two
# curves coincide here, `max(u, 0)^2`) are `0` for all `u <= 0`: like ReLU itself, they do not care *how* negative an inactive unit's input is.
# Right: for `v = 1`, Taylor's penalty is flat for `u < 0` and then falls: not convex in `u`, so
# its W-step is not a convex problem; the 2018 and Fenchel penalties are convex in `u`.
#
# So the 2018 W-step fits `X W + b` to `X_{l+1}` in least squares, including the zeros; the
# Fenchel W-step only asks `X W + b <= 0` where `X_{l+1} = 0`. A check of the non-convexity:

# %%
uu = np.array([-1.0, 0.0, 1.0])                          # midpoint 0 of -1 and 1
for name, pen in (("Taylor", taylor.value), ("Fenchel 2B", lambda v, u: 2 * relu.divergence(v, u)),
                  ("2018", lifted.value)):
    vals = pen(np.ones(3), uu)
    print(f"{name:10s} v = 1: P(u=-1) = {vals[0]:.3f}, P(u=1) = {vals[2]:.3f}, "
          f"P(midpoint 0) = {vals[1]:.3f} vs average {(vals[0] + vals[2]) / 2:.3f}")
vals = taylor.value(np.ones(3), uu)
assert vals[1] > (vals[0] + vals[2]) / 2, "Taylor's penalty is not convex in u"

# %% [markdown]
# ## 2. The 2018 model's subproblems in CVXPY and by their fast paths
#
# **X-step: non-negative least squares** (`LNNX`),
# `min_{Z >= 0} lambda ||Z W + b - X_next||^2 + lambda_prev ||Z - U_prev||^2`, solved by projected
# FISTA. **Output step with cross-entropy** (`LNNSimplexCE`, Appendix A of the 2018 report):
# `min_Z -Tr Y^T log Z + lambda ||Z - X0||^2` with every row of `Z` on the probability simplex.
#
# For the output step, Appendix A derives the solution: with the multiplier `nu` of `sum_i z_i = 1`
# (one per sample), stationarity `-y_i / z_i + 2 lambda (z_i - x0_i - nu) = 0` gives
#
# `z_i(nu) = a_i/2 + sqrt(a_i^2/4 + y_i/(2 lambda))`, `a_i = x0_i + nu`,
#
# increasing in `nu`, so `nu` is found by bisection on `sum_i z_i(nu) = 1`. (We re-derived this
# formula; it matches the report.) We implement that bisection here in a few lines and compare it
# with the library's fast path, with CVXPY, and `nu` with CVXPY's dual value.

# %%
rng = np.random.default_rng(0)
m, n, n_next = 8, 5, 4
x_step = LNNX(rng.standard_normal((m, n_next)), 2 * rng.standard_normal((m, n)), rng.standard_normal((n, n_next)),
              rng.standard_normal(n_next), lam=1.3, lam_prev=0.7)
fast = x_step.solve_fast(tol=1e-11)
Z_cvx, res = x_step.solve_cvxpy("CLARABEL")
print(f"NNLS X-step:  fast {fast.objective:.10f} ({fast.method}, {fast.n_iter} iterations)   CVXPY {res.objective:.10f}"
      f"   max |dZ| = {np.max(np.abs(fast.x - Z_cvx)):.1e}   zeros in Z: {int((fast.x == 0).sum())} of {fast.x.size}")
assert abs(fast.objective - res.objective) <= 1e-7 * res.objective

k, lam = 4, 0.7
Y = one_hot(rng.integers(0, k, m), k)
X0 = rng.standard_normal((m, k))
step = LNNSimplexCE(Y, X0, lam=lam)
fast = step.solve_fast(tol=1e-12)


def simplex_ce_by_hand(Y, X0, lam, n_iter=200):
    """Appendix A: bisection on nu for every row at once."""
    lo = -X0.max(axis=1) - 1 / (2 * lam) - 1          # sum z(lo) < 1
    hi = 1 - X0.min(axis=1)                             # sum z(hi) >= 1
    z = lambda nu: (X0 + nu[:, None]) / 2 + np.sqrt(((X0 + nu[:, None]) / 2) ** 2 + Y / (2 * lam))
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        big = z(mid).sum(axis=1) > 1
        hi, lo = np.where(big, mid, hi), np.where(big, lo, mid)
    nu = (lo + hi) / 2
    return z(nu), nu


Z_hand, nu_hand = simplex_ce_by_hand(Y, X0, lam)
Zc = cp.Variable((m, k))
rows = cp.sum(Zc, axis=1) == 1
prob = cp.Problem(cp.Minimize(-cp.sum(cp.multiply(Y, cp.log(Zc))) + lam * cp.sum_squares(Zc - X0)), [rows, Zc >= 0])
solve(prob, "CLARABEL")
print(f"simplex step: library {fast.objective:.10f} ({fast.method})   by hand {step.objective(Z_hand):.10f}   "
      f"CVXPY {prob.value:.10f}")
print(f"max |Z library - Z by hand| = {np.max(np.abs(fast.x - Z_hand)):.1e},  max |Z - Z CVXPY| = "
      f"{np.max(np.abs(fast.x - Zc.value)):.1e}")
# CVXPY's Lagrangian adds eta_i (sum_j z_ij - 1); stationarity then gives nu = -eta / (2 lambda)
print("nu by bisection:           ", nu_hand)
print("-eta / (2 lambda) (CVXPY): ", -rows.dual_value / (2 * lam))
assert np.allclose(fast.x, Z_hand, atol=1e-10) and np.allclose(Z_hand, Zc.value, atol=1e-4)
assert step.objective(Z_hand) <= prob.value + 1e-7 * prob.value
assert np.allclose(nu_hand, -rows.dual_value / (2 * lam), atol=1e-4)

# %% [markdown]
# The library's bisection and the hand-written one give the same rows on the simplex to rounding;
# CVXPY agrees to its accuracy on exponential cones (about `1e-5` on the point, `1e-8` relative on
# the value, which the bisection beats). The bisection's `nu` is CVXPY's dual value of `sum_j z_ij = 1` up to the factor `-1/(2 lambda)`
# that comes from how each writes its Lagrangian.
#
# ## 3. Training both lifted models on MNIST
#
# 2,000 images of the embedded subset, a 784-100-10 ReLU network, cross-entropy. The 2018 model is
# trained full batch by its BCD (NNLS X-steps, the simplex step, ridge W-steps) for 5 sweeps; the
# Fenchel model by Algorithm 2 (batches of 500, the original code's weights `lam = 2`,
# `coef = (1, 10)`, `gamma = (10, 100 x batch)`) for 3 epochs. Both predict with the feed-forward
# rule of their weights.

# %%
X_all, y_all, X_test, y_test = load_mnist(normalize=True, flatten=True)
X, y = X_all[:2000], y_all[:2000]
t0 = time.perf_counter()
lnn = LNNClassifier(hidden=(100,), loss="cross_entropy", lam=1.0, rho=1e-3, n_iter=5, x_max_iter=300, seed=0)
lnn.fit(X, y, X_test=X_test, y_test=y_test)
t_lnn = time.perf_counter() - t0
t0 = time.perf_counter()
fen = FenchelClassifier(arch="784-100-10", settings="plain", lam=2.0, gamma=(10, 50000), coef=(1, 10), epochs=3)
fen.fit(X, y)
t_fen = time.perf_counter() - t0
acc_lnn, acc_fen = lnn.score(X_test, y_test), fen.score(X_test, y_test)
print(f"2018 lifted network : test accuracy {acc_lnn:.4f} ({t_lnn:.1f} s); objective per sweep "
      f"{[round(e['objective'], 1) for e in lnn.history_.epochs]}")
print(f"Fenchel lifted net  : test accuracy {acc_fen:.4f} ({t_fen:.1f} s)")
obj = [e["objective"] for e in lnn.history_.epochs]
assert all(b <= a for a, b in zip(obj, obj[1:])), "the 2018 model's BCD is monotone"
assert acc_fen > acc_lnn

# %% [markdown]
# On this small problem the Fenchel network's weights make a better feed-forward classifier, as in
# the paper's comparison (Fig. 1 there: the 2018 model reaches about 0.86 on full MNIST, the
# Fenchel model about 0.96). The 2018 report itself used its model differently: as an
# **initialisation** of a standard network.
#
# ## 4. Initialising a standard network with lifted weights
#
# A standard 784-100-10 ReLU network trained by back-propagation and Adam (written out below in
# NumPy: a forward pass, the chain rule by hand, and the library's `adam_step`), from two starts:
# the usual Xavier initialisation (`Network.init_weights`) and the 2018 model's weights
# (`LNNClassifier.weights_`, "NN[Lifted]" in the report's Table 1).

# %%
ce = get_loss("cross_entropy")
Y_train = one_hot(y, 10)


def accuracy(weights, X, y):
    (W0, b0), (W1, b1) = weights
    return float(np.mean(np.argmax(np.maximum(X @ W0 + b0, 0) @ W1 + b1, axis=1) == y))


def train_adam(weights, epochs=6, batch=100, lr=1e-3, seed=0):
    """Mini-batch Adam on the mean cross-entropy; test accuracy before training and after each epoch."""
    weights = [(W.copy(), b.copy()) for W, b in weights]
    moments = [None, None]
    order_rng = np.random.default_rng(seed)
    acc = [accuracy(weights, X_test, y_test)]
    for _ in range(epochs):
        for idx in np.array_split(order_rng.permutation(len(X)), len(X) // batch):
            (W0, b0), (W1, b1) = weights
            H = np.maximum(X[idx] @ W0 + b0, 0)
            dO = (softmax(H @ W1 + b1) - Y_train[idx]) / len(idx)      # d(mean CE)/dO
            dH = (dO @ W1.T) * (H > 0)
            grads = [(X[idx].T @ dH, dH.sum(axis=0)), (H.T @ dO, dO.sum(axis=0))]
            for l in range(2):
                new, moments[l] = adam_step(weights[l], grads[l], moments[l], lr=lr)
                weights[l] = tuple(new)
        acc.append(accuracy(weights, X_test, y_test))
    return acc


xavier = make_network("784-100-10", dtype=np.float64).init_weights(seed=0)
curves = {"Xavier initialisation": train_adam(xavier), "lifted (2018) initialisation": train_adam(lnn.weights_)}
for name, acc in curves.items():
    print(f"{name:30s} test accuracy per epoch: {np.round(acc, 4)}")
assert abs(curves["lifted (2018) initialisation"][0] - acc_lnn) < 1e-12
assert all(l > x for l, x in zip(curves["lifted (2018) initialisation"][:3], curves["Xavier initialisation"][:3]))

fig, ax = plt.subplots(figsize=(7, 3.8))
for name, acc in curves.items():
    ax.plot(range(len(acc)), acc, "o-", label=name)
ax.axhline(acc_fen, color="k", ls=":", label="Fenchel lifted network (no back-propagation)")
ax.set_xlabel("epochs of Adam (0 = the initial weights)")
ax.set_ylabel("test accuracy")
ax.set_title("A standard network from two initialisations")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** At epoch 0 the Xavier network guesses (about 0.1) while the lifted weights
# already classify (the 2018 model's own accuracy). The lifted start stays ahead for the first
# epochs while the Xavier network catches up; whether it is still ahead after these few epochs is
# printed above the figure (the report saw a lasting, small advantage on full MNIST). The dotted line is the Fenchel lifted
# network of section 3, trained without any back-propagation.
#
# ## Summary
#
# * The 2018 penalty `(v - u)^2` and the Fenchel divergence share their minimiser in `v`, but in `u`
#   the 2018 penalty pulls inactive units' pre-activations to zero; `B` leaves them free, as ReLU
#   does. Taylor's penalty is not even convex in `u`.
# * The 2018 model's special steps (NNLS, the simplex-constrained cross-entropy) are convex
#   programs; the library's fast paths agree with CVXPY and with Appendix A's bisection.
# * The 2018 model is a cheap initialiser for back-propagation; the Fenchel model is a classifier in
#   its own right.
#
# ## Exercises
#
# 1. **The 2018 argmin.** Solve `min_{v >= 0} (v - u)^2` in CVXPY for 21 values of `u` in
#    `[-2, 2]` at once and check that it is `relu(u)`.
# 2. **The MSE output step in closed form.** With the squared loss `||Z - Y||^2` and ReLU output
#    penalty `lambda ||Z - X0||^2`, `Z >= 0`, the report gives
#    `Z = max(0, (Y + lambda X0) / (1 + lambda))`. Check it against CVXPY.
# 3. **Why the W-steps differ.** For the trained 2018 weights, compute the pre-activations
#    `U = X W0 + b0` of the hidden layer on the training images and the fraction of hidden units
#    that are off (`relu(U) = 0`). Compare the mean of `U` over the off entries with the same
#    quantity for the Fenchel network: which model leaves its inactive units further below zero?
#
# ## Solutions

# %%
# Exercise 1
uu = np.linspace(-2, 2, 21)
v = cp.Variable(uu.size)
solve(cp.Problem(cp.Minimize(lifted.cvxpy_value(v, uu)), lifted.cvxpy_domain(v)), "CLARABEL")
print("max |argmin - relu(u)| =", float(np.max(np.abs(v.value - relu.forward(uu)))))
assert np.allclose(v.value, relu.forward(uu), atol=1e-4)   # a quadratic: see notebook 1, section 3

# %%
# Exercise 2
Yr, X0r, lam = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)), 0.8
Z = cp.Variable((6, 3), nonneg=True)
solve(cp.Problem(cp.Minimize(cp.sum_squares(Z - Yr) + lam * cp.sum_squares(Z - X0r))), "CLARABEL")
closed = np.maximum(0, (Yr + lam * X0r) / (1 + lam))
print("max |CVXPY - closed form| =", float(np.max(np.abs(Z.value - closed))))
assert np.allclose(Z.value, closed, atol=1e-4)

# %%
# Exercise 3
for name, (W0, b0) in (("2018 lifted", lnn.weights_[0]), ("Fenchel", fen.weights_[0])):
    U = X @ W0 + b0
    off = U <= 0
    print(f"{name:12s}: {off.mean():.1%} of hidden entries off; mean pre-activation of the off entries "
          f"{U[off].mean():8.3f}")
U_lnn, U_fen = X @ lnn.weights_[0][0] + lnn.weights_[0][1], X @ fen.weights_[0][0] + fen.weights_[0][1]
assert U_fen[U_fen <= 0].mean() < U_lnn[U_lnn <= 0].mean(), "Fenchel leaves inactive units further below 0"
