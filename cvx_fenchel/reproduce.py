"""``cvx-fenchel reproduce FIGURE``: run every model of one of the papers' MNIST figures.

Each figure is a list of training runs (one per model, with that model's options), each the
same as one ``cvx-fenchel train`` command. :func:`reproduce` runs them one after the other
through :func:`cvx_fenchel.experiments.train`. Each figure and data set has its own folder
``F = OUT/<figure>-subset`` (the embedded subset) or ``OUT/<figure>-full`` (``--data-dir``), so a
results table never mixes data sets. Each model writes ``F/<model>/history.json`` and its plot,
then the run writes

* ``F/results.json`` -- per model: the exact command, the data, seed and backend, final test
  accuracy, seconds, seconds per epoch, and the paper's reported number (rows of an earlier run
  in the same folder are kept only when they used the same data, seed and backend);
* ``F/results.md`` -- the same as a Markdown table (what the README's results come from);
* ``F/figure.png`` -- test accuracy per epoch of every model, the paper's final numbers as
  dotted lines.

Every model's requirements (PyTorch for ``sgd``/``adam``) are checked before the first run.
The Fenchel model checkpoints at every epoch's end (``--checkpoint-every N``: also every ``N``
batches), so ``cvx-fenchel reproduce FIGURE --resume`` continues a killed run: models that
finished with the same command are skipped, the Fenchel model resumes from its checkpoint, and a
baseline that was running starts again (baselines write no checkpoints).

The figures (numbers from ``reference/paper_results.md``):

* ``fig1``: MNIST 784-300-10, MSE loss; Taylor et al. ADMM, Lau et al. BCD, the 2018 lifted
  network (LNN), SGD, and the Fenchel lifted network trained full-batch (Algorithm 1);
* ``fig2``: MNIST 784-300-10, cross-entropy, 10 epochs; SGD, Adam and the batched Fenchel model
  with the original code's settings;
* ``fig3``: MNIST LeNet-5, cross-entropy; SGD, Adam, Fenchel (paper: 20 epochs; default here 2).

With no ``--data-dir`` the runs use the MNIST subset shipped with the package (a smoke test of
the pipeline; the papers' numbers are for the full 60,000/10,000 split).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import has_checkpoint
from .errors import InputError, UnknownNameError
from .experiments import command_line, missing_requirements, train
from .history import History, atomic_write_bytes

__all__ = ["FIGURES", "Figure", "Run", "commands", "data_tag", "figure_folder", "reproduce"]


@dataclass(frozen=True)
class Run:
    """One model of a figure: ``train(model, {**options, "epochs": epochs, ...})`` of
    :mod:`cvx_fenchel.experiments` (``options`` as ``(name, value)`` pairs)."""

    model: str
    options: tuple = ()
    epochs: int = 10
    paper: float | None = None  # reported final test accuracy
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class Figure:
    title: str
    arch: str
    runs: tuple = field(default_factory=tuple)


FIGURES: dict[str, Figure] = {
    "fig1": Figure(
        "Fig. 1 (Gu et al. 2020): MNIST 784-300-10, MSE loss, full-batch lifted models",
        "784-300-10",
        (Run("taylor-admm", (("loss", "mse"),), epochs=100, paper=0.834),
         Run("lau-bcd", (("loss", "mse"),), epochs=50, paper=0.914),
         Run("lnn", (("loss", "mse"),), epochs=1, paper=0.863),
         Run("sgd", (("loss", "mse"),), epochs=10, paper=0.957),
         Run("fenchel", (("loss", "mse"), ("algorithm", "full")), epochs=30, paper=0.961))),
    "fig2": Figure(
        "Fig. 2 (Gu et al. 2020): MNIST 784-300-10, cross-entropy, 10 epochs",
        "784-300-10",
        (Run("sgd", (("loss", "cross_entropy"),), epochs=10, paper=0.943),
         Run("adam", (("loss", "cross_entropy"),), epochs=10, paper=0.976),
         Run("fenchel", (("loss", "cross_entropy"),), epochs=10, paper=0.976))),
    "fig3": Figure(
        "Fig. 3 (Gu et al. 2020): MNIST LeNet-5, cross-entropy (paper: 20 epochs)",
        "lenet5",
        (Run("sgd", (("loss", "cross_entropy"),), epochs=2, paper=0.986),
         Run("adam", (("loss", "cross_entropy"),), epochs=2, paper=0.989),
         Run("fenchel", (("loss", "cross_entropy"),), epochs=2, paper=0.990))),
}


def _options(fig: Figure, run: Run, *, epochs: int | None, seed: int, backend: str,
             checkpoint_every: int | None = None) -> dict:
    opts = {"arch": fig.arch, **dict(run.options),
            "epochs": epochs if epochs is not None else run.epochs, "seed": seed, "backend": backend}
    if run.model == "fenchel":  # checkpoints at epoch ends (and every N batches): --resume
        opts["checkpoint_every"] = checkpoint_every or 0
    return opts


def commands(figure: str, *, data_dir: str | None = None, epochs: int | None = None,
             out: str = "runs/reproduce", seed: int = 0, backend: str = "auto",
             models: list[str] | None = None, checkpoint_every: int | None = None) -> list[list[str]]:
    """The ``cvx-fenchel`` argument lists :func:`reproduce` runs for ``figure``."""
    fig = _figure(figure)
    return [command_line(r.model, _options(fig, r, epochs=epochs, seed=seed, backend=backend,
                                           checkpoint_every=checkpoint_every),
                         data_dir=data_dir, out=str(figure_folder(out, figure, data_dir) / r.name))
            for r in _select(fig, models)]


def _figure(name: str) -> Figure:
    if name not in FIGURES:
        raise UnknownNameError(f"unknown figure {name!r}; choose one of {sorted(FIGURES)}")
    return FIGURES[name]


def _select(fig: Figure, models: list[str] | None) -> list[Run]:
    if not models:
        return list(fig.runs)
    known = {r.name for r in fig.runs}
    bad = [m for m in models if m not in known]
    if bad:
        raise InputError(f"model(s) {bad} are not part of this figure; choose from {sorted(known)}")
    return [r for r in fig.runs if r.name in models]


def data_tag(data_dir: str | None) -> str:
    """``subset`` (the embedded MNIST subset) or ``full`` (the official files in ``data_dir``)."""
    return "subset" if data_dir is None else "full"


def figure_folder(out: str | Path, figure: str, data_dir: str | None) -> Path:
    """``OUT/<figure>-<data tag>``: one folder per figure and data set, so runs on different data
    never share a results table."""
    return Path(out) / f"{figure}-{data_tag(data_dir)}"


def reproduce(figure: str, *, data_dir: str | None = None, epochs: int | None = None,
              out: str = "runs/reproduce", seed: int = 0, backend: str = "auto",
              models: list[str] | None = None, quiet: bool = False, resume: bool = False,
              checkpoint_every: int | None = None) -> dict:
    """Run every model of ``figure`` and write ``results.json``, ``results.md``, ``figure.png``
    into :func:`figure_folder` (``OUT/<figure>-subset`` or ``OUT/<figure>-full``).

    Every model's requirements are checked before the first one runs. The Fenchel model
    checkpoints at every epoch's end (and every ``checkpoint_every`` batches) into
    ``<model>/checkpoints``. ``resume``: continue a killed reproduce run: a model whose
    ``history.json`` holds a finished run of the same command is skipped (its row is read from
    it), a Fenchel run with a checkpoint is resumed (``cvx-fenchel train --resume``), any other
    model runs again. Returns the results dict (also written to ``results.json``).
    """
    fig = _figure(figure)
    runs = _select(fig, models)
    problem = missing_requirements([r.model for r in runs])
    if problem:
        raise InputError(problem)
    outp = figure_folder(out, figure, data_dir)
    outp.mkdir(parents=True, exist_ok=True)
    print(f"reproduce {figure} on {'the embedded MNIST subset' if data_dir is None else data_dir}: "
          f"results in {outp}", flush=True)
    rows = []
    for run in runs:
        opts = _options(fig, run, epochs=epochs, seed=seed, backend=backend,
                        checkpoint_every=checkpoint_every)
        argv = command_line(run.model, opts, data_dir=data_dir, out=str(outp / run.name))
        print(f"\n== {run.name}: cvx-fenchel {shlex.join(argv)}", flush=True)
        hist = _finished(outp / run.name, run.model, opts, data_dir) if resume else None
        if hist is not None:
            print(f"finished earlier ({outp / run.name / 'history.json'}): skipped", flush=True)
            seconds = float(hist.meta.get("train_seconds") or 0.0)
        else:
            again = resume and run.model == "fenchel" and has_checkpoint(outp / run.name / "checkpoints")
            # re-running a model of a figure replaces its run (that is how --models updates a row)
            res = train(run.model, opts, data_dir=data_dir, out=outp / run.name, quiet=quiet,
                        overwrite=not again, resume=again, log=lambda line: print(line, flush=True))
            hist, seconds = res["history"], float(res["seconds"])
        n_ep = len(hist.epochs)
        rows.append({"model": run.name, "command": "cvx-fenchel " + shlex.join(argv),
                     "epochs": n_ep, "test_accuracy": hist.last.get("test_accuracy"),
                     "test_accuracy_per_epoch": hist.series("test_accuracy"),
                     "seconds": seconds, "seconds_per_epoch": seconds / max(n_ep, 1),
                     "paper": run.paper, "data": data_dir or "embedded MNIST subset",
                     "seed": seed, "backend": backend})
    rows = _merge_previous(outp / "results.json", figure, fig, rows)
    result = {"figure": figure, "title": fig.title, "data_dir": data_dir, "seed": seed,
              "backend": backend, "command": "cvx-fenchel reproduce " + shlex.join(sys.argv[2:])
              if len(sys.argv) > 2 and sys.argv[1] == "reproduce" else None, "runs": rows}
    atomic_write_bytes(outp / "results.json", json.dumps(result, indent=1).encode())
    atomic_write_bytes(outp / "results.md", markdown(result).encode())
    plot(result, outp / "figure.png")
    print("\n" + markdown(result))
    return result


def _finished(out: Path, model: str, opts: dict, data_dir: str | None) -> History | None:
    """The history of a finished run in ``out`` made by the same command, else None."""
    try:
        hist = History.load(out / "history.json")
    except (OSError, ValueError):
        return None
    m = hist.meta
    same = (m.get("model") == model and m.get("data_dir") == data_dir
            and json.loads(json.dumps(m.get("options"))) == json.loads(json.dumps(opts)))
    if not same:
        print(f"note: {out / 'history.json'} holds a run of other options: running it again", flush=True)
    return hist if same else None


def _merge_previous(path: Path, figure: str, fig: Figure, rows: list[dict]) -> list[dict]:
    """Rows of this call plus, from an earlier ``results.json`` of the same figure in the same
    folder, the rows of models not re-run now (so ``--models`` updates single rows), in the
    figure's order."""
    done = {r["model"] for r in rows}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    same = ("data", "seed", "backend")  # a row is kept only if it ran on the same data and setup
    keep = []
    if old and old.get("figure") == figure:
        for r in old.get("runs", []):
            if r.get("model") in done:
                continue
            was, now = ({k: x.get(k) for k in same} for x in (r, rows[0] if rows else r))
            if was != now:
                print(f"note: the earlier {r.get('model')} row in {path} ran with {was}, not {now}: "
                      "left out of this table", flush=True)
                continue
            keep.append(r)
    order = {r.name: i for i, r in enumerate(fig.runs)}
    return sorted(keep + rows, key=lambda r: order.get(r["model"], len(order)))


def markdown(result: dict) -> str:
    """Markdown table of a :func:`reproduce` result."""
    lines = [f"### {result['title']}", "",
             (f"Data: {result['data_dir'] or 'embedded MNIST subset (10,000 train / 2,000 test)'}; "
             f"seed {result['seed']}; backend {result['backend']}."), "",
             "| model | data | epochs | test accuracy | paper | s/epoch | command |",
             "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        acc = "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        paper = "" if r["paper"] is None else f"{r['paper']:.3f}"
        lines.append(f"| {r['model']} | {r.get('data', '?')} | {r['epochs']} | {acc} | {paper} | "
                     f"{r['seconds_per_epoch']:.1f} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path) -> None:
    """Test accuracy per epoch of every run; the paper's final numbers as dotted lines."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(result["runs"]):
        ys = [y for y in r["test_accuracy_per_epoch"] if y is not None]
        color = f"C{i}"
        if ys:
            ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, color=color, label=r["model"])
        if r["paper"] is not None:
            ax.axhline(r["paper"], color=color, ls=":", lw=1)
    ax.set_xlabel("epoch (full-batch models: iteration)")
    ax.set_ylabel("test accuracy")
    ax.set_title(result["title"] + "\n(dotted: the paper's final accuracy)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
