"""A newcomer's traps (issue 13): bad values get a clear error naming the argument before any
training starts, never a silent default or a silent wrong answer."""

import numpy as np
import pytest

from cvx_fenchel import FenchelClassifier, load_mnist
from cvx_fenchel.cli import main
from cvx_fenchel.config import preset
from cvx_fenchel.errors import InputError


@pytest.fixture(scope="module")
def subset():
    X, y, _, _ = load_mnist()
    return X[:300], y[:300]


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be an integer >= 1, got 0"),
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("lam", 0.0, "lam must be > 0.0, got 0.0"),
    ("lam", -1.0, "lam must be > 0.0, got -1.0"),
    ("rho", -0.1, "rho must be >= 0.0, got -0.1"),
])
def test_zero_and_negative_values_are_errors_naming_the_argument(field, value, message):
    with pytest.raises(InputError, match=message):
        preset("auto", **{field: value})


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--lam", "0"], "lam must be > 0.0"),
])
def test_cli_rejects_zero_values_before_training(flags, message, tmp_path, capsys):
    assert main(["train", *flags, "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "history.json").exists()


def test_raw_uint8_pixels_are_refused_with_how_to_scale(subset):
    X, y = subset
    assert X.dtype == np.uint8 and X.max() == 255
    with pytest.raises(InputError, match=r"integer pixel values up to 255.*X / 255\.0.*normalize=True"):
        FenchelClassifier().fit(X, y)


def test_batch_larger_than_the_data_is_an_error(subset):
    X, y = subset
    with pytest.raises(InputError, match="batch_size 500 is larger than the 300 training samples"):
        FenchelClassifier().fit(X / 255.0, y)


# ---- reproduce: one folder per figure and data set; requirements checked first ----------------
def test_reproduce_folders_are_per_figure_and_data_set():
    from cvx_fenchel.reproduce import commands, figure_folder
    assert figure_folder("runs/reproduce", "fig2", None).as_posix() == "runs/reproduce/fig2-subset"
    assert figure_folder("runs/reproduce", "fig2", "/data/mnist").as_posix() == "runs/reproduce/fig2-full"
    sub = commands("fig2", models=["fenchel"])[0]
    full = commands("fig2", models=["fenchel"], data_dir="/data/mnist")[0]
    assert sub[sub.index("--out") + 1] == "runs/reproduce/fig2-subset/fenchel"
    assert full[full.index("--out") + 1] == "runs/reproduce/fig2-full/fenchel"


def test_reproduce_never_merges_rows_of_other_data(tmp_path, capsys):
    import json
    from cvx_fenchel.reproduce import FIGURES, _merge_previous
    path = tmp_path / "results.json"
    old = {"figure": "fig2", "runs": [
        {"model": "sgd", "data": "/data/mnist", "seed": 0, "backend": "auto", "test_accuracy": 0.93},
        {"model": "adam", "data": "embedded MNIST subset", "seed": 0, "backend": "auto", "test_accuracy": 0.9}]}
    path.write_text(json.dumps(old))
    new = [{"model": "fenchel", "data": "embedded MNIST subset", "seed": 0, "backend": "auto"}]
    rows = _merge_previous(path, "fig2", FIGURES["fig2"], new)
    assert [r["model"] for r in rows] == ["adam", "fenchel"]  # the full-MNIST sgd row is left out
    assert "left out of this table" in capsys.readouterr().out


def test_reproduce_checks_every_models_requirements_before_running(monkeypatch, tmp_path):
    import importlib.util
    from cvx_fenchel import reproduce as rep
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    ran = []
    monkeypatch.setattr(rep, "train", lambda *a, **k: ran.append(a))
    with pytest.raises(InputError, match=r"model\(s\) sgd, adam need torch: pip install 'cvx-fenchel\[baselines\]'"):
        rep.reproduce("fig2", out=str(tmp_path))
    assert ran == []  # nothing trained before the error


# ---- --out is checked before any work -------------------------------------------------------
def test_out_holding_a_run_is_refused_before_training_unless_overwrite(tmp_path, monkeypatch):
    from cvx_fenchel import experiments
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.json").write_text("{}")
    monkeypatch.setattr(experiments, "load_data", lambda *a: pytest.fail("data loaded before --out was checked"))
    with pytest.raises(InputError, match=r"already holds a run .*--overwrite"):
        experiments.train("fenchel", {}, out=out)
    assert experiments.check_out(out, overwrite=True) == out


def test_out_that_is_a_file_or_unwritable_is_refused(tmp_path):
    from cvx_fenchel.experiments import check_out
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_out(f)
    with pytest.raises(InputError, match="is not writable"):
        check_out(f / "sub")  # a folder below a file cannot be created


# ---- what native solver code prints is captured, not leaked ----------------------------------
def test_native_solver_output_is_captured_into_the_result(capfd):
    import ctypes
    from cvx_fenchel.cvx import captured_native_output
    libc = ctypes.CDLL(None)
    with captured_native_output() as printed:
        libc.printf(b"WARNING - large complementary slackness residual: 0.000015\n")
        libc.fflush(None)
    assert printed == ["WARNING - large complementary slackness residual: 0.000015"]
    out, err = capfd.readouterr()
    assert "slackness" not in out + err


# ---- exact solves that used to fail on defaults ------------------------------------------------
def test_cvxpy_lower_bound_falls_back_across_solvers_where_clarabel_is_inaccurate():
    """At weights after one epoch, 20 samples in float32 (the training dtype): Clarabel ends 'optimal_inaccurate' and ECOS fails
    on this X-last-ce problem; solver='auto' (the default) goes on to the next solver and says
    which it used, and the bound agrees with the fast path's."""
    import warnings
    from cvx_fenchel import subproblems as sp
    from cvx_fenchel.errors import SolverError
    X, y, _, _ = load_mnist(normalize=True)
    X = X.reshape(len(X), -1)[:2000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = FenchelClassifier().fit(X, y[:2000])
    (W0, b0), (W1, b1) = clf.weights_
    args = (X[:20].astype(np.float32), np.eye(10, dtype=np.float32)[y[:20]], W0, b0, W1, b1, "relu")
    try:  # on this machine Clarabel ends 'optimal_inaccurate' here (float32 rounding may differ elsewhere)
        sp.lower_bound(*args, lam=2.0, method="cvxpy", solver="CLARABEL")
    except SolverError as exc:
        assert "CLARABEL returned status" in str(exc)
    exact = sp.lower_bound(*args, lam=2.0, method="cvxpy")
    fast = sp.lower_bound(*args, lam=2.0, tol=1e-9, max_iter=20000)
    assert exact.G <= exact.p
    assert abs(exact.G - fast.G) <= 1e-5 * max(1.0, abs(fast.G))


def test_objective_clips_rounding_outside_the_domain_and_refuses_real_violations():
    """A conic solver's ReLU-layer solution has entries like -1e-12 (outside Z >= 0): the objective
    evaluates it (clipped, as it would be had the solver rounded the other way) instead of inf; a
    point 1e-3 outside is an error naming the violation."""
    from cvx_fenchel.subproblems import XLast
    rng = np.random.default_rng(0)
    U = rng.standard_normal((5, 4))
    sub = XLast(np.eye(3)[rng.integers(0, 3, 5)], U, rng.standard_normal((4, 3)), np.zeros(3), "relu",
                lam_prev=1.0)
    Z, res = sub.solve_cvxpy("CLARABEL")
    Z = np.where(Z <= 1e-10, -1e-12, Z)  # what a solver may hand back on the boundary
    assert Z.min() < 0
    f = sub.objective(Z)
    assert np.isfinite(f) and abs(f - res.objective) <= 1e-6 * max(1.0, abs(res.objective))
    with pytest.raises(InputError, match=r"outside the domain \[0.0, inf\] by 0.001"):
        sub.objective(np.where(Z <= 0, -1e-3, Z))


# ---- converged=True is a certified bound ------------------------------------------------------
def test_ill_conditioned_output_w_step_no_longer_claims_convergence():
    """Features of scale 2e4, rho = 0.1 (issue 13, point 11): with FISTA steps the scale-free
    residual meets 1e-10 while the objective is still ~3e-6 above CVXPY's. With mu = 2 rho the
    certified bound ||grad f||^2 / (2 mu) exposes it: converged is False and the note says why.
    The default conjugate-gradient steps (issue 12) do not claim convergence either before their
    bound holds, and their bound always covers the true excess."""
    import warnings
    from cvx_fenchel.errors import ConvergenceWarning
    from cvx_fenchel.subproblems import WLast
    from cvx_fenchel.subproblems.strategies import SampleSpace
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 5)) * 2e4
    Y = np.eye(3)[rng.integers(0, 3, 6)]
    sub = WLast(X, Y, loss="cross_entropy", rho=0.1, gamma=0.0, W_shape=(5, 3))
    _, exact = sub.solve_cvxpy("CLARABEL")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = sub.solve_fast(tol=1e-10, max_iter=100_000, strategy=SampleSpace(inner="fista"))
    excess = (r.objective - exact.objective) / max(1.0, abs(exact.objective))
    assert r.residual <= 1e-10 and excess > 1e-6  # the residual alone would have said "converged"
    assert not r.converged and r.gap_bound > 1e-10 and "certified gap bound" in r.note
    assert excess <= r.gap_bound  # the bound holds
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for cap in (100, 1000):
        r = sub.solve_fast(tol=1e-10, max_iter=cap, warn=False)
        excess = (r.objective - exact.objective) / max(1.0, abs(exact.objective))
        assert r.method == "sample-space" and not r.converged and excess <= r.gap_bound


def test_well_conditioned_w_steps_keep_their_certificate():
    from cvx_fenchel.subproblems import WHidden
    rng = np.random.default_rng(1)
    X, X1 = rng.uniform(size=(8, 4)), np.maximum(rng.standard_normal((8, 3)), 0)
    r = WHidden(X, X1, "relu", lam=1.0, rho=0.1, gamma=0.2, W_shape=(4, 3)).solve_fast(tol=1e-10)
    assert r.converged and 0 <= r.gap_bound <= 1e-10


# ---- "train accuracy" is the training set's -----------------------------------------------------
def test_train_accuracy_is_measured_on_the_training_set_and_batch_accuracies_are_named():
    """Issue 13, point 2: the per-batch number shown used to be the accuracy of the batch the
    W-step had just fitted (0.976 while the network's training-set accuracy was 0.320)."""
    import warnings
    from cvx_fenchel.trainer import BCDTrainer
    X, y, _, _ = load_mnist(normalize=True)
    X, y = X.reshape(len(X), -1)[:1500], y[:1500]
    cfg = preset("auto", batch_size=500, max_iter_x=20, max_iter_w=10)
    tr = BCDTrainer(cfg.network(), cfg)
    w_start = [(W.copy(), b.copy()) for W, b in tr.weights]
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.fit(X, np.eye(10, dtype=np.float32)[y], y, epochs=1,
               callback=lambda t, rec: seen.append([(W.copy(), b.copy()) for W, b in t.weights]))
    net = tr.network
    first = tr.history.batches[0]
    order = tr.epoch_order(0, len(X))[:500]
    assert first["batch_accuracy_before"] == pytest.approx(net.accuracy(X[order], y[order], w_start))
    assert first["batch_accuracy_after"] == pytest.approx(net.accuracy(X[order], y[order], seen[0]))
    ep = tr.history.epochs[0]
    assert ep["train_accuracy"] == pytest.approx(net.accuracy(X, y, tr.weights))
    assert ep["train_accuracy_samples"] == 1500 and "train_accuracy" not in first


# ---- runs that survive a kill ---------------------------------------------------------------
def _small_fit(tmp_path, **kw):
    import warnings
    X, y, _, _ = load_mnist(normalize=True)
    clf = FenchelClassifier(batch_size=250, max_iter_x=5, max_iter_w=5, checkpoint_dir=str(tmp_path), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X.reshape(len(X), -1)[:500], y[:500])


def test_resuming_with_other_settings_is_refused_naming_the_mismatch(tmp_path):
    _small_fit(tmp_path)
    with pytest.raises(InputError, match=r"was made with seed=0.*this run has seed=1"):
        _small_fit(tmp_path, seed=1)


def test_a_truncated_checkpoint_gives_a_named_error(tmp_path):
    _small_fit(tmp_path)
    npz = next(tmp_path.glob("weights-*.npz"))
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(InputError, match="corrupt or truncated"):
        _small_fit(tmp_path)


def test_solver_auto_goes_on_to_the_next_solver_and_says_so(monkeypatch):
    import cvxpy as cp
    from cvx_fenchel import cvx
    from cvx_fenchel.errors import SolverError
    real = cvx.solve

    def flaky(problem, solver="CLARABEL", **kw):
        if str(solver).upper() == "CLARABEL":
            raise SolverError("CLARABEL returned status 'optimal_inaccurate'", status="optimal_inaccurate")
        return real(problem, solver, **kw)

    monkeypatch.setattr(cvx, "solve", flaky)
    x = cp.Variable(2)
    res = cvx._solve_auto(cp.Problem(cp.Minimize(cp.sum_squares(x - 1))), settings=None,
                          accept_inaccurate=False, name="toy")
    assert res.solver == "ECOS" and res.status == "optimal"
    assert "CLARABEL: optimal_inaccurate; then ECOS optimal" in res.messages
    monkeypatch.setattr(cvx, "solve", lambda p, s="x", **kw: (_ for _ in ()).throw(SolverError("no", status="bad")))
    with pytest.raises(SolverError, match="no CVXPY solver reached status 'optimal'"):
        cvx._solve_auto(cp.Problem(cp.Minimize(cp.sum_squares(x))), settings=None, accept_inaccurate=False,
                        name="toy")
