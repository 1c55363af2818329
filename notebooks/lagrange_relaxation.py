# %% [markdown]
# # The Lagrange relaxation behind Fenchel lifted networks
#
# A teaching notebook in the `# %%` percent format: it diffs cleanly, runs as a plain script
# (`python notebooks/lagrange_relaxation.py`, which the test suite does), and opens as a notebook
# with jupytext (`pip install ".[notebooks]"; jupytext --to notebook notebooks/lagrange_relaxation.py`).
#
# 1. An activation is an argmin map: `phi(u) = argmin_v B(v, u)` with the Fenchel-Young divergence
#    `B(v, u) = F(v) + F*(u) - uv >= 0`.
# 2. Penalising `lambda * B(X_1, X_0 W_0 + b_0)` instead of imposing `X_1 = phi(X_0 W_0 + b_0)`
#    gives a lower bound `G_W(lambda) <= p(W)`, nondecreasing in `lambda`.
# 3. Both the fast path and CVXPY compute it, and they agree.

# %%
import os

import matplotlib

if os.environ.get("MPLBACKEND") is None and __name__ == "__main__":
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cvx_fenchel.activations import get_activation
from cvx_fenchel.subproblems import lower_bound

OUT = os.environ.get("NOTEBOOK_OUT", ".")

# %% [markdown]
# ## 1. Activations as argmin maps
# For each activation, `B(v, u)` as a function of `v` (fixed `u`) is convex, non-negative and zero
# exactly at `v = phi(u)`.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for ax, name in zip(axes, ["relu", "sigmoid", "tanh"]):
    act = get_activation(name)
    lo = act.lower if np.isfinite(act.lower) else -3
    hi = act.upper if np.isfinite(act.upper) else 3
    v = np.linspace(lo, hi, 400)
    for u in (-1.5, 0.5, 2.0):
        B = act.divergence(v, np.full_like(v, u))
        ax.plot(v, B, label=f"u = {u}")
        ax.axvline(float(act.forward(np.array(u))), ls=":", color=ax.lines[-1].get_color())
        assert B.min() >= -1e-12
        assert abs(v[np.argmin(B)] - act.forward(np.array(u))) <= (hi - lo) / 399
    ax.set_title(f"{name}: B(v, u), minimised at v = phi(u)")
    ax.set_xlabel("v")
    ax.set_ylim(0, 3)
    ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "argmin_maps.png"), dpi=90)

# %% [markdown]
# ## 2. The lower bound for one hidden layer
# At fixed weights, `G_W(lambda) = min over X_1 of Loss(Y, X_1 W_1 + b_1) + lambda * sum B(X_1, X W_0 + b_0)`.
# Taking `X_1` at the feed-forward values shows `G_W(lambda) <= p(W)`.

# %%
rng = np.random.default_rng(0)
m, n0, n1, k = 8, 5, 4, 3
data = dict(X=rng.random((m, n0)), Y=np.eye(k)[rng.integers(0, k, m)], W0=rng.normal(size=(n0, n1)),
            b0=rng.normal(size=n1), W1=rng.normal(size=(n1, k)), b1=rng.normal(size=k))
lams = np.logspace(-2, 3, 11)
fast = [lower_bound(**data, lam=lam, tol=1e-11, max_iter=200_000) for lam in lams]
exact = [lower_bound(**data, lam=lam, method="cvxpy") for lam in lams]
p = fast[0].p
for f, e in zip(fast, exact):
    assert f.G <= p + 1e-9
    assert abs(f.G - e.G) <= 1e-6 * max(1, abs(e.G))
Gs = [f.G for f in fast]
assert all(b >= a - 1e-9 for a, b in zip(Gs, Gs[1:]))
print(f"p(W) = {p:.6f}")
for lam, f, e in zip(lams, fast, exact):
    print(f"lambda = {lam:9.3g}   G fast = {f.G:.8f}   G CVXPY = {e.G:.8f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogx(lams, Gs, marker="o", label="G_W(lambda), fast path")
ax.semilogx(lams, [e.G for e in exact], "x", label="G_W(lambda), CVXPY (Clarabel)")
ax.axhline(p, color="k", ls="--", label="p(W), the network's loss")
ax.set_xlabel("lambda")
ax.set_ylabel("objective")
ax.set_title("The Lagrange relaxation is a lower bound")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "lower_bound.png"), dpi=90)
