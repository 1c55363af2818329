"""Lau et al. (2018) / Zeng et al. (2019) proximal BCD: every block update is the exact
minimiser of objective (2) plus its proximal term, the objective never increases over
sweeps, the estimator learns, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvx_fenchel.backend import cupy_available
from cvx_fenchel.baselines.lau_bcd import (LauBCDClassifier, bcd_bias_step, bcd_hidden_u_step,
                                           bcd_hidden_v_step, bcd_objective, bcd_output_u_step,
                                           bcd_output_v_step, bcd_weight_step)
from cvx_fenchel.errors import InputError

relu = lambda z: np.maximum(z, 0)  # noqa: E731


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


# ---------------------------------------------------------------------------------------
# single steps: first-order optimality
# ---------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(gamma=st.floats(0.01, 50), rho=st.floats(0.01, 50), alpha=st.floats(1e-4, 10),
       seed=st.integers(0, 2**31 - 1))
def test_output_steps_are_stationary(gamma, rho, alpha, seed):
    rng = np.random.default_rng(seed)
    Y, U, V0, P = (rng.standard_normal((6, 4)) for _ in range(4))
    V = bcd_output_v_step(Y, U, V0, gamma, alpha)
    assert np.abs((V - Y) + gamma * (V - U) + alpha * (V - V0)).max() < 1e-10 * (1 + gamma + alpha)
    Un = bcd_output_u_step(V, P, gamma, rho)
    assert np.abs(gamma * (Un - V) + rho * (Un - P)).max() < 1e-10 * (1 + gamma + rho)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 20), n=st.integers(1, 8), k=st.integers(1, 6), gamma=st.floats(0.01, 50),
       rho=st.floats(0.01, 50), seed=st.integers(0, 2**31 - 1))
def test_hidden_v_step_is_stationary(m, n, k, gamma, rho, seed):
    """V minimises gamma/2||V - relu(U)||^2 + rho/2||U_next - V W - b||^2."""
    rng = np.random.default_rng(seed)
    U, Un = rng.standard_normal((m, n)), rng.standard_normal((m, k))
    W, b = rng.standard_normal((n, k)), rng.standard_normal(k)
    V = bcd_hidden_v_step(U, Un, W, b, gamma, rho)
    grad = gamma * (V - relu(U)) + rho * (V @ W + b - Un) @ W.T
    scale = (gamma + rho * np.linalg.norm(W) ** 2) * (1 + np.abs(Un).max() + np.abs(U).max()
                                                       + np.abs(b).max())
    assert np.abs(grad).max() <= 1e-10 * scale


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 25), n_in=st.integers(1, 8), n_out=st.integers(1, 5),
       rho=st.floats(0.01, 50), alpha=st.floats(1e-4, 10), seed=st.integers(0, 2**31 - 1))
def test_weight_and_bias_steps_are_stationary(m, n_in, n_out, rho, alpha, seed):
    rng = np.random.default_rng(seed)
    V, U = rng.standard_normal((m, n_in)), rng.standard_normal((m, n_out))
    W0, b0 = rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
    W = bcd_weight_step(V, U, W0, b0, rho, alpha)
    gW = rho * V.T @ (V @ W + b0 - U) + alpha * (W - W0)
    scale = (rho * np.linalg.norm(V) ** 2 + alpha) * (1 + np.abs(U).max() + np.abs(W0).max()
                                                      + np.abs(b0).max())
    assert np.abs(gW).max() <= 1e-10 * scale
    b = bcd_bias_step(U, V @ W, b0, rho, alpha)
    gb = rho * (V @ W + b - U).sum(axis=0) + alpha * (b - b0)
    assert np.abs(gb).max() <= 1e-10 * (rho * m + alpha) * (1 + np.abs(U).max()
                                                              + np.abs(V @ W).max())


def _relu_prox_matlab(a, b, g):
    """The case formula of the public code (Matlab/Tools/relu_prox.m), an independent check:
    argmin_u (a - relu(u))^2 + g (u - b)^2."""
    x = (a + g * b) / (1 + g)
    t = a * (g - np.sqrt(g * (g + 1)))
    out = np.zeros_like(a)
    c1 = ((a + g * b >= 0) & (b >= 0)) | ((t <= g * b) & (b < 0))
    out[c1] = x[c1]
    c2 = (-a <= g * b) & (g * b <= t)
    out[c2] = b[c2]
    c3 = a + g * b < 0
    out[c3] = np.minimum(b, 0)[c3]
    return out


@pytest.mark.parametrize("gamma,rho,alpha", [(1.0, 1.0, 0.01), (0.2, 3.0, 0.5), (10.0, 0.1, 1e-3)])
def test_hidden_u_step_global_minimiser(gamma, rho, alpha):
    """The ReLU prox: never beaten by a grid or by perturbations; equals the published case formula."""
    rng = np.random.default_rng(7)
    V, P, U0 = (2 * rng.standard_normal((40, 30)) for _ in range(3))
    U = bcd_hidden_u_step(V, P, U0, gamma, rho, alpha)

    def f(u):
        return 0.5 * gamma * (V - relu(u)) ** 2 + 0.5 * rho * (u - P) ** 2 + 0.5 * alpha * (u - U0) ** 2

    f0 = f(U)
    for s in (1e-6, 1e-3, 0.1, 1.0, 5.0):
        assert np.all(f0 <= f(U + s * rng.standard_normal(U.shape)) + 1e-12)
    grid_min = np.full(U.shape, np.inf)
    for t in np.linspace(-12, 12, 4001):
        grid_min = np.minimum(grid_min, f(np.full(U.shape, t)))
    assert np.all(f0 <= grid_min + 1e-12)
    assert (U > 0).any() and (U < 0).any()
    c = rho + alpha
    q = (rho * P + alpha * U0) / c
    ref = _relu_prox_matlab(V, q, c / gamma)
    assert np.max(np.abs(U - ref)) < 1e-12 * (1 + np.abs(ref).max())


# ---------------------------------------------------------------------------------------
# each update minimises objective (2) + its proximal term over its block (3 weight layers)
# ---------------------------------------------------------------------------------------

def _state(rng, sizes=(6, 5, 4, 3), m=12):
    N = len(sizes) - 1
    Ws = [rng.standard_normal((sizes[i], sizes[i + 1])) for i in range(N)]
    bs = [rng.standard_normal(s) for s in sizes[1:]]
    Vs = [rng.standard_normal((m, sizes[0]))] + [rng.standard_normal((m, s)) for s in sizes[1:]]
    Us = [rng.standard_normal((m, s)) for s in sizes[1:]]
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    return Y, Ws, bs, Vs, Us


@pytest.mark.parametrize("gamma,rho,alpha", [(1.0, 1.0, 0.01), (3.0, 0.5, 1.0)])
def test_every_block_update_minimises_objective_plus_prox(gamma, rho, alpha):
    rng = np.random.default_rng(5)
    Y, Ws, bs, Vs, Us = _state(rng)
    N = len(Ws)
    store = {"W": Ws, "b": bs, "V": Vs, "U": Us}
    P = lambda i: Vs[i] @ Ws[i] + bs[i]  # noqa: E731
    blocks = [("V", N, 1.0, lambda: bcd_output_v_step(Y, Us[N - 1], Vs[N], gamma, alpha)),
              ("U", N - 1, 0.0, lambda: bcd_output_u_step(Vs[N], P(N - 1), gamma, rho))]
    for i in range(N - 1, -1, -1):
        if i < N - 1:
            blocks.append(("V", i + 1, 0.0, lambda i=i: bcd_hidden_v_step(
                Us[i], Us[i + 1], Ws[i + 1], bs[i + 1], gamma, rho)))
            blocks.append(("U", i, 1.0, lambda i=i: bcd_hidden_u_step(Vs[i + 1], P(i), Us[i],
                                                                      gamma, rho, alpha)))
        blocks.append(("W", i, 1.0, lambda i=i: bcd_weight_step(Vs[i], Us[i], Ws[i], bs[i],
                                                                 rho, alpha)))
        blocks.append(("b", i, 1.0, lambda i=i: bcd_bias_step(Us[i], Vs[i] @ Ws[i], bs[i],
                                                              rho, alpha)))
    for name, idx, prox, step in blocks:
        old = store[name][idx].copy()
        F_old = bcd_objective(Y, Ws, bs, Vs, Us, gamma, rho)["objective"]
        new = step()

        def G(x):
            store[name][idx] = x
            return (bcd_objective(Y, Ws, bs, Vs, Us, gamma, rho)["objective"]
                    + prox * 0.5 * alpha * np.sum((x - old) ** 2))

        g0 = G(new)
        assert g0 <= F_old + 1e-12 * abs(F_old), (name, idx)  # descent
        for s in (1e-5, 1e-2, 0.3, 3.0):
            for _ in range(3):
                assert g0 <= G(new + s * rng.standard_normal(new.shape)) + 1e-10 * abs(g0), \
                    (name, idx, s)
        store[name][idx] = new


def test_objective_formula():
    rng = np.random.default_rng(1)
    Y, Ws, bs, Vs, Us = _state(rng)
    p = bcd_objective(Y, Ws, bs, Vs, Us, 2.0, 3.0)
    direct = (0.5 * np.sum((Vs[3] - Y) ** 2) + 1.0 * np.sum((Vs[3] - Us[2]) ** 2)
              + 1.0 * sum(np.sum((Vs[i + 1] - relu(Us[i])) ** 2) for i in range(2))
              + 1.5 * sum(np.sum((Us[i] - Vs[i] @ Ws[i] - bs[i]) ** 2) for i in range(3)))
    assert abs(p["objective"] - direct) < 1e-10 * abs(direct)


# ---------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------

def _blobs(m=150, n=10, K=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, m)
    return rng.standard_normal((m, n)) + 3 * np.eye(K, n)[y], y


def _xor(m=200, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (m, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


@pytest.mark.parametrize("hidden,kw", [((20,), {}), ((15, 10), {"alpha": 0.5, "gamma": 2.0}),
                                       ((8,), {"init_scale": 1.0, "rho": 5.0})])
def test_objective_monotone_over_sweeps(hidden, kw):
    X, y = _blobs()
    clf = LauBCDClassifier(hidden=hidden, n_iter=60, backend="numpy", **kw).fit(X, y)
    F = np.array(clf.history_.series("objective"))
    assert np.all(np.diff(F) <= 1e-10 * np.abs(F[:-1]))
    assert F[-1] < F[0]


def test_learns_xor():
    X, y = _xor()
    clf = LauBCDClassifier(hidden=(64,), n_iter=150, init_scale=0.5, backend="numpy").fit(X, y)
    assert clf.score(X, y) >= 0.93
    assert clf.history_.last["train_accuracy"] == pytest.approx(clf.score(X, y))


def test_estimator_interface_and_reproducibility():
    X, y = _blobs(m=80)
    Xt, yt = _blobs(m=40, seed=5)
    kw = dict(hidden=(12, 7), n_iter=5, backend="numpy", seed=4)
    a = LauBCDClassifier(**kw).fit(X, y, X_test=Xt, y_test=yt)
    b = LauBCDClassifier(**kw).fit(X, y, X_test=Xt, y_test=yt)
    assert [(W.shape, c.shape) for W, c in a.weights_] == [((10, 12), (12,)), ((12, 7), (7,)),
                                                            ((7, 3), (3,))]
    for (Wa, ba), (Wb, bb) in zip(a.weights_, b.weights_):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
    (W1, b1), (W2, b2), (W3, b3) = a.weights_
    H = relu(relu(Xt @ W1 + b1) @ W2 + b2) @ W3 + b3
    assert np.array_equal(a.predict(Xt), H.argmax(axis=1))
    P = a.predict_proba(Xt)
    assert np.allclose(P.sum(axis=1), 1) and np.array_equal(P.argmax(axis=1), a.predict(Xt))
    assert a.history_.last["test_accuracy"] == pytest.approx(a.score(Xt, yt))
    # network_mse in the history is the feed-forward network's mean squared error
    Htr = relu(relu(X @ W1 + b1) @ W2 + b2) @ W3 + b3
    assert a.history_.last["network_mse"] == pytest.approx(
        np.sum((Htr - np.eye(3)[y]) ** 2) / 80, rel=1e-10)
    assert a.history_.meta["model"] == "lau_bcd"
    assert len(LauBCDClassifier(**kw).fit(X, y, epochs=3).history_.epochs) == 3


@pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU not available")
def test_cupy_matches_numpy():
    X, y = _blobs(m=80)
    kw = dict(hidden=(12,), n_iter=5, seed=1)
    a = LauBCDClassifier(backend="numpy", **kw).fit(X, y)
    b = LauBCDClassifier(backend="cupy", **kw).fit(X, y)
    assert _rel(b.weights_[0][0], a.weights_[0][0]) < 1e-8


@pytest.mark.parametrize("kwargs,fit_args,match", [
    ({"alpha": -0.1}, {}, "alpha"),
    ({"alpha": 0.0}, {}, "alpha"),
    ({"gamma": -1.0}, {}, "gamma"),
    ({"rho": -2.0}, {}, "rho"),
    ({"init_scale": 0.0}, {}, "init_scale"),
    ({"hidden": (3, -1)}, {}, "hidden"),
    ({"n_iter": "10"}, {}, "n_iter"),
    ({}, {"nan": True}, "X contains NaN"),
    ({}, {"y": np.full(30, 1.5)}, "integer"),
    ({}, {"y": np.arange(29)}, "29 labels"),
    ({}, {"X_test": np.zeros((4, 10)), "y_test": np.full(4, 9)}, "y_test must lie in 0..2"),
])
def test_bad_input(kwargs, fit_args, match):
    X, y = _blobs(m=30)
    fit_args = dict(fit_args)
    if fit_args.pop("nan", False):
        X = X.copy()
        X[0, 0] = np.nan
    y = fit_args.pop("y", y)
    with pytest.raises(InputError, match=match):
        LauBCDClassifier(**{"n_iter": 1, "backend": "numpy", **kwargs}).fit(X, y, **fit_args)
