"""W-step strategies: each reaches the CVXPY minimiser; the selection rule; immutable state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.maps import AvgPool2D, Chain, Conv2D, Dense, Flatten
from cvx_fenchel.subproblems import (LNNW, ClosedForm, Fista, GradientStep, Gram, GramState, SampleSpace,
                                     SampleSpaceState, WHidden, WLast, select_strategy)
from cvx_fenchel.subproblems.strategies import STRATEGIES, feature_matrix, get_strategy


def rel_gap(a, b):
    return abs(a - b) / max(1.0, abs(b))


def whidden(rng, m, n, k, act="sigmoid", rho=0.1, gamma=0.3, linear_map=None):
    lmap = linear_map or Dense(n, k)
    X = rng.random((m,) + tuple(lmap.in_shape))
    W0, b0 = rng.normal(size=lmap.weight_shape), rng.normal(size=lmap.bias_shape)
    from cvx_fenchel.activations import example_activation
    a = example_activation(act)
    X_next = a.forward(rng.normal(size=(m,) + tuple(lmap.out_shape)))
    return WHidden(X, X_next, a, lam=1.3, rho=rho, gamma=gamma, W0=W0, b0=b0, linear_map=lmap)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.integers(1, 7), act=st.sampled_from(["relu", "sigmoid", "tanh"]))
def test_every_applicable_strategy_reaches_the_cvxpy_minimiser(seed, m, act):
    """Sample space, Gram and FISTA (and the closed form where it exists) minimise the same W-step:
    objectives equal CVXPY's to 1e-6 and each other's to 1e-9."""
    rng = np.random.default_rng(seed)
    sub = whidden(rng, m, 5, 3, act)
    _, c = sub.solve_cvxpy("CLARABEL")
    objs = {}
    for s in (SampleSpace(), Gram(), Fista()):
        if not s.applies(sub):
            continue
        r = sub.solve_fast(tol=1e-11, max_iter=200_000, strategy=s)
        assert r.method == s.name and r.converged
        assert rel_gap(r.objective, c.objective) <= 1e-6
        objs[s.name] = r.objective
    assert {"gram", "fista"} <= set(objs) and ("sample-space" in objs) == (m <= 6)
    assert max(objs.values()) - min(objs.values()) <= 1e-9 * max(1.0, abs(c.objective))
    # closed forms: LNN-W and W-last-mse with a dense map
    X, T = rng.random((m, 5)), rng.normal(size=(m, 3))
    for sub in (LNNW(X, T, lam=0.7, rho=0.2, gamma=0.1, W0=rng.normal(size=(5, 3))),
                WLast(X, T, loss="mse", coef=1.5, rho=0.2, W_shape=(5, 3))):
        r = sub.solve_fast(strategy="closed-form")
        _, c = sub.solve_cvxpy("CLARABEL")
        assert r.method == "closed-form" and r.n_iter == 0 and rel_gap(r.objective, c.objective) <= 1e-6
        f = sub.solve_fast(tol=1e-11, max_iter=200_000, strategy="fista")
        assert rel_gap(f.objective, r.objective) <= 1e-9


def test_gradient_step_is_one_step_of_length_one_over_L():
    rng = np.random.default_rng(1)
    sub = whidden(rng, 6, 4, 3)
    x0 = sub.start()
    r = sub.solve_fast(x0, strategy=GradientStep())
    g = sub.grad(x0)
    np.testing.assert_allclose(r.x[0], x0[0] - g[0] / sub.lipschitz, rtol=1e-14, atol=1e-14)
    assert r.method == "gradient-step" and r.n_iter == 1
    assert r.objective <= sub.objective(x0)  # a 1/L step never increases an L-smooth objective
    r2 = sub.solve_fast(x0, strategy=GradientStep(lr=0.01))
    np.testing.assert_allclose(r2.x[1], x0[1] - 0.01 * g[1], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(sub.gradient_step(x0, 0.01)[1], r2.x[1])
    with pytest.raises(InputError, match="lr"):
        GradientStep(lr=-1.0)


def _old_path(sub, precondition=True, sample_space=True):
    """The selection rule of the single W-step class before the strategies (commit 0e0490a)."""
    if isinstance(sub, (WLast, LNNW)) and isinstance(sub.map, Dense) and \
            (isinstance(sub, LNNW) or sub.loss == "mse"):
        return "closed-form"
    F = feature_matrix(sub.map, sub.X)
    mid = sub.map._split()[1] if isinstance(sub.map, Chain) else sub.map
    c = sub.rho + sub.gamma
    if precondition and sample_space and isinstance(mid, Dense) and F is not None and c > 0 and \
            F.shape[0] <= F.shape[1] + 1 and sub.data.lipschitz > 0 and \
            tuple(sub.map.out_shape) == (sub.map.weight_shape[-1],):
        return "sample-space"
    if precondition and F is not None and F.shape[1] + 1 <= 2048 and sub.data.lipschitz > 0:
        return "gram"
    return "fista"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.integers(1, 12), kind=st.sampled_from(["hidden", "ce", "mse", "lnn"]),
       lmap=st.sampled_from(["dense", "conv", "pool+conv", "flatten+dense", "conv+flatten"]),
       rho=st.sampled_from([0.0, 0.2]), gamma=st.sampled_from([0.0, 0.5]), lam=st.sampled_from([0.0, 1.0]),
       precondition=st.booleans(), sample_space=st.booleans())
def test_select_strategy_picks_what_the_old_path_picked(seed, m, kind, lmap, rho, gamma, lam, precondition,
                                                        sample_space):
    rng = np.random.default_rng(seed)
    mp = {"dense": Dense(6, 3), "conv": Conv2D((4, 4, 2), 2, (2, 2)),
          "pool+conv": Chain([AvgPool2D((4, 4, 1), 2), Conv2D((2, 2, 1), 2, (2, 2))]),
          "flatten+dense": Chain([Flatten((2, 3, 1)), Dense(6, 3)]),
          "conv+flatten": Chain([Conv2D((3, 3, 1), 1, (2, 2)), Flatten((2, 2, 1))])}[lmap]
    assume(kind != "ce" or len(mp.out_shape) == 1)  # class scores are flat
    X = rng.random((m,) + tuple(mp.in_shape))
    T = rng.random((m,) + tuple(mp.out_shape))
    kw = dict(rho=rho, gamma=gamma, linear_map=mp)
    if kind == "hidden":
        sub = WHidden(X, T, "relu", lam=lam, **kw)
    elif kind == "lnn":
        sub = LNNW(X, T, lam=lam, **kw)
    else:
        Y = np.eye(mp.out_shape[0])[rng.integers(0, mp.out_shape[0], m)] if kind == "ce" else T
        sub = WLast(X, Y, loss="cross_entropy" if kind == "ce" else "mse", coef=lam, **kw)
    chosen = select_strategy(sub, precondition=precondition, sample_space=sample_space)
    assert chosen.name == _old_path(sub, precondition, sample_space)
    if precondition and sample_space:
        assert sub.fast_method == chosen.name
    r = sub.solve_fast(tol=1e-6, max_iter=50, warn=False, precondition=precondition, sample_space=sample_space)
    assert r.method == chosen.name


def test_strategies_and_their_state_are_immutable_and_cached():
    rng = np.random.default_rng(2)
    sub = whidden(rng, 4, 6, 3)
    ss, gram = sub.strategy_state(SampleSpace()), sub.strategy_state(Gram())
    assert isinstance(ss, SampleSpaceState) and isinstance(gram, GramState)
    assert sub.strategy_state(SampleSpace()) is ss  # built once per problem
    for obj, attr in ((ss, "c"), (gram, "chol"), (STRATEGIES["gram"], "max_dim"), (GradientStep(0.1), "lr")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)
    # the state's Lipschitz bound is the one the residual uses (max eigenvalue of [X 1][X 1]^T)
    A = np.hstack([sub.X, np.ones((4, 1))])
    assert ss.lipschitz == pytest.approx(sub.data.lipschitz * np.linalg.eigvalsh(A @ A.T)[-1]
                                         + 2 * (sub.rho + sub.gamma), rel=1e-12)


def test_strategy_errors_name_the_strategy():
    rng = np.random.default_rng(3)
    sub = whidden(rng, 20, 3, 2, rho=0.0, gamma=0.0)
    with pytest.raises(InputError, match="sample-space"):
        sub.solve_fast(strategy="sample-space")  # rho + gamma = 0 and more samples than weights
    with pytest.raises(InputError, match="closed-form"):
        sub.solve_fast(strategy=ClosedForm())
    with pytest.raises(UnknownNameError, match="unknown W-step strategy"):
        get_strategy("newton")
