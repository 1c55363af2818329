"""Tests of the 2018 lifted neural network baseline (cvx_fenchel.baselines.lnn).

Facts checked: every BCD step is the exact minimiser of its block of the lifted objective J
(against the CVXPY twin of the block's subproblem) and changes J by exactly the change of the
block objective; J never increases over sweeps; the model fits a separable problem; its
weights initialise a torch network with identical outputs; bad input is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvx_fenchel.baselines.lnn import (LNNClassifier, feed_forward, lifted_init_weights, lnn_gram,
                                       lnn_objective, lnn_output_step, lnn_w_step, lnn_x_step)
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.subproblems import LNNSimplexCE, LNNW, LNNX

REL = 1e-6


def _instance(seed, m=7, sizes=(5, 4, 3, 3)):
    """Random lifted state: X, one-hot Y, weights, hidden X_l >= 0 (perturbed feed-forward), T."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, sizes[0]))
    y = rng.integers(0, sizes[-1], m)
    Y = np.eye(sizes[-1])[y]
    Ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [0.3 * rng.standard_normal(b) for b in sizes[1:]]
    Xs, out = feed_forward(X, Ws, bs)
    Xs = [np.maximum(H + 0.2 * rng.standard_normal(H.shape), 0) for H in Xs]
    T = rng.random((m, sizes[-1])) + 0.1
    T /= T.sum(axis=1, keepdims=True)
    lam = list(rng.uniform(0.3, 3.0, len(Ws)))
    rho = list(rng.uniform(0.0, 0.1, len(Ws)))
    return X, Y, Ws, bs, Xs, T, lam, rho


def _rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


def _J(X, Y, Ws, bs, Xs, T, lam, rho, loss):
    return lnn_objective(X, Y, Ws, bs, Xs, lam, rho, loss, T=T)["objective"]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), loss=st.sampled_from(["mse", "cross_entropy"]))
def test_x_steps_are_exact_block_minimisers(seed, loss):
    X, Y, Ws, bs, Xs, T, lam, rho = _instance(seed)
    L = len(Xs)
    ins = [X, *Xs]
    for l in range(1, L + 1):
        nxt = Xs[l] if l < L else (Y if loss == "mse" else T)
        U_prev = ins[l - 1] @ Ws[l - 1] + bs[l - 1]
        J_old = _J(X, Y, Ws, bs, Xs, T, lam, rho, loss)
        Z, info = lnn_x_step(nxt, U_prev, Ws[l], bs[l], Xs[l - 1], lam[l], lam[l - 1])
        assert info["accepted"] and np.all(Z >= 0)
        sub = LNNX(nxt, U_prev, Ws[l], bs[l], lam=lam[l], lam_prev=lam[l - 1])
        _, res = sub.solve_cvxpy()
        assert _rel(sub.objective(Z), res.objective) <= REL
        assert sub.objective(Z) <= res.objective + REL * max(1.0, abs(res.objective))
        # J changes by exactly the change of the block objective (the block holds all X_l terms)
        Xs_new = list(Xs)
        Xs_new[l - 1] = Z
        J_new = _J(X, Y, Ws, bs, Xs_new, T, lam, rho, loss)
        d_block = sub.objective(Z) - sub.objective(Xs[l - 1])
        assert abs((J_new - J_old) - d_block) <= 1e-9 * max(1.0, abs(J_old))
        assert J_new <= J_old


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_output_step_is_exact_block_minimiser(seed):
    X, Y, Ws, bs, Xs, T, lam, rho = _instance(seed)
    U = Xs[-1] @ Ws[-1] + bs[-1]
    Z = lnn_output_step(Y, U, lam[-1])
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(Z >= 0)
    sub = LNNSimplexCE(Y, U, lam=lam[-1])
    _, res = sub.solve_cvxpy()
    assert _rel(sub.objective(Z), res.objective) <= REL
    J_old = _J(X, Y, Ws, bs, Xs, T, lam, rho, "cross_entropy")
    J_new = _J(X, Y, Ws, bs, Xs, Z, lam, rho, "cross_entropy")
    assert abs((J_new - J_old) - (sub.objective(Z) - sub.objective(T))) <= 1e-9 * max(1.0, abs(J_old))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), loss=st.sampled_from(["mse", "cross_entropy"]),
       gamma=st.sampled_from([0.0, 0.5]))
def test_w_steps_are_exact_block_minimisers(seed, loss, gamma):
    X, Y, Ws, bs, Xs, T, lam, rho = _instance(seed)
    ins = [X, *Xs]
    targets = [*Xs, Y if loss == "mse" else T]
    for l in range(len(Ws)):
        W0, b0 = Ws[l] + 0.1, bs[l] - 0.1
        W, b = lnn_w_step(ins[l], targets[l], lam[l], rho[l], gamma=gamma, W0=W0, b0=b0,
                          gram=lnn_gram(ins[l]) if l == 0 else None)
        sub = LNNW(ins[l], targets[l], lam=lam[l], rho=rho[l], gamma=gamma, W0=W0, b0=b0)
        (Wc, bc), res = sub.solve_cvxpy()
        assert _rel(sub.objective((W, b)), res.objective) <= REL
        # the closed form is the exact minimiser: it matches LNNW's own closed form
        closed = sub.solve_fast().x
        np.testing.assert_allclose(W, closed[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, closed[1], rtol=1e-8, atol=1e-10)
        if gamma == 0:
            J_old = _J(X, Y, Ws, bs, Xs, T, lam, rho, loss)
            Ws2, bs2 = list(Ws), list(bs)
            Ws2[l], bs2[l] = W, b
            J_new = _J(X, Y, Ws2, bs2, Xs, T, lam, rho, loss)
            d_block = sub.objective((W, b)) - sub.objective((Ws[l], bs[l]))
            assert abs((J_new - J_old) - d_block) <= 1e-9 * max(1.0, abs(J_old))


def _data(seed=0, m=120, n=10, K=3):
    """Noisy clusters in [0, 1]^n, every class present."""
    rng = np.random.default_rng(seed)
    centres = rng.random((K, n))
    y = rng.permutation(np.arange(m) % K)
    X = np.clip(centres[y] + 0.25 * rng.standard_normal((m, n)), 0, 1)
    return X, y


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_objective_non_increasing_and_fits(loss):
    X, y = _data()
    m = LNNClassifier(hidden=(12, 6), loss=loss, lam=[1.0, 2.0, 0.5], rho=1e-3, n_iter=12,
                      backend="numpy").fit(X, y, X_test=X, y_test=y)
    obj = np.array(m.history_.series("objective"))
    assert len(obj) == 13  # initial point + 12 sweeps
    assert np.all(np.diff(obj) <= 1e-9 * np.abs(obj[:-1]))
    assert obj[-1] < 0.5 * obj[0]
    # history's objective is J recomputed from the final state
    st_ = m._state
    Ws, bs = [W for W, _ in m._params], [b for _, b in m._params]
    J = lnn_objective(X, np.eye(3)[y], Ws, bs, st_["Xs"], m.lam_, m.rho_, loss, T=st_["T"])
    assert _rel(J["objective"], obj[-1]) <= 1e-12


def test_fits_separable_problem():
    X, y = _data(1, m=200)
    m = LNNClassifier(hidden=(20,), loss="cross_entropy", lam=1.0, rho=1e-4, n_iter=25,
                      backend="numpy").fit(X, y)
    assert m.score(X, y) >= 0.95
    assert m.history_.epochs[-1]["train_accuracy"] == m.score(X, y)
    P = m.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.array_equal(P.argmax(axis=1), m.predict(X))


def test_minibatch_each_batch_descends():
    X, y = _data(2, m=90)
    m = LNNClassifier(hidden=(8,), loss="cross_entropy", n_iter=3, batch_size=30, epochs=2, gamma=0.5,
                      backend="numpy").fit(X, y)
    recs = m.history_.batches
    assert len(recs) == 6 and len(m.history_.epochs) == 2
    for r in recs:  # the batch objective + proximal term is at most its value at the start
        assert r["loss"] + r["proximal"] <= r["objective_start"] * (1 + 1e-9)


def test_weights_roundtrip_into_torch():
    pytest.importorskip("torch")
    from cvx_fenchel.baselines.torch_nets import TorchNetClassifier
    X, y = _data(3)
    W = lifted_init_weights(X, y, hidden=(7,), loss="mse", n_iter=4, backend="numpy")
    assert [w.shape for w, _ in W] == [(10, 7), (7, 3)] and [b.shape for _, b in W] == [(7,), (3,)]
    lnn = LNNClassifier(hidden=(7,), loss="mse", n_iter=4, backend="numpy").fit(X, y)
    for (a, b), (c, d) in zip(W, lnn.weights_):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    net = TorchNetClassifier(arch="10-7-3", init="lifted", init_weights=lnn.weights_, epochs=0,
                             dtype="float64").fit(X, y)
    np.testing.assert_allclose(net.decision_function(X), lnn.decision_function(X), rtol=1e-12, atol=1e-12)
    assert np.array_equal(net.predict(X), lnn.predict(X))


def test_seed_reproducible():
    X, y = _data(4)
    a = LNNClassifier(hidden=(5,), n_iter=2, seed=3, backend="numpy").fit(X, y)
    b = LNNClassifier(hidden=(5,), n_iter=2, seed=3, backend="numpy").fit(X, y)
    for (W1, b1), (W2, b2) in zip(a.weights_, b.weights_):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"loss": "hinge"}, UnknownNameError, "loss"),
    ({"lam": -1.0}, InputError, "lam"),
    ({"lam": 0.0}, InputError, "lam"),
    ({"lam": [1.0, 1.0, 1.0]}, InputError, "lam"),
    ({"rho": -1e-3}, InputError, "rho"),
    ({"n_iter": -1}, InputError, "n_iter"),
    ({"batch_size": 0}, InputError, "batch_size"),
    ({"hidden": (0,)}, InputError, "hidden"),
    ({"x_max_iter": 0}, InputError, "x_max_iter"),
    ({"backend": "tpu"}, InputError, "backend"),
])
def test_bad_hyper_parameters(kwargs, exc, words):
    X, y = _data()
    with pytest.raises(exc, match=words):
        LNNClassifier(hidden=kwargs.pop("hidden", (4,)), n_iter=kwargs.pop("n_iter", 1), **kwargs).fit(X, y)


def test_bad_data():
    X, y = _data()
    m = LNNClassifier(hidden=(4,), n_iter=1, backend="numpy")
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError, match="X"):
        m.fit(Xn, y)
    with pytest.raises(InputError, match="y"):
        m.fit(X, y[:-1])
    with pytest.raises(InputError, match="y"):
        m.fit(X, y - 1)
    with pytest.raises(InputError, match="X_test"):
        m.fit(X, y, X_test=X)
    with pytest.raises(InputError, match="X"):
        m.fit(X[:, :, None], y)
    with pytest.raises(InputError, match="not fitted"):
        LNNClassifier().predict(X)
    m.fit(X, y)
    with pytest.raises(InputError, match="X"):
        m.predict(X[:, :-1])
