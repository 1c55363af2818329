"""The committed archive of the reproduction runs (cvx_fenchel.report.archive): a Fenchel run
interrupted mid-epoch, archived, restored into a fresh folder and resumed ends with the weights
and epoch records of an uninterrupted run, bit for bit; what the archive holds and drops
(counted in the meta); its refusals; and the report's union of live and archived runs."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ctrl_c_after_fenchel_batch, unfinished, untimed
from threadpoolctl import threadpool_limits

from cvx_fenchel import cli, experiments
from cvx_fenchel.checkpoint import read_state
from cvx_fenchel.report import build_report
from cvx_fenchel.report.archive import (ARCHIVE_FILE, MAX_FILE_BYTES, ArchiveError, archive,
                                        slim_history, slim_state)

#: fields of a record that are wall-clock times (differ between any two runs)


def small(dataset, data_dir, arch, standardize=False):
    """``experiments.load_data`` for the test: 1,000 train / 100 test flat images of the shipped
    subset (784-300-10)."""
    from cvx_fenchel.datasets import load_mnist
    X, y, Xt, yt = load_mnist(normalize=True)
    return X[:1000].reshape(1000, -1), y[:1000], Xt[:100].reshape(100, -1), yt[:100]


def _npz(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_a_run_resumed_from_its_restored_archive_ends_as_the_uninterrupted_run(tmp_path, capsys,
                                                                             monkeypatch):
    """``reproduce fig2 --models fenchel`` (784-300-10, 2 epochs of 2 batches of 500, a checkpoint
    after every batch) is interrupted after batch 1 of epoch 2; its folder is archived, the archive
    copied into a fresh folder (``cp -r ARCHIVE/. runs/reproduce/``) and the run resumed there
    with ``--resume``. The final weights equal the uninterrupted run's bit for bit, and so do the
    epoch records (times aside); of the batch records, the 2 of the archived epoch 1 are missing
    (the meta says so, with their seconds) and the kept one of epoch 2 lacks its ``steps``."""
    monkeypatch.setattr(experiments, "load_data", small)
    argv = ["reproduce", "fig2", "--epochs", "2", "--models", "fenchel", "--checkpoint-every", "1",
            "--backend", "numpy", "--quiet"]
    with threadpool_limits(1):
        assert cli.main([*argv, "--out", str(tmp_path / "straight")]) == 0
        undo = ctrl_c_after_fenchel_batch(monkeypatch, 2, 2)  # after the checkpoint of batch 1 of epoch 2
        assert cli.main([*argv, "--out", str(tmp_path / "killed")]) == 130
        undo()
        killed = tmp_path / "killed" / "fig2-subset" / "fenchel"
        assert unfinished(killed / "history.json")
        full = read_state(killed / "checkpoints")
        assert (full["epoch"], full["batch"]) == (1, 1) and len(full["history"]["batches"]) == 3

        arc = tmp_path / "archive"
        got = archive(tmp_path / "killed", arc)
        assert got["files"] == ["fig2-subset/archive.json", "fig2-subset/fenchel/checkpoints/run.json",
                                "fig2-subset/fenchel/checkpoints/state.json",
                                "fig2-subset/fenchel/checkpoints/weights-1-1.npz",
                                "fig2-subset/fenchel/history.json"]  # epoch 1, marked partial
        slim = read_state(arc / "fig2-subset/fenchel/checkpoints")
        dropped = full["history"]["batches"][:2]
        assert slim["history"]["meta"]["batch_records_dropped"] == 2
        assert slim["history"]["meta"]["batch_seconds_dropped"] == sum(b["time"] for b in dropped)
        assert slim["history"]["batches"] == [{k: v for k, v in full["history"]["batches"][2].items()
                                               if k not in ("steps", "w_methods")}]
        assert slim["history"]["epochs"] == full["history"]["epochs"]
        assert {k: v for k, v in slim.items() if k != "history"} == \
            {k: v for k, v in full.items() if k != "history"}  # position, RNG, config as they were
        assert (arc / "fig2-subset/fenchel/checkpoints/weights-1-1.npz").read_bytes() == \
            (killed / "checkpoints/weights-1-1.npz").read_bytes()

        fresh = tmp_path / "next-session"
        shutil.copytree(arc, fresh)  # cp -r ARCHIVE/. runs/reproduce/
        capsys.readouterr()
        assert cli.main([*argv, "--out", str(fresh), "--resume"]) == 0
    assert "at epoch 2, batch 2" in capsys.readouterr().out
    res, ref = fresh / "fig2-subset" / "fenchel", tmp_path / "straight" / "fig2-subset" / "fenchel"
    a, b = (_npz(d / "checkpoints" / "weights-2-0.npz") for d in (res, ref))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (res, ref))
    assert untimed(ha["epochs"]) == untimed(hb["epochs"])
    assert ha["meta"]["batch_records_dropped"] == 2
    assert ha["meta"]["batch_fields_dropped"] == ["steps", "w_methods"]
    assert untimed(ha["batches"][1:]) == untimed(hb["batches"][3:])
    assert untimed(ha["batches"][0]) == untimed({k: v for k, v in hb["batches"][2].items()
                                                   if k not in ("steps", "w_methods")})
    # the training time counts the dropped batches too
    assert ha["meta"]["train_seconds"] >= ha["meta"]["batch_seconds_dropped"] > 0
    rows = json.loads((fresh / "fig2-subset" / "results.json").read_text())["runs"]
    assert [(r["model"], r["epochs"], r["test_accuracy"]) for r in rows] == \
        [("fenchel", 2, hb["epochs"][-1]["test_accuracy"])]


# ---- synthetic run folders (no training) -------------------------------------------------------

def _history(epochs, batches_per_epoch=3, steps=True, **meta):
    return {"meta": {"model": "fenchel", "options": {"epochs": epochs}, **meta},
            "batches": [{"epoch": e, "batch": b, "relaxed_objective": 1.0 / (e + b), "time": 0.25,
                         **({"steps": [{"block": "X1", "n_iter": 3}], "w_methods": ["gram"]}
                            if steps else {})}
                        for e in range(1, epochs + 1) for b in range(1, batches_per_epoch + 1)],
            "epochs": [{"epoch": e, "test_accuracy": 0.5 + e / 100} for e in range(1, epochs + 1)]}


def _checkpoint(mdir: Path, epoch: int, batch: int, n_bytes: int = 64) -> None:
    ck = mdir / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    for old in ck.glob("weights-*.npz"):
        old.unlink()
    (ck / f"weights-{epoch}-{batch}.npz").write_bytes(b"w" * n_bytes)
    hist = _history(epoch + (1 if batch else 0))
    hist["batches"] = [r for r in hist["batches"] if (r["epoch"], r["batch"]) <= (epoch + 1, batch)]
    hist["epochs"] = hist["epochs"][:epoch]
    (ck / "state.json").write_text(json.dumps({"format": 2, "npz": f"weights-{epoch}-{batch}.npz",
                                               "network": {}, "epoch": epoch, "batch": batch,
                                               "history": hist}))
    (ck / "run.json").write_text(json.dumps({"model": "fenchel", "options": {"epochs": 20}}))


def _runs(root: Path) -> Path:
    """fig2-full: sgd finished (history + png), fenchel finished (its final checkpoint too);
    fig3-full: fenchel stopped after 2 epochs and 1 batch; results files; a started adam;
    table1-full with results, lambda and table; a folder of no target."""
    f2 = root / "fig2-full"
    for m in ("sgd", "fenchel"):
        (f2 / m).mkdir(parents=True)
        (f2 / m / "history.json").write_text(json.dumps(_history(4)))
        (f2 / m / "history.png").write_bytes(b"png")
    _checkpoint(f2 / "fenchel", 4, 0)
    (f2 / "results.json").write_text(json.dumps({"figure": "fig2", "runs": []}))
    (f2 / "results.md").write_text("| table |\n")
    (f2 / "figure.png").write_bytes(b"png")
    _checkpoint(root / "fig3-full" / "fenchel", 2, 1)
    (root / "fig3-full" / "adam").mkdir()
    t1 = root / "table1-full"
    t1.mkdir()
    for f in ("results.json", "lambda.json"):
        (t1 / f).write_text(json.dumps({"rows": []}))
    (t1 / "table.md").write_text("t\n")
    (root / "scratch").mkdir()
    (root / "scratch" / "x.json").write_text("{}")
    return root


def _tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_slim_history_drops_batch_records_and_counts_them():
    """Every batch record dropped (count and summed time in the meta), epochs and meta kept;
    with ``keep_after_epoch`` the records of later epochs stay, without list-valued fields;
    slimming again drops nothing more (counts unchanged), and a second archive adds up."""
    h = _history(3)
    s = slim_history(h)
    assert s["batches"] == [] and s["epochs"] == h["epochs"]
    assert {k: s["meta"][k] for k in h["meta"]} == h["meta"]
    assert (s["meta"]["batch_records_dropped"], s["meta"]["batch_seconds_dropped"]) == (9, 2.25)
    assert slim_history(s) == s
    k = slim_history(h, keep_after_epoch=2)
    assert k["batches"] == [{"epoch": 3, "batch": b, "relaxed_objective": 1.0 / (3 + b), "time": 0.25}
                            for b in (1, 2, 3)]
    assert (k["meta"]["batch_records_dropped"], k["meta"]["batch_seconds_dropped"]) == (6, 1.5)
    assert k["meta"]["batch_fields_dropped"] == ["steps", "w_methods"]
    assert slim_history(k, keep_after_epoch=2) == k
    assert slim_history(k)["meta"]["batch_records_dropped"] == 9  # cumulative
    st = {"epoch": 2, "batch": 1, "npz": "w.npz", "rng_state": {"s": 1}, "history": h}
    assert slim_state(st) == {**st, "history": k}


def test_archive_holds_the_results_and_only_what_an_unfinished_run_needs(tmp_path):
    """Per figure results.json/md; per model the slim history.json; a checkpoint (run.json, slim
    state.json, the npz it names) only for fig3's unfinished Fenchel run (fig2's is finished);
    table1's results, lambda and table; no PNG, no folder of no target; a manifest per folder.
    Archiving again writes the same bytes."""
    runs = _runs(tmp_path / "runs")
    arc = tmp_path / "arc"
    got = archive(runs, arc)
    assert sorted(_tree(arc)) == sorted(got["files"]) == [
        "fig2-full/archive.json", "fig2-full/fenchel/history.json", "fig2-full/results.json",
        "fig2-full/results.md", "fig2-full/sgd/history.json",
        "fig3-full/archive.json", "fig3-full/fenchel/checkpoints/run.json",
        "fig3-full/fenchel/checkpoints/state.json", "fig3-full/fenchel/checkpoints/weights-2-1.npz",
        "table1-full/archive.json", "table1-full/lambda.json", "table1-full/results.json",
        "table1-full/table.md"]
    for f in ("fig2-full/results.json", "fig2-full/results.md", "table1-full/lambda.json",
              "fig3-full/fenchel/checkpoints/weights-2-1.npz", "fig3-full/fenchel/checkpoints/run.json"):
        assert (arc / f).read_bytes() == (runs / f).read_bytes()
    h = json.loads((arc / "fig2-full/sgd/history.json").read_text())
    assert h == slim_history(_history(4)) and h["meta"]["batch_records_dropped"] == 12
    st = json.loads((arc / "fig3-full/fenchel/checkpoints/state.json").read_text())
    assert st == slim_state(json.loads((runs / "fig3-full/fenchel/checkpoints/state.json").read_text()))
    man = json.loads((arc / "fig3-full" / ARCHIVE_FILE).read_text())
    assert man["models"]["fenchel"]["progress"] == [2, 1]
    assert man["models"]["adam"] == {"status": "started", "progress": [0, 0], "updated": None}
    assert man["models"]["fenchel"]["updated"] == max(
        p.stat().st_mtime for p in (runs / "fig3-full/fenchel/checkpoints").iterdir())
    before = _tree(arc)
    archive(runs, arc)
    assert _tree(arc) == before


def test_rearchiving_replaces_the_mirror_and_deletes_stale_files(tmp_path):
    """The fig3 Fenchel run finishes: its checkpoint leaves the archive, its history comes in;
    a stray file in the mirror is deleted; folders of other roots are left alone."""
    runs = _runs(tmp_path / "runs")
    arc = tmp_path / "arc"
    archive(runs, arc)
    (arc / "fig3-full" / "stray.txt").write_text("x")
    (arc / "fig9-other").mkdir()  # not a folder of these runs: untouched
    (arc / "fig9-other" / "keep.json").write_text("{}")
    fen = runs / "fig3-full" / "fenchel"
    _checkpoint(fen, 20, 0)
    (fen / "history.json").write_text(json.dumps(_history(20)))
    archive(runs, arc)
    assert sorted(p for p in _tree(arc) if p.startswith("fig3-full/")) == [
        "fig3-full/archive.json", "fig3-full/fenchel/history.json"]
    assert not (arc / "fig3-full" / "fenchel" / "checkpoints").exists()
    assert (arc / "fig9-other" / "keep.json").exists()


def test_archive_refusals_name_the_problem_and_write_nothing(tmp_path):
    """A results file over 1 MB (named), a folder in two roots, the archive inside the runs, and an
    archived run replaced by less of it (a session that did not restore the archive) or dropped:
    each is refused before anything is written."""
    runs = _runs(tmp_path / "runs")
    (runs / "fig2-full" / "results.md").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ArchiveError, match=r"fig2-full/results\.md: 1,000,001 bytes.*nothing was written"):
        archive(runs, tmp_path / "arc")
    assert not (tmp_path / "arc").exists()
    (runs / "fig2-full" / "results.md").write_text("| table |\n")
    other = tmp_path / "other"
    (other / "table1-full").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="would both be archived as"):
        archive([runs, other], tmp_path / "arc")
    with pytest.raises(ArchiveError, match="is the archive"):
        archive(runs, runs / "fig9-x" / "..")
    arc = tmp_path / "arc"
    archive(runs, arc)
    before = _tree(arc)
    _checkpoint(runs / "fig3-full" / "fenchel", 1, 0)  # started again from scratch
    with pytest.raises(ArchiveError, match=r"holds more of that run \(2 epochs \+ 1 batches\) than "
                                           r".*fenchel \(1 epochs\): restore the archive"):
        archive(runs, arc)
    _checkpoint(runs / "fig3-full" / "fenchel", 2, 1)
    shutil.rmtree(runs / "fig2-full" / "sgd")
    with pytest.raises(ArchiveError, match=r"fig2-full/sgd is archived but .* has no sgd folder"):
        archive(runs, arc)
    (runs / "fig2-full" / "sgd").mkdir()
    (runs / "fig2-full" / "sgd" / "history.json").write_text(json.dumps(_history(4)))
    (runs / "fig2-full" / "results.json").unlink()
    with pytest.raises(ArchiveError, match=r"fig2-full/results\.json is archived but .* has no "
                                           r"results\.json"):
        archive(runs, arc)
    assert _tree(arc) == before


def _fig2(root: Path, accs: dict, when: float | None = None) -> Path:
    f = root / "fig2-full"
    for model, acc in accs.items():
        (f / model).mkdir(parents=True, exist_ok=True)
        h = {"meta": {"model": model, "options": {"epochs": 1}, "train_seconds": 1.0},
             "batches": [{"epoch": 1, "batch": 1, "time": 1.0}],
             "epochs": [{"epoch": 1, "test_accuracy": acc}]}
        (f / model / "history.json").write_text(json.dumps(h))
        if when is not None:
            os.utime(f / model / "history.json", (when, when))
    return root


def test_the_report_reads_the_union_newest_copy_of_each_model_winning(tmp_path):
    """Archive at time T of sgd 0.90 / adam 0.95; then the live runs hold a newer sgd (0.93) and
    an older adam (0.94, dated before T) and no fenchel, which only the archive has (0.97): the
    report takes sgd from the runs, adam and fenchel from the archive; with equal times the live
    copy wins. The CLI archives first, then reports from both."""
    old = _fig2(tmp_path / "old", {"sgd": 0.90, "adam": 0.95, "fenchel": 0.97}, when=1_000_000.0)
    arc = tmp_path / "arc"
    archive(old, arc)
    live = _fig2(tmp_path / "live", {"sgd": 0.93}, when=2_000_000.0)
    _fig2(live, {"adam": 0.94}, when=500_000.0)

    def ours(rep):
        s = next(s for s in rep["sections"] if s["target"] == "fig2")
        return {e["model"]: e["ours"] for e in s["numbers"]}

    rep = build_report(live, tmp_path / "out", plots=False, archived=arc)
    assert ours(rep) == {"sgd": 0.93, "adam": 0.95, "fenchel": 0.97}
    _fig2(live, {"adam": 0.94}, when=1_000_000.0)  # same time as the archived copy: live wins
    assert ours(build_report(live, tmp_path / "out", plots=False, archived=arc))["adam"] == 0.94
    assert ours(build_report(live, tmp_path / "out", plots=False))["fenchel"] is None
    # the command line: archive the live runs (adam, sgd) into the archive, then the union
    (old / "fig2-full" / "fenchel").rename(live / "fig2-full" / "fenchel")
    out = tmp_path / "docs"
    assert cli.main(["report", "--runs", str(live), "--runs", str(tmp_path / "empty-root"),
                     "--out", str(out), "--archive", str(arc)]) == 2  # a missing root: refused
    (tmp_path / "empty-root").mkdir()
    assert cli.main(["report", "--runs", str(live), "--runs", str(tmp_path / "empty-root"),
                     "--out", str(out), "--archive", str(arc)]) == 0
    doc = json.loads((out / "REPRODUCTION.json").read_text())
    assert ours(doc) == {"sgd": 0.93, "adam": 0.94, "fenchel": 0.97}
    assert json.loads((arc / "fig2-full/adam/history.json").read_text())["epochs"][0][
        "test_accuracy"] == 0.94


def test_a_checkpoint_too_large_to_archive_leaves_the_measured_part_as_a_partial_history(tmp_path, capsys):
    """An unfinished run whose checkpoint is over 1 MB (Algorithm 1's holds every lifted X):
    its history so far is archived as a partial history.json (with run.json, without the
    checkpoint), the manifest records the dropped checkpoint; the report reads it as a partial
    result with its epochs and reason; ``reproduce --resume`` does not take it for a finished run."""
    from cvx_fenchel.report import _model_run
    from cvx_fenchel.reproduce import _finished
    runs = _runs(tmp_path / "runs")
    _checkpoint(runs / "fig3-full" / "fenchel", 2, 1, n_bytes=MAX_FILE_BYTES + 1)
    got = archive(runs, tmp_path / "arc")
    entry = got["folders"]["fig3-full"]["models"]["fenchel"]
    assert entry["status"] == "partial" and entry["progress"] == [2, 1]
    assert entry["checkpoint_dropped"] == {"npz": "weights-2-1.npz", "bytes": MAX_FILE_BYTES + 1}
    fen = tmp_path / "arc" / "fig3-full" / "fenchel"
    assert sorted(p.relative_to(fen).as_posix() for p in fen.rglob("*") if p.is_file()) == [
        "checkpoints/run.json", "history.json"]
    h = json.loads((fen / "history.json").read_text())
    state = json.loads((runs / "fig3-full" / "fenchel" / "checkpoints" / "state.json").read_text())
    assert h["epochs"] == state["history"]["epochs"] and h["meta"]["partial"] is True
    assert "1.0 MB) is over the archive's 1 MB limit" in h["meta"]["stop_reason"]
    run = _model_run(tmp_path / "arc" / "fig3-full", "fenchel", None, {})
    assert run["status"] == "partial" and run["epochs"] == 2 and run["epochs_planned"] == 20
    assert run["test_accuracy"] == state["history"]["epochs"][-1]["test_accuracy"]
    assert "starts again" in run["stop_reason"]
    assert _finished(fen, "fenchel", {"epochs": 2}, None) is None
    assert "part of an unfinished run (a copy from the archive): not a result" in capsys.readouterr().out
