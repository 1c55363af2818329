"""``cvx-fenchel reproduce`` and the stop rule of "until convergence" (issue 15).

* :class:`~cvx_fenchel.history.StopRule` against its definition (hypothesis): the objective rule
  holds exactly when each of the last ``window`` relative changes is at most ``rel_tol``, the
  accuracy rule exactly when the last ``acc_window + 1`` accuracies lie in a band of ``acc_tol``;
  both read only the tail of the records and the objective rule is scale-free.
* Every model's loop (Fenchel batched and full, ADMM, Lau BCD, LNN full and batched, SGD) stops
  at the first epoch where an active rule holds, and a resumed Fenchel run that had converged
  trains no further.
* ``train --until-converged`` and ``reproduce fig1`` end to end on a cheap model (Lau et al. BCD)
  with the default rule: the run ends at the first epoch where the rule holds and its row and
  table say why.
* The figures: Fig. 3 is 20 epochs, Fig. 4 is CIFAR-10 with one-gradient-step W-steps, the gap
  studies are labelled variants, fig3's recorded options are those of earlier versions (so
  ``--resume`` recognises runs made by them), ``all`` and CIFAR need ``--cifar-dir``.
* ``--dry-run`` with and without the timed probe; CIFAR-10 rows carry the JPEG note.

Runs use slices of the shipped MNIST subset (and a random 32x32x3 set in the CIFAR-10 layout).
"""

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from cvx_fenchel import cli, experiments
from cvx_fenchel.errors import InputError
from cvx_fenchel.history import StopRule, stopping
from cvx_fenchel.experiments import estimate_seconds
from cvx_fenchel.reproduce import ALL, CIFAR_NOTE, FIGURES, _options, commands, dry_run


# ---- the stop rule ---------------------------------------------------------------------------
def _objective_by_definition(f, rel_tol, window):
    if len(f) < window + 1:
        return False
    return all(abs(f[k] - f[k - 1]) <= rel_tol * abs(f[k - 1]) for k in range(len(f) - window, len(f)))


# (no magnitudes near underflow, where scaling by a power of two stops being exact)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0 or abs(v) >= 1e-200)


@settings(max_examples=300, deadline=None)
@given(f=st.lists(st.one_of(finite, st.sampled_from([1.0, 1.0 + 1e-6, 1.0 - 1e-6, 0.0])), max_size=12),
       rel_tol=st.sampled_from([0.0, 1e-5, 1e-3, 0.5]), window=st.integers(1, 6))
def test_the_objective_rule_is_its_definition(f, rel_tol, window):
    rule = StopRule(rel_tol=rel_tol, window=window)
    recs = [{"objective": v} for v in f]
    assert rule.objective_converged(recs) == _objective_by_definition(f, rel_tol, window)
    # only the tail counts: anything before the last window + 1 records is irrelevant
    assert rule.objective_converged([{"objective": 123.0}, {"objective": -7.0}] + recs[-(window + 1):]) \
        == rule.objective_converged(recs) or len(recs) < window + 1
    # scale-free: multiplying by a power of two (exact in floating point) changes nothing
    assert rule.objective_converged([{"objective": 2.0 ** 7 * v} for v in f]) == \
        rule.objective_converged(recs)


@settings(max_examples=300, deadline=None)
@given(units=st.lists(st.integers(9000, 9999), max_size=14), window=st.integers(1, 11),
       band=st.integers(0, 20))
def test_the_accuracy_rule_is_a_band_of_acc_tol_over_the_last_window(units, window, band):
    """Accuracies on 10,000 test images are multiples of 1e-4: the rule holds exactly when the
    last window + 1 of them span at most ``band`` units (decimal rounding absorbed)."""
    rule = StopRule(acc_tol=band * 1e-4, acc_window=window)
    recs = [{"test_accuracy": u / 10000} for u in units]
    tail = units[-(window + 1):]
    expect = len(units) >= window + 1 and max(tail) - min(tail) <= band
    assert rule.accuracy_flat(recs) == expect
    assert rule.reason(recs) == ("rule: accuracy flat" if expect else None)  # no objective recorded


def test_rule_details():
    rule = StopRule()
    assert (rule.rel_tol, rule.window, rule.acc_tol, rule.acc_window) == (1e-5, 5, 1e-3, 10)
    flat = [{"loss": 2.0, "test_accuracy": 0.5 + 0.01 * k} for k in range(6)]
    assert rule.reason(flat) == "rule: objective" and rule.reason(flat[:5]) is None
    # a missing or non-finite value on the window never counts as converged
    assert rule.reason(flat[:5] + [{"loss": None}]) is None
    assert rule.reason(flat[:5] + [{"loss": math.nan}]) is None
    # the first objective key present wins: the Fenchel relaxed objective before a loss
    mixed = [{"relaxed_objective": float(k), "loss": 1.0} for k in range(6)]
    assert rule.reason(mixed) is None
    # 0.9745 - 0.9735 = 0.0010000000000000009 counts as within 0.1 pp
    assert rule.accuracy_flat([{"test_accuracy": a} for a in [0.9735, 0.9745] * 6])
    assert not rule.accuracy_flat([{"test_accuracy": a} for a in [0.9735, 0.9746] * 6])
    for bad in ({"window": 0}, {"rel_tol": -1.0}, {"acc_window": 1.5}, {"acc_tol": math.inf}):
        with pytest.raises(ValueError, match="StopRule"):
            StopRule(**bad)
    with pytest.raises(TypeError):
        with stopping("yes"):
            pass


# ---- every loop honours it -------------------------------------------------------------------
def _data(n=400, n_test=100):
    from cvx_fenchel.datasets import load_mnist
    X, y, Xt, yt = load_mnist(normalize=True, flatten=True)
    return X[:n], y[:n], Xt[:n_test], yt[:n_test]


#: holds as soon as 3 records with a test accuracy exist (any accuracies lie in a band of 1)
LOOSE = StopRule(acc_tol=1.0, acc_window=2, rel_tol=0.0, window=50)

LOOPS = [
    ("fenchel", {"batch_size": 200, "max_iter_x": 3, "max_iter_w": 3, "backend": "numpy"}),
    ("fenchel", {"loss": "mse", "algorithm": "full", "max_iter_x": 3, "max_iter_w": 3,
                 "backend": "numpy"}),
    ("taylor-admm", {"loss": "mse"}),
    ("lau-bcd", {"loss": "mse"}),
    ("lnn", {"loss": "mse"}),
    ("lnn", {"loss": "mse", "batch_size": 200}),
    ("sgd", {"batch_size": 100}),
]


@pytest.mark.parametrize("model, opts", LOOPS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(LOOPS)])
def test_every_models_loop_stops_at_the_first_epoch_where_the_rule_holds(model, opts):
    if model == "sgd":
        pytest.importorskip("torch")
    X, y, Xt, yt = _data()
    est = experiments.build_model(model, {**opts, "epochs": 6})
    if model == "lnn" and "batch_size" in opts:
        est.n_iter = 2  # sweeps per batch (default 30): the loop over epochs is what is tested
    with threadpool_limits(1), stopping(LOOSE):
        est.fit(X, y, X_test=Xt, y_test=yt)
    ep = est.history_.epochs
    assert LOOSE.reason(ep) == "rule: accuracy flat" and LOOSE.reason(ep[:-1]) is None
    # LNN full batch also records the start (epoch 0): it stops after 2 sweeps, the others after 3
    assert [r["epoch"] for r in ep] == ([0, 1, 2] if (model, opts.get("batch_size")) == ("lnn", None)
                                        else [1, 2, 3])
    # without a rule the same loop runs all its epochs
    est = experiments.build_model(model, {**opts, "epochs": 4})
    if model == "lnn" and "batch_size" in opts:
        est.n_iter = 2
    with threadpool_limits(1):
        est.fit(X, y, X_test=Xt, y_test=yt)
    assert est.history_.epochs[-1]["epoch"] == 4


def test_a_resumed_fenchel_run_that_had_converged_trains_no_further(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "load_data", lambda *a: _data())
    monkeypatch.setattr(experiments, "StopRule", lambda: LOOSE)
    opts = {"batch_size": 200, "max_iter_x": 3, "max_iter_w": 3, "backend": "numpy", "epochs": 5,
            "until_converged": True, "checkpoint_every": 0}
    with threadpool_limits(1):
        res = experiments.train("fenchel", opts, out=tmp_path / "r", quiet=True, log=lambda s: None)
    first = json.loads((tmp_path / "r" / "history.json").read_text())
    assert res["stop_reason"] == first["meta"]["stop_reason"] == "rule: accuracy flat"
    assert len(first["epochs"]) == 3 and first["meta"]["max_epochs"] == 5
    (tmp_path / "r" / "history.json").unlink()  # as if killed before the results were written
    with threadpool_limits(1):
        res = experiments.train("fenchel", {"epochs": 8}, out=tmp_path / "r", quiet=True, resume=True,
                                log=lambda s: None)
    again = json.loads((tmp_path / "r" / "history.json").read_text())
    assert again["epochs"] == first["epochs"] and len(again["batches"]) == len(first["batches"])
    assert res["stop_reason"] == "rule: accuracy flat" and again["meta"]["max_epochs"] == 8


def test_train_until_converged_end_to_end(tmp_path, capsys, monkeypatch):
    """Lau et al. BCD with the default rule: on 400 / 200 images its test accuracy stops moving
    (steps of 0.5 pp) well before 300 sweeps; the run ends at the first sweep where the rule
    holds and records why."""
    monkeypatch.setattr(experiments, "load_data", lambda *a: _data(400, 200))
    out = tmp_path / "bcd"
    with threadpool_limits(1):
        assert cli.main(["train", "--model", "lau-bcd", "--until-converged", "--epochs", "300",
                         "--out", str(out), "--quiet"]) == 0
    hist = json.loads((out / "history.json").read_text())
    ep, meta = hist["epochs"], hist["meta"]
    rule = StopRule()
    assert meta["stop_reason"] == rule.reason(ep) in ("rule: objective", "rule: accuracy flat")
    assert rule.reason(ep[:-1]) is None and len(ep) < 300
    assert meta["options"]["until_converged"] is True and meta["max_epochs"] == 300
    assert meta["stop_rule"] == rule.to_dict()
    printed = capsys.readouterr().out
    assert "until converged: relative change of the objective <= 1e-05 over 5 epochs" in printed
    assert f"stopped after {len(ep)} epochs: {meta['stop_reason']}" in printed
    # without the flag: no rule, the full count, stop_reason "max epochs"
    with threadpool_limits(1):
        assert cli.main(["train", "--model", "lau-bcd", "--epochs", "3", "--out", str(tmp_path / "b3"),
                         "--quiet"]) == 0
    meta3 = json.loads((tmp_path / "b3" / "history.json").read_text())["meta"]
    assert meta3["stop_reason"] == "max epochs" and "until_converged" not in meta3["options"]


def test_train_standardize_feeds_the_model_standardised_inputs(tmp_path, monkeypatch):
    """``--standardize``: the model is fitted and scored on inputs with the training set's mean 0
    and deviation 1 (one channel for flat MNIST), the test set by the training statistics; the
    history records the option, and ``reproduce``'s standardised variants pass the flag."""
    seen = []
    real = experiments.load_data

    def spy(*args):
        out = real(*args)
        seen.append((args, out))
        return out

    monkeypatch.setattr(experiments, "load_data", spy)
    with threadpool_limits(1):
        for flag, name in ((["--standardize"], "std"), ([], "unit")):
            assert cli.main(["train", "--model", "lau-bcd", "--epochs", "1", *flag,
                             "--out", str(tmp_path / name), "--quiet"]) == 0
    (_, (Xs, _, Xst, _)), (_, (Xu, _, Xut, _)) = seen
    assert abs(Xs.mean()) < 1e-9 and abs(Xs.std() - 1) < 1e-9 and Xu.min() >= 0 and Xu.max() <= 1
    np.testing.assert_allclose(Xst, (Xut - Xu.mean()) / Xu.std(), atol=1e-12)
    meta = json.loads((tmp_path / "std" / "history.json").read_text())["meta"]
    assert meta["options"]["standardize"] is True and "--standardize" in meta["command"]
    assert "standardize" not in json.loads((tmp_path / "unit" / "history.json").read_text())["meta"]["options"]
    argv = {a[a.index("--out") + 1].rsplit("/", 1)[-1]: a for a in commands("fig4-gaps", cifar_dir="c")}
    assert "--standardize" in argv["adam-std"] and "--standardize" in argv["fenchel-coef1-std"]
    assert "--standardize" not in argv["adam-lr1e-4"]
    with pytest.raises(InputError, match="standardize must be True or False"):
        experiments.build_model("sgd", {"standardize": "yes"})


def test_reproduce_fig1_runs_until_converged_and_its_rows_say_why_they_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "load_data", lambda *a: _data(400, 200))
    with threadpool_limits(1):
        assert cli.main(["reproduce", "fig1", "--models", "lau-bcd", "--epochs", "300", "--out",
                         str(tmp_path), "--quiet"]) == 0
    fig = tmp_path / "fig1-subset"
    (row,) = json.loads((fig / "results.json").read_text())["runs"]
    hist = json.loads((fig / "lau-bcd" / "history.json").read_text())
    assert row["stop_reason"] == hist["meta"]["stop_reason"] == StopRule().reason(hist["epochs"])
    assert row["stop_reason"] in ("rule: objective", "rule: accuracy flat")
    assert row["epochs"] == len(hist["epochs"]) < 300 and row["max_epochs"] == 300
    assert row["until_converged"] is True and "--until-converged" in row["command"]
    assert row["test_accuracy_per_epoch"] == [r["test_accuracy"] for r in hist["epochs"]]
    md = (fig / "results.md").read_text()
    assert f"| {row['stop_reason']} (max 300) |" in md and "Until converged: relative change" in md


# ---- the figures -----------------------------------------------------------------------------
def test_figures_carry_the_papers_settings():
    assert {r.name: r.epochs for r in FIGURES["fig3"].runs} == {"sgd": 20, "adam": 20, "fenchel": 20}
    f4 = FIGURES["fig4"]
    assert f4.dataset == "cifar10" and f4.arch == "lenet5"
    assert {r.name: (r.epochs, r.paper) for r in f4.runs} == \
        {"sgd": (80, 0.565), "adam": (80, 0.625), "fenchel": (80, 0.606)}
    fen = dict(next(r for r in f4.runs if r.model == "fenchel").options)
    assert (fen["w_step"], fen["optimizer"], fen["lr"]) == ("gradient", "adam", 1e-3)
    assert FIGURES["fig1"].until_converged and not FIGURES["fig2"].until_converged
    for name in ("fig2-gaps", "fig3-gaps", "fig4-gaps"):
        fig = FIGURES[name]
        assert fig.gaps_of == name[:4] and FIGURES[fig.gaps_of].dataset == fig.dataset
        assert len({r.name for r in fig.runs}) == len(fig.runs)  # one folder per variant
        assert all(r.label and r.variant and r.paper is not None for r in fig.runs)
    g3 = {r.name: dict(r.options) for r in FIGURES["fig3-gaps"].runs}
    assert g3["fenchel-gamma-out-10"]["gamma"] == (1e-4, 0.01, 1.0, 1.0, 10.0)
    assert g3["fenchel-float64"]["dtype"] == "float64" and g3["fenchel-tol1e-7"]["tol_w"] == 1e-7
    assert [dict(r.options)["lr"] for r in FIGURES["fig2-gaps"].runs] == [0.05, 0.1]
    assert dict(FIGURES["fig4-gaps"].runs[0].options)["lr"] == 1e-4
    g4 = {r.name: dict(r.options) for r in FIGURES["fig4-gaps"].runs}
    # the coef variant changes only the X-step weights of the paper's one-step Fenchel run
    assert {k: v for k, v in g4["fenchel-coef1"].items() if k != "coef"} == fen
    assert g4["fenchel-coef1"]["coef"] == (1.0,) * 5
    # the conv-step variant changes only the two convolutional layers' Adam step of that one
    # (at the tolerances 1e-5 that the fenchel-coef1 run was started with, the default then)
    assert {k: v for k, v in g4["fenchel-coef1-convlr3e-3"].items() if k not in ("lr", "tol_x", "tol_w")} \
        == {k: v for k, v in g4["fenchel-coef1"].items() if k != "lr"}
    assert (g4["fenchel-coef1-convlr3e-3"]["tol_x"], g4["fenchel-coef1-convlr3e-3"]["tol_w"]) == (1e-5, 1e-5)
    assert g4["fenchel-coef1-convlr3e-3"]["lr"] == (3e-3, 3e-3, 1e-3, 1e-3, 1e-3)
    assert ALL == ("fig1", "fig2", "fig3", "fig4", "fig2-gaps", "fig3-gaps", "fig4-gaps")


def test_fig3_options_are_those_recorded_by_earlier_versions(tmp_path):
    """``reproduce fig3 --epochs 20 --checkpoint-every 20`` records the same options as before the
    stop rule existed, so ``--resume`` skips or continues the runs those versions made; since the
    torch baselines checkpoint (issue 15) their options hold ``checkpoint_every`` too, which
    :func:`_finished` does not compare (a finished SGD/Adam run of an earlier version is skipped)."""
    fig = FIGURES["fig3"]
    got = {r.name: _options(fig, r, epochs=20, seed=0, backend="auto", checkpoint_every=20)
           for r in fig.runs}
    base = {"arch": "lenet5", "loss": "cross_entropy", "epochs": 20, "seed": 0, "backend": "auto"}
    assert got == {"sgd": {**base, "checkpoint_every": 20}, "adam": {**base, "checkpoint_every": 20},
                   "fenchel": {**base, "checkpoint_every": 20}}
    assert _options(fig, fig.runs[0], epochs=None, seed=0, backend="auto", until_converged=True) == \
        {**base, "checkpoint_every": 0, "until_converged": True}
    from cvx_fenchel.history import History
    from cvx_fenchel.reproduce import _finished
    History(meta={"model": "sgd", "data_dir": None, "options": base}).save(tmp_path / "history.json")
    assert _finished(tmp_path, "sgd", got["sgd"], None, quiet=True) is not None


def test_a_finished_run_is_skipped_whatever_the_checkpoint_interval(tmp_path):
    from cvx_fenchel.history import History
    from cvx_fenchel.reproduce import _finished
    opts = {"arch": "lenet5", "loss": "cross_entropy", "epochs": 20, "seed": 0, "backend": "auto",
            "checkpoint_every": 20}
    History(meta={"model": "fenchel", "data_dir": "D", "options": opts}).save(tmp_path / "history.json")
    for every in (0, 20, 5):
        assert _finished(tmp_path, "fenchel", {**opts, "checkpoint_every": every}, "D", quiet=True)
    for other in ({"epochs": 21}, {"seed": 1}, {"until_converged": True}):
        assert _finished(tmp_path, "fenchel", {**opts, **other}, "D", quiet=True) is None
    assert _finished(tmp_path, "fenchel", opts, None, quiet=True) is None


def test_commands_of_the_cifar_gap_and_all_targets():
    f4 = commands("fig4", cifar_dir="C")
    assert all(a[:2] == ["train", "--data-dir"] and a[2] == "C" and "--dataset" in a and
               a[a.index("--dataset") + 1] == "cifar10" for a in f4)
    assert f4[2][f4[2].index("--w-step") + 1] == "gradient"
    assert f4[0][f4[0].index("--out") + 1] == "runs/reproduce/fig4-full/sgd"
    g3 = commands("fig3-gaps", models=["fenchel-gamma-out-10"])[0]
    i = g3.index("--gamma")
    assert g3[i + 1:i + 6] == ["0.0001", "0.01", "1.0", "1.0", "10.0"]
    every = commands("all", data_dir="M", cifar_dir="C")
    assert len(every) == sum(len(FIGURES[f].runs) for f in ALL)
    assert sum("--until-converged" in a for a in every) == len(FIGURES["fig1"].runs)
    for target, kw, needle in (("fig4", {}, "fig4 trains on CIFAR-10: give --cifar-dir"),
                               ("all", {"data_dir": "M"}, "fig4 trains on CIFAR-10"),
                               ("all", {"cifar_dir": "C", "models": ["sgd"]}, "with 'all' every figure"),
                               ("fig9", {}, "unknown figure 'fig9'")):
        with pytest.raises(InputError, match=needle):
            commands(target, **kw)


def test_missing_data_folders_are_refused_before_any_run(tmp_path, monkeypatch):
    from cvx_fenchel import reproduce as rep
    monkeypatch.setattr(rep, "train", lambda *a, **k: pytest.fail("trained before the data check"))
    (tmp_path / "empty").mkdir()
    for kw, needle in (({"data_dir": str(tmp_path / "none"), "cifar_dir": str(tmp_path)},
                        "--data-dir .*none \\(for fig1\\) is not a folder"),
                       ({"cifar_dir": str(tmp_path / "empty")}, "holds no cifar-10-batches-py/")):
        with pytest.raises(InputError, match=needle):
            rep.reproduce("all", out=str(tmp_path / "o"), **kw)


def test_the_gamma_flag_takes_one_value_per_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "load_data", lambda *a: _data(200, 50))
    out = tmp_path / "g"
    with threadpool_limits(1):
        assert cli.main(["train", "--gamma", "3", "7", "--batch-size", "100", "--max-iter-x", "2",
                         "--max-iter-w", "2", "--epochs", "1", "--out", str(out), "--quiet",
                         "--backend", "numpy"]) == 0
    meta = json.loads((out / "history.json").read_text())["meta"]
    assert [ly["gamma"] for ly in meta["network"]["layers"]] == [3.0, 7.0]
    assert meta["config"]["overrides"] == ["gamma"] and meta["options"]["gamma"] == [3.0, 7.0]


# ---- dry run ---------------------------------------------------------------------------------
def test_dry_run_without_probe_prints_the_commands_only(capsys):
    assert cli.main(["reproduce", "fig3", "--dry-run", "--no-probe", "--data-dir", "D"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["cvx-fenchel " + " ".join(a) for a in commands("fig3", data_dir="D")]


def test_estimate_scales_the_probe_to_the_data_and_epochs():
    assert estimate_seconds(2.0, 2000, 60000, 20) == 2.0 * 30 * 20
    assert estimate_seconds(0.5, 1000, 1000, 1) == 0.5
    with pytest.raises(InputError):
        estimate_seconds(1.0, 0, 10, 1)


def test_dry_run_with_probe_estimates_each_run_and_prints_the_load(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    monkeypatch.setattr(experiments, "load_data", lambda *a: _data(3000, 100))
    printed = []
    with threadpool_limits(1):
        rows = dry_run("fig2", models=["sgd"], out=str(tmp_path), print_=printed.append)
    (row,) = rows
    assert row["probe_samples"] == 2000 and row["samples"] == 3000 and row["epochs_left"] == 10
    assert row["seconds_per_epoch"] == pytest.approx(row["probe_seconds"] * 1.5, rel=1e-12)
    assert row["estimated_seconds"] == pytest.approx(row["seconds_per_epoch"] * 10, rel=1e-12)
    assert row["status"] == "not started"
    text = "\n".join(printed)
    assert "cvx-fenchel train --model sgd" in text and "load average" in text
    assert "continue it after a kill: cvx-fenchel reproduce fig2 --out" in text


# ---- CIFAR-10 --------------------------------------------------------------------------------
def _fake_cifar(root, n_train=100, n_test=50):
    """Random images in the official cifar-10-batches-py layout."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]:
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f)
    return root


def test_fig4_trains_on_cifar_and_every_row_says_which_copy(tmp_path, capsys):
    pytest.importorskip("torch")
    cifar = _fake_cifar(tmp_path / "cifar")
    with threadpool_limits(1):
        assert cli.main(["reproduce", "fig4", "--cifar-dir", str(cifar), "--epochs", "1", "--models",
                         "sgd", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    res = json.loads((tmp_path / "o" / "fig4-full" / "results.json").read_text())
    (row,) = res["runs"]
    assert row["note"] == res["note"] == CIFAR_NOTE == "measured on the JPEG quality-75 copy of CIFAR-10"
    assert row["dataset"] == "cifar10" and row["data"] == str(cifar) and row["epochs"] == 1
    assert row["stop_reason"] == "max epochs" and row["max_epochs"] == 1 and row["base_model"] == "sgd"
    assert "--dataset cifar10" in row["command"]
    hist = json.loads((tmp_path / "o" / "fig4-full" / "sgd" / "history.json").read_text())
    assert hist["meta"]["n_train"] == 100 and hist["meta"]["dataset"] == "cifar10"
    assert CIFAR_NOTE in (tmp_path / "o" / "fig4-full" / "results.md").read_text()
    assert "to continue after a kill: cvx-fenchel reproduce fig4 --cifar-dir" in capsys.readouterr().out
