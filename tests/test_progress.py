"""A run stopped before its end leaves its measured part (issue 15: runs longer than a session):
``history.progress`` writes the history so far, marked partial, at every epoch end of every
model's loop; the final save replaces it; the archive and the report read it as a partial run,
``reproduce --resume`` never as a finished one, and a checkpoint beside it is still archived."""

import json

import pytest
from conftest import small, untimed

from cvx_fenchel import experiments
from cvx_fenchel.history import History, progress
from cvx_fenchel.report import _model_run
from cvx_fenchel.report.archive import archive
from cvx_fenchel.reproduce import _finished

pytest.importorskip("torch")

OPTS = {"arch": "784-300-10", "epochs": 3, "seed": 0, "backend": "numpy", "loss": "cross_entropy"}


def test_progress_writes_each_epoch_marked_partial_and_only_inside_its_block(tmp_path):
    path = tmp_path / "history.json"
    h = History(meta={"own": 1})
    h.log_epoch(epoch=0, test_accuracy=0.1)  # outside the block: nothing written
    assert not path.exists()
    with progress(path, {"model": "sgd", "options": {"epochs": 3}}):
        h.log_epoch(epoch=1, test_accuracy=0.5)
        first = json.loads(path.read_text())
        h.log_epoch(epoch=2, test_accuracy=0.6)
    second = json.loads(path.read_text())
    h.log_epoch(epoch=3, test_accuracy=0.7)  # after the block: the file is not touched
    assert json.loads(path.read_text()) == second
    assert [r["epoch"] for r in first["epochs"]] == [0, 1] and len(second["epochs"]) == 3
    assert second["meta"] == {"own": 1, "model": "sgd", "options": {"epochs": 3}, "partial": True,
                              "finished": False,
                              "stop_reason": "stopped (killed, or the session ended) after 2 epochs"}
    assert h.meta == {"own": 1}  # the run's own history is not marked


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    """``fig2-subset/sgd`` stopped by a Ctrl-C after 2 of 3 epochs (no checkpoints), and the same
    run uninterrupted in ``straight/``."""
    monkeypatch.setattr(experiments, "load_data", small)
    import torch
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    torch.set_num_threads(1)
    straight = experiments.train("sgd", dict(OPTS), data_dir=None, out=tmp_path / "straight" / "sgd",
                                 quiet=True)
    log_epoch = History.log_epoch

    def interrupt(self, **rec):
        log_epoch(self, **rec)
        if rec.get("epoch") == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(History, "log_epoch", interrupt)
    out = tmp_path / "runs" / "fig2-subset" / "sgd"
    with pytest.raises(KeyboardInterrupt):
        experiments.train("sgd", dict(OPTS), data_dir=None, out=out, quiet=True)
    monkeypatch.setattr(History, "log_epoch", log_epoch)
    return tmp_path / "runs", straight


def test_a_stopped_run_leaves_its_epochs_so_far_as_a_partial_history(runs, tmp_path, capsys):
    root, straight = runs
    out = root / "fig2-subset" / "sgd"
    doc = json.loads((out / "history.json").read_text())
    assert doc["meta"]["partial"] is True and doc["meta"]["model"] == "sgd"
    assert doc["meta"]["options"]["epochs"] == 3
    ref = straight["history"].to_dict()
    def measured(recs):  # the epoch records without their wall times
        return [{k: v for k, v in r.items() if k not in ("elapsed", "eval_time")} for r in untimed(recs)]

    assert measured(doc["epochs"]) == measured(ref["epochs"][:len(doc["epochs"])])
    assert [r["epoch"] for r in doc["epochs"] if r["epoch"]] == [1, 2]
    # the report: partial, 2 of 3 epochs, the accuracy after epoch 2 and the reason
    run = _model_run(root / "fig2-subset", "sgd", None, {})
    assert run["status"] == "partial" and run["epochs"] == 2
    assert run["test_accuracy"] == doc["epochs"][-1]["test_accuracy"]
    assert "stopped (killed, or the session ended) after 2 epochs" in run["stop_reason"]
    # reproduce --resume runs it again rather than taking it as finished
    assert _finished(out, "sgd", doc["meta"]["options"], None) is None
    # the archive keeps it as a partial run
    got = archive(root, tmp_path / "arc")
    assert got["folders"]["fig2-subset"]["models"]["sgd"]["status"] == "partial"
    arc = json.loads((tmp_path / "arc" / "fig2-subset" / "sgd" / "history.json").read_text())
    assert arc["meta"]["partial"] is True and arc["epochs"] == doc["epochs"]
    # the final save of a finished run replaces the partial copy
    assert straight["history"].meta.get("partial") is None
    assert "partial" not in json.loads((tmp_path / "straight" / "sgd" / "history.json").read_text())["meta"]


def test_a_checkpoint_at_an_epoch_end_beside_a_partial_history_is_archived(tmp_path):
    """A resumable run stopped at an epoch end: its partial history has as many epochs as the
    checkpoint, which must still be archived (the run has not finished)."""
    mdir = tmp_path / "runs" / "fig3-full" / "fenchel"
    ck = mdir / "checkpoints"
    ck.mkdir(parents=True)
    hist = {"meta": {"model": "fenchel", "options": {"epochs": 20}, "partial": True},
            "batches": [], "epochs": [{"epoch": e, "test_accuracy": 0.9} for e in (1, 2)]}
    (mdir / "history.json").write_text(json.dumps(hist))
    (ck / "weights-2-0.npz").write_bytes(b"w" * 64)
    (ck / "state.json").write_text(json.dumps({"format": 2, "npz": "weights-2-0.npz", "epoch": 2,
                                               "batch": 0, "history": hist}))
    got = archive(tmp_path / "runs", tmp_path / "arc")
    assert got["folders"]["fig3-full"]["models"]["fenchel"]["status"] == "partial"
    assert (tmp_path / "arc" / "fig3-full" / "fenchel" / "checkpoints" / "weights-2-0.npz").is_file()
