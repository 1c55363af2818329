"""Table 1 of the lifted-networks report (cvx_fenchel.table1): the table's statistics, the
resume rule, NN[Lifted]'s starting point, the lambda search's bookkeeping, the summed loss, and
bad names refused before any work. Tiny runs on the first 600 rows of the embedded MNIST
subset (1 epoch, 1 sweep)."""

import json
import re

import numpy as np
import pytest

pytest.importorskip("torch")

from cvx_fenchel import table1  # noqa: E402
from cvx_fenchel.baselines.torch_nets import TorchNetClassifier  # noqa: E402
from cvx_fenchel.errors import InputError, UnknownNameError  # noqa: E402

TINY = dict(seeds=[0], archs=["300"], lrs=[1e-5], epochs=1, sweeps=1, n_train=600, lam=1.0)


def _cell(md: str, lr: str, arch: str, column: int) -> str:
    """The text of one cell of the markdown (column 0 = lifted model)."""
    part = md.split(f"Learning rate {lr}:")[1]
    row = next(line for line in part.splitlines() if line.startswith(f"| {arch} |"))
    return [c.strip() for c in row.strip("|").split("|")][1 + column]


def test_table_mean_two_std_equals_numpy():
    rng = np.random.default_rng(3)
    xav = rng.uniform(0.9, 0.95, 5)
    lnn = rng.uniform(0.85, 0.9, 3)
    rows = [{"arch": "300-100", "lr": 1e-5, "init": "xavier", "seed": s, "test_accuracy": v}
            for s, v in enumerate(xav)]
    rows += [{"arch": "300-100", "lr": None, "init": "lnn", "seed": s, "test_accuracy": v,
              "lam": 0.1} for s, v in enumerate(lnn)]
    md = table1.table(rows, {"lam": 0.1, "source": "search"})
    assert _cell(md, "1e-05", "300-100", 2) == \
        f"{np.mean(xav):.4f} ± {2 * np.std(xav):.4f}; paper 0.932 ± 0.003"
    # the lifted model has no learning rate: the same numbers in both halves, n shown (3 != 5)
    want = f"{np.mean(lnn):.4f} ± {2 * np.std(lnn):.4f} (n=3); paper 0.875 ± 0.005"
    assert _cell(md, "1e-05", "300-100", 0) == want
    assert _cell(md, "1e-06", "300-100", 0) == "%s; paper 0.875 ± 0.005" % want.split(";")[0]
    assert _cell(md, "1e-06", "300-100", 2) == "—; paper 0.838 ± 0.007"
    assert "lambda = 0.1 (chosen by the grid search" in md
    assert len(table1.PAPER) == 50 and table1.PAPER[("400-200-100-50", 1e-6, "lifted")] == (0.959, 0.003)


def test_resume_runs_nothing_new(tmp_path, monkeypatch, capsys):
    out = tmp_path / "t1"
    first = table1.run(out, inits=["xavier", "lifted"], **TINY)
    keys = [(r["arch"], r["lr"], r["init"], r["seed"]) for r in first["rows"]]
    assert sorted(keys, key=str) == sorted([("300", 1e-5, "xavier", 0), ("300", None, "lnn", 0),
                                            ("300", 1e-5, "lifted", 0)], key=str)
    for r in first["rows"]:
        assert r["command"].split()[1:3] == ["-m", "cvx_fenchel.table1"] and 0 <= r["test_accuracy"] <= 1
        assert set(r["machine"]) >= {"host", "logical_cpus"} and "commit" in r  # where each cell ran
    assert first["data_dir"] is None and first["machine"]["host"]  # the embedded subset, this machine
    saved = (out / "results.json").read_text()
    assert json.loads(saved)["rows"] == json.loads(json.dumps(first["rows"]))
    assert "[3/3]" in capsys.readouterr().out

    calls = []
    real = table1._run_cell
    monkeypatch.setattr(table1, "_run_cell", lambda c, *a: calls.append(c) or real(c, *a))
    table1.run(out, inits=["xavier", "lifted"], resume=True, **TINY)
    assert calls == [] and (out / "results.json").read_text() == saved
    # the lifted model's weights file is part of its cell: gone -> the lnn cell runs again
    (out / "lifted" / "300-seed0.npz").unlink()
    table1.run(out, inits=["xavier", "lifted"], resume=True, **TINY)
    assert calls == [("300", None, "lnn", 0)]
    # a changed setting (epochs) makes the networks' rows stale; the lifted model stays done
    table1.run(out, inits=["xavier", "lifted"], resume=True, **{**TINY, "epochs": 2})
    assert calls[1:] == [("300", 1e-5, "xavier", 0), ("300", 1e-5, "lifted", 0)]


def test_nn_lifted_starts_from_the_lifted_weights(tmp_path, monkeypatch):
    out = tmp_path / "t1"
    st = table1.Settings(epochs=0, sweeps=1, n_train=600, lam=1.0)
    data = table1._data(None, 600)
    lnn = table1._run_cell(("300", None, "lnn", 0), st, data, out)
    ref = table1.lifted_model("300", 0, st, data[0], data[1]).weights_  # same seed, same model
    saved = table1.load_lifted(table1.lifted_path(out, "300", 0), st.lnn_config())
    for (W, b), (W0, b0) in zip(saved, ref):
        assert np.array_equal(W, W0) and np.array_equal(b, b0)
    nets = []
    real = table1.network
    monkeypatch.setattr(table1, "network", lambda *a, **k: nets.append(real(*a, **k)) or nets[-1])
    row = table1._run_cell(("300", 1e-5, "lifted", 0), st, data, out)
    (net,) = nets
    assert net.init == "lifted" and net.epochs == 0  # weights_ after 0 epochs = the initial ones
    for (W, b), (W0, b0) in zip(net.weights_, saved):
        assert W.dtype == np.float32
        assert np.array_equal(W, W0.astype(np.float32)) and np.array_equal(b, b0.astype(np.float32))
    assert abs(row["test_accuracy"] - lnn["test_accuracy"]) <= 2 / data[3].size  # fp32 ties only
    # lifted weights of another lambda are not reused
    assert table1.load_lifted(table1.lifted_path(out, "300", 0), {**st.lnn_config(), "lam": 2.0}) is None


@pytest.mark.parametrize("kwargs, err, words", [
    ({"archs": ["300", "301"]}, UnknownNameError, "301"),
    ({"inits": ["kaiming"]}, UnknownNameError, "kaiming"),
    ({"seeds": [-1]}, InputError, "seeds"),
    ({"lrs": [0.0]}, InputError, "learning rates"),
    ({"lam": 1.0, "choose": True}, InputError, "not both"),
    ({"epochs": 1.5}, InputError, "epochs"),
])
def test_bad_names_refused_before_any_work(tmp_path, monkeypatch, kwargs, err, words):
    monkeypatch.setattr(table1, "_data", lambda *a: pytest.fail("data loaded before the check"))
    with pytest.raises(err, match=words):
        table1.run(tmp_path / "t1", **kwargs)
    assert not (tmp_path / "t1").exists()
    with pytest.raises(UnknownNameError, match="choose from"):
        table1.main(["--out", str(tmp_path / "t1"), "--inits", "Lifted"])


def test_choose_lambda_uses_training_rows_and_is_recorded(tmp_path, monkeypatch):
    st = table1.Settings(sweeps=1, n_train=600)
    X, y = table1._data(None, 600)[:2]
    info = table1.choose_lambda(X, y, st, grid=(0.1, 10.0), n_search=300)
    assert info["n_val"] == 100 and info["n_search_train"] == 300
    assert info["lam"] == max(info["grid"], key=lambda g: (info["val_accuracy"][repr(g)], -g))
    # run(choose=True) writes lambda.json, uses it, states it; --resume reuses it without a search
    monkeypatch.setattr(table1, "LAMBDA_GRID", (0.1, 10.0))
    out = tmp_path / "t1"
    res = table1.run(out, choose=True, **{**TINY, "lam": None, "inits": ["lnn"]})
    lam = json.loads((out / "lambda.json").read_text())["lam"]
    assert res["rows"][0]["lam"] == lam and f"lambda = {lam} (chosen" in (out / "table.md").read_text()
    monkeypatch.setattr(table1, "choose_lambda", lambda *a, **k: pytest.fail("searched again"))
    table1.run(out, choose=True, resume=True, **{**TINY, "lam": None, "inits": ["lnn"]})


def test_dry_run_lists_cells_and_writes_nothing(tmp_path, capsys):
    res = table1.run(tmp_path / "t1", dry_run=True, inits=["normal", "lifted"], **TINY)
    assert res["cells"] == table1.cells([0], ["300"], ["normal", "lifted"], [1e-5])
    assert res["estimate_s"] > 0 and not (tmp_path / "t1").exists()
    assert re.search(r"3 of 3 cells to run; estimated [\d.]+ h", capsys.readouterr().out)


def test_summed_loss_step_is_the_mean_step_at_m_times_the_rate():
    """reduction='sum': the gradient of sum_i CE_i is m times that of the mean, so one SGD step
    of rate lr equals one mean step of rate m * lr (float64, no weight decay)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    w = [(rng.normal(size=(5, 4)), rng.normal(size=4)), (rng.normal(size=(4, 3)), rng.normal(size=3))]
    kw = dict(epochs=1, batch_size=8, init="given", init_weights=w, dtype="float64")
    a = TorchNetClassifier("5-4-3", lr=0.01, reduction="sum", **kw).fit(X, y)
    b = TorchNetClassifier("5-4-3", lr=0.08, **kw).fit(X, y)
    for (Wa, ba), (Wb, bb) in zip(a.weights_, b.weights_):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(ba, bb, rtol=1e-13, atol=1e-14)
    assert a.history_.batches[0]["loss"] == pytest.approx(8 * b.history_.batches[0]["loss"], rel=1e-13)
    with pytest.raises(UnknownNameError, match="reduction"):
        TorchNetClassifier("5-4-3", reduction="median")


def test_raw_pixels_gap_study_is_its_own_recorded_setting(tmp_path):
    """``--pixels raw`` (a gap study of the step-size convention) trains on the file's 0..255
    values, 255 times the default inputs, and records ``pixels`` in the row's config and the
    settings; default rows record nothing new, so earlier results.json files still resume."""
    Xu, yu, Xtu, ytu = table1._data(None, 600, "unit")
    Xr, yr, Xtr, ytr = table1._data(None, 600, "raw")
    assert np.allclose(Xr, 255 * Xu, rtol=1e-6) and np.array_equal(yr, yu) and Xr.max() > 1
    assert np.allclose(Xtr, 255 * Xtu, rtol=1e-6) and np.array_equal(ytr, ytu)
    assert "pixels" not in table1.Settings().nn_config() and "pixels" not in table1.Settings().lnn_config()
    res = table1.run(tmp_path / "raw", inits=["xavier"], pixels="raw", **TINY)
    (row,) = res["rows"]
    assert row["config"]["pixels"] == "raw" and res["settings"]["pixels"] == "raw"
    with pytest.raises(InputError, match="pixels"):
        table1._data(None, 600, "scaled")
    with pytest.raises(SystemExit):  # argparse names the choices before any work
        table1.main(["--pixels", "scaled", "--out", str(tmp_path / "x")])


def test_a_diverging_network_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    """A cell whose training diverges (TorchNetClassifier's NaN-loss error) is listed under
    ``diverged`` with its error and config, gets no row, the other cells run, and ``--resume``
    neither retries it nor loses the record."""
    real = table1.network

    def fragile(arch, lr, init, seed, st, init_weights=None):
        net = real(arch, lr, init, seed, st, init_weights)
        if init == "normal":
            def boom(*a, **k):
                raise InputError("training diverged (loss nan) at epoch 1, batch 7; lower lr (now 1e-05)")
            net.fit = boom
        return net

    monkeypatch.setattr(table1, "network", fragile)
    res = table1.run(tmp_path / "t1", inits=["normal", "xavier"], **TINY)
    assert [r["init"] for r in res["rows"]] == ["xavier"]
    (d,) = res["diverged"]
    assert (d["arch"], d["lr"], d["init"], d["seed"]) == ("300", 1e-5, "normal", 0)
    assert d["error"].startswith("training diverged") and d["config"] == table1.Settings(
        epochs=1, sweeps=1, n_train=600, lam=1.0).nn_config()
    calls = []
    monkeypatch.setattr(table1, "_run_cell", lambda c, *a: calls.append(c))
    again = table1.run(tmp_path / "t1", inits=["normal", "xavier"], resume=True, **TINY)
    assert calls == [] and again["diverged"] == res["diverged"]
