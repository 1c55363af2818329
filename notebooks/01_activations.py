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
# # 1. Activations as convex problems
#
# *Series "The Lagrange relaxation behind Fenchel lifted networks", notebook 1 of 6
# (about 15 minutes). Prerequisites: convex conjugates, the Fenchel-Young inequality.*
#
# A Fenchel lifted network (Gu, Askari and El Ghaoui, AISTATS 2020) never evaluates
# `X_{l+1} = phi(U_l)` as a constraint. It replaces each activation by a **divergence**
# `B(v, u) >= 0` that vanishes exactly when `v = phi(u)`. This notebook builds that divergence
# for every activation registered in `cvx_fenchel` and checks, numerically, each claim that the
# rest of the series relies on:
#
# 1. `F(v) = int phi^{-1}` and `F*(u) = int phi` are a conjugate pair;
# 2. the Fenchel-Young inequality `B(v, u) = F(v) + F*(u) - u v >= 0`;
# 3. **Theorem 1**: `argmin_v B(v, u) = phi(u)`, solved here as a convex program in CVXPY;
# 4. why ReLU's potential is `v^2/2` *plus the indicator of `v >= 0`*.

# %%
import math

import cvxpy as cp
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar

from cvx_fenchel.activations import activation_names, example_activation, get_activation
from cvx_fenchel.cvx import solve

np.set_printoptions(precision=4, suppress=True)
NAMES = activation_names()
ACTS = {name: example_activation(name) for name in NAMES}
print("registered activations:", ", ".join(f"{a!r}" for a in ACTS.values()))

# %% [markdown]
# ## 1. From an activation to a pair of potentials
#
# Let `phi` be continuous and increasing. On the closure of its range define
#
# * the **potential** `F(v) = int_z^v phi^{-1}(t) dt` (convex, since `phi^{-1}` is increasing),
# * its **conjugate** `F*(u) = sup_v { u v - F(v) } = int phi` (the supremum is attained at
#   `v = phi(u)`, because `F'(v) = phi^{-1}(v)`).
#
# | activation | `F(v)` (domain) | `F*(u)` |
# |---|---|---|
# | ReLU | `v^2/2` (`v >= 0`) | `max(u,0)^2/2` |
# | leaky ReLU, slope `a` | `v^2/2` (`v>=0`), `v^2/(2a)` (`v<0`) | `max(u,0)^2/2 + a min(u,0)^2/2` |
# | sigmoid | `v log v + (1-v) log(1-v)` (`0<=v<=1`) | `log(1+e^u)` |
# | tanh | `((1+v)log(1+v) + (1-v)log(1-v))/2` (`-1<=v<=1`) | `log cosh u` |
# | hard tanh | `v^2/2` (`-1<=v<=1`) | Huber: `u^2/2` if `abs(u)<=1`, else `abs(u)-1/2` |
# | softplus | no closed form (`v>0`) | `-Li2(-e^u)` (dilogarithm) |
# | identity | `v^2/2` | `u^2/2` |
#
# We do not take the table on trust: for every activation we compute `sup_v {u v - F(v)}` by brute
# force on a fine grid of the domain and compare it with the library's `Fstar`.

# %%
def domain_grid(act, pad=8.0, n=16001):
    """A fine grid of the closed domain of F (unbounded ends cut at +-pad)."""
    lo = act.lower if math.isfinite(act.lower) else -pad
    hi = act.upper if math.isfinite(act.upper) else pad
    return np.linspace(lo, hi, n)


u_grid = np.linspace(-3, 3, 61)
conj_err = {}
for name, act in ACTS.items():
    v = domain_grid(act)
    Fv = act.F(v)
    sup = np.max(u_grid[:, None] * v[None, :] - Fv[None, :], axis=1)   # brute-force conjugate
    conj_err[name] = float(np.max(np.abs(sup - act.Fstar(u_grid))))
    print(f"{name:11s} max |sup_v(uv - F(v)) - F*(u)| over u in [-3, 3] = {conj_err[name]:.1e}")
assert max(conj_err.values()) < 1e-5, conj_err

# %% [markdown]
# The brute-force supremum agrees with `F*` to `2e-7` or better for all seven, softplus included
# (its `F*` is a dilogarithm evaluated with `scipy.special.spence`): to rounding where `F` is
# quadratic (the grid contains the maximiser `phi(u)`), to the grid's resolution (spacing `1e-3`)
# for the entropies. The next figure draws both potentials.

# %%
fig, axes = plt.subplots(2, len(NAMES), figsize=(3 * len(NAMES), 5.6))
for j, (name, act) in enumerate(ACTS.items()):
    v = domain_grid(act, pad=2.5, n=801)
    axes[0, j].plot(v, act.F(v), color="C0")
    axes[0, j].set_title(f"{name}")
    axes[0, j].set_xlabel("v")
    axes[0, j].set_ylabel("F(v)")
    uu = np.linspace(-3, 3, 401)
    axes[1, j].plot(uu, act.Fstar(uu), color="C1")
    axes[1, j].plot(uu, np.cumsum(act.forward(uu)) * (uu[1] - uu[0]) + act.Fstar(uu[:1]),
                    "k:", lw=1, label="integral of phi")
    axes[1, j].set_xlabel("u")
    axes[1, j].set_ylabel("F*(u)")
    axes[1, j].legend(fontsize=7, loc="upper left")
fig.suptitle("Potentials F (top, on the domain of F) and conjugates F* (bottom)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Top row: every `F` is convex, and lives on the *closure of the activation's
# range*: `[0, inf)` for ReLU and softplus, `[0, 1]` for sigmoid, `[-1, 1]` for tanh and hard tanh,
# all of `R` for leaky ReLU and identity. Sigmoid's and tanh's potentials are (negative) entropies
# with vertical tangents at the ends of the domain. Bottom row: each `F*` is convex and smooth, and
# the dotted curve, a Riemann sum of `phi` (offset to match at `u = -3`), lies on top of it:
# `F*' = phi`.

# %% [markdown]
# ## 2. The Fenchel-Young divergence is non-negative
#
# For any `v` in the domain and any `u`, `F*(u) >= u v - F(v)` by definition of the supremum, so
#
# `B(v, u) = F(v) + F*(u) - u v >= 0`, with equality iff `v` attains the supremum, i.e. `v = phi(u)`.
#
# `Activation.divergence(v, u)` evaluates `B` in a cancellation-free form (a sum of non-negative
# terms, or a Bernoulli KL divergence for sigmoid). We check it on 200,000 random pairs per activation
# and at `v = phi(u)`.

# %%
rng = np.random.default_rng(0)
rows = []
for name, act in ACTS.items():
    v = domain_grid(act, pad=6.0, n=200_000)
    rng.shuffle(v)
    u = rng.uniform(-6, 6, v.size)
    B = act.divergence(v, u)
    B_at_phi = act.divergence(act.forward(u), u)
    direct = act.F(v) + act.Fstar(u) - u * v      # the textbook formula, for comparison
    rows.append((name, B.min(), np.abs(B_at_phi).max(), np.abs(B - direct).max()))
    assert B.min() >= -1e-12 and np.abs(B_at_phi).max() <= 1e-12
print(f"{'activation':11s} {'min B(v,u)':>12s} {'max |B(phi(u),u)|':>18s} {'|B - (F+F*-uv)|':>17s}")
for r in rows:
    print(f"{r[0]:11s} {r[1]:12.2e} {r[2]:18.2e} {r[3]:17.2e}")

# %% [markdown]
# The smallest `B` over random pairs is non-negative (rounding allowed to `1e-12`), `B(phi(u), u)`
# vanishes, and the library's stable form agrees with `F + F* - uv` to rounding.
# Next, `B(., u)` as a function of `v` for three values of `u`: the dotted line marks `phi(u)`.

# %%
fig, axes = plt.subplots(1, len(NAMES), figsize=(3 * len(NAMES), 3.2), sharey=True)
for ax, (name, act) in zip(axes, ACTS.items()):
    v = domain_grid(act, pad=3.0, n=1201)
    for u0, c in zip((-1.5, 0.5, 2.0), ("C0", "C1", "C2")):
        ax.plot(v, act.divergence(v, np.full_like(v, u0)), color=c, label=f"u = {u0}")
        ax.axvline(float(act.forward(np.array(u0))), color=c, ls=":")
    ax.set_ylim(0, 3)
    ax.set_title(name)
    ax.set_xlabel("v")
axes[0].set_ylabel("B(v, u)")
axes[0].legend(fontsize=8)
fig.suptitle("B(v, u) >= 0 as a function of v: zero exactly at v = phi(u) (dotted)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Each curve is convex in `v`, touches zero once, at the dotted line `v = phi(u)`.
# For ReLU with `u = -1.5` the minimum sits on the boundary `v = 0` and the curve leaves it with
# slope `-u = 1.5 > 0`: the constraint `v >= 0` is active. Sigmoid and tanh curves blow up
# (vertical tangents) at the ends of their domain.

# %% [markdown]
# The same divergence over the whole `(u, v)` plane, for three activations, with the graph of
# `phi` drawn on top:

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, name in zip(axes, ("relu", "sigmoid", "tanh")):
    act = ACTS[name]
    uu = np.linspace(-3, 3, 301)
    vv = domain_grid(act, pad=3.0, n=301)
    UU, VV = np.meshgrid(uu, vv)
    im = ax.contourf(UU, VV, np.minimum(act.divergence(VV, UU), 3.0), levels=30, cmap="viridis")
    ax.plot(uu, act.forward(uu), "w--", lw=2, label="v = phi(u)")
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.set_title(f"{name}: B(v, u) (clipped at 3)")
    ax.legend(loc="upper left", fontsize=8)
    fig.colorbar(im, ax=ax, label="B(v, u)")
    assert np.all(act.divergence(VV, UU) >= -1e-12)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** `B` is zero (darkest) exactly along the dashed graph `v = phi(u)` and grows away
# from it in every direction: the activation is the valley floor of a non-negative function. Along
# a vertical line (fixed `u`) the valley is convex in `v`; along a horizontal line (fixed `v`) it is
# convex in `u`; but `B` is not jointly convex in `(u, v)` (exercise 2).

# %% [markdown]
# ## 3. Theorem 1 as a convex program
#
# **Theorem 1** (Gu et al. 2020): for continuous, strictly monotone `phi`,
# `phi(u) = argmin_{v in dom F} B(v, u)`, and `B` is convex in `v` for fixed `u` (and in `u` for
# fixed `v`). So an activation is the solution of a convex problem. Every activation with a CVXPY
# form (`Activation.cvxpy_divergence`, DCP in `v`) is solved here by Clarabel for 41 values of
# `u` at once; softplus has no DCP form (its `F` involves the dilogarithm), so we minimise its
# `B(., u)` with SciPy's bounded scalar minimiser instead.

# %%
u = np.linspace(-4, 4, 41)
theorem1 = {}
for name, act in ACTS.items():
    if act.has_cvxpy:
        v = cp.Variable(u.size)
        prob = cp.Problem(cp.Minimize(act.cvxpy_divergence(v, u)), act.cvxpy_domain(v))
        res = solve(prob, "CLARABEL", name=f"argmin B for {name}")
        v_star, how, value = v.value, f"CVXPY/{res.solver}, status {res.status}", res.objective
    else:
        sols = [minimize_scalar(lambda t, ui=ui: float(act.divergence(np.array(t), np.array(ui))),
                                bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10}) for ui in u]
        v_star, how = np.array([s.x for s in sols]), "scipy bounded minimiser (no DCP form)"
        value = float(sum(s.fun for s in sols))
    theorem1[name] = float(np.max(np.abs(v_star - act.forward(u))))
    print(f"{name:11s} max |argmin_v B(v,u) - phi(u)| = {theorem1[name]:.1e}   min value {value:.1e}   [{how}]")
assert max(theorem1.values()) < 1e-4, theorem1

# %% [markdown]
# All seven argmins agree with `phi(u)`; the optimal values are zero. (For the quadratic
# potentials, ReLU, leaky ReLU, hard tanh and identity, a conic solver's minimiser is only as
# accurate as the square root of its objective accuracy, so `1e-5`-`1e-6` is the expected
# agreement; the verification suite uses the tolerance `3e-5` for that reason.)
#
# ## 4. Why ReLU's F is `v^2/2` plus the indicator of `v >= 0`
#
# ReLU is not invertible: every `u <= 0` maps to `0`. Its range is `[0, inf)`, and on the range
# `phi^{-1}(v) = v`, so `F(v) = v^2/2` **on `v >= 0`** and `+inf` elsewhere:
# `F = v^2/2 + I_{v >= 0}`. The indicator carries the flat part of ReLU: its subdifferential at
# `v = 0` is the normal cone `(-inf, 0]`, so `u in dF(0)` for every `u <= 0`, which is exactly the
# Fenchel-Young equality case `B(0, u) = 0` for `u <= 0`.
#
# Drop the indicator and see what happens: `F_0(v) = v^2/2` on all of `R` is the *identity's*
# potential; its conjugate is `u^2/2` and its argmin map is `v = u`.

# %%
relu, ident = ACTS["relu"], ACTS["identity"]
uu = np.linspace(-3, 3, 121)
v_all = np.linspace(-8, 8, 16001)
Fstar_with = np.max(uu[:, None] * v_all[None, v_all >= 0] - 0.5 * v_all[None, v_all >= 0] ** 2, axis=1)
Fstar_without = np.max(uu[:, None] * v_all[None, :] - 0.5 * v_all[None, :] ** 2, axis=1)
assert np.allclose(Fstar_with, relu.Fstar(uu), atol=1e-6)
assert np.allclose(Fstar_without, ident.Fstar(uu), atol=1e-6)

v = cp.Variable(uu.size)
with_ind = cp.Problem(cp.Minimize(relu.cvxpy_divergence(v, uu)), relu.cvxpy_domain(v))
solve(with_ind, "CLARABEL")
argmin_with = v.value.copy()
without = cp.Problem(cp.Minimize(cp.sum(0.5 * cp.square(v)) - uu @ v))   # F_0(v) - u v, no v >= 0
solve(without, "CLARABEL")
argmin_without = v.value.copy()
print("argmin with the indicator    = relu(u):", np.allclose(argmin_with, relu.forward(uu), atol=1e-5))
print("argmin without the indicator = u      :", np.allclose(argmin_without, uu, atol=1e-5))
print("B(0, u) for u <= 0 (the flat part):", relu.divergence(np.zeros(4), np.array([-3.0, -1.0, -0.1, 0.0])))
assert np.allclose(argmin_with, relu.forward(uu), atol=1e-5) and np.allclose(argmin_without, uu, atol=1e-5)

fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
a1.plot(uu, Fstar_with, label="sup over v >= 0: max(u,0)^2/2")
a1.plot(uu, Fstar_without, "--", label="sup over all v: u^2/2")
a1.set_xlabel("u")
a1.set_ylabel("F*(u)")
a1.set_title("Conjugate of v^2/2 with and without v >= 0")
a1.legend()
a2.plot(uu, argmin_with, label="argmin with v >= 0 (CVXPY)")
a2.plot(uu, argmin_without, "--", label="argmin without (CVXPY)")
a2.set_xlabel("u")
a2.set_ylabel("argmin_v B(v, u)")
a2.set_title("The indicator is what makes it a ReLU")
a2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Left: with the domain `v >= 0` the conjugate is flat (zero) for `u <= 0`;
# without it the conjugate is the full parabola. Right: the minimiser of the divergence is ReLU with
# the constraint and the identity without it. In the lifted training problem this constraint is
# `X_l >= 0`, which every X-step of a ReLU layer carries.
#
# ## Summary
#
# * Every activation in the registry is `argmin_v B(v, u)` with `B = F + F* - uv >= 0`.
# * `B(., u)` is convex, so the "activation constraint" `v = phi(u)` is the zero set of a convex
#   function of `v`, a fact notebook 2 turns into a Lagrange relaxation.
# * ReLU's domain constraint `v >= 0` is part of its potential.
#
# ## Exercises
#
# 1. **Leaky ReLU from `phi` alone.** For slope `a = 0.2`, compute `F(v) = int_0^v phi^{-1}` and
#    `F*(u) = int_0^u phi` by numerical quadrature (no closed form), and compare them with
#    `get_activation("leaky_relu", slope=0.2)`'s `F` and `Fstar`.
# 2. **Biconvex, not jointly convex.** `B` is convex in `v` and in `u` separately. Find two points
#    `(v1, u1)`, `(v2, u2)` with `v1, v2 >= 0` where ReLU's `B` violates Jensen's inequality
#    (`B(midpoint) > average`). Hint: for `u < 0`, `B = v^2/2 - uv`; look at its Hessian.
# 3. **Hard tanh and Huber.** Show numerically that hard tanh's `F*` is half of CVXPY's
#    `huber(u, 1)` (`u^2` for `abs(u) <= 1`, `2 abs(u) - 1` otherwise).
#
# ## Solutions

# %%
# Exercise 1: quadrature of phi^{-1} and phi from 0 (phi(0) = 0, so F(0) = F*(0) = 0)
from scipy.integrate import quad

leaky = get_activation("leaky_relu", slope=0.2)
vs, us = np.linspace(-2, 2, 21), np.linspace(-2, 2, 21)
F_quad = np.array([quad(lambda t: float(leaky.inverse(np.array(t))), 0.0, x)[0] for x in vs])
Fs_quad = np.array([quad(lambda t: float(leaky.forward(np.array(t))), 0.0, x)[0] for x in us])
err_F, err_Fs = np.max(np.abs(F_quad - leaky.F(vs))), np.max(np.abs(Fs_quad - leaky.Fstar(us)))
print(f"max |quad - F| = {err_F:.1e},  max |quad - F*| = {err_Fs:.1e}")
assert err_F < 1e-10 and err_Fs < 1e-10

# %%
# Exercise 2: for u < 0, B(v, u) = v^2/2 - u v has Hessian [[1, -1], [-1, 0]] in (v, u):
H = np.array([[1.0, -1.0], [-1.0, 0.0]])
evals, evecs = np.linalg.eigh(H)
d = evecs[:, 0]                      # direction of the negative eigenvalue (1 - sqrt 5)/2
c = np.array([1.0, -3.0])            # a centre with v > 0, u < 0
p1, p2 = c + 0.5 * d, c - 0.5 * d
assert p1[0] >= 0 and p2[0] >= 0 and p1[1] < 0 and p2[1] < 0
B = lambda p: float(relu.divergence(np.array(p[0]), np.array(p[1])))
print(f"eigenvalues {evals}; B(midpoint) = {B(c):.4f} > average {0.5 * (B(p1) + B(p2)):.4f}")
assert B(c) > 0.5 * (B(p1) + B(p2)) + 1e-3
# ... while along v alone (u fixed) and along u alone (v fixed) Jensen holds:
for e in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
    assert B(c) <= 0.5 * (B(c + 0.5 * e) + B(c - 0.5 * e)) + 1e-12

# %%
# Exercise 3: hard tanh's F* against CVXPY's huber atom (evaluated on constants)
ht = ACTS["hardtanh"]
uu = np.linspace(-4, 4, 81)
huber_half = 0.5 * cp.huber(uu, 1.0).value
print("max |F*_hardtanh - huber/2| =", float(np.max(np.abs(ht.Fstar(uu) - huber_half))))
assert np.allclose(ht.Fstar(uu), huber_half, atol=1e-12)
