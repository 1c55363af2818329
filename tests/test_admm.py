"""Taylor et al. (2016) ADMM: every closed-form step is the exact minimiser of its block of
objective (1), the constraint residual falls, the estimator learns, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from cvx_fenchel.backend import cupy_available
from cvx_fenchel.baselines.admm import (TaylorADMMClassifier, admm_activation_step,
                                        admm_last_z_step, admm_multiplier_step, admm_objective,
                                        admm_weight_step, relu_least_squares_step)
from cvx_fenchel.errors import BackendError, InputError

relu = lambda z: np.maximum(z, 0)  # noqa: E731


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


# ---------------------------------------------------------------------------------------
# single steps: first-order optimality and agreement with independent solvers
# ---------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 30), n_in=st.integers(1, 8), n_out=st.integers(1, 5),
       ridge=st.sampled_from([1e-6, 1e-3, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_weight_step_solves_ridge_least_squares(m, n_in, n_out, ridge, seed):
    """W = argmin ||Z - A W||^2 + r ||W||^2 with r = ridge tr(A^T A)/n: the stacked least squares."""
    rng = np.random.default_rng(seed)
    A, Z = rng.standard_normal((m, n_in)), rng.standard_normal((m, n_out))
    W = admm_weight_step(A, Z, ridge)
    r = ridge * np.trace(A.T @ A) / n_in
    stacked = np.linalg.lstsq(np.vstack([A, np.sqrt(r) * np.eye(n_in)]),
                              np.vstack([Z, np.zeros((n_in, n_out))]), rcond=None)[0]
    assert _rel(W, stacked) < 1e-7
    grad = 2 * A.T @ (A @ W - Z) + 2 * r * W
    assert np.abs(grad).max() <= 1e-8 * (1 + np.abs(A.T @ Z).max())


def test_weight_step_tends_to_pseudo_inverse():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 6))
    A[:, 5] = 0.0  # a dead input column (as MNIST's border pixels): A^T A is singular
    Z = rng.standard_normal((40, 3))
    W = admm_weight_step(A, Z, 1e-12)
    assert _rel(W, np.linalg.pinv(A) @ Z) < 1e-8


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 20), n=st.integers(1, 8), k=st.integers(1, 6),
       beta=st.floats(0.01, 100), gamma=st.floats(0.01, 100), seed=st.integers(0, 2**31 - 1))
def test_activation_step_is_stationary(m, n, k, beta, gamma, seed):
    """a minimises beta||Z_next - a W||^2 + gamma||a - relu(Z)||^2: gradient zero, matches lstsq."""
    rng = np.random.default_rng(seed)
    Zn, W, Z = rng.standard_normal((m, k)), rng.standard_normal((n, k)), rng.standard_normal((m, n))
    a = admm_activation_step(Zn, W, Z, beta, gamma)
    grad = 2 * beta * (a @ W - Zn) @ W.T + 2 * gamma * (a - relu(Z))
    scale = beta * np.abs(Zn @ W.T).max() + gamma * np.abs(Z).max() + 1
    assert np.abs(grad).max() <= 1e-9 * scale * (1 + beta * np.linalg.norm(W) ** 2)
    # each row is an independent least-squares problem [sqrt(beta) W^T; sqrt(gamma) I] a^T = ...
    M = np.vstack([np.sqrt(beta) * W.T, np.sqrt(gamma) * np.eye(n)])
    rhs = np.vstack([np.sqrt(beta) * Zn.T, np.sqrt(gamma) * relu(Z).T])
    assert _rel(a, np.linalg.lstsq(M, rhs, rcond=None)[0].T) < 1e-7


def _f_relu(u, v, q, gamma, c):
    return gamma * (v - np.maximum(u, 0)) ** 2 + c * (u - q) ** 2


@settings(max_examples=30, deadline=None)
@given(v=st.floats(-3, 3), q=st.floats(-3, 3), gamma=st.floats(1e-3, 50), c=st.floats(1e-3, 50))
def test_relu_step_is_global_minimiser_scalar(v, q, gamma, c):
    """The two-branch z-step equals the best of scipy's bounded minimisations on each branch."""
    u = float(relu_least_squares_step(np.array([v]), np.array([q]), gamma, c)[0])
    f = lambda t: _f_relu(t, v, q, gamma, c)  # noqa: E731
    lo, hi = -10.0, 10.0
    best = min(minimize_scalar(f, bounds=(lo, 0.0), method="bounded", options={"xatol": 1e-12}).fun,
               minimize_scalar(f, bounds=(0.0, hi), method="bounded", options={"xatol": 1e-12}).fun,
               f(0.0))
    assert f(u) <= best + 1e-9 * (1 + abs(best))
    grid = np.linspace(lo, hi, 20001)
    assert f(u) <= f(grid).min() + 1e-12


def test_relu_step_batched_never_beaten_by_perturbations():
    rng = np.random.default_rng(3)
    V, Q = 2 * rng.standard_normal((50, 40)), 2 * rng.standard_normal((50, 40))
    for gamma, c in [(5.0, 5.0), (0.1, 10.0), (10.0, 0.1)]:
        U = relu_least_squares_step(V, Q, gamma, c)
        f0 = _f_relu(U, V, Q, gamma, c)
        for s in (1e-6, 1e-3, 0.1, 1.0, 5.0):
            D = s * rng.standard_normal(U.shape)
            assert np.all(f0 <= _f_relu(U + D, V, Q, gamma, c) + 1e-12)
        # both branches are reached and the result is not simply one of them
        assert (U > 0).any() and (U < 0).any()


@settings(max_examples=20, deadline=None)
@given(beta=st.floats(0.01, 100), seed=st.integers(0, 2**31 - 1))
def test_last_z_step_is_stationary(beta, seed):
    """z_L minimises ||z - Y||^2 + <z, lambda> + beta||z - M||^2: 2(z-Y) + lambda + 2 beta(z-M) = 0."""
    rng = np.random.default_rng(seed)
    Y, M, lam = (rng.standard_normal((7, 4)) for _ in range(3))
    z = admm_last_z_step(Y, M, lam, beta)
    assert np.abs(2 * (z - Y) + lam + 2 * beta * (z - M)).max() < 1e-10 * (1 + beta)
    assert np.allclose(admm_multiplier_step(lam, z, M, beta), lam + beta * (z - M), atol=0)


# ---------------------------------------------------------------------------------------
# each step minimises the full objective (1) over its block (3 weight layers)
# ---------------------------------------------------------------------------------------

def _random_state(rng, sizes=(6, 5, 4, 3), m=12):
    L = len(sizes) - 1
    Ws = [rng.standard_normal((sizes[i], sizes[i + 1])) for i in range(L)]
    As = [rng.standard_normal((m, sizes[0]))] + [rng.standard_normal((m, s)) for s in sizes[1:-1]]
    Zs = [rng.standard_normal((m, s)) for s in sizes[1:]]
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    lam = rng.standard_normal((m, sizes[-1]))
    return Y, Ws, As, Zs, lam


def _obj(Y, Ws, As, Zs, lam, beta, gamma):
    return admm_objective(Y, Ws, As, Zs, lam, beta, gamma)["objective"]


@pytest.mark.parametrize("beta,gamma", [(5.0, 5.0), (1.0, 10.0), (0.3, 0.7)])
def test_every_block_step_minimises_objective(beta, gamma):
    rng = np.random.default_rng(11)
    Y, Ws, As, Zs, lam = _random_state(rng)
    L = len(Ws)
    blocks = []
    for i in range(L):  # weights (ridge 0: the exact block minimiser; m > n_in so A full rank)
        blocks.append(("W", i, lambda i=i: admm_weight_step(As[i], Zs[i], 0.0)))
    for i in range(L - 1):  # hidden activations a_{i+1} and pre-activations z_{i+1}
        blocks.append(("A", i + 1, lambda i=i: admm_activation_step(Zs[i + 1], Ws[i + 1], Zs[i],
                                                                    beta, gamma)))
        blocks.append(("Z", i, lambda i=i: relu_least_squares_step(As[i + 1], As[i] @ Ws[i],
                                                                   gamma, beta)))
    blocks.append(("Z", L - 1, lambda: admm_last_z_step(Y, As[-1] @ Ws[-1], lam, beta)))
    store = {"W": Ws, "A": As, "Z": Zs}
    for name, idx, step in blocks:
        store[name][idx] = step()
        f0 = _obj(Y, Ws, As, Zs, lam, beta, gamma)
        best = store[name][idx].copy()
        for s in (1e-5, 1e-2, 0.3, 3.0):
            for _ in range(3):
                store[name][idx] = best + s * rng.standard_normal(best.shape)
                assert f0 <= _obj(Y, Ws, As, Zs, lam, beta, gamma) + 1e-10 * abs(f0), (name, idx, s)
        store[name][idx] = best


def test_objective_parts_formula():
    rng = np.random.default_rng(2)
    Y, Ws, As, Zs, lam = _random_state(rng)
    p = admm_objective(Y, Ws, As, Zs, lam, 2.0, 3.0)
    direct = (np.sum((Zs[-1] - Y) ** 2) + np.sum(Zs[-1] * lam)
              + 2.0 * sum(np.sum((Zs[i] - As[i] @ Ws[i]) ** 2) for i in range(3))
              + 3.0 * sum(np.sum((As[i + 1] - relu(Zs[i])) ** 2) for i in range(2)))
    assert abs(p["objective"] - direct) < 1e-10 * abs(direct)
    assert abs(p["residual_last"] - np.linalg.norm(Zs[-1] - As[-1] @ Ws[-1])) < 1e-12


# ---------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------

def _xor(m=200, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (m, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def _blobs(m=150, n=10, K=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, m)
    X = rng.standard_normal((m, n)) + 3 * np.eye(K, n)[y]
    return X, y


def test_constraint_residuals_fall():
    X, y = _blobs()
    clf = TaylorADMMClassifier(hidden=(30,), beta=5.0, gamma=5.0, n_iter=60, n_warmup=5,
                               backend="numpy").fit(X, y)
    r_last = np.array(clf.history_.series("residual_last"))
    r_relu = np.array(clf.history_.series("residual_relu"))
    r_lin = np.array(clf.history_.series("residual_linear"))
    assert r_last[-1] < 1e-2 * r_last[:10].max()
    assert r_last[-10:].max() < r_last[10:20].min()
    assert r_relu[-1] < 1e-2 * r_relu.max() and r_lin[-1] < 1e-2 * r_lin.max()
    assert clf.history_.series("multiplier_updated")[:6] == [False] * 5 + [True]
    # at the fixed point the multiplier is the loss gradient: lambda = 2 (Y - z_L)
    Y = np.eye(3)[y]
    lam, zL = clf._state["lambda"], clf._state["z"][-1]
    assert _rel(lam, 2 * (Y - zL)) < 1e-2


def test_learns_xor():
    X, y = _xor()
    clf = TaylorADMMClassifier(hidden=(64,), n_iter=80, n_warmup=10, backend="numpy").fit(X, y)
    assert clf.score(X, y) >= 0.93
    assert clf.history_.last["train_accuracy"] == pytest.approx(clf.score(X, y))


def test_estimator_interface_and_reproducibility():
    X, y = _blobs(m=80)
    Xt, yt = _blobs(m=40, seed=5)
    kw = dict(hidden=(12, 7), n_iter=6, n_warmup=2, backend="numpy", seed=4)
    a = TaylorADMMClassifier(**kw).fit(X, y, X_test=Xt, y_test=yt)
    b = TaylorADMMClassifier(**kw).fit(X, y, X_test=Xt, y_test=yt)
    assert [W.shape for W, _ in a.weights_] == [(10, 12), (12, 7), (7, 3)]
    assert all(np.all(bias == 0) for _, bias in a.weights_)
    for (Wa, _), (Wb, _) in zip(a.weights_, b.weights_):
        assert np.array_equal(Wa, Wb)
    P = a.predict_proba(Xt)
    assert P.shape == (40, 3) and np.allclose(P.sum(axis=1), 1)
    assert np.array_equal(P.argmax(axis=1), a.predict(Xt))
    H = relu(relu(Xt @ a.weights_[0][0]) @ a.weights_[1][0]) @ a.weights_[2][0]
    assert np.array_equal(a.predict(Xt), H.argmax(axis=1))
    assert a.history_.last["test_accuracy"] == pytest.approx(a.score(Xt, yt))
    assert len(a.history_.epochs) == 6 and a.n_classes_ == 3
    assert a.history_.meta["model"] == "taylor_admm" and a.history_.meta["bias"] is False
    c = TaylorADMMClassifier(**kw).fit(X, y, epochs=2)
    assert len(c.history_.epochs) == 2
    f32 = TaylorADMMClassifier(**{**kw, "dtype": "float32"}).fit(X, y)
    assert f32.weights_[0][0].dtype == np.float32


@pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU not available")
def test_cupy_matches_numpy():
    X, y = _blobs(m=80)
    kw = dict(hidden=(12,), n_iter=5, n_warmup=2, seed=1)
    a = TaylorADMMClassifier(backend="numpy", **kw).fit(X, y)
    b = TaylorADMMClassifier(backend="cupy", **kw).fit(X, y)
    assert _rel(b.weights_[0][0], a.weights_[0][0]) < 1e-8


@pytest.mark.parametrize("kwargs,fit_args,match", [
    ({"beta": -1.0}, {}, "beta"),
    ({"gamma": -0.5}, {}, "gamma"),
    ({"gamma": 0.0}, {}, "gamma"),
    ({"ridge": -1e-3}, {}, "ridge"),
    ({"hidden": (0,)}, {}, "hidden"),
    ({"hidden": ()}, {}, "hidden"),
    ({"n_iter": -1}, {}, "n_iter"),
    ({"n_warmup": 1.5}, {}, "n_warmup"),
    ({"dtype": "int32"}, {}, "dtype"),
    ({"backend": "tpu"}, {}, "backend"),
    ({"n_classes": 2}, {}, "y must lie in 0..1"),
    ({}, {"nan": True}, "X contains NaN"),
    ({}, {"y": np.zeros(5, dtype=int)}, "5 labels"),
    ({}, {"y": -np.ones(30, dtype=int)}, "negative"),
    ({}, {"y": np.full(30, 0.5)}, "integer"),
    ({}, {"y": np.zeros((30, 1), dtype=int)}, "1-D"),
    ({}, {"X": np.zeros(30)}, "X must have 2"),
    ({}, {"X_test": np.zeros((4, 3)), "y_test": np.zeros(4, dtype=int)}, "X_test must have shape"),
    ({}, {"X_test": np.zeros((4, 10)), "y_test": np.full(4, 7)}, "y_test must lie in 0..2"),
    ({}, {"X_test": np.zeros((4, 10))}, "both"),
])
def test_bad_input(kwargs, fit_args, match):
    X, y = _blobs(m=30)
    fit_args = dict(fit_args)
    if fit_args.pop("nan", False):
        X = X.copy()
        X[3, 4] = np.nan
    X = fit_args.pop("X", X)
    y = fit_args.pop("y", y)
    with pytest.raises(InputError, match=match):
        TaylorADMMClassifier(**{"n_iter": 1, "backend": "numpy", **kwargs}).fit(X, y, **fit_args)


def test_unfitted_and_wrong_predict_input():
    with pytest.raises(InputError, match="not fitted"):
        TaylorADMMClassifier().predict(np.zeros((2, 3)))
    X, y = _blobs(m=30)
    clf = TaylorADMMClassifier(hidden=(4,), n_iter=1, backend="numpy").fit(X, y)
    with pytest.raises(InputError, match="shape"):
        clf.predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match="0..2"):
        clf.score(X, np.full(30, 3))


def test_cupy_backend_unavailable_is_clear():
    if cupy_available():
        pytest.skip("CuPy is available here")
    X, y = _blobs(m=30)
    with pytest.raises(BackendError, match="cupy"):
        TaylorADMMClassifier(n_iter=1, backend="cupy").fit(X, y)
