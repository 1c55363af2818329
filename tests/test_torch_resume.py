"""Torch baselines that survive a kill and the end of a session (issue 15): ``cvx-fenchel train
--model sgd|adam --checkpoint-every N`` and ``--resume``, ``reproduce ... --resume`` and the
committed archive (:mod:`cvx_fenchel.baselines.torch_checkpoint`).

A run killed after a checkpoint (at an epoch's end, or after batch k of an epoch) and resumed
gives the batch and epoch records, final test accuracy, weights and optimizer state of the
uninterrupted run, bit for bit (CPU, one torch thread in every process); the epochs done before
the kill are not trained again; a corrupt checkpoint and a resume with other settings are named
errors.

The runs use the shipped MNIST subset: 1,200 train / 300 test images pooled to 14x14 for a
196-16-10 network (12 batches of 100 per epoch), and 1,000 / 100 flat images for the 784-300-10
network of ``reproduce fig2`` (10 batches per epoch)."""

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ctrl_c_after_batch, sigkill_when, small, unfinished, untimed

torch = pytest.importorskip("torch")

from cvx_fenchel import cli, experiments  # noqa: E402
from cvx_fenchel.checkpoint import CheckpointError, read_state  # noqa: E402
from cvx_fenchel.history import History  # noqa: E402
from cvx_fenchel.report.archive import archive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOG_BATCH = History.log_batch
#: 3 epochs of 12 batches of 100
RUN = ["train", "--arch", "196-16-10", "--epochs", "3", "--batch-size", "100", "--backend", "numpy",
       "--quiet"]
#: 3 epochs of 10 batches of 100 (784-300-10), a checkpoint every 4 batches and at epoch ends
FIG2 = ["reproduce", "fig2", "--epochs", "3", "--models", "sgd", "adam", "--checkpoint-every", "4",
        "--backend", "numpy", "--quiet"]


@pytest.fixture(autouse=True, scope="module")
def small_data():
    """The small data, and one torch thread (as in the child processes: the same reductions)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(experiments, "load_data", small)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        mp.undo()


def _untimed(x):
    """``x`` without wall times: conftest's, and the torch records' ``elapsed`` and ``eval_time``."""
    x = untimed(x)
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in ("elapsed", "eval_time")}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def _npz(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _result(out: Path, epochs: int = 3) -> dict:
    """What a finished run in ``out`` gave: its records without times, final test accuracy, and
    the arrays of its last checkpoint (weights and optimizer state)."""
    hist = json.loads((out / "history.json").read_text())
    doc = read_state(out / "checkpoints")
    assert (doc["epoch"], doc["batch"]) == (epochs, 0)
    return {"batches": _untimed(hist["batches"]), "epochs": _untimed(hist["epochs"]),
            "accuracy": hist["epochs"][-1]["test_accuracy"],
            "arrays": _npz(out / "checkpoints" / doc["npz"])}


def _same(a: dict, b: dict) -> None:
    assert a["epochs"] == b["epochs"]  # loss, train and test accuracy of every epoch, exactly
    assert a["batches"] == b["batches"]
    assert a["accuracy"] == b["accuracy"]
    assert sorted(a["arrays"]) == sorted(b["arrays"])
    for k in a["arrays"]:  # weights and the optimizer's state (Adam's moments and steps), bit for bit
        assert np.array_equal(a["arrays"][k], b["arrays"][k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 3-epoch runs of SGD and Adam (checkpointing at epoch ends)."""
    ref = {}
    for model in ("sgd", "adam"):
        out = tmp_path_factory.mktemp("ref") / model
        assert cli.main([*RUN, "--model", model, "--checkpoint-every", "0", "--out", str(out)]) == 0
        ref[model] = _result(out)
    return ref


# ---- (a) killed after a checkpoint, resumed ------------------------------------------------------

@pytest.mark.parametrize("model, every, where", [
    ("sgd", "5", (1, 5)),   # mid-epoch: the checkpoint after batch 5 of epoch 2
    ("adam", "0", (1, 0)),  # epoch ends only: the checkpoint after epoch 1
])
def test_a_torch_run_killed_by_sigkill_resumes_bit_for_bit(tmp_path, capsys, reference, model, every,
                                                           where):
    """The run is SIGKILLed while it trains batch 8 of epoch 2 (global batch 20); ``--resume``
    continues from the last checkpoint and ends as the uninterrupted run."""
    out, ready = tmp_path / "run", tmp_path / "ready"
    argv = [*RUN, "--model", model, "--checkpoint-every", every, "--out", str(out)]
    script = tmp_path / "child.py"
    script.write_text(inspect.getsource(small) + textwrap.dedent(f"""
        import sys, time
        import torch
        from cvx_fenchel import cli, experiments
        from cvx_fenchel.history import History
        experiments.load_data = small
        torch.set_num_threads(1)
        log_batch = History.log_batch
        def slow(self, **rec):  # batch 7 of epoch 2 is done: say so, then take "forever"
            log_batch(self, **rec)
            if rec["batch"] == 19:
                open({str(ready)!r}, "w").close()
                time.sleep(120)
        History.log_batch = slow
        sys.exit(cli.main({argv!r}))
    """))
    child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    sigkill_when(child, ready, timeout=120, what="global batch 19")
    assert unfinished(out / "history.json")
    doc = read_state(out / "checkpoints")
    assert (doc["model"], doc["epoch"], doc["batch"]) == ("torch", *where)
    assert [r["epoch"] for r in doc["history"]["epochs"]] == [1]
    assert cli.main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {out} from its checkpoint in {out / 'checkpoints'} at epoch 2, batch " \
        f"{where[1] + 1}" in printed
    _same(_result(out), reference[model])
    hist = json.loads((out / "history.json").read_text())
    assert hist["meta"]["resumed_at"] == [{"epoch": where[0], "batch": where[1]}]
    assert hist["meta"]["options"]["checkpoint_every"] == int(every)
    assert "--resume" not in hist["meta"]["command"] and "--checkpoint-every" in hist["meta"]["command"]


def test_a_ctrl_c_mid_epoch_then_resume_with_the_full_command(tmp_path, capsys, monkeypatch, reference):
    """Ctrl-C (an exception) after global batch 31 (batch 7 of epoch 3; checkpoints every 3
    batches): resumed from the checkpoint after batch 6 of epoch 3, the full command given again."""
    out = tmp_path / "run"
    argv = [*RUN, "--model", "adam", "--checkpoint-every", "3", "--out", str(out)]
    undo = ctrl_c_after_batch(monkeypatch, lambda rec: rec["batch"] == 31)
    assert cli.main(argv) == 130
    undo()
    assert (read_state(out / "checkpoints")["epoch"], read_state(out / "checkpoints")["batch"]) == (2, 6)
    assert cli.main([*argv, "--resume"]) == 0
    assert "at epoch 3, batch 7" in capsys.readouterr().out
    _same(_result(out), reference["adam"])


def test_epochs_may_grow_on_resume(tmp_path, capsys, reference):
    """A finished 2-epoch SGD run resumed with ``--epochs 3`` ends as the uninterrupted 3-epoch
    run (the shuffling stream goes on where it stopped)."""
    out = tmp_path / "run"
    assert cli.main([*RUN, "--model", "sgd", "--epochs", "2", "--checkpoint-every", "0",
                     "--out", str(out)]) == 0
    assert cli.main(["train", "--out", str(out), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert "at epoch 3, batch 1" in capsys.readouterr().out
    _same(_result(out), reference["sgd"])
    assert json.loads((out / "history.json").read_text())["meta"]["max_epochs"] == 3


def test_a_resume_on_another_torch_thread_count_warns(tmp_path, recwarn):
    """The remaining epochs' reductions may round differently on another thread count: said."""
    out = tmp_path / "run"
    assert cli.main([*RUN, "--model", "sgd", "--epochs", "1", "--checkpoint-every", "0",
                     "--out", str(out)]) == 0
    torch.set_num_threads(2)
    try:
        assert cli.main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    finally:
        torch.set_num_threads(1)
    assert any("trained on 1 torch threads, this process has 2" in str(w.message) for w in recwarn)


def test_fig4_lenet5_checkpoints_fit_the_archive_limit(tmp_path):
    """LeNet-5 on 32x32x3 images (Fig. 4): the npz of an Adam run (weights and both moments,
    62,006 parameters x 3 x 4 bytes) is under the archive's 1 MB per file; SGD's a third of it."""
    from cvx_fenchel.baselines.torch_nets import TorchNetClassifier
    from cvx_fenchel.report.archive import MAX_FILE_BYTES
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, 20)
    sizes = {}
    for opt in ("adam", "sgd"):
        ck = tmp_path / opt
        TorchNetClassifier("lenet5", optimizer=opt, epochs=1, batch_size=10, checkpoint_dir=ck).fit(X, y)
        sizes[opt] = (ck / read_state(ck)["npz"]).stat().st_size
    assert 3 * 62_006 * 4 < sizes["adam"] < MAX_FILE_BYTES
    assert 62_006 * 4 < sizes["sgd"] < sizes["adam"] / 2


# ---- (b), (c) reproduce --resume and the archive ----------------------------------------------

def _interrupt_at(n: int, batch: int):
    """A ``History.log_batch`` that raises KeyboardInterrupt (a Ctrl-C) when the ``n``-th run
    records global batch ``batch``."""
    seen = []

    def interrupt(self, **rec):
        LOG_BATCH(self, **rec)
        seen.append(rec["batch"])
        if seen.count(batch) == n:
            raise KeyboardInterrupt

    return interrupt


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    """``reproduce fig2`` with SGD and Adam: uninterrupted (``straight``); interrupted by a Ctrl-C
    after Adam's batch 6 of epoch 2 (``killed``: SGD finished, Adam's last checkpoint after batch
    4 of epoch 2); and with SGD only, interrupted after its batch 6 of epoch 2 (``killed-sgd``)."""
    root = tmp_path_factory.mktemp("fig2")
    assert cli.main([*FIG2, "--out", str(root / "straight")]) == 0
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(History, "log_batch", _interrupt_at(2, 16))  # the second run's global batch 16
        assert cli.main([*FIG2, "--out", str(root / "killed")]) == 130
        mp.setattr(History, "log_batch", _interrupt_at(1, 16))
        assert cli.main([*FIG2[:5], "sgd", *FIG2[7:], "--out", str(root / "killed-sgd")]) == 130
    finally:
        mp.undo()
    fig = root / "killed" / "fig2-subset"
    assert (fig / "sgd" / "history.json").exists() and unfinished(fig / "adam" / "history.json")
    for run in (fig / "adam", root / "killed-sgd" / "fig2-subset" / "sgd"):
        state = read_state(run / "checkpoints")
        assert (state["epoch"], state["batch"]) == (1, 4) and len(state["history"]["batches"]) == 14
    return root


def _table(folder: Path) -> list[dict]:
    """The results table of a reproduce folder without times and output folders."""
    res = json.loads((folder / "results.json").read_text())
    keep = ("model", "epochs", "test_accuracy", "test_accuracy_per_epoch", "train_accuracy_per_epoch",
            "paper", "max_epochs", "stop_reason")
    return [{**{k: r.get(k) for k in keep}, "command": r["command"].replace(str(folder), "F")}
            for r in res["runs"]]


def test_reproduce_resume_continues_the_torch_run_from_its_checkpoint(fig2, tmp_path, capsys,
                                                                       monkeypatch):
    """``reproduce --resume`` skips the finished SGD run and continues Adam after batch 4 of
    epoch 2: it trains exactly the 16 batches left (epoch 1 is not trained again: its record,
    wall times included, is the checkpoint's), and the table equals the uninterrupted one."""
    out = tmp_path / "killed"
    shutil.copytree(fig2 / "killed", out)
    fig = out / "fig2-subset"
    sgd = (fig / "sgd" / "history.json").read_bytes()
    before = read_state(fig / "adam" / "checkpoints")
    trained = []
    log_batch = History.log_batch

    def count(self, **rec):
        log_batch(self, **rec)
        trained.append(rec["batch"])

    from cvx_fenchel.reproduce import FIGURES, _options, _status
    run = FIGURES["fig2"].runs[1]
    opts = _options(FIGURES["fig2"], run, epochs=3, seed=0, backend="numpy", checkpoint_every=4)
    assert _status(fig / "adam", run, opts, None) == \
        ("checkpoint after 1 epochs and 4 batches: resumes there", 1)  # what --dry-run prints
    monkeypatch.setattr(History, "log_batch", count)
    capsys.readouterr()
    assert cli.main([*FIG2, "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "finished earlier" in printed and "at epoch 2, batch 5" in printed
    assert (fig / "sgd" / "history.json").read_bytes() == sgd
    assert trained == list(range(15, 31))  # Adam's global batches 15..30 only
    hist = json.loads((fig / "adam" / "history.json").read_text())
    assert hist["epochs"][0] == before["history"]["epochs"][0]  # the same record, times and all
    assert hist["batches"][:14] == before["history"]["batches"]
    assert _table(fig) == _table(fig2 / "straight" / "fig2-subset")
    ref = fig2 / "straight" / "fig2-subset" / "adam" / "checkpoints" / "weights-3-0.npz"
    a, b = _npz(fig / "adam" / "checkpoints" / "weights-3-0.npz"), _npz(ref)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_an_archived_torch_run_restored_and_resumed_ends_as_the_uninterrupted_run(fig2, tmp_path,
                                                                                 capsys):
    """The killed SGD-only reproduce folder is archived (``report --archive``), copied into a fresh
    folder (``cp -r ARCHIVE/. runs/reproduce/``) and resumed: the slim checkpoint (the 10 batch
    records of epoch 1 dropped, the 4 of epoch 2 kept) continues after batch 4 of epoch 2 and the
    epoch records, weights and table row equal the uninterrupted run's. In the killed folder whose
    Adam 784-300-10 checkpoint (weights and two moments: 2.9 MB) is over the 1 MB limit, Adam's
    history so far is archived instead, marked partial, and the dropped checkpoint is recorded."""
    with_adam = archive(fig2 / "killed", tmp_path / "archive-with-adam")
    entry = with_adam["folders"]["fig2-subset"]["models"]["adam"]
    assert entry["status"] == "partial" and entry["progress"] == [1, 4]
    assert entry["checkpoint_dropped"]["npz"] == "weights-1-4.npz"
    assert entry["checkpoint_dropped"]["bytes"] > 2_800_000
    adam = tmp_path / "archive-with-adam" / "fig2-subset" / "adam"
    h = json.loads((adam / "history.json").read_text())
    assert h["meta"]["partial"] is True and "starts again" in h["meta"]["stop_reason"]
    assert h["epochs"] == read_state(fig2 / "killed" / "fig2-subset" / "adam" / "checkpoints")["history"]["epochs"]
    assert sorted(p.name for p in (adam / "checkpoints").iterdir()) == ["run.json"]
    arc = tmp_path / "archive"
    killed = fig2 / "killed-sgd"
    got = archive(killed, arc)
    assert got["files"] == ["fig2-subset/archive.json", "fig2-subset/sgd/checkpoints/run.json",
                            "fig2-subset/sgd/checkpoints/state.json",
                            "fig2-subset/sgd/checkpoints/weights-1-4.npz",
                            "fig2-subset/sgd/history.json"]  # epoch 1, marked partial
    assert got["folders"]["fig2-subset"]["models"]["sgd"]["progress"] == [1, 4]
    full = read_state(killed / "fig2-subset" / "sgd" / "checkpoints")
    slim = read_state(arc / "fig2-subset" / "sgd" / "checkpoints")
    assert slim["history"]["meta"]["batch_records_dropped"] == 10
    assert slim["history"]["batches"] == full["history"]["batches"][10:]
    assert {k: v for k, v in slim.items() if k != "history"} == \
        {k: v for k, v in full.items() if k != "history"}  # position, RNG, sums, optimizer
    fresh = tmp_path / "next-session"
    shutil.copytree(arc, fresh)
    capsys.readouterr()
    argv = [*FIG2[:5], "sgd", *FIG2[7:]]
    assert cli.main([*argv, "--out", str(fresh), "--resume"]) == 0
    assert "at epoch 2, batch 5" in capsys.readouterr().out
    res, ref = fresh / "fig2-subset" / "sgd", fig2 / "straight" / "fig2-subset" / "sgd"
    a, b = (_npz(d / "checkpoints" / "weights-3-0.npz") for d in (res, ref))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (res, ref))
    assert _untimed(ha["epochs"]) == _untimed(hb["epochs"])
    assert _untimed(ha["batches"]) == _untimed(hb["batches"][10:])
    assert ha["meta"]["train_seconds"] >= ha["meta"]["batch_seconds_dropped"] > 0
    assert _table(fresh / "fig2-subset") == _table(fig2 / "straight" / "fig2-subset")[:1]


# ---- (d), (e) named errors -------------------------------------------------------------------

@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """An SGD run (196-16-10) stopped by a Ctrl-C after batch 5, checkpointed after batch 4."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    log_batch = History.log_batch

    def interrupt(self, **rec):
        log_batch(self, **rec)
        if rec["batch"] == 5:
            raise KeyboardInterrupt

    mp = pytest.MonkeyPatch()
    mp.setattr(History, "log_batch", interrupt)
    try:
        assert cli.main([*RUN, "--model", "sgd", "--checkpoint-every", "2", "--out", str(out)]) == 130
    finally:
        mp.undo()
    assert read_state(out / "checkpoints")["batch"] == 4
    return out


def test_a_corrupt_torch_checkpoint_gives_a_named_error(stopped, tmp_path, capsys):
    from cvx_fenchel.baselines.torch_nets import TorchNetClassifier
    X, y, _, _ = small("mnist", None, "196-16-10")
    npz = read_state(stopped / "checkpoints")["npz"]
    for name, cut, needle in ((npz, 300, "corrupt or truncated"), ("state.json", 100, "corrupt or truncated")):
        run = tmp_path / name / "run"
        shutil.copytree(stopped, run)
        f = run / "checkpoints" / name
        f.write_bytes(f.read_bytes()[:cut])
        est = TorchNetClassifier("196-16-10", checkpoint_dir=run / "checkpoints")
        with pytest.raises(CheckpointError, match=f"{needle} \\({name}"):
            est.fit(X, y)
        assert cli.main(["train", "--out", str(run), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert needle in err and name in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err and "BadZipFile" not in err.split("(")[0]
    # an npz that reads but lacks a weight: incomplete, named
    run = tmp_path / "incomplete" / "run"
    shutil.copytree(stopped, run)
    arrays = _npz(run / "checkpoints" / npz)
    np.savez(run / "checkpoints" / npz, **{k: v for k, v in arrays.items() if k != "W_1"})
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        TorchNetClassifier("196-16-10", checkpoint_dir=run / "checkpoints").fit(X, y)


@pytest.mark.parametrize("flags, needles", [
    (["--seed", "1"], ["it was made with seed=0; this run has seed=1"]),
    (["--lr", "0.5"], ["it was made with lr=None; this run has lr=0.5"]),
    (["--batch-size", "50"], ["batch_size=100; this run has batch_size=50"]),
    (["--arch", "196-32-10"], ["arch='196-16-10'; this run has arch='196-32-10'"]),
    (["--dtype", "float64"], ["dtype='float32'; this run has dtype='float64'"]),
    (["--loss", "mse"], ["loss='cross_entropy'; this run has loss='mse'"]),
])
def test_a_torch_resume_with_other_settings_is_refused_naming_the_field(stopped, flags, needles,
                                                                         capsys):
    before = (stopped / "checkpoints" / "state.json").read_bytes()
    assert cli.main(["train", "--out", str(stopped), "--resume", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert "cannot resume the run in" in err and "--overwrite" in err, err
    assert all(n in err for n in needles), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (stopped / "checkpoints" / "state.json").read_bytes() == before  # untouched


def test_a_resume_as_another_model_or_with_fewer_epochs_is_refused(stopped, tmp_path, capsys):
    cases = [(["--model", "adam"], "it was made with model='sgd'; this run has model='adam'"),
             (["--model", "lnn"], "--resume applies to --model fenchel / sgd / adam only")]
    for flags, needle in cases:
        assert cli.main(["train", "--out", str(stopped), "--resume", "--quiet", *flags]) == 2
        assert needle in capsys.readouterr().err
    done = tmp_path / "done"
    assert cli.main([*RUN, "--model", "sgd", "--epochs", "2", "--checkpoint-every", "0",
                     "--out", str(done)]) == 0
    assert cli.main(["train", "--out", str(done), "--resume", "--epochs", "1", "--quiet"]) == 2
    assert "it has done 2 epochs already (--epochs may grow, not shrink)" in capsys.readouterr().err
    # the Fenchel estimator on a torch checkpoint, and the torch estimator on a Fenchel-less folder
    from cvx_fenchel.checkpoint import check_resumable
    from cvx_fenchel.config import preset
    with pytest.raises(CheckpointError, match="is of a torch run, not of a Fenchel run"):
        check_resumable(stopped / "checkpoints", preset("auto"))
    # without --resume or --overwrite the folder's checkpoint is refused, as a Fenchel one
    assert cli.main([*RUN, "--model", "sgd", "--out", str(stopped)]) == 2
    assert "holds the checkpoint of an earlier run (checkpointed after batch 4 of epoch 1)" in \
        capsys.readouterr().err
