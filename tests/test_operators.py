"""Operators bound once per subproblem (``LinearMap.fixed_input`` / ``fixed_weights``) and the
loop-free convolution input adjoint: same values as the maps' uncached formulas, caches per
subproblem."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvx_fenchel.maps.conv as conv_mod
from cvx_fenchel.backend import cupy_available, get_backend, to_numpy
from cvx_fenchel.errors import InputError
from cvx_fenchel.maps import AvgPool2D, Chain, Conv2D, Dense, Flatten
from cvx_fenchel.subproblems import WHidden, WLast, XHidden

SETTINGS = settings(max_examples=25, deadline=None)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def loop_adjoint_input(G, W, in_hw):
    """The former implementation (one matmul per kernel offset), kept as a reference."""
    kh, kw, ci, co = W.shape
    m, Ho, Wo, _ = G.shape
    out = np.zeros((m, in_hw[0], in_hw[1], ci))
    G2 = G.reshape(m * Ho * Wo, co)
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + Ho, j:j + Wo, :] += (G2 @ W[i, j].T).reshape(m, Ho, Wo, ci)
    return out


@st.composite
def weighted_maps(draw):
    """A map with weights: conv (valid/same), pool+conv, conv+flatten, dense, pool+flatten+dense."""
    kind = draw(st.sampled_from(["conv_valid", "conv_same", "pool+conv", "conv+flatten", "dense",
                                 "pool+flatten+dense"]))
    ci, co = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if kind == "dense":
        return Dense(draw(st.integers(1, 7)), co)
    if kind == "pool+flatten+dense":
        h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        return Chain([AvgPool2D((2 * h, 2 * w, ci), 2), Flatten((h, w, ci)), Dense(h * w * ci, co)])
    H, Wd = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    kh, kw = draw(st.integers(1, H)), draw(st.integers(1, Wd))
    if kind == "pool+conv":
        kh, kw = min(kh, H // 2 or 1), min(kw, Wd // 2 or 1)
        H, Wd = 2 * (H // 2 or 1), 2 * (Wd // 2 or 1)
        return Chain([AvgPool2D((H, Wd, ci), 2), Conv2D((H // 2, Wd // 2, ci), co, (kh, kw))])
    conv = Conv2D((H, Wd, ci), co, (kh, kw), padding="same" if kind == "conv_same" else "valid")
    if kind == "conv+flatten":
        return Chain([conv, Flatten(conv.out_shape)])
    return conv


def _arrays(lmap, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m,) + tuple(lmap.in_shape))
    W = rng.standard_normal(lmap.weight_shape)
    b = rng.standard_normal(lmap.bias_shape)
    G = rng.standard_normal((m,) + tuple(lmap.out_shape))
    return X, W, b, G


@SETTINGS
@given(weighted_maps(), st.integers(1, 5), st.integers(0, 10 ** 6), st.booleans())
def test_fixed_input_equals_map(lmap, m, seed, small_cache):
    """apply / adjoint / norm of the W-step operator equal the map's (cached patch matrix or,
    with the cache limit at 0, the chunked fallback)."""
    X, W, b, G = _arrays(lmap, m, seed)
    old = conv_mod._MAX_CACHED_PATCH_ENTRIES
    conv_mod._MAX_CACHED_PATCH_ENTRIES = 0 if small_cache else old
    try:
        op = lmap.fixed_input(X)
        assert rel(op.apply(W, b), lmap.apply(X, W, b)) <= 1e-12
        assert rel(op.apply(W), lmap.apply(X, W)) <= 1e-12
        dW, db = op.adjoint(G)
        rW, rb = lmap.adjoint_weights(G, X)
        assert rel(dW, rW) <= 1e-12 and rel(db, rb) <= 1e-12
        for bias in (True, False):
            assert math.isclose(op.lipschitz(bias), lmap.lipschitz_weights(X, include_bias=bias),
                                rel_tol=1e-10)
        if op.features() is not None:  # norm from the Gram matrix the Gram strategy keeps
            op2 = lmap.fixed_input(X)
            op2.gram()
            assert math.isclose(op2.lipschitz(), lmap.lipschitz_weights(X), rel_tol=1e-10)
    finally:
        conv_mod._MAX_CACHED_PATCH_ENTRIES = old


@SETTINGS
@given(weighted_maps(), st.integers(1, 5), st.integers(0, 10 ** 6))
def test_cached_w_step_objective_and_gradient(lmap, m, seed):
    """The W-step through its cached operator has the objective and gradient of the uncached
    formula ``data(A(X; W) + b) + R``, to 1e-12 relative in float64."""
    X, W, b, _ = _arrays(lmap, m, seed)
    rng = np.random.default_rng(seed + 1)
    X_next = np.abs(rng.standard_normal((m,) + tuple(lmap.out_shape)))
    W0, b0 = rng.standard_normal(lmap.weight_shape), rng.standard_normal(lmap.bias_shape)
    prob = WHidden(X, X_next, "relu", lam=1.5, rho=0.1, gamma=0.2, W0=W0, b0=b0, linear_map=lmap)
    U = lmap.apply(X, W, b)
    ref = prob.data.value(U) + prob.ridge.value(W, b)
    assert math.isclose(prob.objective((W, b)), ref, rel_tol=1e-12)
    dW, db = lmap.adjoint_weights(prob.data.grad(U), X)
    gW, gb = prob.ridge.add_grad(dW, db, W, b)
    got = prob.grad((W, b))
    assert rel(got[0], gW) <= 1e-12 and rel(got[1], gb) <= 1e-12
    assert prob.op is prob.op  # one operator per subproblem


@SETTINGS
@given(weighted_maps(), st.integers(1, 4), st.integers(0, 10 ** 6))
def test_cached_x_step_objective_and_gradient(lmap, m, seed):
    X, W, b, _ = _arrays(lmap, m, seed)
    rng = np.random.default_rng(seed + 2)
    X_next = np.abs(rng.standard_normal((m,) + tuple(lmap.out_shape)))
    Z = np.abs(X)
    prob = XHidden(X_next, X, W, b, "relu", "relu", lam=1.3, lam_prev=0.7, coef=1.1, linear_map=lmap)
    U = lmap.apply(Z, W, b)
    assert math.isclose(prob.objective(Z), prob.data.value(U) + prob.prev.value(Z), rel_tol=1e-12)
    ref = lmap.adjoint_input(prob.data.grad(U), W) + prob.prev.grad(Z)
    assert rel(prob.grad(Z), ref) <= 1e-12
    assert math.isclose(prob.lipschitz, prob.data.lipschitz * lmap.lipschitz_input(W), rel_tol=1e-9)
    assert prob.op.lipschitz() is prob.op.lipschitz()  # once per operator
    assert rel(prob.op.forward(Z), lmap.apply(Z, W)) <= 1e-12


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 4), st.sampled_from(["valid", "same"]), st.sampled_from([0, 4, 100]),
       st.integers(0, 10 ** 6))
def test_gemm_input_adjoint_equals_loop_and_sparse_transpose(H, Wd, ci, co, m, padding, ratio, seed):
    """Both loop-free input adjoints (banded kernel matrix; patch-space GEMM + col2im, chosen by
    the width ratio: 0 forces the latter) equal the former loop over kernel offsets and the
    transpose of the explicit sparse matrix."""
    rng = np.random.default_rng(seed)
    kh, kw = int(rng.integers(1, H + 1)), int(rng.integers(1, Wd + 1))
    conv = Conv2D((H, Wd, ci), co, (kh, kw), padding=padding)
    W = rng.standard_normal(conv.weight_shape)
    G = rng.standard_normal((m,) + conv.out_shape)
    old = conv_mod._MAX_TOEPLITZ_RATIO
    conv_mod._MAX_TOEPLITZ_RATIO = ratio
    try:
        got = conv.adjoint_input(G, W)
        got_op = conv.fixed_weights(W).adjoint(G)
    finally:
        conv_mod._MAX_TOEPLITZ_RATIO = old
    (t, bo), (le, r) = conv._pads()
    ref = loop_adjoint_input(G, W, (H + t + bo, Wd + le + r))[:, t:t + H, le:le + Wd]
    sparse = (conv.input_matrix(W, m).T @ G.reshape(-1)).reshape(got.shape)
    assert rel(got, ref) <= 1e-12 and rel(got, sparse) <= 1e-12
    assert rel(got_op, ref) <= 1e-12


def test_diagonal_sum_and_avgpool_against_naive():
    rng = np.random.default_rng(0)
    R = rng.standard_normal((2, 3, 4, 5, 2))
    out = conv_mod._diagonal_sum(R, np)
    ref = np.zeros((2, 3, 4 + 5 - 1, 2))
    for i in range(4):
        ref[:, :, i:i + 5] += R[:, :, i]
    assert np.allclose(out, ref, rtol=1e-14, atol=1e-14)
    for s in (1, 2, 3):
        pool = AvgPool2D((3 * s, 2 * s, 2), s)
        X = rng.standard_normal((3,) + pool.in_shape)
        ref = X.reshape(3, 3, s, 2, s, 2).mean(axis=(2, 4))
        assert rel(pool.apply(X), ref) <= 1e-14


def test_operator_caches_are_per_subproblem():
    """Two W-steps (X-steps) on different inputs (weights) keep different operators, each
    equal to its own uncached formula; building one does not change the other."""
    lmap = Chain([AvgPool2D((8, 8, 2), 2), Conv2D((4, 4, 2), 3, (3, 3))])
    rng = np.random.default_rng(1)
    X1, X2 = rng.standard_normal((2, 4) + lmap.in_shape)
    Y = np.abs(rng.standard_normal((4,) + lmap.out_shape))
    W, b = rng.standard_normal(lmap.weight_shape), rng.standard_normal(lmap.bias_shape)
    p1 = WHidden(X1, Y, rho=0.1, linear_map=lmap)
    U1 = p1.op.apply(W, b)
    L1 = p1.lipschitz
    p2 = WHidden(X2, Y, rho=0.1, linear_map=lmap)
    assert p2.op is not p1.op and p2.op.inner is not p1.op.inner
    assert rel(p2.op.apply(W, b), lmap.apply(X2, W, b)) <= 1e-12
    assert rel(p1.op.apply(W, b), U1) == 0.0 and p1.lipschitz == L1
    assert math.isclose(p2.lipschitz, p2.data.lipschitz * lmap.lipschitz_weights(X2) + 0.2, rel_tol=1e-12)
    assert not math.isclose(p1.lipschitz, p2.lipschitz, rel_tol=1e-6)
    # X-steps: the operator follows the weights it was built with
    W2 = 2.0 * W
    U_prev = rng.standard_normal((4,) + lmap.in_shape)
    q1 = XHidden(Y, U_prev, W, b, linear_map=lmap)
    q2 = XHidden(Y, U_prev, W2, b, linear_map=lmap)
    assert q1.op is not q2.op
    assert math.isclose(q2.op.lipschitz(), 4.0 * q1.op.lipschitz(), rel_tol=1e-6)
    G = rng.standard_normal((4,) + lmap.out_shape)
    assert rel(q2.op.adjoint(G), lmap.adjoint_input(G, W2)) <= 1e-12
    assert rel(q1.op.adjoint(G), lmap.adjoint_input(G, W)) <= 1e-12


def test_gram_strategy_takes_the_norm_from_its_gram_matrix(monkeypatch):
    """The Gram strategy's W-step computes no second Gram matrix for its residual's norm."""
    conv = Conv2D((6, 6, 2), 3, (3, 3))
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5,) + conv.in_shape)
    Y = np.eye(3)[rng.integers(0, 3, 5 * 16)].reshape(5, 4, 4, 3)
    prob = WLast(X.astype(np.float32), (Y / Y.sum(-1, keepdims=True)).reshape(5, -1)[:, :48].reshape(5, 4, 4, 3)
                 .astype(np.float32), loss="mse", rho=0.1, linear_map=conv)
    calls = []
    monkeypatch.setattr(Conv2D, "lipschitz_weights", lambda *a, **k: calls.append(1) or 1.0)
    res = prob.solve_fast(strategy="gram")
    assert res.method == "gram" and not calls
    assert prob.op.gram() is prob.op.gram()


def test_lenet_sizes_use_the_banded_adjoint_and_cached_patches():
    pool_conv = Chain([AvgPool2D((28, 28, 6), 2), Conv2D((14, 14, 6), 16)])
    op = pool_conv.fixed_weights(np.zeros((5, 5, 6, 16), np.float32))
    assert op.inner._T is not None and op.inner._T.shape == (10 * 16, 5 * 14 * 6)
    conv0 = Conv2D((32, 32, 1), 6)
    fi = conv0.fixed_input(np.zeros((2, 32, 32, 1), np.float32))
    assert fi._P1 is not None and fi._P1.shape == (2 * 28 * 28, 26) and fi._P1.flags.c_contiguous
    assert np.all(fi._P1[:, 25] == 1) and fi.features().shape == (2 * 28 * 28, 25)
    with pytest.raises(InputError):
        AvgPool2D((4, 4, 1), 2).fixed_input(np.zeros((1, 4, 4, 1)))


def test_gram_inverse_equals_triangular_solves_and_is_skipped_without_ridge():
    """With a ridge the Gram preconditioner is applied as a precomputed inverse: the same steps
    as the two triangular solves (float64: 1e-10) and the same solution; without one (P definite
    only through its jitter) the triangular solves stay."""
    from cvx_fenchel.solvers import cholesky_solve
    from cvx_fenchel.subproblems.strategies import Gram
    lmap = Chain([AvgPool2D((8, 8, 2), 2), Conv2D((4, 4, 2), 3, (3, 3))])
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6,) + lmap.in_shape)
    Y = np.abs(rng.standard_normal((6,) + lmap.out_shape))
    prob = WHidden(X, Y, rho=0.05, gamma=0.01, linear_map=lmap)
    S = prob.strategy_state(Gram())
    assert S.inv is not None
    g = (rng.standard_normal(lmap.weight_shape), rng.standard_normal(lmap.bias_shape))
    c = lmap.weight_shape[-1]
    G = np.concatenate([g[0].reshape(-1, c), g[1].reshape(1, c)])
    D = cholesky_solve(S.chol, G)
    got = S.solve_P(g)
    assert rel(got[0], D[:-1].reshape(lmap.weight_shape)) <= 1e-10 and rel(got[1], D[-1]) <= 1e-10
    r1 = prob.solve_fast(strategy="gram", tol=1e-10)
    r2 = prob.solve_fast(strategy="fista", tol=1e-10)
    assert r1.converged and math.isclose(r1.objective, r2.objective, rel_tol=1e-9)
    assert WHidden(X, Y, linear_map=lmap).strategy_state(Gram()).inv is None


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")
@pytest.mark.parametrize("ratio", [0, 4])
@pytest.mark.parametrize("lmap", [Conv2D((9, 8, 3), 4, (3, 3)), Conv2D((9, 8, 3), 4, (3, 2), padding="same"),
                                  Chain([AvgPool2D((8, 8, 3), 2), Conv2D((4, 4, 3), 2, (3, 3)),
                                         Flatten((2, 2, 2))]),
                                  Chain([AvgPool2D((4, 4, 2), 2), Flatten((2, 2, 2)), Dense(8, 3)])])
def test_operators_on_cupy_equal_numpy(lmap, ratio, monkeypatch):
    cp_ = get_backend("cupy")
    monkeypatch.setattr(conv_mod, "_MAX_TOEPLITZ_RATIO", ratio)
    X, W, b, G = _arrays(lmap, 4, 7)
    dX, dW_, db_, dG = (cp_.asarray(a) for a in (X, W, b, G))
    fi, fd = lmap.fixed_input(X), lmap.fixed_input(dX)
    assert rel(to_numpy(fd.apply(dW_, db_)), fi.apply(W, b)) <= 1e-12
    for a, r in zip(fd.adjoint(dG), fi.adjoint(G)):
        assert rel(to_numpy(a), r) <= 1e-12
    fd.gram()
    assert math.isclose(fd.lipschitz(), fi.lipschitz(), rel_tol=1e-9)
    wi, wd = lmap.fixed_weights(W, b), lmap.fixed_weights(dW_, db_)
    assert rel(to_numpy(wd.apply(dX)), wi.apply(X)) <= 1e-12
    assert rel(to_numpy(wd.adjoint(dG)), wi.adjoint(G)) <= 1e-12
    assert math.isclose(wd.lipschitz(), wi.lipschitz(), rel_tol=1e-6)


def test_sample_space_started_at_the_ridge_centre():
    """The trainer's warm start (x0 = W0 with rho = 0, the ridge centre) skips the change of
    coordinates of the start (C0 = 0 exactly) and reaches the Gram strategy's solution."""
    rng = np.random.default_rng(4)
    X = rng.random((12, 30))
    Y = np.abs(rng.standard_normal((12, 5)))
    W0, b0 = 0.1 * rng.standard_normal((30, 5)), 0.1 * rng.standard_normal(5)
    prob = WHidden(X, Y, rho=0.0, gamma=0.3, W0=W0, b0=b0)
    r1 = prob.solve_fast((W0, b0), strategy="sample-space", tol=1e-11)
    r2 = prob.solve_fast((W0, b0), strategy="gram", tol=1e-11)
    assert r1.method == "sample-space" and r1.converged
    assert math.isclose(r1.objective, r2.objective, rel_tol=1e-10)
    assert rel(r1.x[0], r2.x[0]) <= 1e-7
