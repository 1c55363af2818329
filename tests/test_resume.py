"""Runs that survive a kill (issue 13, point 14): ``cvx-fenchel train --checkpoint-every N`` and
``--resume``. A run killed in the middle of an epoch (SIGKILL, or an exception after batch k) and
resumed ends with the weights and history of an uninterrupted run, bit for bit; a truncated
checkpoint gives a named error; a resume with other settings is refused naming the field.

The runs use the shipped MNIST subset, cut to 1,200 train / 300 test images pooled to 14x14
(196 features), and a 196-16-10 network, with one BLAS thread (tiny factorisations are many
times slower with threads competing on a loaded machine)."""

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from conftest import ctrl_c_after_batch, ctrl_c_after_fenchel_batch, sigkill_when, small, unfinished, untimed

from cvx_fenchel import cli, experiments
from cvx_fenchel.checkpoint import CheckpointError, load_checkpoint, read_state

ROOT = Path(__file__).resolve().parents[1]
#: the run of every test: 2 epochs of 12 batches of 100, a checkpoint every 2 batches
RUN = ["train", "--arch", "196-16-10", "--epochs", "2", "--batch-size", "100", "--max-iter-x", "5",
       "--max-iter-w", "5", "--backend", "numpy", "--checkpoint-every", "2", "--quiet"]



#: fields of a history record that are wall-clock times (differ between any two runs)


@pytest.fixture(autouse=True)
def small_data(monkeypatch):
    monkeypatch.setattr(experiments, "load_data", small)
    with threadpool_limits(1):
        yield


def _result(out: Path) -> tuple[dict, dict]:
    """(history without meta and times, final weights) of the finished run in ``out``."""
    hist = json.loads((out / "history.json").read_text())
    doc = read_state(out / "checkpoints")
    assert (doc["epoch"], doc["batch"]) == (2, 0)
    with np.load(out / "checkpoints" / doc["npz"]) as npz:
        weights = {k: npz[k] for k in npz.files}
    return untimed({k: hist[k] for k in ("batches", "epochs")}), weights


def _same(a: tuple[dict, dict], b: tuple[dict, dict]) -> None:
    assert a[0] == b[0]  # every recorded number (objectives, accuracies, iterations), exactly
    assert sorted(a[1]) == sorted(b[1])
    for k in a[1]:
        assert np.array_equal(a[1][k], b[1][k]), k  # weights and Adam moments, bit for bit


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(experiments, "load_data", small)
    try:
        with threadpool_limits(1):
            assert cli.main([*RUN, "--out", str(out)]) == 0
    finally:
        mp.undo()
    return _result(out)


def test_a_run_killed_by_sigkill_mid_epoch_resumes_bit_for_bit(tmp_path, capsys, reference):
    """The run is SIGKILLed while it trains batch 6 of epoch 1 (checkpoints after batches 2 and
    4): the resume continues from epoch 1, batch 5 and ends as the uninterrupted run."""
    out, ready = tmp_path / "run", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(inspect.getsource(small) + textwrap.dedent(f"""
        import sys, time
        from cvx_fenchel import cli, experiments
        from cvx_fenchel.history import History
        experiments.load_data = small
        log_batch = History.log_batch
        def slow(self, **rec):  # batch 5 of epoch 1 is done: say so, then take "forever"
            log_batch(self, **rec)
            if (rec["epoch"], rec["batch"]) == (1, 5):
                open({str(ready)!r}, "w").close()
                time.sleep(120)
        History.log_batch = slow
        sys.exit(cli.main({[*RUN, "--out", str(out)]!r}))
    """))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sigkill_when(child, ready, timeout=120, what="batch 5")
    assert unfinished(out / "history.json")
    assert (read_state(out / "checkpoints")["epoch"], read_state(out / "checkpoints")["batch"]) == (0, 4)
    assert cli.main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {out} from its checkpoint in {out / 'checkpoints'} at epoch 1, batch 5" in printed
    _same(_result(out), reference)
    hist = json.loads((out / "history.json").read_text())
    assert hist["meta"]["resumed_at"] == [{"epoch": 0, "batch": 4}]
    assert "--resume" not in hist["meta"]["command"] and "--checkpoint-every" in hist["meta"]["command"]


def test_a_run_interrupted_in_its_second_epoch_resumes_bit_for_bit(tmp_path, capsys, monkeypatch,
                                                                    reference):
    """Ctrl-C (an exception) after batch 7 of epoch 2: resumed from batch 6 of epoch 2, with the
    full command given again."""
    from cvx_fenchel.history import History
    out = tmp_path / "run"
    log_batch = History.log_batch

    def interrupt(self, **rec):
        log_batch(self, **rec)
        if (rec["epoch"], rec["batch"]) == (2, 7):
            raise KeyboardInterrupt

    monkeypatch.setattr(History, "log_batch", interrupt)
    assert cli.main([*RUN, "--out", str(out)]) == 130
    monkeypatch.setattr(History, "log_batch", log_batch)
    assert unfinished(out / "history.json")
    assert cli.main([*RUN, "--out", str(out), "--resume"]) == 0
    assert "at epoch 2, batch 7" in capsys.readouterr().out
    _same(_result(out), reference)


def test_resume_when_the_run_had_finished_rewrites_the_same_results(tmp_path, capsys, reference):
    out = tmp_path / "run"
    assert cli.main([*RUN, "--out", str(out)]) == 0
    assert cli.main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "at the end (all 2 epochs done; writing the results)" in capsys.readouterr().out
    _same(_result(out), reference)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A 784-300-10 run (preset original) stopped in its second batch of 100."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    from cvx_fenchel.history import History
    mp = pytest.MonkeyPatch()
    mp.setattr(experiments, "load_data", small)
    log_batch = History.log_batch

    def interrupt(self, **rec):
        log_batch(self, **rec)
        if rec["batch"] == 2:
            raise KeyboardInterrupt

    mp.setattr(History, "log_batch", interrupt)
    try:
        with threadpool_limits(1):
            assert cli.main(["train", "--batch-size", "100", "--max-iter-x", "2", "--max-iter-w", "2",
                             "--checkpoint-every", "1", "--quiet", "--backend", "numpy",
                             "--out", str(out)]) == 130
    finally:
        mp.undo()
    assert read_state(out / "checkpoints")["batch"] == 1
    return out


@pytest.mark.parametrize("flags, needles", [
    (["--seed", "1"], ["it was made with seed=0; this run has seed=1"]),
    (["--arch", "784-100-10"], ["it was made with arch='784-300-10'", "preset='original'",
                                "this run has arch='784-100-10'", "preset='plain'"]),
    (["--settings", "plain"], [("lam=2.0, gamma=(10.0, 10000.0), coef=(1.0, 10.0), preset='original'; "
                                "this run has lam=1.0, gamma=0.0, coef=1.0, preset='plain'")]),
    (["--lam", "1"], ["lam=2.0; this run has lam=1.0"]),
    (["--batch-size", "50"], ["batch_size=100", "batch_size=50"]),
    (["--dtype", "float64"], ["dtype='float32'; this run has dtype='float64'"]),
])
def test_a_resume_with_other_settings_is_refused_naming_the_field(stopped, flags, needles, capsys):
    before = (stopped / "checkpoints" / "state.json").read_bytes()
    assert cli.main(["train", "--out", str(stopped), "--resume", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert "cannot resume the run in" in err and "--overwrite" in err, err
    assert all(n in err for n in needles), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (stopped / "checkpoints" / "state.json").read_bytes() == before  # untouched


def test_a_run_made_under_the_former_tolerance_default_resumes_with_it(stopped, tmp_path, capsys):
    """A checkpoint made when the X- and W-step tolerances defaulted to 1e-5 (FORMER_DEFAULTS)
    resumes with 1e-5 when the resume does not name them; a resume naming another tolerance is
    refused naming the field; the estimator API (``tol_x=None``) resumes the same way."""
    import shutil
    from cvx_fenchel.checkpoint import FORMER_DEFAULTS
    from cvx_fenchel.config import TrainConfig
    assert FORMER_DEFAULTS == {"tol_x": 1e-5, "tol_w": 1e-5}
    assert (TrainConfig().tol_x, TrainConfig().tol_w) == (1e-4, 1e-4)
    run = tmp_path / "run"
    shutil.copytree(stopped, run)
    state = run / "checkpoints" / "state.json"
    doc = json.loads(state.read_text())
    assert (doc["config"]["tol_x"], doc["config"]["tol_w"]) == (1e-4, 1e-4)  # made now
    doc["config"].update(tol_x=1e-5, tol_w=1e-5)  # as made before the default changed
    state.write_text(json.dumps(doc))
    before = state.read_bytes()
    assert cli.main(["train", "--out", str(run), "--resume", "--quiet", "--tol-x", "1e-4"]) == 2
    err = capsys.readouterr().err
    assert "it was made with tol_x=1e-05; this run has tol_x=0.0001" in err, err
    assert state.read_bytes() == before
    capsys.readouterr()
    assert cli.main(["train", "--out", str(run), "--resume", "--quiet", "--epochs", "1"]) == 0
    assert "tol 1e-05/1e-05" in capsys.readouterr().out  # the header names the settings that run
    doc = json.loads(state.read_text())
    assert (doc["config"]["tol_x"], doc["config"]["tol_w"]) == (1e-5, 1e-5)
    assert (doc["epoch"], doc["batch"]) == (1, 0)
    hist = json.loads((run / "history.json").read_text())
    assert (hist["meta"]["config"]["tol_x"], hist["meta"]["config"]["tol_w"]) == (1e-5, 1e-5)


def test_a_resume_on_other_data_is_refused(stopped, capsys):
    assert cli.main(["train", "--out", str(stopped), "--resume", "--data-dir", str(stopped)]) == 2
    assert "it was made with data_dir=None; this run has data_dir=" in capsys.readouterr().err


def test_a_truncated_checkpoint_gives_a_named_error(tmp_path, capsys):
    import shutil
    out = tmp_path / "run"
    assert cli.main([*RUN, "--epochs", "1", "--out", str(out)]) == 0
    ck = out / "checkpoints"
    for name, cut in (("npz", 300), ("state", 100)):
        shutil.rmtree(tmp_path / "b", ignore_errors=True)
        shutil.copytree(out, tmp_path / "b")
        f = tmp_path / "b" / "checkpoints" / (read_state(ck)["npz"] if name == "npz" else "state.json")
        f.write_bytes(f.read_bytes()[:cut])
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(tmp_path / "b" / "checkpoints")
        assert cli.main(["train", "--out", str(tmp_path / "b"), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "corrupt or truncated" in err and "BadZipFile" not in err.split("(")[0], err
        assert len(err.strip().splitlines()) == 1


def test_nothing_to_resume_and_conflicting_flags_are_clear_errors(tmp_path, capsys, monkeypatch):
    cases = [
        (["--out", str(tmp_path / "none"), "--resume"], "nothing to resume: --out"),
        (["--out", str(tmp_path), "--resume"], "nothing to resume: " + str(tmp_path / "checkpoints")),
        (["--out", str(tmp_path), "--resume", "--overwrite"], "give one"),
        (["--model", "lnn", "--out", str(tmp_path), "--resume"], "--resume applies to --model fenchel"),
        (["--checkpoint-every", "-1", "--out", str(tmp_path)], "checkpoint_every must be an integer >= 0"),
    ]
    for argv, needle in cases:
        assert cli.main(["train", *argv]) == 2
        assert needle in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--resume"]) == 2
    assert "nothing to resume: no runs/train[-N] folder holds a checkpoint" in capsys.readouterr().err


def test_a_folder_holding_a_checkpoint_is_refused_without_resume_or_overwrite(tmp_path, capsys,
                                                                             monkeypatch, reference):
    out = tmp_path / "run"
    undo = ctrl_c_after_batch(monkeypatch, lambda rec: rec["batch"] == 3)
    assert cli.main([*RUN, "--out", str(out)]) == 130
    undo()
    for flags in (RUN, ["train", "--model", "sgd", "--epochs", "1", "--quiet"]):
        assert cli.main([*flags, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "holds the checkpoint of an earlier run (checkpointed after batch 2 of epoch 1)" in err
        assert "--resume" in err and "--overwrite" in err
    assert cli.main([*RUN, "--out", str(out), "--overwrite"]) == 0  # starts over
    _same(_result(out), reference)
    # the default --out never lands on a killed run; --resume without --out finds it
    monkeypatch.chdir(tmp_path)
    undo = ctrl_c_after_batch(monkeypatch, lambda rec: rec["batch"] == 3)
    assert cli.main(RUN) == 130
    undo()
    assert cli.main(["train", "--model", "sgd", "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "runs/train-2/history.json").exists()
    assert cli.main(["train", "--resume", "--quiet"]) == 0
    assert "resuming runs/train from" in capsys.readouterr().out
    _same(_result(tmp_path / "runs/train"), reference)


def test_reproduce_resume_skips_finished_models_and_resumes_the_fenchel_run(tmp_path, capsys,
                                                                            monkeypatch):
    pytest.importorskip("torch")
    argv = ["reproduce", "fig2", "--epochs", "2", "--models", "sgd", "fenchel", "--quiet",
            "--backend", "numpy"]
    assert cli.main([*argv[:-5], "fenchel", "--quiet", "--backend", "numpy", "--out",
                     str(tmp_path / "straight")]) == 0
    undo = ctrl_c_after_fenchel_batch(monkeypatch, 2, 1)  # the Fenchel run: after its epoch-1 checkpoint
    assert cli.main([*argv, "--out", str(tmp_path / "killed")]) == 130
    undo()
    fig = tmp_path / "killed" / "fig2-subset"
    sgd = (fig / "sgd" / "history.json").read_bytes()
    assert unfinished(fig / "fenchel" / "history.json") and not (fig / "results.json").exists()
    capsys.readouterr()
    assert cli.main([*argv, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "finished earlier" in printed and "skipped" in printed
    assert "at epoch 2, batch 1" in printed
    assert (fig / "sgd" / "history.json").read_bytes() == sgd  # not run again
    res = json.loads((fig / "results.json").read_text())
    assert [r["model"] for r in res["runs"]] == ["sgd", "fenchel"]
    ref = tmp_path / "straight" / "fig2-subset"
    a, b = (json.loads((f / "fenchel" / "history.json").read_text()) for f in (fig, ref))
    assert untimed({k: a[k] for k in ("batches", "epochs")}) == \
        untimed({k: b[k] for k in ("batches", "epochs")})
    with np.load(fig / "fenchel/checkpoints/weights-2-0.npz") as x, \
            np.load(ref / "fenchel/checkpoints/weights-2-0.npz") as y:
        assert all(np.array_equal(x[k], y[k]) for k in x.files)


def _table(folder: Path) -> list[dict]:
    """The results table of a reproduce folder without what differs between any two runs (times,
    the machine, the output folder inside the commands)."""
    res = json.loads((folder / "results.json").read_text())
    keep = ("model", "epochs", "test_accuracy", "test_accuracy_per_epoch",
            "train_accuracy_per_epoch", "paper", "max_epochs", "stop_reason", "base_model", "data")
    return [{**{k: r.get(k) for k in keep}, "command": r["command"].replace(str(folder), "F")}
            for r in res["runs"]]


def test_reproduce_killed_by_sigkill_then_resumed_gives_the_uninterrupted_table(tmp_path, capsys):
    """``reproduce fig2`` (SGD, then Fenchel; 2 epochs of 2 batches, a checkpoint after every
    batch) is SIGKILLed in a child process while the Fenchel model trains its last batch; after
    ``--resume`` the results table (models, epochs, test accuracy after every epoch, stop reasons)
    equals that of an uninterrupted run, SGD is not trained again and Fenchel resumes from its
    mid-epoch checkpoint."""
    torch = pytest.importorskip("torch")
    argv = ["reproduce", "fig2", "--epochs", "2", "--models", "sgd", "fenchel", "--checkpoint-every",
            "1", "--backend", "numpy", "--quiet"]
    assert cli.main([*argv, "--out", str(tmp_path / "straight")]) == 0
    out, ready = tmp_path / "killed", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(inspect.getsource(small) + textwrap.dedent(f"""
        import sys, time
        import torch
        from threadpoolctl import threadpool_limits
        from cvx_fenchel import cli, experiments
        from cvx_fenchel.history import History
        experiments.load_data = small
        log_batch = History.log_batch
        def slow(self, **rec):  # the Fenchel run's last batch: say so, then take "forever"
            log_batch(self, **rec)
            if "relaxed_objective" in rec and (rec["epoch"], rec["batch"]) == (2, 2):
                open({str(ready)!r}, "w").close()
                time.sleep(120)
        History.log_batch = slow
        with threadpool_limits(1):
            torch.set_num_threads({torch.get_num_threads()})  # as in the test's process
            sys.exit(cli.main({[*argv, "--out", str(out)]!r}))
    """))
    child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    sigkill_when(child, ready, timeout=300, what="the Fenchel run's last batch")
    fig = out / "fig2-subset"
    assert (fig / "sgd" / "history.json").exists() and unfinished(fig / "fenchel" / "history.json")
    assert not (fig / "results.json").exists()
    assert (read_state(fig / "fenchel" / "checkpoints")["epoch"],
            read_state(fig / "fenchel" / "checkpoints")["batch"]) == (1, 1)
    sgd = (fig / "sgd" / "history.json").read_bytes()
    capsys.readouterr()
    assert cli.main([*argv, "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "finished earlier" in printed and "at epoch 2, batch 2" in printed
    assert (fig / "sgd" / "history.json").read_bytes() == sgd  # not trained again
    table = _table(fig)
    assert [r["model"] for r in table] == ["sgd", "fenchel"]
    assert all(r["epochs"] == 2 and len(r["test_accuracy_per_epoch"]) == 2 for r in table)
    assert table == _table(tmp_path / "straight" / "fig2-subset")
