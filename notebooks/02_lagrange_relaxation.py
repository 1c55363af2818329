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
# # 2. From a network to its Lagrange relaxation
#
# *Notebook 2 of 6 (about 15 minutes). Uses notebook 1: `B(v, u) = F(v) + F*(u) - uv >= 0`,
# zero exactly at `v = phi(u)`.*
#
# **The network.** One hidden layer, samples in rows: inputs `X` (m x n0), one-hot targets `Y`
# (m x k), weights `W = (W0, b0, W1, b1)`,
#
# `U0 = X W0 + b0`,  `X1 = phi(U0)`,  scores `O = X1 W1 + b1`,  loss `L(Y, O)` (softmax
# cross-entropy summed over samples).
#
# **The training problem as a constrained problem.** Treat `X1` as a variable:
#
# `p* = min_{W, X1} L(Y, X1 W1 + b1)  s.t.  X1 = phi(X W0 + b0)`.
#
# By notebook 1 the constraint is equivalent to `B(X1, U0) <= 0` (since `B >= 0`, this means
# `B = 0`), entrywise. **Dualise it** with a multiplier `lambda >= 0`:
#
# `G(lambda) = min_{W, X1 in dom F} L(Y, X1 W1 + b1) + lambda * sum_ij B(X1_ij, U0_ij)`.
#
# **Weak duality.** For *any* `W` and the feasible `X1 = phi(U0)` the penalty vanishes, so the
# minimum over `X1` is at most the network's loss:
#
# `G_W(lambda) := min_{X1} L(Y, X1 W1 + b1) + lambda sum B(X1, U0)  <=  L(Y, phi(U0) W1 + b1) =: p(W)`,
#
# and minimising over `W` gives `G(lambda) <= p*`. Two more facts follow from the form alone:
# `G_W` is **nondecreasing** in `lambda` (the penalty is `>= 0`) and **concave** (a minimum of
# functions affine in `lambda`). Slater's condition fails (no `X1` has `B < 0`), so nothing promises
# a finite multiplier that closes the gap; we will see the gap close only as `lambda -> inf`, like
# `1/lambda`.
#
# At fixed `W` the inner problem is convex in `X1` (the loss is convex in `O`, `B` is convex in its
# first argument): `cvx_fenchel.subproblems.lower_bound` computes `G_W(lambda)` and `p(W)` by the
# fast path (FISTA) or by CVXPY. This notebook computes both sides, both ways.
#
# (This notebook replaces the earlier script `notebooks/lagrange_relaxation.py`.)

# %%
import warnings

import cvxpy as cp
import matplotlib.pyplot as plt
import numpy as np

from cvx_fenchel.activations import get_activation
from cvx_fenchel.cvx import solve
from cvx_fenchel.losses import get_loss, softmax
from cvx_fenchel.subproblems import lower_bound
from cvx_fenchel.subproblems.bound import lower_bound_problem

np.set_printoptions(precision=4, suppress=True)
warnings.filterwarnings("ignore", message="The problem includes expressions that don't support CPP")
rng = np.random.default_rng(0)
m, n0, n1, k = 8, 5, 4, 3
data = dict(X=rng.random((m, n0)), Y=np.eye(k)[rng.integers(0, k, m)], W0=rng.normal(size=(n0, n1)),
            b0=rng.normal(size=n1) - 1.5, W1=rng.normal(size=(n1, k)), b1=rng.normal(size=k))
relu = get_activation("relu")
ce = get_loss("cross_entropy")
U0 = data["X"] @ data["W0"] + data["b0"]
X_ff = relu.forward(U0)                                   # the feasible point phi(U0)
p_by_hand = ce.value(data["Y"], X_ff @ data["W1"] + data["b1"])
print(f"{m} samples, {n0} inputs, {n1} hidden ReLU units, {k} classes; "
      f"{int((U0 > 0).sum())} of {U0.size} pre-activations positive")
print(f"p(W) = L(Y, relu(U0) W1 + b1) = {p_by_hand:.6f}")

# %% [markdown]
# ## 1. Both sides of `G_W(lambda) <= p(W)`, fast path and CVXPY
#
# `lower_bound(..., method="fast")` runs FISTA on the inner problem from the feasible point
# (so its value never exceeds `p`); `method="cvxpy"` declares the same problem in CVXPY and solves
# it with Clarabel. Each returns a `LowerBound(G, p, gap, ...)`.

# %%
lams = np.logspace(-2, 4, 13)
fast = [lower_bound(**data, lam=lam, tol=1e-12, max_iter=200_000) for lam in lams]
exact = [lower_bound(**data, lam=lam, method="cvxpy") for lam in lams]
p = fast[0].p
assert abs(p - p_by_hand) <= 1e-12 * p
print(f"{'lambda':>9s} {'G fast':>13s} {'G CVXPY':>13s} {'|fast-CVXPY|':>12s} {'p - G':>11s}")
for lam, f, e in zip(lams, fast, exact):
    print(f"{lam:9.3g} {f.G:13.8f} {e.G:13.8f} {abs(f.G - e.G):12.1e} {f.gap:11.3e}")
Gs = np.array([f.G for f in fast])
assert all(f.converged for f in fast)
assert np.all(Gs <= p + 1e-9), "weak duality"
assert np.all(np.diff(Gs) >= -1e-9), "G_W is nondecreasing in lambda"
assert all(abs(f.G - e.G) <= 1e-6 * max(1.0, abs(e.G)) for f, e in zip(fast, exact))

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
a1.semilogx(lams, Gs, "o-", label="G_W(lambda), fast path")
a1.semilogx(lams, [e.G for e in exact], "x", ms=9, label="G_W(lambda), CVXPY (Clarabel)")
a1.axhline(p, color="k", ls="--", label="p(W), the network's loss")
a1.set_xlabel("lambda")
a1.set_ylabel("objective value")
a1.set_title("Lagrange relaxation: a lower bound on the loss")
a1.legend()
g = (softmax(X_ff @ data["W1"] + data["b1"]) - data["Y"]) @ data["W1"].T   # dL/dX1 at phi(U0)
active = U0 > 0
C = 0.5 * float(np.sum(g[active] ** 2))
a2.loglog(lams, [f.gap for f in fast], "o-", label="gap p(W) - G_W(lambda)")
a2.loglog(lams, C / lams, "k--", label="(1/2)||dL/dX1 on U0 > 0||^2 / lambda")
a2.set_xlabel("lambda")
a2.set_ylabel("duality gap")
a2.set_title("The gap closes like 1/lambda")
a2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Left: the fast path (circles) and CVXPY (crosses) give the same `G_W`, which
# rises with `lambda` towards the dashed line `p(W)` and never crosses it. Right: on log-log axes
# the gap becomes a straight line of slope `-1` that lies on the dashed prediction derived next.
#
# **Why `1/lambda` (ReLU).** Near `X* = phi(U0)`, on entries with `U0 > 0` the divergence is
# `(v - u)^2/2`; on entries with `U0 < 0` it is `v^2/2 + v |u|`, whose slope `lambda |u|` pins
# `v` at 0 once `lambda` is large. So for large `lambda`
# `G_W ~ min_d L(X* + d) + (lambda/2)||d_active||^2 ~ p - (1/2)||g_active||^2 / lambda`, with
# `g = dL/dX1 (X*) = (softmax(O) - Y) W1^T`. The constant is computed from `g`, not fitted:

# %%
ratio = lams * np.array([f.gap for f in fast]) / C
print(f"C = (1/2)||g_active||^2 = {C:.6f}")
for lam, r in zip(lams[-4:], ratio[-4:]):
    print(f"lambda = {lam:8.3g}:  lambda * gap / C = {r:.6f}")
assert abs(ratio[-1] - 1) < 1e-3

# %% [markdown]
# ## 2. CVXPY's dual values next to the analytic multipliers
#
# Write the constrained problem at fixed `W` in CVXPY with the constraint as it is,
# `X1 == relu(U0)`. Its multiplier `nu` (CVXPY's `dual_value`, Lagrangian `L + <nu, X1 - c>`) must
# satisfy stationarity `dL/dX1 + nu = 0`, so analytically **`nu = -g`**.
#
# The relaxation has a multiplier of its own: at its minimiser `X1(lambda)`, stationarity reads
# `g(X1(lambda)) + lambda * dB/dv(X1(lambda), U0) - mu = 0`, where `mu >= 0` is the multiplier of the
# domain constraint `X1 >= 0` (CVXPY's dual value of that constraint in the relaxed problem) and
# `dB/dv = v - u` for ReLU. So `lambda (X1(lambda) - U0) - mu` is the relaxation's estimate of `nu`:
# the classic penalty-method picture, where the penalty's gradient plays the role of the multiplier.

# %%
Z = cp.Variable((m, n1))
equality = Z == X_ff
constrained = cp.Problem(cp.Minimize(ce.cvxpy(data["Y"], Z @ data["W1"] + data["b1"])), [equality])
solve(constrained, "CLARABEL")
nu = equality.dual_value
print(f"max |nu_CVXPY - (-g)| = {np.max(np.abs(nu + g)):.1e}")
assert np.allclose(nu, -g, atol=1e-6)

rows = []
for lam in (1e1, 1e2, 1e3, 1e4):
    sub, _, _ = lower_bound_problem(**data, lam=lam)
    prob, Zr = sub.cvxpy_problem()                      # the relaxed problem, declared by the library
    solve(prob, "CLARABEL")
    (domain,) = prob.constraints                        # X1 >= 0
    mu = domain.dual_value
    estimate = lam * (Zr.value - U0) - mu
    rows.append((lam, float(np.max(np.abs(estimate - nu))), float(np.max(mu[active])),
                 float(np.min(mu[~active]))))
print(f"{'lambda':>8s} {'max |estimate - nu|':>20s} {'max mu (U0 > 0)':>16s} {'min mu (U0 < 0)':>16s}")
for r in rows:
    print(f"{r[0]:8.0e} {r[1]:20.2e} {r[2]:16.1e} {r[3]:16.2e}")
errs = [r[1] for r in rows]
assert all(b < a / 5 for a, b in zip(errs[1:], errs[2:])), "the estimate converges to nu like 1/lambda"
print("\nfirst sample:  nu (CVXPY) =", nu[0], "\n               -g (hand)  =", -g[0],
      "\n               estimate at lambda = 1e4 =", estimate[0])

# %% [markdown]
# The CVXPY multiplier of `X1 == relu(U0)` is `-dL/dX1`, to solver accuracy. The relaxation's
# estimate `lambda (X1(lambda) - U0) - mu` approaches it, the error falling tenfold per tenfold
# `lambda` once `lambda >= 100`. From `lambda = 100` on, the domain multiplier `mu` is (numerically) zero on the active
# entries and strictly positive on every inactive one (at `lambda = 10` the relaxation may still
# set active entries to 0): there `X1 = 0` is held by the constraint `X1 >= 0`, i.e. by the
# indicator inside ReLU's `F` (notebook 1, section 4).
#
# ## Summary
#
# * Dualising `B(X1, U0) <= 0` turns the training problem into `G(lambda) <= p*`; at fixed weights
#   the bound `G_W(lambda) <= p(W)` is a convex problem, a **certificate** computed both ways.
# * `G_W` is nondecreasing and concave in `lambda`; for ReLU the gap is
#   `(1/2)||g_active||^2 / lambda + O(1/lambda^2)`, so the dual optimum `sup G_W = p(W)` is not
#   attained: the price of a constraint without a Slater point.
# * The penalty's gradient `lambda dB/dv` plays the role of the multiplier of `X1 = phi(U0)`.
#
# Notebook 3 minimises the relaxed objective over `X` *and* `W` by block-coordinate descent.
#
# ## Exercises
#
# 1. **Sigmoid.** Replace ReLU by sigmoid (`activation="sigmoid"` in `lower_bound`). Every entry
#    is now "active" and `B(v, u) ~ (v - phi(u))^2 / (2 phi'(u))` near its minimum. Predict the
#    constant `C` in `gap ~ C / lambda` and check it at `lambda = 1e4`.
# 2. **Concavity.** Check numerically that `G_W` is concave on a linear grid of `lambda` in
#    `[0.1, 5]` (second differences `<= 0`). Then show *why*: for the minimiser `X_j` at
#    `lambda_j`, the affine function `lambda -> L(X_j) + lambda sum B(X_j, U0)` lies above `G_W`
#    on the whole grid and touches it at `lambda_j` (a supporting line).
# 3. **Rate of the minimiser.** Show that `||X1(lambda) - phi(U0)||` also decays like `1/lambda`:
#    fit the slope of its log-log plot over `lambda` in `[1e2, 1e4]`.
#
# ## Solutions

# %%
# Exercise 1: B ~ (v - phi(u))^2 / (2 phi'(u)), so the gap ~ (1/2) sum g^2 phi'(u) / lambda
sig = get_activation("sigmoid")
X_sig = sig.forward(U0)
g_sig = (softmax(X_sig @ data["W1"] + data["b1"]) - data["Y"]) @ data["W1"].T
C_sig = 0.5 * float(np.sum(g_sig ** 2 * sig.derivative(U0)))
lb = lower_bound(**data, activation="sigmoid", lam=1e4, tol=1e-12, max_iter=200_000)
print(f"sigmoid: predicted C = {C_sig:.6f}, lambda * gap at 1e4 = {1e4 * lb.gap:.6f}")
assert abs(1e4 * lb.gap / C_sig - 1) < 1e-2

# %%
# Exercise 2: concavity on a linear grid, and G_W(0)
grid = np.linspace(0.1, 5, 25)
G_lin = np.array([lower_bound(**data, lam=lam, tol=1e-12, max_iter=200_000).G for lam in grid])
second = G_lin[2:] - 2 * G_lin[1:-1] + G_lin[:-2]
print(f"largest second difference: {second.max():.2e} (<= 0 up to solver accuracy)")
assert second.max() <= 1e-8
for j in (0, 12, 24):
    Xj = lower_bound(**data, lam=grid[j], tol=1e-12, max_iter=200_000).X1
    a_j = ce.value(data["Y"], Xj @ data["W1"] + data["b1"])
    b_j = float(np.sum(relu.divergence(Xj, U0)))
    line = a_j + grid * b_j
    print(f"supporting line at lambda = {grid[j]:.2f}: min over grid of (line - G_W) = "
          f"{np.min(line - G_lin):.1e}, at lambda_j {line[j] - G_lin[j]:.1e}")
    assert np.all(line >= G_lin - 1e-8) and abs(line[j] - G_lin[j]) <= 1e-8

# %%
# Exercise 3: slope of log ||X1(lambda) - phi(U0)|| against log lambda
big = np.logspace(2, 4, 5)
dist = [np.linalg.norm(lower_bound(**data, lam=lam, tol=1e-12, max_iter=200_000).X1 - X_ff) for lam in big]
slope = np.polyfit(np.log(big), np.log(dist), 1)[0]
print(f"fitted slope {slope:.4f}")
assert abs(slope + 1) < 0.02
