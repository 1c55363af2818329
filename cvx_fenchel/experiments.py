"""Train one model from its settings and write its results: the library behind ``cvx-fenchel
train`` and ``cvx-fenchel reproduce``.

:func:`train` takes a model name (``fenchel`` or a baseline of :data:`MODELS`) and a dict of
options (the command line's flags, only those given), loads the data, trains, and writes
``OUT/history.json`` and ``OUT/history.png``. For ``fenchel`` the options become one
:class:`~cvx_fenchel.config.TrainConfig` via :func:`~cvx_fenchel.config.preset` (option
``settings``: ``auto``, ``original`` or ``plain``); the printed header shows the config and every
option that overrode a value of the preset. Options a model does not use are an error naming the
option and the model (never silently ignored).

:func:`command_line` gives the ``cvx-fenchel train`` arguments equivalent to a call (what
``reproduce`` records next to each result).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import check_int
from .config import TrainConfig, describe, preset
from .errors import InputError, UnknownNameError
from .history import History, StopRule, atomic_write_bytes, progress, stopping
from .machine import source_commit

__all__ = [
    "DATASETS",
    "MODELS",
    "OPTIONS",
    "RESUMABLE",
    "RUN_FILE",
    "build_model",
    "check_data_parallel",
    "check_out",
    "checkpoint_folder",
    "command_line",
    "fenchel_config",
    "fresh_folder",
    "load_data",
    "missing_requirements",
    "recorded_model",
    "estimate_seconds",
    "probe_epoch_seconds",
    "resumable_folder",
    "source_commit",
    "train",
]

DATASETS = ("mnist", "cifar10")

#: Options of :func:`train` (the ``cvx-fenchel train`` flags, without dashes).
OPTIONS = ("arch", "loss", "epochs", "batch_size", "backend", "seed", "dtype", "settings", "lam",
           "rho", "gamma", "coef", "K", "w_first", "algorithm", "w_step", "optimizer", "lr",
           "tol_x", "tol_w", "max_iter_x", "max_iter_w", "predict_rule", "checkpoint_dir",
           "checkpoint_every", "until_converged", "standardize")
#: Options of a run that are not :class:`TrainConfig` fields.
_RUN_OPTIONS = ("checkpoint_dir", "checkpoint_every", "settings", "verbose", "until_converged",
                "standardize")
#: Options every model takes (``standardize``: inputs standardised per channel by the training
#: set's statistics, :func:`~cvx_fenchel.datasets.standardize`; ``until_converged``: stop by
#: :class:`~cvx_fenchel.history.StopRule`,
#: ``epochs`` being the maximum).
_COMMON = ("arch", "loss", "epochs", "seed", "dtype", "until_converged", "standardize")
#: Models that checkpoint (``checkpoint_every``/``checkpoint_dir``) and continue with ``resume``:
#: Fenchel (:mod:`cvx_fenchel.checkpoint`) and the torch baselines
#: (:mod:`cvx_fenchel.baselines.torch_checkpoint`).
RESUMABLE = ("fenchel", "sgd", "adam")


def fenchel_config(options: dict) -> TrainConfig:
    """The :class:`TrainConfig` of ``options`` (``settings`` names the preset, default ``auto``)."""
    opts = {k: v for k, v in options.items() if k not in _RUN_OPTIONS}
    return preset(options.get("settings") or "auto", **opts)


def _fenchel(opts: dict, verbose: bool) -> Any:
    from .estimator import FenchelClassifier
    cfg = fenchel_config(opts)
    # arch and batch size explicit: the command line never infers them from the data
    return FenchelClassifier(settings=cfg.preset, **{k: v for k, v in opts.items()
                                                     if k not in _RUN_OPTIONS + ("arch", "batch_size")},
                             arch=cfg.arch, batch_size=cfg.batch_size, verbose=verbose,
                             checkpoint_dir=opts.get("checkpoint_dir"),
                             checkpoint_every=opts.get("checkpoint_every"))


def _hidden(arch: str) -> tuple[int, ...]:
    from .network import dense_layers
    _, layers = dense_layers(arch)
    return tuple(ly.param("n_out") for ly in layers[:-1])


#: Models that need an optional extra, and the extra (checked by :func:`missing_requirements`).
_NEEDS = {"sgd": ("torch", "baselines"), "adam": ("torch", "baselines")}


def missing_requirements(models: Any) -> str | None:
    """None when every model in ``models`` can run here, else one line saying which package is
    missing and the install command (so a multi-model run fails before its first model)."""
    from importlib.util import find_spec
    missing: dict[tuple[str, str], list[str]] = {}
    for m in models:
        need = _NEEDS.get(m)
        if need is not None and find_spec(need[0]) is None:
            missing.setdefault(need, []).append(m)
    if not missing:
        return None
    return "; ".join(f"model(s) {', '.join(ms)} need {pkg}: pip install 'cvx-fenchel[{extra}]' "
                     f"(or leave them out with --models)" for (pkg, extra), ms in missing.items())


def _torch(optimizer: str) -> Callable[[dict, bool], Any]:
    def make(o: dict, verbose: bool) -> Any:
        try:
            from .baselines.torch_nets import TorchNetClassifier
        except ImportError as exc:
            raise UnknownNameError(f"the {optimizer} baseline needs PyTorch (pip install "
                                   f"'cvx-fenchel[baselines]'): {exc}") from None
        return TorchNetClassifier(arch=o.get("arch", "784-300-10"), optimizer=optimizer,
                                  loss=o.get("loss", "cross_entropy"), epochs=o.get("epochs", 10),
                                  batch_size=o.get("batch_size", 100), seed=o.get("seed", 0),
                                  device="cuda" if o.get("backend") == "cupy" else "cpu",
                                  verbose=verbose, dtype=o.get("dtype", "float32"), lr=o.get("lr"),
                                  checkpoint_dir=o.get("checkpoint_dir"),
                                  checkpoint_every=o.get("checkpoint_every"))
    return make


def _full_batch_mse(name: str, cls_name: str) -> Callable[[dict, bool], Any]:
    """A full-batch MSE baseline (``epochs`` = iterations)."""
    def make(o: dict, verbose: bool) -> Any:
        if o.get("loss", "mse") != "mse":
            raise InputError(f"model {name!r} trains with the MSE loss only; drop --loss or use --loss mse")
        if name == "taylor-admm":
            from .baselines import admm as mod
        else:
            from .baselines import lau_bcd as mod
        kw = {} if "epochs" not in o else {"n_iter": o["epochs"]}
        return getattr(mod, cls_name)(hidden=_hidden(o.get("arch", "784-300-10")), seed=o.get("seed", 0),
                                      backend=o.get("backend", "auto"), dtype=o.get("dtype", "float64"),
                                      verbose=verbose, **kw)
    return make


def _lnn(o: dict, verbose: bool) -> Any:
    from .baselines.lnn import LNNClassifier
    # full batch (no batch_size): epochs = BCD sweeps, as for the other full-batch models
    kw = {} if "epochs" not in o else {"n_iter" if o.get("batch_size") is None else "epochs": o["epochs"]}
    return LNNClassifier(hidden=_hidden(o.get("arch", "784-300-10")), loss=o.get("loss", "cross_entropy"),
                         batch_size=o.get("batch_size"), seed=o.get("seed", 0),
                         backend=o.get("backend", "auto"), dtype=o.get("dtype", "float64"),
                         verbose=verbose, **kw)


_TORCH = ("batch_size", "backend", "lr", "checkpoint_every", "checkpoint_dir")  # sgd/adam's, + _COMMON
#: Model name -> (factory(options, verbose), the options it uses).
MODELS: dict[str, tuple[Callable[[dict, bool], Any], tuple[str, ...]]] = {
    "fenchel": (_fenchel, OPTIONS),
    "lnn": (_lnn, _COMMON + ("batch_size", "backend")),
    "taylor-admm": (_full_batch_mse("taylor-admm", "TaylorADMMClassifier"), _COMMON + ("backend",)),
    "lau-bcd": (_full_batch_mse("lau-bcd", "LauBCDClassifier"), _COMMON + ("backend",)),
    "sgd": (_torch("sgd"), _COMMON + _TORCH),
    "adam": (_torch("adam"), _COMMON + _TORCH),
}


def _check_options(model: str, options: dict) -> dict:
    if model not in MODELS:
        raise UnknownNameError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise InputError(f"unknown option(s) {unknown}; choose from {OPTIONS}")
    unused = sorted(set(opts) - set(MODELS[model][1]))
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        users = sorted(m for m, (_, used) in MODELS.items() if set(unused) <= set(used))
        raise InputError(f"{flags} appl{'ies' if len(unused) == 1 else 'y'} to --model "
                         f"{' / '.join(users) if users else 'fenchel'} only, not to --model {model}")
    for k in ("until_converged", "standardize"):
        if k in opts and not isinstance(opts[k], bool):
            raise InputError(f"{k} must be True or False, got {opts[k]!r}")
    return opts


def build_model(model: str, options: dict | None = None, *, verbose: bool = False) -> Any:
    """The estimator of ``model`` built from ``options`` (checked; see :func:`train`)."""
    opts = _check_options(model, options or {})
    return MODELS[model][0](opts, verbose)


def load_data(dataset: str, data_dir: str | None, arch: str, standardize: bool = False) -> tuple:
    """``(X_train, y_train, X_test, y_test)`` in [0, 1] (``standardize``: per channel, mean 0 and
    deviation 1 on the training set, :func:`~cvx_fenchel.datasets.standardize`): flat for dense
    archs, images for LeNet-5."""
    from . import datasets
    from .network import is_lenet5
    conv = is_lenet5(arch)
    if dataset == "mnist":
        Xtr, ytr, Xte, yte = datasets.load_mnist(data_dir, normalize=True, flatten=not conv)
    elif dataset == "cifar10":
        if data_dir is None:
            raise InputError("--dataset cifar10 needs --data-dir (the cifar-10-batches-py folder "
                             "or its parent)")
        Xtr, ytr, Xte, yte = datasets.load_cifar10(data_dir, normalize=True)
    else:
        raise UnknownNameError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    if standardize:
        Xtr, Xte = datasets.standardize(Xtr, Xte)
    if not conv and Xtr.ndim > 2:
        Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    return Xtr, ytr, Xte, yte


def command_line(model: str, options: dict | None = None, *, dataset: str = "mnist",
                 data_dir: str | None = None, out: str | None = None) -> list[str]:
    """``cvx-fenchel`` arguments equivalent to ``train(model, options, ...)``."""
    argv = ["train"] + (["--data-dir", str(data_dir)] if data_dir is not None else []) + \
        ["--model", model] + (["--dataset", dataset] if dataset != "mnist" else [])
    for k, v in (options or {}).items():
        if v is None:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            argv += [flag] if v else []
        elif isinstance(v, (tuple, list)):
            argv += [flag] + [str(x) for x in v]
        else:
            argv += [flag, str(v)]
    return argv + (["--out", str(out)] if out is not None else [])


def _runs(base: Path):
    """``base``, ``base-2``, ``base-3``, ... while they exist (the first always)."""
    yield base
    k = 2
    while (out := base.with_name(f"{base.name}-{k}")).exists():
        yield out
        k += 1


def _holds_run(out: Path) -> bool:
    return (out / "history.json").exists() or (out / "checkpoints" / "state.json").exists()


def fresh_folder(base: str | Path) -> Path:
    """``base`` if it holds no run, else the first of ``base-2``, ``base-3``, ... that holds none
    (the default output folder of ``cvx-fenchel train``, so a second run never clobbers the
    first). A folder holding a checkpoint (``checkpoints/state.json``) holds a run."""
    base = Path(base)
    out, k = base, 1
    while _holds_run(out):
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def resumable_folder(base: str | Path) -> Path:
    """The last of ``base``, ``base-2``, ... holding a checkpoint (``checkpoints/state.json``): the
    default ``--out`` of ``cvx-fenchel train --resume``."""
    found = [out for out in _runs(Path(base)) if (out / "checkpoints" / "state.json").exists()]
    if not found:
        raise InputError(f"nothing to resume: no {Path(base)}[-N] folder holds a checkpoint "
                         "(checkpoints/state.json); give the run's folder with --out")
    return found[-1]


def check_out(out: str | Path, *, overwrite: bool = False) -> Path:
    """Validate an output folder before any work: it must be a folder (or not exist yet) that
    this process can write, and, unless ``overwrite``, hold no earlier run (``history.json``).
    Creates it; returns it as a Path. Errors name the folder and the way out."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; choose another --out")
    if (out / "history.json").exists() and not overwrite:
        raise InputError(f"--out {out} already holds a run (history.json); choose another --out or "
                         "pass --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {out} is not writable ({type(exc).__name__}: {exc.strerror or exc}); "
                         "choose another --out") from None
    return out


#: The file in a checkpoint folder recording the run's model, options and data (for ``--resume``).
RUN_FILE = "run.json"


def checkpoint_folder(model: str, options: dict, out: str | Path, resume: bool = False) -> Path | None:
    """Where a run keeps its checkpoints: ``options["checkpoint_dir"]``, else ``OUT/checkpoints``
    for a run of a :data:`RESUMABLE` model with ``checkpoint_every`` (or resumed), else None (no
    checkpoints)."""
    if options.get("checkpoint_dir") is not None:
        return Path(options["checkpoint_dir"])
    if model in RESUMABLE and (options.get("checkpoint_every") is not None or resume):
        return Path(out) / "checkpoints"
    return None


def recorded_model(out: str | Path, options: dict) -> str | None:
    """The model of the run whose checkpoint folder (``options["checkpoint_dir"]``, else
    ``OUT/checkpoints``) records it in its ``run.json``; None when there is none (what
    ``cvx-fenchel train --resume`` without ``--model`` continues)."""
    ckdir = Path(options.get("checkpoint_dir") or Path(out) / "checkpoints")
    try:
        model = json.loads((ckdir / RUN_FILE).read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return model if model in MODELS else None


def _resume_options(model: str, opts: dict, ckdir: Path, dataset: str, data_dir: str | None,
                    out: Path) -> dict:
    """The options of the run to resume in ``ckdir``: those recorded in its ``run.json``, updated
    by the ones given now; errors when there is nothing to resume or the data differ."""
    from .checkpoint import has_checkpoint, read_state
    if model not in RESUMABLE:
        raise InputError(f"--resume applies to --model {' / '.join(RESUMABLE)} only (model {model} "
                         "writes no checkpoints)")
    if not has_checkpoint(ckdir):
        where = f"--out {out} does not exist" if not out.exists() else f"{ckdir} holds no checkpoint"
        raise InputError(f"nothing to resume: {where}; start the run without --resume "
                         "(with --checkpoint-every N to make it resumable)")
    read_state(ckdir)  # a corrupt state.json: the named error now, before anything else
    try:
        run = json.loads((ckdir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return opts  # a checkpoint made by the Python API: every setting must be given again
    for key, now in (("model", model), ("dataset", dataset), ("data_dir", data_dir)):
        if run.get(key) != now:
            raise InputError(f"cannot resume the run in {out}: it was made with {key}="
                             f"{run.get(key)!r}; this run has {key}={now!r}")
    return {**run.get("options", {}), **opts}


def _earlier_checkpoint(ckdir: Path | None, out: Path, overwrite: bool) -> None:
    """Without ``--resume``: refuse a folder holding an earlier run's checkpoint (the given
    checkpoint folder or ``OUT/checkpoints``) unless ``overwrite``, which removes it."""
    from .checkpoint import clear_checkpoint, has_checkpoint, position, read_state
    for d in dict.fromkeys(x for x in (ckdir, out / "checkpoints") if x is not None):
        if not has_checkpoint(d):
            continue
        if overwrite:
            clear_checkpoint(d)
            continue
        try:
            e, b = position(read_state(d))
            where = f" (checkpointed after batch {b} of epoch {e + 1})" if b else \
                f" (checkpointed after epoch {e})"
        except InputError:
            where = " (unreadable)"
        raise InputError(f"{d} holds the checkpoint of an earlier run{where}; pass --resume to "
                         "continue it, or --overwrite to start over")


def check_data_parallel(model: str, options: dict | None = None, *, resume: bool = False) -> None:
    """Refuse, before any work, a run :func:`train` cannot give to the data-parallel trainer
    (``client``; :func:`cvx_fenchel.train_parallel.refusal`): one :class:`InputError` line."""
    from .train_parallel import CLUSTER, refusal
    if model != "fenchel":
        raise InputError(f"{CLUSTER} need --model fenchel --algorithm full; got --model {model}")
    opts = _check_options(model, options or {})
    why = refusal(model, opts, fenchel_config(opts).algorithm, resume)
    if why is not None:
        raise InputError(why)


def train(model: str = "fenchel", options: dict | None = None, *, dataset: str = "mnist",
          data_dir: str | None = None, out: str | Path = "runs/train", quiet: bool = False,
          overwrite: bool = False, resume: bool = False, log: Callable[[str], None] = print,
          client: Any = None) -> dict:
    """Train ``model`` with ``options`` and write ``OUT/history.json`` and ``OUT/history.png``.

    ``options``: the ``cvx-fenchel train`` flags given (:data:`OPTIONS`, ``None`` values
    dropped); a model rejects options it does not use. ``quiet``: no progress bar and no
    warnings. ``log``: where the header and the final line go. ``out`` is checked before any
    work (:func:`check_out`): a folder holding an earlier run is refused unless ``overwrite``.

    Checkpoints (Fenchel and the torch baselines ``sgd``/``adam``, :data:`RESUMABLE`): with
    ``checkpoint_every = N`` the run checkpoints after every ``N`` batches and at every epoch's
    end (``0``: at epoch ends only) into ``checkpoint_dir``, default
    ``OUT/checkpoints`` (:func:`checkpoint_folder`), and records its options and data there
    (``run.json``). ``resume``: continue the run of ``OUT`` from its checkpoint, with the options
    it was started with updated by those given now (``epochs`` may grow; any other config field
    that differs is refused, naming it); one line says where it resumes. A folder holding an
    earlier run's checkpoint is refused without ``resume`` unless ``overwrite`` (which removes it).

    ``until_converged`` (every model): train until :class:`~cvx_fenchel.history.StopRule` (its
    defaults: relative change of the objective <= 1e-5 over 5 epochs, or test accuracy within
    0.1 pp over 10) holds, ``epochs`` being the maximum; every model's loop checks the rule after
    each epoch. The history's meta records ``stop_reason`` (``"rule: objective"``, ``"rule:
    accuracy flat"`` or ``"max epochs"``), ``max_epochs``, the rule, the commit of the code
    (``source_commit``) and the machine.

    ``client`` (a :class:`dask.distributed.Client`, ``--workers``/``--scheduler``): Algorithm 1
    runs data-parallel on its workers, one shard of the samples each
    (:func:`~cvx_fenchel.dataparallel.fit_full_batch_parallel`; the iterates equal the serial
    ``algorithm="full"`` run's up to summation order); :func:`check_data_parallel` refuses what
    it cannot run (another model or algorithm, checkpoints, resume) before any work. The same
    files are written; the history's meta records ``data_parallel``.

    Returns ``{"model", "history" (History), "test_accuracy", "rule", "seconds", "out",
    "config" (TrainConfig or None), "resumed_from" ((epoch, batch) or None), "stop_reason",
    "estimator" (the fitted model)}``;
    ``test_accuracy`` is the last epoch's (feed-forward rule), or the score by ``predict_rule``
    when that is ``lifted``.
    """
    from .checkpoint import check_resumable, position, read_state
    if client is not None:
        check_data_parallel(model, options, resume=resume)
    opts = _check_options(model, options or {})
    if dataset not in DATASETS:
        raise UnknownNameError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    if "checkpoint_every" in opts:
        opts["checkpoint_every"] = check_int(opts["checkpoint_every"], "checkpoint_every", 0)
    if resume and overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it: give one")
    ckdir = checkpoint_folder(model, opts, out, resume)
    if resume:
        opts = _resume_options(model, opts, ckdir, dataset, data_dir, Path(out))
    out = check_out(out, overwrite=overwrite or resume)
    if not resume:
        _earlier_checkpoint(ckdir, out, overwrite)
    if ckdir is not None:
        opts = {**opts, "checkpoint_dir": str(ckdir)}
    arch = opts.get("arch", "784-300-10")
    config = None
    if model == "fenchel":
        config = fenchel_config({**opts, "in_channels": 3} if dataset == "cifar10" else opts)
    est = build_model(model, opts, verbose=not quiet)
    resumed_from, seconds_before = None, 0.0
    total = config.epochs if config is not None else int(getattr(est, "epochs", 0))
    if resume:
        if config is not None:
            config = check_resumable(ckdir, config, hint="start over with --overwrite", explicit=opts)
        else:
            from .baselines.torch_checkpoint import check_resumable as check_torch
            check_torch(ckdir, est.get_params(), hint="start over with --overwrite")
        doc = read_state(ckdir)
        resumed_from = position(doc)
        if resumed_from[0] > total:
            raise InputError(f"cannot resume the run in {out} with epochs={total}: it has "
                             f"done {resumed_from[0]} epochs already (--epochs may grow, not shrink)")
        seconds_before = float(sum(r.get("time") or 0.0 for r in doc.get("history", {}).get("batches", [])))
        # + the batch time of the records an archive dropped (cvx_fenchel.report.archive)
        seconds_before += float((doc.get("history", {}).get("meta") or {})
                                .get("batch_seconds_dropped") or 0.0)
    if ckdir is not None:  # the options of the run (updated by a resume's --epochs)
        atomic_write_bytes(ckdir / RUN_FILE, json.dumps(
            {"model": model, "options": {k: v for k, v in opts.items() if k != "checkpoint_dir"},
             "dataset": dataset, "data_dir": data_dir}, indent=1).encode())
    Xtr, ytr, Xte, yte = load_data(dataset, data_dir, arch, bool(opts.get("standardize")))
    loss = config.loss if config is not None else getattr(est, "loss", opts.get("loss", "mse"))
    log(f"training {model} {arch} ({loss}) on {dataset} [{data_dir or 'embedded MNIST subset'}]: "
        f"{len(Xtr)} train / {len(Xte)} test samples")
    if config is not None:
        log(describe(config))
    stop_rule = StopRule() if opts.get("until_converged") else None
    max_epochs = config.epochs if config is not None else _model_epochs(est, opts)
    if stop_rule is not None:
        log(f"until converged: {stop_rule.describe()}; at most {max_epochs} epochs")
    if resumed_from is not None:
        e, b = resumed_from
        where = f"epoch {e + 1}, batch {b + 1}" if e < total else \
            f"the end (all {total} epochs done; writing the results)"
        log(f"resuming {out} from its checkpoint in {ckdir} at {where}")
    sys.stdout.flush()
    run_opts = {k: v for k, v in opts.items() if not (k == "checkpoint_dir" and ckdir is not None
                                                      and (options or {}).get("checkpoint_dir") is None)}
    meta = {"model": model, "options": run_opts, "dataset": dataset, "data_dir": data_dir,
            "command": command_line(model, run_opts, dataset=dataset, data_dir=data_dir, out=str(out)),
            "max_epochs": max_epochs}
    t0 = time.perf_counter()
    with warnings.catch_warnings(), stopping(stop_rule), progress(out / "history.json", meta):
        if quiet:
            warnings.simplefilter("ignore")
        if client is None:
            est.fit(Xtr, ytr, X_test=Xte, y_test=yte)
        else:
            from .train_parallel import fit_data_parallel
            fit_data_parallel(est, client, Xtr, ytr, Xte, yte, in_channels=3 if dataset == "cifar10" else 1,
                              verbose=not quiet, log=log)
    seconds = time.perf_counter() - t0 + seconds_before
    hist: History = est.history_
    stop_reason = (stop_rule.reason(hist.epochs) if stop_rule is not None else None) or "max epochs"
    if hist.meta.get("model") not in (None, model):
        hist.meta["estimator"] = hist.meta["model"]
    hist.meta.update({**meta, "train_seconds": seconds, "stop_reason": stop_reason,
                      "stop_rule": None if stop_rule is None else stop_rule.to_dict(),
                      "source_commit": source_commit(), "machine": _machine()})
    acc = hist.last.get("test_accuracy")  # the feed-forward rule, per epoch
    rule = config.predict_rule if config is not None else "feedforward"
    if acc is None or rule != "feedforward":
        acc = est.score(Xte, yte)
        hist.meta[f"final_test_accuracy_{rule}"] = acc
    hist.save(out / "history.json")
    try:
        hist.plot(out / "history.png", title=f"{model} {arch} on {dataset}")
    except Exception as exc:  # noqa: BLE001 (plotting must not lose a finished run)
        print(f"warning: could not plot history ({type(exc).__name__}: {exc})", file=sys.stderr)
    stopped = "" if stop_rule is None else f"; stopped after {len(hist.epochs)} epochs: {stop_reason}"
    log(f"final test accuracy: {acc:.4f}{'' if rule == 'feedforward' else f' ({rule} rule)'}  "
        f"({seconds:.1f} s training{stopped}; history in {out})")
    return {"model": model, "history": hist, "test_accuracy": acc, "rule": rule,
            "seconds": seconds, "out": out, "config": config, "resumed_from": resumed_from,
            "stop_reason": stop_reason, "estimator": est}


def _model_epochs(est: Any, opts: dict) -> int | None:
    """The epoch (full-batch: iteration) count a baseline trains for: its ``epochs`` option, else
    the estimator's default (``n_iter`` for full-batch ADMM, BCD and LNN, else ``epochs``)."""
    if opts.get("epochs") is not None:
        return int(opts["epochs"])
    if hasattr(est, "n_iter") and (not hasattr(est, "epochs") or getattr(est, "batch_size", 0) is None):
        return int(est.n_iter)
    return int(getattr(est, "epochs", 0)) or None


def _machine() -> dict:
    """Where the run ran: CPU model and count, the load average at its end, and the host name."""
    import platform
    from .machine import cpu_info
    info = {k: v for k, v in cpu_info().items() if k in ("cpu_model", "logical_cpus")}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not Unix
        pass
    return {"host": platform.node(), **info}


# --------------------------------------------------------------------------------------------
# time estimates (``cvx-fenchel reproduce --dry-run``)

#: Models trained full batch (one iteration = one pass over all samples).
_FULL_BATCH = ("taylor-admm", "lau-bcd")
#: Samples of a full-batch probe sweep, and the least samples of a batched probe epoch.
PROBE_SAMPLES = 2000


def _is_full_batch(model: str, opts: dict) -> bool:
    return (model in _FULL_BATCH or (model == "fenchel" and opts.get("algorithm") == "full")
            or (model == "lnn" and opts.get("batch_size") is None))


def _batch_size(model: str, opts: dict) -> int:
    if model == "fenchel":
        return fenchel_config(opts).batch_size
    return int(opts.get("batch_size") or 100)


def estimate_seconds(probe_seconds: float, probe_samples: int, samples: int, epochs: int) -> float:
    """Training time of ``epochs`` epochs on ``samples`` samples from a probe that took
    ``probe_seconds`` for one epoch on ``probe_samples``: the cost of an epoch is taken as
    proportional to the samples it visits (batched models: to its batches; full-batch models:
    their sweeps' products are linear in the samples)."""
    if probe_samples < 1 or samples < 0 or epochs < 0 or probe_seconds < 0:
        raise InputError("estimate_seconds needs probe_samples >= 1 and non-negative other values")
    return probe_seconds * samples / probe_samples * epochs


def probe_epoch_seconds(model: str, opts: dict, data: tuple) -> dict:
    """Time one epoch of ``model`` on a slice of the training data: full-batch models one sweep on
    :data:`PROBE_SAMPLES` samples, batched ones whole batches on at least that many (at least 3
    batches), after an untimed warm-up on one small slice (imports, first-call setup). The test
    set is cut to 100 samples (the estimate is of training)."""
    Xtr, ytr, Xte, yte = data
    n = len(Xtr)
    popts = {k: v for k, v in opts.items() if k not in ("until_converged", "checkpoint_every")}
    popts["epochs"] = 1
    if _is_full_batch(model, opts):
        m, warm = min(n, PROBE_SAMPLES), min(n, 200)
    else:
        bs = min(_batch_size(model, opts), n)
        m = min(n, max(3 * bs, PROBE_SAMPLES) // bs * bs)
        warm = bs
        if model == "fenchel" or model == "lnn":
            popts["batch_size"] = bs
    test = (Xte[:100], yte[:100])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_model(model, popts).fit(Xtr[:warm], ytr[:warm], X_test=test[0], y_test=test[1])
        est = build_model(model, popts)
        t0 = time.perf_counter()
        est.fit(Xtr[:m], ytr[:m], X_test=test[0], y_test=test[1])
        dt = time.perf_counter() - t0
    return {"probe_seconds": dt, "probe_samples": m, "samples": n,
            "seconds_per_epoch": estimate_seconds(dt, m, n, 1)}
