"""Command line: info, train (on a small slice), errors as one line with exit status 2."""

import json
import sys

import pytest

from cvx_fenchel import cli, experiments
from cvx_fenchel.datasets import load_mnist


def test_info_reports_versions_solvers_blas_and_gpu(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    import cvxpy
    import numpy
    for needle in (f"numpy {numpy.__version__}", f"cvxpy {cvxpy.__version__}", "NumPy BLAS:", "CuPy:",
                   "CLARABEL"):
        assert needle in out


@pytest.fixture
def small_mnist(monkeypatch):
    """The embedded subset cut to 400 train / 200 test samples, so a CLI run takes seconds."""
    Xtr, ytr, Xte, yte = load_mnist(normalize=True, flatten=True)

    def load(dataset, data_dir, arch, standardize=False):
        assert dataset == "mnist" and data_dir is None
        return Xtr[:400], ytr[:400], Xte[:200], yte[:200]

    monkeypatch.setattr(experiments, "load_data", load)


def test_train_writes_history_and_prints_final_accuracy(tmp_path, capsys, small_mnist):
    out = tmp_path / "run"
    rc = cli.main(["train", "--epochs", "2", "--batch-size", "200", "--out", str(out), "--quiet",
                   "--backend", "numpy"])
    assert rc == 0
    hist = json.loads((out / "history.json").read_text())
    accs = [e["test_accuracy"] for e in hist["epochs"]]
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    assert (out / "history.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"final test accuracy: {accs[-1]:.4f}" in printed
    assert hist["meta"]["model"] == "fenchel"
    # original settings were used: the output layer's gamma is 100 * batch size
    layers = hist["meta"]["network"]["layers"]
    assert layers[-1]["gamma"] == 100.0 * 200 and layers[-1]["coef"] == 10.0
    assert hist["meta"]["config"]["preset"] == "original" and hist["meta"]["config"]["overrides"] == []
    assert "settings: preset original; lam 2, rho 0, gamma (10, 20000), coef (1, 10)" in printed


@pytest.mark.parametrize("argv, needle", [
    (["train", "--dataset", "cifar10"], "needs --data-dir"),
    (["train", "--data-dir", "/nonexistent/mnist"], "does not exist"),
    (["train", "--arch", "lenet7", "--settings", "none"], "unknown architecture"),
    (["train", "--model", "taylor-admm", "--loss", "cross_entropy"], "MSE loss only"),
])
def test_library_errors_print_one_line_and_exit_2(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_verify_without_suite_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "verification.cli", None)  # import raises ImportError
    assert cli.main(["verify", "--quick"]) == 2
    assert "verification suite is not available" in capsys.readouterr().err


def test_verify_delegates_arguments(monkeypatch):
    import verification.cli

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(verification.cli, "main", fake_main)
    assert cli.main(["verify", "--quick", "--seed", "3", "--backend", "numpy", "--out", "x"]) == 0
    assert seen["argv"] == ["--quick", "--seed", "3", "--backend", "numpy", "--out", "x"]


def test_unknown_model_is_rejected_by_argparse():
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--model", "xgboost"])
    assert exc.value.code == 2


def test_model_registry_builds_each_baseline_lazily():
    opts = {"arch": "784-300-10", "loss": "mse", "seed": 0, "backend": "numpy"}
    for name in ("fenchel", "taylor-admm", "lau-bcd", "lnn"):
        model = experiments.build_model(name, opts)
        assert hasattr(model, "fit") and hasattr(model, "predict")
    assert experiments.build_model("lau-bcd", opts).hidden == (300,)


@pytest.mark.parametrize("flags, needle", [
    (["--lam", "1.0"], "lam=1 overrides preset original (lam=2)"),
    (["--gamma", "0.5"], "gamma=0.5 overrides preset original (gamma=(10, 20000))"),
    (["--K", "2", "--w-first"], "K=2 overrides preset original (K=1); w_first=True overrides"),
    (["--settings", "plain", "--lam", "0.5"], "settings: preset plain; lam 0.5"),
    (["--coef", "1", "--rho", "0.01"], "coef=1 overrides preset original (coef=(1, 10)); rho=0.01 "
                                       "overrides preset original (rho=0)"),
])
def test_a_flag_the_preset_fixes_overrides_it_and_the_header_says_so(flags, needle, tmp_path, capsys,
                                                                      small_mnist):
    """Every flag for a value the preset fixes (lam, rho, gamma, coef, K, w_first) reaches the
    config and is named in the printed header with the preset's value; never silently ignored."""
    out = tmp_path / "o"
    assert cli.main(["train", "--epochs", "1", "--batch-size", "200", "--max-iter-x", "5",
                     "--max-iter-w", "5", "--out", str(out), "--quiet", "--backend", "numpy",
                     *flags]) == 0
    printed = capsys.readouterr().out
    assert needle in printed, printed
    cfg = json.loads((out / "history.json").read_text())["meta"]["config"]
    names = [f.lstrip("-").replace("-", "_") for f in flags if f.startswith("--") and f != "--settings"]
    if "plain" not in flags:
        assert sorted(cfg["overrides"]) == sorted(names)
    if "--lam" in flags:
        assert cfg["lam"] == float(flags[flags.index("--lam") + 1])


@pytest.mark.parametrize("argv, needle", [
    (["train", "--model", "sgd", "--lam", "2"], "--lam applies to --model fenchel only"),
    (["train", "--model", "lau-bcd", "--max-iter-w", "3", "--w-first"], "--max-iter-w, --w-first apply to"),
    (["train", "--settings", "original", "--arch", "784-100-10"], "'original' preset has settings for"),
    (["train", "--K", "0"], "K must be an integer >= 1"),
    (["train", "--lr", "-1"], "lr must be > 0.0"),
    (["train", "--w-step", "gradient", "--lr", "0.1", "0.2", "0.3"],
     "lr has 3 entries but the network has 2 weighted layers"),
    (["train", "--model", "adam", "--lr", "0.1", "0.2"], "lr must be a real number, got (0.1, 0.2)"),
])
def test_flags_a_model_or_preset_cannot_take_are_errors(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("model", sorted(experiments.MODELS))
def test_every_model_trains_one_epoch(model, tmp_path, capsys, small_mnist):
    """``cvx-fenchel train --model X --epochs 1`` for every X (on a 400-sample slice)."""
    out = tmp_path / model
    batch = ["--batch-size", "200"] if model in ("fenchel", "lnn", "sgd", "adam") else []
    rc = cli.main(["train", "--model", model, "--epochs", "1", "--out", str(out), "--quiet",
                   "--backend", "numpy", *batch])
    assert rc == 0
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["epochs"]) >= 1 and hist["meta"]["model"] == model
    acc = hist["epochs"][-1]["test_accuracy"]
    # (one epoch on 400 samples: SGD at lr 0.01 takes 4 steps and one ADMM iteration is not
    # enough to learn, so only the range is a fact here; the full runs are in the README)
    assert 0.0 <= acc <= 1.0, (model, acc)
    assert f"final test accuracy: {acc:.4f}" in capsys.readouterr().out


def test_fenchel_mse_with_original_settings_keeps_the_loss(tmp_path, small_mnist):
    out = tmp_path / "mse"
    assert cli.main(["train", "--loss", "mse", "--algorithm", "full", "--epochs", "2", "--out",
                     str(out), "--quiet", "--backend", "numpy"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["meta"]["network"]["loss"] == "mse"
    assert len(hist["epochs"]) == 2


def test_gradient_w_step_and_lifted_prediction_from_the_cli(tmp_path, small_mnist):
    out = tmp_path / "grad"
    assert cli.main(["train", "--w-step", "gradient", "--lr", "0.01", "--predict-rule", "lifted",
                     "--epochs", "1", "--batch-size", "200", "--out", str(out), "--quiet",
                     "--backend", "numpy"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["meta"]["config"]["w_step"] == "gradient" and hist["meta"]["config"]["predict_rule"] == "lifted"
    assert hist["meta"]["config"]["lr"] == 0.01  # one value: every layer's
    assert hist["meta"]["options"]["w_step"] == "gradient"
    assert 0.0 <= hist["epochs"][-1]["test_accuracy"] <= 1.0  # feed-forward, per epoch
    assert 0.0 <= hist["meta"]["final_test_accuracy_lifted"] <= 1.0


def test_reproduce_runs_a_figure_and_writes_table_and_plot(tmp_path, capsys, small_mnist):
    from cvx_fenchel.reproduce import FIGURES
    assert cli.main(["reproduce", "fig2", "--epochs", "1", "--models", "sgd", "adam", "--out",
                     str(tmp_path), "--quiet", "--backend", "numpy"]) == 0
    out = tmp_path / "fig2-subset"  # one folder per figure and data set
    res = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in res["runs"]] == ["sgd", "adam"]
    for r in res["runs"]:
        hist = json.loads((out / r["model"] / "history.json").read_text())
        assert r["test_accuracy"] == hist["epochs"][-1]["test_accuracy"]
        assert r["paper"] == {x.name: x.paper for x in FIGURES["fig2"].runs}[r["model"]]
        assert r["command"].startswith("cvx-fenchel train ") and "--epochs 1" in r["command"]
    md = (out / "results.md").read_text()
    assert "| sgd | embedded MNIST subset | 1 |" in md and "0.943" in md
    assert (out / "figure.png").stat().st_size > 0
    # re-running one model updates its row and keeps the others, in the figure's order
    assert cli.main(["reproduce", "fig2", "--epochs", "2", "--models", "sgd", "--out", str(tmp_path),
                     "--quiet", "--backend", "numpy"]) == 0
    res2 = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in res2["runs"]] == ["sgd", "adam"]
    assert res2["runs"][0]["epochs"] == 2 and res2["runs"][1] == res["runs"][1]


def test_reproduce_dry_run_and_errors(capsys):
    assert cli.main(["reproduce", "fig1", "--dry-run", "--no-probe", "--data-dir", "D"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(ln.startswith("cvx-fenchel train --data-dir D --model ") for ln in lines)
    assert cli.main(["reproduce", "fig1", "--models", "adam"]) == 2
    assert "not part of this figure" in capsys.readouterr().err


@pytest.mark.slow
def test_default_train_on_embedded_subset(tmp_path, capsys):
    import time
    t0 = time.perf_counter()
    assert cli.main(["train", "--out", str(tmp_path), "--quiet"]) == 0
    seconds = time.perf_counter() - t0
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["epochs"][-1]["test_accuracy"] >= 0.90
    assert seconds < 180


def test_every_field_a_preset_fixes_has_a_flag_and_is_reported_when_given():
    """For each value the original preset fixes, the train flag reaches the config as an
    override and the header line names it next to the preset's value."""
    from cvx_fenchel.config import PRESETS, TrainConfig, describe
    parser = cli.build_parser()
    fixed = PRESETS["original"](TrainConfig())
    assert set(fixed) == {"lam", "rho", "gamma", "coef", "K", "w_first"}
    other = {"lam": "0.5", "rho": "0.25", "gamma": "3", "coef": "2", "K": "3", "w_first": None}
    for field in fixed:
        flag = "--" + field.replace("_", "-")
        args = parser.parse_args(["train", flag] + ([other[field]] if other[field] else []))
        options = {k: getattr(args, k) for k in experiments.OPTIONS if getattr(args, k) is not None}
        cfg = experiments.fenchel_config(options)
        assert cfg.preset == "original" and cfg.overrides == (field,), field
        assert f"{field}=" in describe(cfg) and f"overrides preset original ({field}=" in describe(cfg)


# --------------------------------------------------------------------------------------------
# bench (issue 12)

@pytest.mark.parametrize("argv, needle", [
    (["bench", "mlpx"], "unknown bench workload 'mlpx'"),
    (["bench", "mlp", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["bench", "steps", "--to-accuracy", "0.5"], "apply to the mlp and lenet5 workloads"),
    (["bench", "steps", "--data-dir", "x"], "--data-dir applies to the mlp and lenet5"),
    (["bench", "mlp", "--batches", "0"], "batches must be an integer >= 1"),
    (["bench", "mlp", "--to-accuracy", "1.5"], "to_accuracy must be <= 1.0"),
    (["bench", "mlp", "--batches", "40"], "need 20500 training samples"),
])
def test_bench_errors_print_one_line_and_exit_2(argv, needle, capsys):
    assert cli.main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bench_cupy_without_a_gpu_is_a_clear_error(capsys):
    from cvx_fenchel.backend import cupy_available
    if cupy_available():
        pytest.skip("CuPy sees a GPU here")
    assert cli.main(["bench", "mlp", "--backend", "cupy", "--quiet"]) == 2
    assert "backend 'cupy' requested but unavailable" in capsys.readouterr().err


def test_bench_mlp_writes_markdown_and_json(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench"
    assert cli.main(["bench", "mlp", "--batches", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "bench.json").read_text())
    assert res["workload"] == "mlp" and res["fenchel"]["timed_batches"] == 1
    assert res["command"] == ["cvx-fenchel", "bench", "mlp", "--batches", "1", "--out", str(out), "--quiet"]
    assert "ratio Fenchel/Adam per epoch" in printed and printed.strip() == (out / "bench.md").read_text().strip()


def test_train_refuses_an_out_holding_a_run_unless_overwrite_and_default_out_never_clobbers(
        tmp_path, capsys, small_mnist, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--model", "sgd", "--epochs", "1", "--quiet", "--backend", "numpy"]
    assert cli.main([*args, "--out", str(out)]) == 0
    before = (out / "history.json").read_bytes()
    assert cli.main([*args, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err and (out / "history.json").read_bytes() == before
    assert cli.main([*args, "--out", str(out), "--overwrite"]) == 0
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 0 and cli.main(args) == 0
    assert (tmp_path / "runs/train/history.json").exists() and (tmp_path / "runs/train-2/history.json").exists()
