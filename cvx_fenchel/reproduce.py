"""``cvx-fenchel reproduce TARGET``: run every model of one of the papers' figures (or of a gap
study of one), with the papers' settings by default.

Each figure is a list of training runs (one per model or variant, with its options), each the
same as one ``cvx-fenchel train`` command. :func:`reproduce` runs them one after the other
through :func:`cvx_fenchel.experiments.train`. Each figure and data set has its own folder
``F = OUT/<figure>-subset`` (the embedded MNIST subset) or ``OUT/<figure>-full`` (``--data-dir``,
or ``--cifar-dir`` for the CIFAR-10 figures), so a results table never mixes data sets. Each run
writes ``F/<run>/history.json`` and its plot, then the figure writes

* ``F/results.json`` -- per run: the exact command, the data, seed and backend, final test
  accuracy and its value after every epoch, seconds, seconds per epoch, the paper's reported
  number, the maximum epochs, why the run stopped (``stop_reason``), the code's commit and the
  machine (rows of an earlier run in the same folder are kept only when they used the same data,
  seed and backend);
* ``F/results.md`` -- the same as a Markdown table;
* ``F/figure.png`` -- test accuracy per epoch of every run, the paper's final numbers dotted.

Every model's requirements (PyTorch for ``sgd``/``adam``) and the data folders are checked
before the first run. The Fenchel model and the torch baselines (``sgd``, ``adam``:
:data:`~cvx_fenchel.experiments.RESUMABLE`) checkpoint at every epoch's end (``--checkpoint-every
N``: also every ``N`` batches), so ``cvx-fenchel reproduce TARGET --resume`` continues a killed
run: runs that finished with the same command are skipped, a Fenchel or SGD/Adam run resumes
from its checkpoint, and any other baseline that was running (the full-batch ADMM, BCD and LNN,
which write no checkpoints) starts again.

The figures (numbers from ``reference/paper_results.md``, settings from
``reference/original_settings.md``):

* ``fig1``: MNIST 784-300-10, MSE loss; Taylor et al. ADMM, Lau et al. BCD, the 2018 lifted
  network (LNN), SGD, and the Fenchel lifted network trained full-batch (Algorithm 1), each
  **until convergence** (:class:`~cvx_fenchel.history.StopRule`: relative change of the
  objective <= 1e-5 over 5 sweeps/epochs, or test accuracy within 0.1 pp over 10), the epoch
  count being the maximum;
* ``fig2``: MNIST 784-300-10, cross-entropy, 10 epochs; SGD, Adam and the batched Fenchel model
  with the original code's settings;
* ``fig3``: MNIST LeNet-5, cross-entropy, 20 epochs; SGD, Adam, Fenchel;
* ``fig4``: CIFAR-10 LeNet-5 (32x32x3), cross-entropy, 80 epochs; SGD, Adam and Fenchel with the
  paper's single-gradient-step W option (``--w-step gradient``, Adam, step 1e-3). The CIFAR-10
  data is the JPEG quality-75 copy (``python ../shared/data/cifar10/to_canonical.py DIR`` writes
  it in the official layout; pass ``--cifar-dir DIR``); every CIFAR row says so.

Gap studies (each variant a run with its own label; the paper's settings stay the figures'
defaults, a variant is reported beside them). The figures are data in :mod:`cvx_fenchel.figures`:

* ``fig2-gaps``: SGD with step 0.05 and 0.1 (the default is torch's 0.01);
* ``fig3-gaps``: Fenchel with the output layer's gamma 10 (the original code's ``rhod``) instead
  of our conversion ``10 * batch_size``; Fenchel in float64; Fenchel with solver tolerances
  1e-7; Fenchel on standardised inputs (``--standardize``, ``docs/results/gaps/fig3-fenchel``);
  SGD with step 0.05 and 0.1;
* ``fig4-gaps``: Adam with step 1e-4; Fenchel with every X-step weight ``coef`` 1 instead of the
  original code's ``lbd_coef`` (1, 1, 5, 1, 5); the same with Adam step 3e-3 (instead of 1e-3)
  for the two convolutional layers' W-steps (``docs/results/gaps/fig4-conv``); Adam, and Fenchel
  with every ``coef`` 1, on inputs standardised per channel (``--standardize``,
  ``docs/results/gaps/fig4-adam``).

``all`` runs every figure above (the papers' figures first, then the gap studies), the MNIST
ones on ``--data-dir`` and the CIFAR-10 ones on ``--cifar-dir``. ``--dry-run`` prints the
commands and, from a short timed probe of each model, its estimated time (:func:`dry_run`).

With no ``--data-dir`` the MNIST runs use the subset shipped with the package (a smoke test of
the pipeline; the papers' numbers are for the full 60,000/10,000 split).

On a Dask cluster (``--workers N``: a local cluster of ``N`` processes; ``--scheduler ADDRESS``: a
running one; :mod:`cvx_fenchel.distributed`) the runs of the target (of every figure, for
``all``) are independent tasks (:mod:`cvx_fenchel.sweeps`): each is :func:`run_model` in its own
folder, the same call the serial loop makes, so a run whose worker dies is re-run elsewhere with
``resume=True`` and a Fenchel, SGD or Adam run continues from its last checkpoint. When every run is done
each figure's ``results.json``/``.md``/``.png`` is written from the runs' histories by the same
code and in the same order as a serial run's. The workers must see the output folder (a shared
file system on a real cluster); folders are passed to them as absolute paths when their working
directory is not this process's.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from .checkpoint import has_checkpoint
from .errors import InputError, UnknownNameError
from .experiments import (RESUMABLE, command_line, missing_requirements,
                          probe_epoch_seconds, train)
from .figures import ALL, CIFAR_NOTE, FIGURES, TARGETS, Figure, Run
from .history import History, StopRule, atomic_write_bytes
from .sweeps import SweepError, Task, run_tasks

__all__ = ["ALL", "CIFAR_NOTE", "FIGURES", "TARGETS", "Figure", "Run", "commands", "data_tag",
           "dry_run", "figure_folder", "reproduce", "resume_command", "run_model"]


def _options(fig: Figure, run: Run, *, epochs: int | None, seed: int, backend: str,
             checkpoint_every: int | None = None, until_converged: bool = False) -> dict:
    """The ``train`` options of ``run``. ``until_converged`` is added only when set, so the
    options (recorded in ``history.json`` and compared by ``--resume``) of a figure without it
    are those of earlier versions."""
    opts = {"arch": fig.arch, **dict(run.options),
            "epochs": epochs if epochs is not None else run.epochs, "seed": seed, "backend": backend}
    if run.model in RESUMABLE:  # checkpoints at epoch ends (and every N batches): --resume
        opts["checkpoint_every"] = checkpoint_every or 0
    if fig.until_converged or until_converged:
        opts["until_converged"] = True
    return opts


def _targets(target: str) -> list[str]:
    if target == "all":
        return list(ALL)
    _figure(target)
    return [target]


def _data_dir(figure: str, data_dir: str | None, cifar_dir: str | None) -> str | None:
    """The data folder of ``figure``: ``cifar_dir`` for CIFAR-10 figures (required: there is no
    shipped subset), else ``data_dir`` (None: the shipped MNIST subset)."""
    fig = _figure(figure)
    if fig.dataset != "cifar10":
        return data_dir
    if cifar_dir is None:
        raise InputError(f"{figure} trains on CIFAR-10: give --cifar-dir DIR, the folder "
                         "'python ../shared/data/cifar10/to_canonical.py DIR' writes (the official "
                         "cifar-10-batches-py layout of the JPEG quality-75 copy)")
    return cifar_dir


def _plan(target: str, *, data_dir: str | None, cifar_dir: str | None, epochs: int | None,
          out: str, seed: int, backend: str, models: list[str] | None,
          checkpoint_every: int | None, until_converged: bool) -> list[tuple]:
    """``[(figure, Figure, folder, data dir, [(Run, options, argv), ...]), ...]`` of ``target``,
    every input checked (figure names, models, data folders given) before anything runs."""
    figures = _targets(target)
    if models and target == "all":
        raise InputError("--models selects runs of one figure; with 'all' every figure runs in full")
    plan = []
    for name in figures:
        fig = FIGURES[name]
        dd = _data_dir(name, data_dir, cifar_dir)
        folder = figure_folder(out, name, dd)
        runs = []
        for r in _select(fig, models):
            opts = _options(fig, r, epochs=epochs, seed=seed, backend=backend,
                            checkpoint_every=checkpoint_every, until_converged=until_converged)
            argv = command_line(r.model, opts, dataset=fig.dataset, data_dir=dd,
                                out=str(folder / r.name))
            runs.append((r, opts, argv))
        plan.append((name, fig, folder, dd, runs))
    return plan


def commands(figure: str, *, data_dir: str | None = None, epochs: int | None = None,
             out: str = "runs/reproduce", seed: int = 0, backend: str = "auto",
             models: list[str] | None = None, checkpoint_every: int | None = None,
             cifar_dir: str | None = None, until_converged: bool = False) -> list[list[str]]:
    """The ``cvx-fenchel`` argument lists :func:`reproduce` runs for ``figure`` (or ``all``)."""
    plan = _plan(figure, data_dir=data_dir, cifar_dir=cifar_dir, epochs=epochs, out=out, seed=seed,
                 backend=backend, models=models, checkpoint_every=checkpoint_every,
                 until_converged=until_converged)
    return [argv for *_, runs in plan for _, _, argv in runs]


def resume_command(figure: str, *, data_dir: str | None = None, epochs: int | None = None,
                   out: str = "runs/reproduce", seed: int = 0, backend: str = "auto",
                   models: list[str] | None = None, checkpoint_every: int | None = None,
                   cifar_dir: str | None = None, until_converged: bool = False) -> str:
    """The ``cvx-fenchel reproduce ... --resume`` command that continues this reproduction."""
    argv = ["reproduce", figure]
    for flag, v in (("--data-dir", data_dir), ("--cifar-dir", cifar_dir), ("--epochs", epochs),
                    ("--out", out), ("--checkpoint-every", checkpoint_every)):
        if v is not None:
            argv += [flag, str(v)]
    if seed != 0:
        argv += ["--seed", str(seed)]
    if backend != "auto":
        argv += ["--backend", backend]
    if models:
        argv += ["--models", *models]
    if until_converged:
        argv.append("--until-converged")
    return "cvx-fenchel " + shlex.join(argv + ["--resume"])


def _figure(name: str) -> Figure:
    if name not in FIGURES:
        raise UnknownNameError(f"unknown figure {name!r}; choose one of {sorted(TARGETS)}")
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
              checkpoint_every: int | None = None, cifar_dir: str | None = None,
              until_converged: bool = False, client=None) -> dict:
    """Run every model of ``figure`` (``all``: of every figure in :data:`ALL`) and write
    ``results.json``, ``results.md``, ``figure.png`` into each :func:`figure_folder`.

    ``data_dir``: MNIST (None: the shipped subset); ``cifar_dir``: CIFAR-10 (required by the
    CIFAR figures). ``epochs`` overrides every run's epochs (with ``until_converged``, and in
    ``fig1``, the maximum). Every model's requirements and every data folder argument are
    checked before the first run. The Fenchel model and the torch baselines (``sgd``, ``adam``)
    checkpoint at every epoch's end (and every ``checkpoint_every`` batches) into
    ``<run>/checkpoints``. ``resume``: continue a killed reproduce run: a run whose
    ``history.json`` holds a finished run of the same command is skipped (its row is read from
    it), a Fenchel or SGD/Adam run with a checkpoint is resumed (``cvx-fenchel train --resume``),
    any other run starts again. Returns the results dict of the figure (for
    ``all``: ``{figure: results}``), also written to ``results.json``.

    ``client``: a :class:`dask.distributed.Client`; the runs become tasks on its cluster
    (:func:`_reproduce_distributed`; the same results files, rows and order as the serial run).
    """
    kw = dict(data_dir=data_dir, cifar_dir=cifar_dir, epochs=epochs, out=out, seed=seed,
              backend=backend, models=models, checkpoint_every=checkpoint_every,
              until_converged=until_converged)
    if client is not None:
        kw = _paths_for_workers(client, kw)
    plan = _plan(figure, **kw)
    problem = missing_requirements([r.model for *_, runs in plan for r, _, _ in runs])
    if problem:
        raise InputError(problem)
    _check_data_dirs(plan)
    print(f"to continue after a kill: {resume_command(figure, **kw)}", flush=True)
    if client is not None:
        results = _reproduce_distributed(plan, client, seed=seed, backend=backend, quiet=quiet,
                                         resume=resume)
        return results if figure == "all" else results[figure]
    results = {}
    for name, fig, outp, dd, runs in plan:
        results[name] = _reproduce_figure(name, fig, outp, dd, runs, seed=seed, backend=backend,
                                          quiet=quiet, resume=resume)
    return results if figure == "all" else results[figure]


def _check_data_dirs(plan: list[tuple]) -> None:
    """Every data folder of the plan exists (a CIFAR-10 one in the official layout), so ``all``
    never fails on its last figure after days of training."""
    for name, fig, _, dd, _ in plan:
        if dd is None:
            continue
        p = Path(dd).expanduser()
        flag = "--cifar-dir" if fig.dataset == "cifar10" else "--data-dir"
        if not p.is_dir():
            raise InputError(f"{flag} {dd} (for {name}) is not a folder")
        if fig.dataset == "cifar10" and not ((p / "cifar-10-batches-py").is_dir()
                                             or (p / "data_batch_1").is_file()):
            raise InputError(f"{flag} {dd} (for {name}) holds no cifar-10-batches-py/ folder; "
                             "write it with 'python ../shared/data/cifar10/to_canonical.py DIR'")


def run_model(*, model: str, options: dict, dataset: str, data_dir: str | None, out: str | Path,
              quiet: bool = False, resume: bool = False) -> tuple[History, float]:
    """One run of a figure into ``out``: what the serial loop does per model, and what a Dask task
    runs (:mod:`cvx_fenchel.sweeps`, as ``cvx_fenchel.reproduce:run_model``). ``resume``: a
    finished run of the same command in ``out`` is read back, not trained again, and a run of a
    :data:`~cvx_fenchel.experiments.RESUMABLE` model (Fenchel, SGD, Adam) with a checkpoint in
    ``out/checkpoints`` continues from it (also when a task is re-run after its worker died); any
    other run (re)starts, replacing what ``out`` holds (that is how ``--models`` updates a row).
    Returns ``(history, training seconds)``."""
    out = Path(out)
    hist = _finished(out, model, options, data_dir) if resume else None
    if hist is not None:
        print(f"finished earlier ({out / 'history.json'}): skipped", flush=True)
        return hist, float(hist.meta.get("train_seconds") or 0.0)
    again = resume and model in RESUMABLE and has_checkpoint(out / "checkpoints")
    res = train(model, options, dataset=dataset, data_dir=data_dir, out=out, quiet=quiet,
                overwrite=not again, resume=again, log=lambda line: print(line, flush=True))
    return res["history"], float(res["seconds"])


def _announce(figure: str, fig: Figure, outp: Path, data_dir: str | None) -> None:
    outp.mkdir(parents=True, exist_ok=True)
    what = ("the embedded MNIST subset" if data_dir is None else data_dir) + \
        (f" ({CIFAR_NOTE})" if fig.dataset == "cifar10" else "")
    print(f"reproduce {figure} on {what}: results in {outp}", flush=True)


def _reproduce_figure(figure: str, fig: Figure, outp: Path, data_dir: str | None, runs: list,
                      *, seed: int, backend: str, quiet: bool, resume: bool) -> dict:
    _announce(figure, fig, outp, data_dir)
    done = []
    for run, opts, argv in runs:
        print(f"\n== {run.name}: cvx-fenchel {shlex.join(argv)}", flush=True)
        done.append(run_model(model=run.model, options=opts, dataset=fig.dataset, data_dir=data_dir,
                              out=outp / run.name, quiet=quiet, resume=resume))
    return _write_figure(figure, fig, outp, data_dir, runs, done, seed=seed, backend=backend)


def _paths_for_workers(client, kw: dict) -> dict:
    """``kw`` with ``out``, ``data_dir`` and ``cifar_dir`` made absolute unless every worker of
    ``client`` runs in this process's working directory (a local cluster), so that workers of a
    running cluster, started elsewhere, find the folders (given a shared file system)."""
    here = os.getcwd()
    try:
        cwds = set(client.run(os.getcwd).values())
    except Exception:  # noqa: BLE001 - unknown: assume they differ
        cwds = set()
    if cwds and cwds <= {here}:  # no worker connected yet: those to come may start anywhere
        return kw
    print("note: the Dask workers run in another working directory: folders are passed to them as "
          "absolute paths (they must see this file system at the same path)", flush=True)
    return {**kw, **{k: os.path.abspath(os.path.expanduser(kw[k])) for k in ("out", "data_dir", "cifar_dir")
                     if kw.get(k) is not None}}


def _reproduce_distributed(plan: list[tuple], client, *, seed: int, backend: str, quiet: bool,
                           resume: bool) -> dict:
    """Every run of ``plan`` as one task of :func:`cvx_fenchel.sweeps.run_tasks` on ``client``
    (:func:`run_model` in the run's folder); then each figure's results written by
    :func:`_write_figure` from the runs' ``(history, seconds)`` in the plan's order, as the serial
    loop does. A figure whose runs all finished is written even when a run of another failed;
    then the :class:`~cvx_fenchel.sweeps.SweepError` naming the failed runs is raised."""
    tasks = []
    for name, fig, outp, dd, runs in plan:
        _announce(name, fig, outp, dd)
        for run, opts, argv in runs:
            print(f"== {name}/{run.name}: cvx-fenchel {shlex.join(argv)}", flush=True)
            tasks.append(Task(f"{name}/{run.name}", "cvx_fenchel.reproduce:run_model",
                              {"model": run.model, "options": opts, "dataset": fig.dataset,
                               "data_dir": dd, "out": str(outp / run.name), "quiet": quiet},
                              outp / run.name))
    failed = None
    try:
        done = run_tasks(tasks, client, resume=resume, log=lambda line: print(line, flush=True))
    except SweepError as exc:
        done, failed = exc.results, exc
    results, i = {}, 0
    for name, fig, outp, dd, runs in plan:
        mine, i = done[i:i + len(runs)], i + len(runs)
        if any(d is None for d in mine):
            print(f"{name}: results not written (a run failed; rerun with --resume)", flush=True)
            continue
        results[name] = _write_figure(name, fig, outp, dd, runs, mine, seed=seed, backend=backend)
    if failed is not None:
        raise failed
    return results


def _write_figure(figure: str, fig: Figure, outp: Path, data_dir: str | None, runs: list,
                  done: list[tuple[History, float]], *, seed: int, backend: str) -> dict:
    """``results.json``, ``results.md`` and ``figure.png`` of a figure from its runs' ``(history,
    seconds)`` (in the order of ``runs``), merged with the rows of runs not re-run now."""
    rows = [_row(fig, run, opts, argv, hist, seconds, data_dir, seed, backend,
                 outp / run.name / "history.json")
            for (run, opts, argv), (hist, seconds) in zip(runs, done)]
    rows = _merge_previous(outp / "results.json", figure, fig, rows)
    rule = StopRule()
    result = {"figure": figure, "title": fig.title, "data_dir": data_dir, "seed": seed,
              "backend": backend, "command": "cvx-fenchel reproduce " + shlex.join(sys.argv[2:])
              if len(sys.argv) > 2 and sys.argv[1] == "reproduce" else None, "runs": rows,
              "dataset": fig.dataset, "arch": fig.arch, "gaps_of": fig.gaps_of,
              "note": CIFAR_NOTE if fig.dataset == "cifar10" else None,
              "stop_rule": rule.describe() if any(r.get("until_converged") for r in rows) else None}
    atomic_write_bytes(outp / "results.json", json.dumps(result, indent=1).encode())
    atomic_write_bytes(outp / "results.md", markdown(result).encode())
    plot(result, outp / "figure.png")
    print("\n" + markdown(result))
    return result


def _row(fig: Figure, run: Run, opts: dict, argv: list[str], hist: History, seconds: float,
         data_dir: str | None, seed: int, backend: str, history_path: Path) -> dict:
    """The results.json row of one finished run (fields of earlier versions first, then the
    ones added with the stop rule, CIFAR-10 and the gap studies)."""
    n_ep = sum(1 for r in hist.epochs if r.get("epoch") != 0)  # LNN also records its start (epoch 0)
    meta = hist.meta
    reason = meta.get("stop_reason")
    if reason is None and n_ep >= int(opts["epochs"]):  # a run made before stop reasons existed
        reason = "max epochs"
    return {"model": run.name, "command": "cvx-fenchel " + shlex.join(argv),
            "epochs": n_ep, "test_accuracy": hist.last.get("test_accuracy"),
            "test_accuracy_per_epoch": hist.series("test_accuracy"),
            "seconds": seconds, "seconds_per_epoch": seconds / max(n_ep, 1),
            "paper": run.paper, "data": data_dir or "embedded MNIST subset",
            "seed": seed, "backend": backend,
            # added: what ran, how it stopped, where and with which code
            "base_model": run.model, "variant": run.variant, "dataset": fig.dataset,
            "note": CIFAR_NOTE if fig.dataset == "cifar10" else None,
            "max_epochs": int(opts["epochs"]), "until_converged": bool(opts.get("until_converged")),
            "stop_reason": reason, "train_accuracy_per_epoch": hist.series("train_accuracy"),
            "source_commit": meta.get("source_commit"), "machine": meta.get("machine"),
            "resumed_at": meta.get("resumed_at"), "history": str(history_path)}


def _finished(out: Path, model: str, opts: dict, data_dir: str | None,
              quiet: bool = False) -> History | None:
    """The history of a finished run in ``out`` made by the same command, else None. The
    checkpoint interval is not compared: checkpoints never change a run's results (a resume is bit
    for bit), so a finished run is not trained again because ``--checkpoint-every`` differs."""
    try:
        hist = History.load(out / "history.json")
    except (OSError, ValueError):
        return None
    m = hist.meta
    if m.get("partial") or m.get("finished") is False:  # an archived part of a run (.report.archive)
        if not quiet:
            print(f"note: {out / 'history.json'} holds part of an unfinished run (a copy from the "
                  "archive): not a result; the run goes on from its checkpoint if it has one, else "
                  "from the start", flush=True)
        return None

    def key(o):
        return json.loads(json.dumps({k: v for k, v in (o or {}).items() if k != "checkpoint_every"}))

    same = (m.get("model") == model and m.get("data_dir") == data_dir
            and key(m.get("options")) == key(opts))
    if not same and not quiet:
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
    data = result["data_dir"] or "embedded MNIST subset (10,000 train / 2,000 test)"
    lines = [f"### {result['title']}", "",
             f"Data: {data}; seed {result['seed']}; backend {result['backend']}."]
    if result.get("note"):
        lines[-1] += f" Every number {result['note']}."
    if result.get("stop_rule"):
        lines[-1] += f" Until converged: {result['stop_rule']} (epochs: the maximum)."
    lines += ["", "| model | data | epochs | test accuracy | paper | s/epoch | stopped | command |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        acc = "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        paper = "" if r["paper"] is None else f"{r['paper']:.3f}"
        stop = r.get("stop_reason") or ""
        if r.get("max_epochs") is not None and stop != "max epochs":
            stop += f" (max {r['max_epochs']})"
        lines.append(f"| {r['model']} | {r.get('data', '?')} | {r['epochs']} | {acc} | {paper} | "
                     f"{r['seconds_per_epoch']:.1f} | {stop} | `{r['command']}` |")
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


# --------------------------------------------------------------------------------------------
# --dry-run: the commands, and each run's time estimated from a short timed probe

def _status(folder: Path, run: Run, opts: dict, data_dir: str | None) -> tuple[str, int]:
    """(what ``--resume`` will do with this run, epochs already done)."""
    if _finished(folder, run.model, opts, data_dir, quiet=True) is not None:
        return "finished: skipped with --resume", -1
    ck = folder / "checkpoints"
    if run.model in RESUMABLE and has_checkpoint(ck):
        from .checkpoint import position, read_state
        try:
            e, b = position(read_state(ck))
        except InputError:
            return "unreadable checkpoint", 0
        return f"checkpoint after {e} epochs{f' and {b} batches' if b else ''}: resumes there", e
    if (folder / "history.json").exists():
        return "holds a run of other options: runs again", 0
    return "not started", 0


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def dry_run(figure: str, *, probe: bool = True, data_dir: str | None = None,
            epochs: int | None = None, out: str = "runs/reproduce", seed: int = 0,
            backend: str = "auto", models: list[str] | None = None,
            checkpoint_every: int | None = None, cifar_dir: str | None = None,
            until_converged: bool = False, print_: Callable[[str], None] = print) -> list[dict]:
    """Print what :func:`reproduce` would run. ``probe=False``: the ``cvx-fenchel train``
    commands only, one per line. ``probe=True``: per figure its folder, then per run the command,
    what ``--resume`` would do with it (finished / checkpoint / not started) and its estimated
    time from :func:`~cvx_fenchel.experiments.probe_epoch_seconds` (``epochs`` x the probe's seconds per epoch; with a stop rule the
    epochs are the maximum, so the time is an upper estimate), and the load average the probes
    ran under (their times grow with it). Returns one dict per run (``argv``, ``status``, and
    with ``probe`` the estimate)."""
    kw = dict(data_dir=data_dir, cifar_dir=cifar_dir, epochs=epochs, out=out, seed=seed,
              backend=backend, models=models, checkpoint_every=checkpoint_every,
              until_converged=until_converged)
    plan = _plan(figure, **kw)
    if not probe:
        for *_, runs in plan:
            for _, _, argv in runs:
                print_("cvx-fenchel " + shlex.join(argv))
        return [{"argv": argv} for *_, runs in plan for _, _, argv in runs]
    problem = missing_requirements([r.model for *_, runs in plan for r, _, _ in runs])
    if problem:
        raise InputError(problem)
    _check_data_dirs(plan)
    from .experiments import load_data
    load_before = os.getloadavg()
    cache: dict = {}
    rows, total = [], 0.0
    for name, fig, folder, dd, runs in plan:
        print_(f"# {name}: {fig.title}\n# results in {folder}"
               + (f"; {CIFAR_NOTE}" if fig.dataset == "cifar10" else ""))
        for run, opts, argv in runs:
            status, done = _status(folder / run.name, run, opts, dd)
            print_("cvx-fenchel " + shlex.join(argv))
            row = {"figure": name, "run": run.name, "argv": argv, "status": status}
            rows.append(row)
            if done < 0:  # finished: nothing to estimate
                print_(f"#   {run.name}: {status}")
                row.update(epochs_left=0, estimated_seconds=0.0)
                continue
            key = (fig.dataset, dd, "conv" if fig.arch == "lenet5" else "flat",
                   bool(opts.get("standardize")))
            if key not in cache:
                cache[key] = load_data(fig.dataset, dd, fig.arch, key[-1])
            est = probe_epoch_seconds(run.model, opts, cache[key])
            left = max(int(opts["epochs"]) - done, 0)
            seconds = est["seconds_per_epoch"] * left
            total += seconds
            bound = " at most" if opts.get("until_converged") else ""
            print_(f"#   {run.name}: {status}; ~{est['seconds_per_epoch']:.3g} s/epoch x{bound} {left} "
                   f"epochs = ~{_fmt_seconds(seconds)} (probe: 1 epoch on {est['probe_samples']} of "
                   f"{est['samples']} samples in {est['probe_seconds']:.2f} s)")
            row.update(epochs_left=left, estimated_seconds=seconds, **est)
    load_after = os.getloadavg()
    print_(f"# estimated total: ~{_fmt_seconds(total)} of training (excluding the per-epoch test "
           f"evaluation); probes ran at load average {load_before[0]:.2f} (1 min) before, "
           f"{load_after[0]:.2f} after, on {os.cpu_count()} CPUs")
    print_(f"# run it: {resume_command(figure, **kw).removesuffix(' --resume')}")
    print_(f"# continue it after a kill: {resume_command(figure, **kw)}")
    return rows
