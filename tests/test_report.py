"""``cvx-fenchel report`` (cvx_fenchel.report): the paper numbers table is paper_results.md, and
the report's numbers are exactly those of the run folders it reads (synthetic runs with known
accuracies), with not run / partial / started / variant rows and Table 1's mean +- 2 std."""

import json
import math
import re
from pathlib import Path

import pytest

from cvx_fenchel import cli
from cvx_fenchel.errors import InputError
from cvx_fenchel.report import PAPER, TABLE1_ARCHS, build_report, table1_cells

ROOT = Path(__file__).resolve().parents[1]
PAPER_MD = ROOT.parent / "shared" / "reference" / "paper_results.md"


def write_history(folder: Path, model: str, accs, *, planned=None, seconds=12.5, data_dir="/d/mnist",
                  dataset="mnist", **meta):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"meta": {"model": model, "options": {"epochs": planned or len(accs), "seed": 3},
                    "dataset": dataset, "data_dir": data_dir, "train_seconds": seconds,
                    "command": ["train", "--model", model, "--out", str(folder)], **meta},
           "batches": [{"batch": 0, "time": 1.5}],
           "epochs": [{"epoch": i + 1, "test_accuracy": a} for i, a in enumerate(accs)]}
    (folder / "history.json").write_text(json.dumps(doc))
    return doc


def entries(report, target):
    return {e["model"]: e for s in report["sections"] if s["target"] == target for e in s["numbers"]}


def test_paper_numbers_are_every_row_of_paper_results_md():
    """PAPER holds 5 + 3 + 3 + 3 figure numbers and 2 x 5 x 5 Table 1 cells, and (when the
    reference file is readable) exactly the numbers of paper_results.md in its order."""
    figs = [p for p in PAPER if p.target != "table1"]
    cells = [p for p in PAPER if p.target == "table1"]
    assert [p.target for p in figs] == ["fig1"] * 5 + ["fig2"] * 3 + ["fig3"] * 3 + ["fig4"] * 3
    assert len(cells) == 50 and len({p.key for p in PAPER}) == len(PAPER)
    if not PAPER_MD.is_file():
        pytest.skip(f"{PAPER_MD} not readable here")
    text = PAPER_MD.read_text()
    for fig in ("1", "2", "3", "4"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| Fig. {fig} |"))
        reported = line.rstrip(" |").rsplit("|", 1)[1]
        want = [float(x) for x in re.findall(r"\b0\.\d{3}\b", reported)]
        assert [p.paper for p in figs if p.target == f"fig{fig}"] == want
    md_cells = []
    for block in re.split(r"Learning rate ", text)[1:]:
        lr = float(block.split(":", 1)[0])
        for ln in block.splitlines():
            m = re.match(r"\| ([\d-]+) \|(.*)\|$", ln.strip())
            if m:
                pairs = re.findall(r"(0\.\d+) \+- (0\.\d+)", m.group(2))
                md_cells += [(lr, m.group(1), float(a), float(b)) for a, b in pairs]
    assert md_cells == [(p.lr, p.arch, p.paper, p.two_std) for p in cells]


def test_numbers_and_differences_are_the_runs_inputs(tmp_path):
    """A finished fig2 folder: ours is the last test accuracy of each history (or the
    results.json row), the difference is ours - paper in pp; epochs, seconds, seed, command,
    machine and commit come from the run; fig1 has no folder: every row 'not run' with a reason."""
    runs = tmp_path / "runs"
    f = runs / "fig2-full"
    write_history(f / "sgd", "sgd", [0.90, 0.9430], seconds=20.0)
    write_history(f / "adam", "adam", [0.95, 0.9761])
    write_history(f / "fenchel", "fenchel", [0.96, 0.9747], seconds=383.5,
                  machine={"host": "h1", "cpu_model": "Test CPU", "logical_cpus": 2},
                  source_commit="abc123")  # the keys experiments.train writes
    (f / "results.json").write_text(json.dumps({"figure": "fig2", "data_dir": "/d/mnist",
                                                "command": "cvx-fenchel reproduce fig2", "runs": [
        {"model": "adam", "test_accuracy": 0.9755, "epochs": 2, "seconds": 7.0, "seed": 3,
         "command": "cvx-fenchel train --model adam", "test_accuracy_per_epoch": [0.95, 0.9755]}]}))
    rep = build_report(runs, tmp_path / "out", plots=False, command="cvx-fenchel report X")
    e = entries(rep, "fig2")
    assert (e["sgd"]["ours"], e["sgd"]["diff_pp"], e["sgd"]["status"]) == (0.9430, 0.0, "done")
    assert (e["adam"]["ours"], e["adam"]["diff_pp"]) == (0.9755, -0.05)  # the results.json row
    assert e["adam"]["run"]["command"] == "cvx-fenchel train --model adam"
    assert (e["fenchel"]["ours"], e["fenchel"]["diff_pp"]) == (0.9747, -0.13)
    r = e["fenchel"]["run"]
    assert (r["epochs"], r["seconds"], r["seed"], r["commit"]) == (2, 383.5, 3, "abc123")
    assert r["stop_reason"] == "ran the 2 epochs asked for"
    assert r["command"] == f"cvx-fenchel train --model fenchel --out {f / 'fenchel'}"
    assert all(x["status"] == "not run" and "no folder fig1-full" in x["reason"]
               for x in entries(rep, "fig1").values())
    on_disk = json.loads((tmp_path / "out" / "REPRODUCTION.json").read_text())
    assert on_disk["sections"][1]["numbers"][2]["ours"] == 0.9747
    md = (tmp_path / "out" / "REPRODUCTION.md").read_text()
    assert md.startswith("# Reproduction") and "Generated by `cvx-fenchel report X`" in md
    assert "| Fenchel (`fenchel`) | 0.976 | 0.9747 | -0.13 | done | 2 of 2 (paper 10) |" in md
    assert "machine h1, Test CPU, 2 CPUs; backend not recorded; commit abc123" in md
    assert "| Taylor et al. 2016 (ADMM) (`taylor-admm`) | 0.834 |  |  | **not run** |" in md


def test_partial_and_started_runs_and_variants(tmp_path):
    """fig3: a Fenchel run with only a checkpoint (3 of 20 epochs) is partial with its last
    accuracy; an older 2-epoch history.json behind a checkpoint at epoch 3 is partial too; an
    empty baseline folder is 'started'. fig3-gaps-full rows are variants compared with their base."""
    runs = tmp_path / "runs"
    f = runs / "fig3-full"
    ck = f / "fenchel" / "checkpoints"
    ck.mkdir(parents=True)
    hist = {"meta": {"model": "fenchel"}, "batches": [{"time": 100.0}] * 3,
            "epochs": [{"test_accuracy": a} for a in (0.95, 0.9633, 0.97)]}
    (ck / "state.json").write_text(json.dumps({"epoch": 3, "batch": 40, "npz": "w.npz",
                                               "network": {}, "history": hist}))
    (ck / "run.json").write_text(json.dumps({"model": "fenchel", "options": {"epochs": 20, "seed": 0},
                                             "dataset": "mnist", "data_dir": "/d/mnist"}))
    write_history(f / "adam", "adam", [0.98, 0.985], planned=2)
    ck2 = f / "adam" / "checkpoints"  # a (hypothetical) resumed adam run ahead of its history
    ck2.mkdir()
    (ck2 / "state.json").write_text(json.dumps({"epoch": 3, "batch": 0, "npz": "w.npz", "network": {},
        "history": {"epochs": [{"test_accuracy": a} for a in (0.98, 0.985, 0.987)]}}))
    (f / "sgd").mkdir()
    write_history(runs / "fig3-gaps-full" / "fenchel-float64", "fenchel", [0.97, 0.981])
    write_history(runs / "fig3-gaps-full" / "sgd-lr0.1", "sgd", [0.99])
    (runs / "scratch").mkdir()
    rep = build_report(runs, tmp_path / "out", plots=False)
    e = entries(rep, "fig3")
    fen = e["fenchel"]
    assert (fen["status"], fen["ours"], fen["run"]["epochs"], fen["run"]["epochs_planned"]) == \
        ("partial", 0.97, 3, 20)
    assert fen["run"]["seconds"] == 300.0 and fen["diff_pp"] == -2.0
    assert fen["run"]["stop_reason"] == "running or killed: 3 epochs done of 20 (+40 batches)"
    assert fen["run"]["command"] == f"cvx-fenchel train --data-dir /d/mnist --model fenchel --epochs 20 " \
                                    f"--seed 0 --out {f / 'fenchel'}"  # from run.json
    assert (e["adam"]["status"], e["adam"]["ours"], e["adam"]["run"]["epochs"]) == ("partial", 0.987, 3)
    assert e["sgd"]["status"] == "started" and e["sgd"]["ours"] is None
    assert "running or killed" in e["sgd"]["reason"]
    sec = next(s for s in rep["sections"] if s["target"] == "fig3")
    v = {x["variant"]: x for x in sec["variants"]}
    assert (v["fenchel-float64"]["of"], v["fenchel-float64"]["ours"], v["fenchel-float64"]["diff_pp"]) == \
        ("fenchel", 0.981, -0.9)
    assert (v["sgd-lr0.1"]["of"], v["sgd-lr0.1"]["diff_pp"]) == ("sgd", 0.4)
    assert rep["ignored_folders"] == ["scratch"]
    md = (tmp_path / "out" / "REPRODUCTION.md").read_text()
    assert "| Fenchel (`fenchel`) | 0.990 | 0.9700 | -2.00 | **partial** (last written" in md
    assert "| SGD (`sgd`) | 0.986 |  |  | **started** | 0 (paper 20) | running or killed: 0 epochs done |  |  |  | " \
           "not recorded (nothing written yet) |" in md
    assert "| `fig3-gaps-full` | fenchel-float64 | fenchel | 0.990 | 0.9810 | -0.90 | done |" in md


def test_subset_folders_only_when_asked(tmp_path):
    runs = tmp_path / "runs"
    write_history(runs / "fig2-subset" / "sgd", "sgd", [0.91], data_dir=None)
    rep = build_report(runs, tmp_path / "a", plots=False)
    assert entries(rep, "fig2")["sgd"]["status"] == "not run"
    assert "fig2-subset exists: pass --subset" in entries(rep, "fig2")["sgd"]["reason"]
    rep = build_report(runs, tmp_path / "b", plots=False, include_subset=True)
    assert entries(rep, "fig2")["sgd"]["ours"] == 0.91
    assert "embedded MNIST subset" in (tmp_path / "b" / "REPRODUCTION.md").read_text()


def test_table1_mean_two_std_over_seeds(tmp_path):
    """Table 1 cells: mean and 2 x std (ddof 0, as table1.py) of the seeds' accuracies; the
    lifted model (table1.py's init 'lnn', lr null) fills both learning rates; fewer than 5 seeds
    is partial; unknown rows are counted; lambda as table1.py writes it."""
    accs = [0.90, 0.91, 0.92, 0.89, 0.88]
    rows = [{"arch": "784-300-10", "lr": 1e-5, "init": "NN[Xavier]", "seed": s, "test_accuracy": a}
            for s, a in enumerate(accs)]
    rows += [{"arch": "300-100", "lr": None, "init": "lnn", "seed": s, "test_accuracy": 0.875,
              "seconds": 60.0, "commit": "3b42050aaaaabbbb", "machine": {"host": "vm", "logical_cpus": 2}}
             for s in range(2)]
    rows += [{"arch": "999", "lr": 1e-5, "init": "xavier", "seed": 0, "test_accuracy": 0.5}]
    runs = tmp_path / "runs"
    (runs / "table1-full").mkdir(parents=True)
    (runs / "table1-full" / "results.json").write_text(json.dumps({"rows": rows, "lambda": {"lam": 0.01,
                                                                                   "source": "search"}}))
    cells = table1_cells({"rows": rows})
    c = cells[(1e-5, "300", "xavier")]
    assert c["n"] == 5 and c["mean"] == pytest.approx(0.90, abs=1e-15)
    assert c["two_std"] == pytest.approx(2 * math.sqrt(0.001 / 5), abs=1e-15)
    assert table1_cells({"rows": [{"arch": "300", "lr": 1e-5, "init": "NN[var-scale]", "seed": 0,
                                   "test_accuracy": 0.5}]})[(1e-5, "300", "var-scale")]["mean"] == 0.5
    assert len(cells["unplaced"]) == 1
    rep = build_report(runs, tmp_path / "out", plots=False)
    t = {e["key"]: e for e in entries_all(rep, "table1")}
    x = t["table1/lr=1e-05/300/xavier"]
    assert (x["status"], x["n_seeds"], x["diff_pp"]) == ("done", 5, round(100 * (c["mean"] - 0.923), 6))
    for lr in ("1e-05", "1e-06"):
        y = t[f"table1/lr={lr}/300-100/lifted-model"]
        assert (y["status"], y["ours"], y["ours_two_std"], y["diff_pp"]) == ("partial", 0.875, 0.0, 0.0)
    assert t["table1/lr=1e-06/300/xavier"]["status"] == "not run"
    md = (tmp_path / "out" / "REPRODUCTION.md").read_text()
    assert "lambda 0.01 (source: search)" in md and "1 rows could not be placed" in md
    assert "wall time of all cells 2.0 min" in md
    # commit and machine per cell (cells run over sessions): the distinct ones, and who did not say
    assert "machine vm, 2 CPUs (per cell); not recorded by 6 earlier cells" in md
    assert "commit 3b42050aaaaa (per cell); not recorded by 6 earlier cells" in md
    assert "| 300 | not run / paper 0.898 +- 0.005 | not run / paper 0.915 +- 0.004 | 0.900 +- 0.028 (5) " \
           "/ paper 0.923 +- 0.005 / -2.30 pp |" in md
    assert len([a for a in TABLE1_ARCHS]) * 2 * 5 == len(t)


def entries_all(report, target):
    return [e for s in report["sections"] if s["target"] == target for e in s["numbers"]]


def test_cli_writes_small_plots_per_figure_and_refuses_bad_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_history(runs / "fig2-full" / "fenchel", "fenchel", [0.96, 0.97, 0.9747])
    write_history(runs / "fig4-full" / "sgd", "sgd", [0.4, 0.5], dataset="cifar10", data_dir="/d/c10")
    out = tmp_path / "out"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out)]) == 0
    for fig in ("fig1", "fig2", "fig3", "fig4"):
        png = out / f"reproduction-{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 150_000
    md = (out / "REPRODUCTION.md").read_text()
    assert f"Generated by `cvx-fenchel report --runs {runs} --out {out}`" in md
    assert "CIFAR-10 JPEG quality-75 copy" in md
    assert cli.main(["report", "--runs", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "nope is not a folder" in capsys.readouterr().err
    with pytest.raises(InputError, match="exists and is not a folder"):
        build_report(runs, out / "REPRODUCTION.md")


def test_gap_studies_under_the_output_folder_are_linked_in_their_sections(tmp_path):
    """Every ``gaps/<target>-*/README.md`` under the report's folder is listed, with its title
    line, in that target's section only (a study of fig4 is not listed under fig3)."""
    runs = tmp_path / "runs"
    write_history(runs / "fig4-full" / "sgd", "sgd", [0.5], dataset="cifar10")
    out = tmp_path / "out"
    for name, title in (("fig4-probe", "# Fig. 4 probe: why it stalls"), ("fig4-conv", "## Conv layers"),
                        ("table1-lambda", "# Lambda search")):
        (out / "gaps" / name).mkdir(parents=True)
        (out / "gaps" / name / "README.md").write_text(title + "\n\ntext\n")
    (out / "gaps" / "fig4-empty").mkdir()  # no README: not a study
    rep = build_report(runs, out, plots=False)
    studies = {s["target"]: s["studies"] for s in rep["sections"]}
    assert studies["fig4"] == [{"path": "gaps/fig4-conv/README.md", "title": "Conv layers"},
                               {"path": "gaps/fig4-probe/README.md", "title": "Fig. 4 probe: why it stalls"}]
    assert studies["table1"] == [{"path": "gaps/table1-lambda/README.md", "title": "Lambda search"}]
    assert studies["fig3"] == [] and studies["fig1"] == []
    md = (out / "REPRODUCTION.md").read_text()
    fig4 = md.split("## Fig. 4")[1].split("## Table 1")[0]
    assert "* [Fig. 4 probe: why it stalls](gaps/fig4-probe/README.md)" in fig4
    assert "* [Conv layers](gaps/fig4-conv/README.md)" in fig4
    assert "gaps/fig4" not in md.split("## Fig. 4")[0]
    assert "* [Lambda search](gaps/table1-lambda/README.md)" in md.split("## Table 1")[1]
