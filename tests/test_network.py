"""Network: grouping into lifted layers, validation, initialisation, losses, relaxed objective."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvx_fenchel import maps
from cvx_fenchel.errors import InputError, UnknownNameError
from cvx_fenchel.network import (AvgPool2D, Conv2D, Dense, Flatten, Network, loss_gradient, loss_value,
                                 make_network, network_from_settings, original_settings, preset)
from cvx_fenchel.subproblems import XLast


def test_lenet5_groups_weightless_maps_into_next_weighted_layer():
    net = make_network("lenet5")
    assert len(net.layers) == 5 and net.L == 4
    assert [ly.in_shape for ly in net.layers] == [(32, 32, 1), (28, 28, 6), (10, 10, 16), (120,), (84,)]
    assert [ly.out_shape for ly in net.layers] == [(28, 28, 6), (10, 10, 16), (120,), (84,), (10,)]
    assert isinstance(net.layers[1].linear_map, maps.Chain)
    assert isinstance(net.layers[2].linear_map, maps.Chain)
    assert net.layers[-1].activation is None
    assert all(ly.activation.name == "relu" for ly in net.layers[:-1])
    # the chained map equals applying pool then conv
    rng = np.random.default_rng(0)
    w = net.init_weights(0)
    X1 = rng.random((2, 28, 28, 6))
    pooled = maps.AvgPool2D((28, 28, 6)).apply(X1)
    direct = maps.Conv2D((14, 14, 6), 16).apply(pooled, *w[1])
    np.testing.assert_allclose(net.pre_activation(1, X1, w), direct, rtol=1e-12, atol=1e-12)


def test_dense_preset_and_roundtrip():
    shape, layers = preset("784-300-10")
    assert shape == (784,) and [ly.n_out for ly in layers] == [300, 10]
    net = Network(shape, layers, lam=0.5, gamma=2.0)
    again = Network.from_dict(net.to_dict())
    assert again.to_dict() == net.to_dict()
    assert [ly.lam for ly in again.layers] == [0.5, 0.5] and again.layers[1].gamma == 2.0


@pytest.mark.parametrize("make, match", [
    (lambda: Network((4,), [Dense(3), {"type": "maxpool"}]), "unknown layer type"),
    (lambda: Network((4,), [Dense(3, "swish"), Dense(2, None)]), "unknown activation"),
    (lambda: Network((4,), [Dense(3), Dense(2)]), "output layer must be linear"),
    (lambda: Network((4,), [Dense(3), Dense(2, None), Flatten()]), "followed by a weighted"),
    (lambda: Network((8, 8, 1), [Conv2D(2, 3), Dense(2, None)]), "flat input"),
    (lambda: Network((4, 4, 1), [Conv2D(2, 5), Flatten(), Dense(2, None)]), "larger than the input"),
    (lambda: Network((6, 6, 1), [AvgPool2D(4), Flatten(), Dense(2, None)]), "divisible"),
    (lambda: Network((4,), [Dense(3, lam=-1.0), Dense(2, None)]), "lam of layer 0"),
    (lambda: Network((4,), [Dense(2, None)], loss="hinge"), "unknown loss"),
    (lambda: Network((4,), []), "must not be empty"),
    (lambda: Network((4,), [Flatten()]), "no weighted layer"),
    (lambda: make_network("lenet7"), "unknown architecture"),
    (lambda: original_settings("cifar-vgg"), "unknown original settings"),
])
def test_invalid_architectures_fail_before_training(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_unknown_names_are_unknown_name_errors():
    with pytest.raises(UnknownNameError):
        Network((4,), [Dense(3, "swish"), Dense(2, None)])


def test_initialisation_as_original_code():
    net = make_network("lenet5")
    w = net.init_weights(1)
    for ly, (W, b) in zip(net.layers, w):
        assert W.shape == ly.weight_shape and np.all(b == 0.1)
        if len(W.shape) == 4:  # truncated normal, std 0.1, cut at 2 std
            assert np.max(np.abs(W)) <= 0.2 + 1e-12
        else:  # Glorot uniform
            n_in, n_out = W.shape
            assert np.max(np.abs(W)) <= math.sqrt(6 / (n_in + n_out))
    w2 = net.init_weights(1)
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(w, w2))


def _small_net(loss="cross_entropy", **kw):
    return Network((5,), [Dense(4, lam=0.7), Dense(3, "sigmoid", lam=1.3), Dense(3, None)], loss=loss, **kw)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_relaxed_objective_equals_network_loss_at_feed_forward(loss):
    net = _small_net(loss, rho=0.1, gamma=0.2)
    w = net.init_weights(3)
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((7, 5))
    Y = np.eye(3)[rng.integers(0, 3, 7)]
    Xs, O = net.forward(X0, w, return_all=True)
    parts = net.relaxed_objective(Xs, Y, w, parts=True)
    assert all(abs(d) < 1e-12 for d in parts["divergences"])
    assert parts["loss"] == pytest.approx(net.network_loss(X0, Y, w), rel=1e-13)
    reg = sum(0.1 * (np.sum(W**2) + np.sum(b**2)) for W, b in w)
    assert parts["regularization"] == pytest.approx(reg, rel=1e-12)
    # any other X in the domain costs at least the divergences' zero: J - loss term >= 0
    Xs2 = [Xs[0], Xs[1] + rng.random(Xs[1].shape), np.clip(Xs[2] + 0.1 * rng.standard_normal(Xs[2].shape), 0, 1)]
    assert all(d >= 0 for d in net.relaxed_objective(Xs2, Y, w, parts=True)["divergences"])
    per = net.relaxed_objective_per_sample(Xs2, Y, w)
    assert per.sum() + reg == pytest.approx(net.relaxed_objective(Xs2, Y, w), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), loss=st.sampled_from(["cross_entropy", "mse"]))
def test_loss_gradient_matches_finite_differences(seed, loss):
    rng = np.random.default_rng(seed)
    O = rng.standard_normal((3, 4)) * 3
    Y = np.eye(4)[rng.integers(0, 4, 3)]
    G = loss_gradient(Y, O, loss)
    E = rng.standard_normal(O.shape)
    h = 1e-6
    fd = (loss_value(Y, O + h * E, loss) - loss_value(Y, O - h * E, loss)) / (2 * h)
    assert fd == pytest.approx(float(np.sum(G * E)), rel=1e-6, abs=1e-8)


def test_original_settings_scaling_reproduces_original_x_objective():
    """The original X_1 step minimises 10*CE(Y, X1 W1 + b1) + (v^2 - 2uv + max(u,0)^2) summed;
    with lam = 2 on our B and coef = 10 the XLast objective is the same function."""
    s = original_settings("mnist-784-300-10", batch_size=500)
    net = network_from_settings(s)
    l0, l1 = net.layers
    assert (l0.lam, l0.gamma, l1.gamma, l1.coef) == (2.0, 10.0, 100.0 * 500, 10.0)
    rng = np.random.default_rng(0)
    shape, layers = preset("20-6-3")
    small = Network(shape, [Dense(6, lam=2.0), Dense(3, None, coef=10.0)])
    w = small.init_weights(0)
    X0 = rng.random((5, 20))
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    U0 = small.pre_activation(0, X0, w)
    Z = rng.random((5, 6))
    O = Z @ w[1][0] + w[1][1]
    neo = np.sum(Z**2 - 2 * U0 * Z + np.maximum(U0, 0) ** 2)
    original = 10 * loss_value(Y, O, "cross_entropy") + 1.0 * neo
    prob = XLast(Y, U0, *w[1], "relu", loss="cross_entropy", lam_prev=2.0, coef=10.0)
    assert prob.objective(Z) == pytest.approx(original, rel=1e-12)
    lenet = original_settings("mnist-lenet5")
    net5 = network_from_settings(lenet)
    assert [ly.gamma for ly in net5.layers] == [1e-4, 0.01, 1.0, 1.0, 5000.0]
    assert [ly.coef for ly in net5.layers[1:]] == [1.0, 5.0, 1.0, 5.0]


def test_check_input_and_weights():
    net = _small_net()
    with pytest.raises(InputError, match="shape"):
        net.check_input(np.zeros((3, 4)))
    with pytest.raises(InputError, match="NaN"):
        net.check_input(np.full((3, 5), np.nan))
    with pytest.raises(InputError, match="W of layer 1"):
        net.check_weights([(np.zeros((5, 4)), np.zeros(4)), (np.zeros((3, 3)), np.zeros(3)),
                           (np.zeros((3, 3)), np.zeros(3))])
