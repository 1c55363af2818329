"""Losses, the ridge term, and the registries of the library's low layers: identities, gradients
against finite differences, CVXPY forms against array code."""

import math

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from cvx_fenchel.activations import (ACTIVATIONS, ReLU, activation_names, example_activation,
                                     get_activation, register_activation, unregister_activation)
from cvx_fenchel.backend import check_int
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.losses import (CROSS_ENTROPY, MSE_LOSS, Loss, get_loss, logsumexp, loss_names,
                                register_loss, softmax, unregister_loss)
from cvx_fenchel.maps import Dense, get_map_class, make_map, map_kinds
from cvx_fenchel.ridge import Ridge

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)


def _onehot(rng, m, k):
    return np.eye(k)[rng.integers(0, k, m)]


# ---- log-sum-exp and softmax ------------------------------------------------------------------
@given(arrays(np.float64, (3, 4), elements=finite))
def test_logsumexp_matches_definition_and_softmax_sums_to_one(O):
    ref = np.log(np.sum(np.exp(O), axis=1))
    np.testing.assert_allclose(logsumexp(O, axis=1), ref, rtol=1e-12, atol=1e-12)
    P = softmax(O, axis=1)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(P), O - ref[:, None], atol=1e-10)


def test_logsumexp_does_not_overflow():
    O = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(logsumexp(O, axis=1), [1000 + math.log(2), -1000 + math.log(2)], rtol=1e-15)
    assert np.all(np.isfinite(softmax(O, axis=1)))


# ---- losses -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mse", "cross_entropy"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_loss_gradient_matches_finite_differences(name, seed):
    loss = get_loss(name)
    rng = np.random.default_rng(seed)
    O = rng.standard_normal((3, 4)) * 3
    Y = loss.example_targets(rng, 3, 4)
    G = loss.grad(Y, O)
    D = rng.standard_normal(O.shape)
    h = 1e-6
    fd = (loss.value(Y, O + h * D) - loss.value(Y, O - h * D)) / (2 * h)
    assert abs(fd - np.sum(G * D)) <= 1e-6 * max(1.0, abs(fd))


def test_cross_entropy_is_minus_log_softmax_at_the_label_and_nonnegative():
    rng = np.random.default_rng(1)
    O = rng.standard_normal((6, 5)) * 4
    y = rng.integers(0, 5, 6)
    Y = np.eye(5)[y]
    per = CROSS_ENTROPY.per_sample(Y, O)
    np.testing.assert_allclose(per, -np.log(softmax(O, axis=1)[np.arange(6), y]), rtol=1e-12)
    assert np.all(per >= 0)
    assert CROSS_ENTROPY.value(Y, O) == pytest.approx(per.sum(), rel=1e-14)


@pytest.mark.parametrize("name", ["mse", "cross_entropy"])
def test_loss_curvature_bound_holds(name):
    """The largest Hessian eigenvalue of one sample's loss is at most ``lipschitz`` (1 for mse;
    diag(p) - pp^T has eigenvalues <= 1/2 for cross-entropy)."""
    loss = get_loss(name)
    rng = np.random.default_rng(2)
    for _ in range(200):
        o = rng.standard_normal(6) * rng.uniform(0.01, 10)
        if name == "mse":
            H = np.eye(6)
        else:
            p = softmax(o[None, :])[0]
            H = np.diag(p) - np.outer(p, p)
        assert np.linalg.eigvalsh(H).max() <= loss.lipschitz + 1e-12


@pytest.mark.parametrize("name", ["mse", "cross_entropy"])
def test_loss_cvxpy_form_equals_array_value(name):
    loss = get_loss(name)
    rng = np.random.default_rng(3)
    O = rng.standard_normal((4, 3))
    Y = loss.example_targets(rng, 4, 3)
    Ov = cp.Variable(O.shape)
    Ov.value = O
    assert float(loss.cvxpy(Y, Ov).value) == pytest.approx(loss.value(Y, O), rel=1e-12)


def test_loss_registry_names_aliases_and_errors():
    assert loss_names()[:2] == ("mse", "cross_entropy")
    assert get_loss("CE") is CROSS_ENTROPY and get_loss("crossentropy") is CROSS_ENTROPY
    assert get_loss(MSE_LOSS) is MSE_LOSS and MSE_LOSS.quadratic and not CROSS_ENTROPY.quadratic
    with pytest.raises(UnknownNameError, match="unknown loss 'hinge'.*mse"):
        get_loss("hinge")
    with pytest.raises(InputError, match="rows on the simplex"):
        CROSS_ENTROPY.check_targets(np.array([[0.5, 0.6]]), "X-last")


def test_register_and_unregister_a_toy_loss():
    class Half(Loss):
        name = "half_mse"

        def per_sample(self, Y, O):
            return 0.25 * np.sum((O - Y) ** 2, axis=1)

        def grad(self, Y, O):
            return 0.5 * (O - Y)

    register_loss(Half())
    try:
        assert "half_mse" in loss_names()
        assert get_loss("half_mse").value(np.zeros((1, 2)), np.ones((1, 2))) == pytest.approx(0.5)
    finally:
        unregister_loss("half_mse")
    assert "half_mse" not in loss_names()


# ---- the ridge term ---------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(rho=st.floats(0, 3), gamma=st.floats(0, 3), seed=st.integers(0, 2**32 - 1))
def test_ridge_gradient_prox_and_centre(rho, gamma, seed):
    rng = np.random.default_rng(seed)
    W0, b0 = rng.standard_normal((4, 3)), rng.standard_normal(3)
    R = Ridge(rho, gamma, W0, b0)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    dW, db = R.grad(W, b)
    DW, Db = rng.standard_normal(W.shape), rng.standard_normal(b.shape)
    h = 1e-6
    fd = (R.value(W + h * DW, b + h * Db) - R.value(W - h * DW, b - h * Db)) / (2 * h)
    assert abs(fd - np.sum(dW * DW) - np.sum(db * Db)) <= 1e-6 * max(1.0, abs(fd))
    # prox: s grad R(x) + x - v = 0 at x = prox_{sR}(v)
    s = 0.7
    xW, xb = R.prox(W, b, s)
    gW, gb = R.grad(xW, xb)
    np.testing.assert_allclose(s * gW + xW - W, 0, atol=1e-12)
    np.testing.assert_allclose(s * gb + xb - b, 0, atol=1e-12)
    if rho + gamma > 0:
        cW, cb = R.center()
        cW = np.zeros_like(W) if cW is None else cW
        cb = np.zeros_like(b) if cb is None else cb
        gW, gb = R.grad(cW, cb)
        np.testing.assert_allclose(gW, 0, atol=1e-12)
        np.testing.assert_allclose(gb, 0, atol=1e-12)
    assert R.curvature == pytest.approx(2 * (rho + gamma))


def test_ridge_cvxpy_form_equals_value_for_a_conv_kernel_as_matrix():
    rng = np.random.default_rng(4)
    W0, b0 = rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4)
    R = Ridge(0.3, 0.8, W0, b0)
    W, b = rng.standard_normal(W0.shape), rng.standard_normal(4)
    Wv, bv = cp.Variable((18, 4)), cp.Variable(4)
    Wv.value, bv.value = W.reshape(18, 4), b
    assert float(R.cvxpy(Wv, bv).value) == pytest.approx(R.value(W, b), rel=1e-12)
    with pytest.raises(InputError, match="rho must be >= 0"):
        Ridge(-1.0, 0.0)


# ---- registries of activations and maps -------------------------------------------------------
def test_activation_registry_order_examples_and_toy_registration():
    assert activation_names() == ("relu", "leaky_relu", "sigmoid", "tanh", "hardtanh", "softplus",
                                  "identity")
    assert example_activation("leaky_relu").slope == 0.1
    assert get_activation("linear").name == "identity"

    @register_activation(aliases=("relu-copy",))
    class ToyReLU(ReLU):
        name = "toy_relu"

    try:
        assert get_activation("relu-copy").name == "toy_relu" and "toy_relu" in ACTIVATIONS
        with pytest.raises(InputError, match="already registered"):
            class Other(ReLU):
                name = "toy_relu"
            register_activation(Other)
    finally:
        unregister_activation("toy_relu")
    assert "toy_relu" not in activation_names()
    with pytest.raises(UnknownNameError):
        get_activation("relu-copy")


def test_map_registry_kinds_aliases_and_examples_are_consistent():
    assert map_kinds() == ("dense", "conv2d", "avgpool2d", "flatten")
    assert get_map_class("pool").name == "avgpool2d"
    assert make_map("conv", (6, 6, 1), c_out=2, kernel=3).out_shape == (4, 4, 2)
    for kind in map_kinds():
        cls = get_map_class(kind)
        found = {}
        for role in ("hidden", "last", "adjoint"):
            ex = cls.examples(role, 3, 2)
            found.update(ex)
            for label, mp in ex.items():
                if role == "last":
                    assert len(mp.out_shape) == 1, label  # class scores
        assert found, f"map kind {kind!r} declares no examples"
    assert Dense.examples("hidden", 3, 2)["dense"] == Dense(3, 2)


def test_check_int():
    assert check_int(np.int64(3), "epochs", 1) == 3
    for bad, msg in [(0, ">= 1"), (2.0, "must be an integer"), (True, "must be an integer"),
                     (11, "<= 10")]:
        with pytest.raises(InputError, match=f"epochs must be .*{msg}" if "=" in msg else msg):
            check_int(bad, "epochs", 1, 10)


def test_registry_aliases_conflicts_and_unknown_names():
    from cvx_fenchel.registry import Registry
    r = Registry("widget")
    r.register("Alpha", 1, aliases=("a",))
    assert r["A"] == 1 and "alpha" in r and list(r) == ["alpha"] and len(r) == 1
    r.register("alpha", 1)  # the same item again: harmless
    with pytest.raises(InputError, match="different widget is already registered as 'alpha'"):
        r.register("alpha", 2)
    with pytest.raises(InputError, match="alias 'a' is already taken by 'alpha'"):
        r.register("beta", 2, aliases=("a",))
    with pytest.raises(UnknownNameError, match=r"unknown widget 'gamma'; choose one of \('alpha',\)"):
        r["gamma"]
    r.unregister("a")
    assert len(r) == 0 and "a" not in r
