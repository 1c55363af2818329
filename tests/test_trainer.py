"""BCD pass and trainer: monotone relaxed objective with exact steps, gradient W-steps from the
subproblem, Adam, W-step strategies in the history, lifted prediction and the lower bound against
CVXPY, checkpoint/resume reproducibility, the estimator and its defaults."""

import warnings

import numpy as np
import pytest

from cvx_fenchel import bcd
from cvx_fenchel.config import TrainConfig
from cvx_fenchel.errors import ConvergenceWarning, InputError, UnknownNameError
from cvx_fenchel.estimator import FenchelClassifier
from cvx_fenchel.network import Layer, Network
from cvx_fenchel.trainer import BCDTrainer, lower_bound, lower_bound_curve, predict_lifted

TIGHT = dict(tol_x=1e-9, tol_w=1e-9, max_iter_x=5000, max_iter_w=5000)


def Dense(n_out, activation="relu", **kw):
    return Layer("dense", n_out=n_out, activation=activation, **kw)


def _data(m, shape, k, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m,) + tuple(shape))
    y = rng.integers(0, k, m)
    return X, np.eye(k)[y], y


def _dense(loss="cross_entropy", rho=0.01, **kw):
    # rho > 0 makes every W-step strongly convex, so the exact solves converge fast
    return Network((6,), [Dense(5, lam=1.5), Dense(4, lam=0.8), Dense(3, None)], loss=loss, rho=rho, **kw)


def _conv():
    return Network((6, 6, 1), [Layer("conv2d", c_out=2, kernel=3, lam=1.0), Layer("avgpool2d", size=2),
                               Layer("flatten"), Dense(3, None)], rho=0.01)


@pytest.mark.parametrize("make, shape, loss", [
    (lambda: _dense("cross_entropy"), (6,), "cross_entropy"),
    (lambda: _dense("mse", rho=0.05), (6,), "mse"),
    (_conv, (6, 6, 1), "cross_entropy"),
])
def test_exact_bcd_steps_never_increase_relaxed_objective(make, shape, loss):
    """With coef = 1 every step minimises J over its block, so J is non-increasing step by step
    (Algorithm 1, gamma = 0), and the X-steps move X away from the feed-forward point; bcd_pass
    (two sweeps) ends at the same point as the steps one by one."""
    net = make()
    X, Y, y = _data(12, shape, 3)
    cfg = TrainConfig(algorithm="full", K=2, dtype="float64", **TIGHT)
    W = net.init_weights(1)
    Xs, Yd = bcd.feed_forward(net, W, X, Y, np)
    J = lambda W, Xs: net.relaxed_objective(Xs, Yd, W, W)  # noqa: E731
    values = [J(W, Xs)]
    w, xs = list(W), list(Xs)
    for _ in range(2):
        for l in range(net.L, 0, -1):
            xs, _ = bcd.x_step(net, cfg, w, xs, Yd, l)
            values.append(J(w, xs))
        for l in range(net.L, -1, -1):
            w, _, method, _ = bcd.w_step(net, cfg, w, xs, Yd, W, l)
            values.append(J(w, xs))
    diffs = np.diff(values)
    assert np.all(diffs <= 1e-8 * max(1.0, abs(values[0]))), diffs
    assert values[-1] < values[0] - 1e-3
    before = [x.copy() for x in Xs] + [a.copy() for pair in W for a in pair]
    res = bcd.bcd_pass(net, cfg, W, Xs, Yd, W)
    assert J(res.weights, res.Xs) == pytest.approx(values[-1], rel=1e-12)
    after = list(Xs) + [a for pair in W for a in pair]
    assert all(np.array_equal(u, v) for u, v in zip(before, after))  # arguments not modified


def test_sweep_order_w_first_and_index_errors(monkeypatch):
    net = _dense()
    X, Y, _ = _data(8, (6,), 3)
    calls = []
    monkeypatch.setattr(bcd, "x_step", lambda n, c, w, xs, Y, l: calls.append(("x", l)) or
                        (xs, type("R", (), {"converged": True})()))
    monkeypatch.setattr(bcd, "w_step", lambda n, c, w, xs, Y, W0, l, adam: calls.append(("w", l)) or
                        (w, adam, "m", True))
    W = net.init_weights(0)
    Xs, Yd = bcd.feed_forward(net, W, X, Y, np)
    bcd.bcd_pass(net, TrainConfig(w_first=True, K=1), W, Xs, Yd, W)
    assert calls == [("w", 2), ("w", 1), ("w", 0), ("x", 2), ("x", 1)]
    calls.clear()
    bcd.bcd_pass(net, TrainConfig(K=2), W, Xs, Yd, W)
    assert calls == [("x", 2), ("x", 1), ("w", 2), ("w", 1), ("w", 0)] * 2
    monkeypatch.undo()
    with pytest.raises(InputError, match="x_step index"):
        bcd.x_problem(net, W, Xs, Yd, 0)
    with pytest.raises(InputError, match="w_step index"):
        bcd.w_problem(net, Xs, Yd, W, 3)
    with pytest.raises(InputError, match="no batch loaded"):
        BCDTrainer(net).relaxed_objective()
    with pytest.raises(UnknownNameError):
        BCDTrainer(net, algorithm="minibatch")
    with pytest.raises(InputError, match="Y must have shape"):
        BCDTrainer(net).init_batch(X, Y[:, :2])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gradient_w_step_uses_the_subproblem_gradient(optimizer):
    """w_step="gradient" moves (W_l, b_l) along problem.grad of the W-subproblem (ridge and
    proximal terms included): sgd by exactly lr * grad, Adam's first step by lr * sign(grad)."""
    net = _dense(rho=0.3, gamma=0.7)
    X, Y, _ = _data(9, (6,), 3, seed=4)
    W = net.init_weights(2)
    Xs, Yd = bcd.feed_forward(net, W, X, Y, np)
    rng = np.random.default_rng(5)
    W0 = [(A + 0.1 * rng.standard_normal(A.shape), b + 0.1) for A, b in W]
    Xs[1] = Xs[1] + rng.random(Xs[1].shape)  # off the feed-forward point
    for lr in (0.01, (0.03, 0.002, 0.01)):  # one step size, or one per weighted layer
        cfg = TrainConfig(w_step="gradient", optimizer=optimizer, lr=lr, dtype="float64")
        for l in range(3):
            g = bcd.w_problem(net, Xs, Yd, W0, l).grad(W[l])
            new, adam, method, conv = bcd.w_step(net, cfg, W, Xs, Yd, W0, l, {})
            assert method == optimizer and conv
            step = [g_ if optimizer == "sgd" else g_ / (np.abs(g_) + 1e-8) for g_ in g]
            lr_l = lr if isinstance(lr, float) else lr[l]
            assert cfg.lr_of(l) == lr_l
            for a, b, s in zip(W[l], new[l], step):
                np.testing.assert_allclose(b, a - lr_l * s, rtol=1e-10, atol=1e-14)
            assert (l in adam) == (optimizer == "adam")


def test_adam_step_formula_and_gradient_training():
    x = (np.array([1.0, -2.0]), np.array([0.5]))
    g = (np.array([0.3, -0.1]), np.array([2.0]))
    out, mom = bcd.adam_step(x, g, None, lr=0.01)
    # first Adam step: m_hat = g, v_hat = g^2, so x - lr * g / (|g| + eps)
    for a, d, o in zip(x, g, out):
        np.testing.assert_allclose(o, a - 0.01 * d / (np.abs(d) + 1e-8), rtol=1e-12)
    assert mom.t == 1
    out2, mom2 = bcd.adam_step(out, g, mom, lr=0.01)
    assert mom2.t == 2 and np.allclose(mom2.m[0], 0.9 * 0.1 * g[0] + 0.1 * g[0])
    net = _dense()
    X, Y, y = _data(40, (6,), 3)
    for optimizer in ("adam", "sgd"):
        tr = BCDTrainer(net, w_step="gradient", optimizer=optimizer, lr=1e-3, seed=0, batch_size=10)
        before = [W.copy() for W, _ in tr.weights]
        tr.fit(X, Y, y, epochs=1)
        assert all(not np.array_equal(a, W) for a, (W, _) in zip(before, tr.weights))
        assert tr.history.batches[0]["w_methods"] == [optimizer] * 3


def test_history_records_the_w_step_strategy_of_every_layer():
    """Each batch record names, per layer, the strategy its W-step took (FastResult.method):
    the MSE output layer of a dense net is a ridge closed form; hidden layers with few samples
    and rho + gamma > 0 run in sample space."""
    net = Network((6,), [Dense(5, lam=1.5, rho=0.1), Dense(3, None, rho=0.1)], loss="mse")
    X, Y, y = _data(8, (6,), 3)
    tr = BCDTrainer(net, batch_size=4, seed=0)
    tr.fit(X, Y, y, epochs=1)
    methods = [r["w_methods"] for r in tr.history.batches]
    assert len(methods) == 2
    for m in methods:
        assert m[1] == "closed-form"
        assert m[0] in ("sample-space", "gram", "fista", "closed-form") and m[0] == "sample-space"


def test_predict_lifted_mse_is_feed_forward_and_ce_matches_cvxpy():
    rng = np.random.default_rng(0)
    net = Network((4,), [Dense(3, lam=2.0), Dense(3, None)])
    w = net.init_weights(7)
    w = [(W * 3, b) for W, b in w]
    X = rng.random((4, 4))
    pred, vals = predict_lifted(net, w, X, return_objective=True, tol=1e-11, max_iter=20000)
    assert np.array_equal(pred, vals.argmin(axis=1))
    # J_k per sample equals the CVXPY optimum of the X-last problem with Y = e_k
    from cvx_fenchel.subproblems import XLast
    U0 = net.pre_activation(0, X, w)
    for k in range(3):
        Y = np.zeros((1, 3))
        Y[0, k] = 1
        for i in range(4):
            prob = XLast(Y, U0[i:i + 1], *w[1], "relu", loss="cross_entropy", lam_prev=2.0, coef=1.0)
            _, res = prob.solve_cvxpy("CLARABEL")
            assert vals[i, k] == pytest.approx(res.objective, rel=1e-6, abs=1e-7)
    mse = Network((4,), [Dense(3), Dense(3, None)], loss="mse")
    wm = mse.init_weights(1)
    assert np.array_equal(predict_lifted(mse, wm, X), mse.forward(X, wm).argmax(axis=1))


def test_lower_bound_certificate_below_network_loss_nondecreasing_and_matches_cvxpy():
    net = Network((5,), [Dense(4, lam=1.0), Dense(3, None)])
    w = [(W * 2, b) for W, b in net.init_weights(3)]
    X, Y, _ = _data(6, (5,), 3, seed=2)
    curve = lower_bound_curve(net, w, X, Y, [0.01, 0.1, 1.0, 10.0, 100.0], tol=1e-11, max_iter=50000)
    Gs = [c.G for c in curve]
    p = curve[0].p
    assert p == pytest.approx(net.network_loss(X, Y, w), rel=1e-12)
    assert all(G <= p + 1e-9 for G in Gs)
    assert all(b >= a - 1e-8 for a, b in zip(Gs, Gs[1:]))
    assert p - Gs[-1] < p - Gs[0]
    cv = lower_bound(net, w, X, Y, 1.0, method="cvxpy")
    assert cv.G == pytest.approx(curve[2].G, rel=1e-6) and cv.method == "cvxpy"
    with pytest.raises(InputError, match="one hidden layer"):
        lower_bound(_dense(), _dense().init_weights(0), X[:, :5].repeat(2, 1)[:, :6], Y)


def _train(tr, X, Y, y, epochs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return tr.fit(X, Y, y, epochs=epochs, **kw)


def test_resume_from_checkpoint_gives_identical_weights(tmp_path):
    net = Network((6,), [Dense(5, lam=2.0, gamma=1.0), Dense(3, None, gamma=5.0, coef=3.0)])
    X, Y, y = _data(30, (6,), 3, seed=3)
    kw = dict(seed=11, tol_x=1e-6, tol_w=1e-6, max_iter_x=50, max_iter_w=50, batch_size=10)
    straight = BCDTrainer(net, **kw)
    _train(straight, X, Y, y, 2)
    # 1 epoch, checkpoint, fresh process state, resume for the 2nd epoch
    first = BCDTrainer(net, **kw)
    _train(first, X, Y, y, 1, checkpoint_dir=tmp_path / "a")
    resumed = BCDTrainer.load(tmp_path / "a")
    assert (resumed.epoch, resumed.batch) == (1, 0)
    _train(resumed, X, Y, y, 2)
    for (W1, b1), (W2, b2) in zip(straight.weights, resumed.weights):
        assert np.array_equal(W1, W2) and np.array_equal(b1, b2)
    assert len(resumed.history.batches) == len(straight.history.batches) == 6
    # killed in the middle of epoch 2 (after batch 2 of 3), resumed from the last checkpoint
    killed = BCDTrainer(net, w_step="gradient", **kw)

    def kill(tr, rec):
        if rec["epoch"] == 2 and rec["batch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(killed, X, Y, y, 2, checkpoint_dir=tmp_path / "b", checkpoint_every=1, callback=kill)
    again = BCDTrainer.load(tmp_path / "b")
    assert (again.epoch, again.batch) == (1, 2) and sorted(again.state.adam) == [0, 1]
    _train(again, X, Y, y, 2)
    ref = BCDTrainer(net, w_step="gradient", **kw)
    _train(ref, X, Y, y, 2)
    for (W1, b1), (W2, b2) in zip(ref.weights, again.weights):
        assert np.array_equal(W1, W2) and np.array_equal(b1, b2)
    assert [r["relaxed_objective"] for r in again.history.batches] == \
        [r["relaxed_objective"] for r in ref.history.batches]
    assert again.config == ref.config
    # Algorithm 1 keeps its lifted X across epochs: they travel in the checkpoint
    full = dict(kw, algorithm="full")
    ref = BCDTrainer(net, **full)
    _train(ref, X, Y, y, 3)
    part = BCDTrainer(net, **full)
    _train(part, X, Y, y, 2, checkpoint_dir=tmp_path / "c")
    cont = BCDTrainer.load(tmp_path / "c")
    _train(cont, X, Y, y, 3)
    for (W1, b1), (W2, b2) in zip(ref.weights, cont.weights):
        assert np.array_equal(W1, W2) and np.array_equal(b1, b2)


def test_full_batch_algorithm_and_history(tmp_path):
    net = _dense()
    X, Y, y = _data(20, (6,), 3)
    tr = BCDTrainer(net, algorithm="full", **TIGHT)
    tr.fit(X, Y, y, epochs=3, X_test=X, y_test=y)
    J = tr.history.series("relaxed_objective", "epochs")
    assert len(J) == 3 and J[2] <= J[1] + 1e-8 <= J[0] + 2e-8
    rec = tr.history.epochs[-1]
    for key in ("test_accuracy", "train_accuracy", "network_loss", "time_x", "time_w"):
        assert key in rec
    tr.history.save(tmp_path / "h.json")
    tr.history.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0


def test_estimator_fit_predict_and_validation():
    X, _, y = _data(60, (6,), 3, seed=1)
    clf = FenchelClassifier(arch="6-8-3", lam=1.0, epochs=2, batch_size=20, seed=0, backend="numpy",
                            dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, X_test=X, y_test=y)
        proba = clf.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert np.array_equal(clf.predict(X), proba.argmax(axis=1))
        assert clf.score(X, y) == pytest.approx(np.mean(clf.predict(X) == y))
        assert [W.shape for W, _ in clf.weights_] == [(6, 8), (8, 3)]
        assert len(clf.history_.epochs) == 2 and "test_accuracy" in clf.history_.epochs[-1]
        clf.partial_fit(X, y)
        assert len(clf.history_.epochs) == 3
    with pytest.raises(InputError, match="labels outside"):
        FenchelClassifier(arch="6-8-3").fit(X, y + 1)
    with pytest.raises(InputError, match="NaN"):
        FenchelClassifier(arch="6-8-3").fit(np.full_like(X, np.nan), y)
    with pytest.raises(InputError, match="shape"):
        FenchelClassifier(arch="7-8-3").fit(X, y)
    with pytest.raises(UnknownNameError):
        FenchelClassifier(arch="6-8-3", loss="hinge").fit(X, y)
    with pytest.raises(UnknownNameError):
        FenchelClassifier(arch=((6,), [Dense(4, "swish"), Dense(3, None)])).fit(X, y)
    with pytest.raises(InputError, match="not fitted"):
        FenchelClassifier().predict(X)


@pytest.mark.slow
def test_original_settings_full_mnist_one_epoch():
    from pathlib import Path
    from cvx_fenchel.datasets import load_mnist
    d = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
    if not d.is_dir():
        pytest.skip("full MNIST not found")
    Xtr, ytr, Xte, yte = load_mnist(d, normalize=True, flatten=True)
    clf = FenchelClassifier()  # the main command's config: original settings, 1 epoch, float32
    clf.fit(Xtr, ytr, X_test=Xte, y_test=yte)
    assert clf.history_.epochs[-1]["test_accuracy"] >= 0.93  # measured 0.9383 (README)


def test_history_tracks_the_certificate_per_epoch_and_plots_it(tmp_path):
    """One hidden layer: every epoch records G_W(lam) <= p(W) on its last batch."""
    import json
    from cvx_fenchel.history import History
    rng = np.random.default_rng(3)
    X = rng.random((60, 8))
    y = rng.integers(0, 3, 60)
    net = Network((8,), [Dense(6, "relu", lam=2.0), Dense(3, None)], loss="cross_entropy")
    tr = BCDTrainer(net, seed=0, batch_size=30, tol_x=1e-6, tol_w=1e-6, max_iter_x=200, max_iter_w=200)
    tr.fit(X, np.eye(3)[y], y, epochs=2)
    eps = tr.history.epochs
    assert len(eps) == 2
    for e in eps:
        assert e["lower_bound"] <= e["lower_bound_p"] + 1e-9 * max(1.0, abs(e["lower_bound_p"]))
        assert e["lower_bound"] > 0
    tr.history.save(tmp_path / "h.json")
    h = History.load(tmp_path / "h.json")
    fig = h.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    assert json.loads((tmp_path / "h.json").read_text())["epochs"][1]["lower_bound"] == eps[1]["lower_bound"]
    del fig


def test_atomic_write_gives_normal_permissions_and_replaces(tmp_path):
    import os
    import stat
    from cvx_fenchel.history import atomic_write_bytes
    p = tmp_path / "out.json"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert [q.name for q in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_estimator_defaults_are_the_main_commands_config():
    """FenchelClassifier() with every default builds exactly the config of `cvx-fenchel train`;
    a given parameter that the preset fixes overrides it and is recorded."""
    from cvx_fenchel.experiments import fenchel_config
    from cvx_fenchel.config import preset
    assert FenchelClassifier().make_config() == fenchel_config({}) == preset("original")
    clf = FenchelClassifier(lam=1.0, batch_size=100)
    cfg = clf.make_config()
    assert cfg.lam == 1.0 and cfg.overrides == ("lam",) and cfg.gamma == (10.0, 100.0 * 100)
    assert FenchelClassifier(arch="6-8-3").make_config().preset == "plain"
    assert FenchelClassifier(settings=None).make_config() == TrainConfig()
    params = FenchelClassifier(lr=0.1).get_params()
    assert params["lr"] == 0.1 and params["settings"] == "auto"
    assert FenchelClassifier(**params).get_params() == params  # sklearn clone()


def test_estimator_one_epoch_on_the_shipped_subset_matches_the_main_command():
    """1 epoch with the defaults on the embedded MNIST subset: the main command's 0.9160
    (README), within 0.01 (images given as (n, 28, 28), flattened by the estimator)."""
    from cvx_fenchel.datasets import load_mnist
    Xtr, ytr, Xte, yte = load_mnist(normalize=True)
    clf = FenchelClassifier(backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    assert abs(clf.score(Xte, yte) - 0.9160) <= 0.01


def test_checkpoints_of_the_previous_format_still_load(tmp_path):
    """Format 1 (before TrainConfig): ``settings`` dict, Adam's step counts under adam.t, layer
    dicts with every field; the trainer continues from them."""
    import json
    net = Network((6,), [Dense(5, lam=2.0), Dense(3, None)])
    W = net.init_weights(0)
    arrays = {f"{k}_{l}": a for l, pair in enumerate(W) for k, a in zip("Wb", pair)}
    for l, (A, b) in enumerate(W):
        for key in "mv":
            arrays.update({f"adam_{key}_{l}_0": np.zeros_like(A), f"adam_{key}_{l}_1": np.zeros_like(b)})
    np.savez(tmp_path / "weights-1-0.npz", **arrays)
    settings = {"seed": 3, "algorithm": "batched", "K": 1, "w_first": False, "w_step": "gradient",
                "optimizer": "adam", "lr": 0.001, "tol_x": 1e-05, "tol_w": 1e-05, "max_iter_x": 50,
                "max_iter_w": 30}
    state = {"format": 1, "npz": "weights-1-0.npz", "network": net.to_dict(), "settings": settings,
             "epoch": 1, "batch": 0, "rng_state": np.random.default_rng(3).bit_generator.state,
             "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "t": {"0": 4, "1": 4}},
             "history": {"meta": {}, "batches": [], "epochs": [{"epoch": 1}]}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    tr = BCDTrainer.load(tmp_path)
    assert (tr.epoch, tr.batch, tr.config.seed, tr.config.w_step) == (1, 0, 3, "gradient")
    assert {l: m.t for l, m in tr.state.adam.items()} == {0: 4, 1: 4}
    assert tr.config.dtype == "float64" and np.array_equal(tr.weights[0][0], W[0][0])
    X, Y, y = _data(20, (6,), 3)
    tr.fit(X, Y, y, epochs=2)
    assert len(tr.history.epochs) == 2 and tr.state.adam[0].t > 4
