"""Command line: ``cvx-fenchel info | train | reproduce | verify``.

* ``cvx-fenchel info`` -- versions, CVXPY solvers, NumPy BLAS, whether CuPy sees a GPU.
* ``cvx-fenchel train`` -- train a model (default: Fenchel 784-300-10 on the MNIST subset shipped
  with the package), write ``history.json`` and ``history.png``, print the final test accuracy.
* ``cvx-fenchel reproduce fig1|fig2|fig3`` -- every model of one of the papers' MNIST figures
  (:mod:`cvx_fenchel.reproduce`): results table, JSON and a comparison plot.
* ``cvx-fenchel verify`` -- the verification suite (``verification.cli``).

Library errors (:class:`~cvx_fenchel.errors.CvxFenchelError`) print one line and exit with
status 2.
"""

from __future__ import annotations

import argparse
import importlib
import io
import platform
import sys
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Callable

from .errors import CvxFenchelError, InputError, UnknownNameError

__all__ = ["main", "MODELS", "build_model", "load_data"]

#: Defaults of ``cvx-fenchel train`` for the Fenchel model (tuned so the no-argument run, on the
#: embedded MNIST subset, finishes in under 2 minutes on 2 CPU cores with test accuracy >= 0.90).
FENCHEL_DEFAULTS = {"epochs": 1, "dtype": "float32", "max_iter_x": 50, "max_iter_w": 30}


def _hidden(arch: str) -> tuple[int, ...]:
    from .network import dense_layers
    shape, layers = dense_layers(arch)
    return tuple(ly.n_out for ly in layers[:-1])


def _fenchel(a: argparse.Namespace) -> Any:
    from .estimator import FenchelClassifier
    original = a.settings == "original" and a.arch.lower() in ("784-300-10", "lenet5")
    return FenchelClassifier(arch=a.arch, loss=a.loss, settings="original" if original else None,
                             lam=a.lam, epochs=a.epochs or FENCHEL_DEFAULTS["epochs"],
                             batch_size=a.batch_size or 500, algorithm=a.algorithm,
                             w_step=a.w_step, lr=a.lr, predict_rule=a.predict_rule,
                             backend=a.backend, seed=a.seed,
                             dtype=a.dtype or FENCHEL_DEFAULTS["dtype"],
                             max_iter_x=a.max_iter_x or FENCHEL_DEFAULTS["max_iter_x"],
                             max_iter_w=a.max_iter_w or FENCHEL_DEFAULTS["max_iter_w"],
                             verbose=not a.quiet, checkpoint_dir=a.checkpoint_dir)


def _torch(optimizer: str) -> Callable[[argparse.Namespace], Any]:
    def make(a: argparse.Namespace) -> Any:
        mod = _import("cvx_fenchel.baselines.torch_nets", "sgd/adam baselines (needs PyTorch: "
                      "pip install 'cvx-fenchel[baselines]')")
        return mod.TorchNetClassifier(arch=a.arch, optimizer=optimizer, loss=a.loss,
                                      epochs=a.epochs or 10, batch_size=a.batch_size or 100,
                                      seed=a.seed, verbose=not a.quiet,
                                      dtype=a.dtype or "float32")
    return make


def _full_batch_mse(name: str, module: str, cls: str) -> Callable[[argparse.Namespace], Any]:
    """Factory of a full-batch MSE baseline (``--epochs`` = iterations)."""
    def make(a: argparse.Namespace) -> Any:
        mod = _import(module, f"{name} baseline")
        _mse_only(name, a)
        kw = {} if a.epochs is None else {"n_iter": a.epochs}
        return getattr(mod, cls)(hidden=_hidden(a.arch), seed=a.seed, backend=a.backend,
                                 dtype=a.dtype or "float64", verbose=not a.quiet, **kw)
    return make


_admm = _full_batch_mse("taylor-admm", "cvx_fenchel.baselines.admm", "TaylorADMMClassifier")
_lau = _full_batch_mse("lau-bcd", "cvx_fenchel.baselines.lau_bcd", "LauBCDClassifier")


def _lnn(a: argparse.Namespace) -> Any:
    mod = _import("cvx_fenchel.baselines.lnn", "lnn baseline (Askari et al. 2018)")
    kw = {} if a.epochs is None else {"epochs": a.epochs}
    return mod.LNNClassifier(hidden=_hidden(a.arch), loss=a.loss, batch_size=a.batch_size,
                             seed=a.seed, backend=a.backend, dtype=a.dtype or "float64",
                             verbose=not a.quiet, **kw)


def _mse_only(name: str, a: argparse.Namespace) -> None:
    if a.loss != "mse" and a.loss_given:
        raise InputError(f"model {name!r} trains with the MSE loss only; drop --loss or use --loss mse")


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UnknownNameError(f"{what} is not available ({module}: {exc})") from None


#: Model name -> factory taking the parsed arguments.
MODELS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "fenchel": _fenchel, "lnn": _lnn, "taylor-admm": _admm, "lau-bcd": _lau,
    "sgd": _torch("sgd"), "adam": _torch("adam")}
DATASETS = ("mnist", "cifar10")


def build_model(args: argparse.Namespace) -> Any:
    if args.model not in MODELS:
        raise UnknownNameError(f"unknown model {args.model!r}; choose one of {sorted(MODELS)}")
    return MODELS[args.model](args)


def load_data(dataset: str, data_dir: str | None, arch: str) -> tuple:
    """``(X_train, y_train, X_test, y_test)`` in [0, 1]: flat for dense archs, images for LeNet-5."""
    from . import datasets
    conv = arch.lower().replace("-", "") in ("lenet5", "lenet")
    if dataset == "mnist":
        return datasets.load_mnist(data_dir, normalize=True, flatten=not conv)
    if dataset == "cifar10":
        if data_dir is None:
            raise InputError("--dataset cifar10 needs --data-dir (the cifar-10-batches-py folder "
                             "or its parent)")
        Xtr, ytr, Xte, yte = datasets.load_cifar10(data_dir, normalize=True)
        if not conv:
            Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
        return Xtr, ytr, Xte, yte
    raise UnknownNameError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")


# --------------------------------------------------------------------------------------------
# subcommands

def cmd_info(args: argparse.Namespace) -> int:
    import numpy
    import scipy
    from . import __version__
    from .backend import cupy_status
    lines = [f"cvx-fenchel {__version__}", f"Python {platform.python_version()} ({sys.executable})",
             f"numpy {numpy.__version__}", f"scipy {scipy.__version__}"]
    try:
        import cvxpy
        from .cvx import installed_solvers
        lines.append(f"cvxpy {cvxpy.__version__}; solvers: {', '.join(installed_solvers()) or 'none'}")
    except ImportError as exc:  # pragma: no cover - cvxpy is a dependency
        lines.append(f"cvxpy: not importable ({exc})")
    lines.append("NumPy BLAS: " + _blas_info())
    lines.append("CuPy: " + cupy_status())
    try:
        import torch
        lines.append(f"torch {torch.__version__} (baselines sgd/adam)")
    except ImportError:
        lines.append("torch: not installed (baselines sgd/adam unavailable)")
    print("\n".join(lines))
    return 0


def _blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        libs = [f"{d.get('internal_api')} {d.get('version')} ({d.get('num_threads')} threads)"
                for d in threadpool_info() if d.get("user_api") == "blas"]
        if libs:
            return "; ".join(libs)
    except ImportError:
        pass
    import numpy
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except TypeError:  # older NumPy: show_config prints
        buf = io.StringIO()
        with redirect_stdout(buf):
            numpy.show_config()
        return " ".join(buf.getvalue().split())[:200]


def cmd_train(args: argparse.Namespace) -> int:
    args.loss_given = args.loss is not None
    if args.loss is None:
        args.loss = "mse" if args.model in ("taylor-admm", "lau-bcd") else "cross_entropy"
    out = Path(args.out)
    model = build_model(args)
    Xtr, ytr, Xte, yte = load_data(args.dataset, args.data_dir, args.arch)
    src = args.data_dir or "embedded MNIST subset"
    print(f"training {args.model} {args.arch} ({args.loss}) on {args.dataset} [{src}]: "
          f"{len(Xtr)} train / {len(Xte)} test samples", flush=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        model.fit(Xtr, ytr, X_test=Xte, y_test=yte)
    seconds = time.perf_counter() - t0
    hist = model.history_
    if hist.meta.get("model") not in (None, args.model):
        hist.meta["estimator"] = hist.meta["model"]
    hist.meta["model"] = args.model
    hist.meta.update({"cli": {k: v for k, v in vars(args).items() if k != "func"},
                      "train_seconds": seconds})
    out.mkdir(parents=True, exist_ok=True)
    hist.save(out / "history.json")
    try:
        hist.plot(out / "history.png", title=f"{args.model} {args.arch} on {args.dataset}")
    except Exception as exc:  # plotting must not lose a finished run
        print(f"warning: could not plot history ({type(exc).__name__}: {exc})", file=sys.stderr)
    acc = hist.last.get("test_accuracy")  # the feed-forward rule, per epoch
    rule = getattr(model, "predict_rule", "feedforward")
    if acc is None or rule != "feedforward":
        acc = model.score(Xte, yte)
        hist.meta[f"final_test_accuracy_{rule}"] = acc
        hist.save(out / "history.json")
    print(f"final test accuracy: {acc:.4f}{'' if rule == 'feedforward' else f' ({rule} rule)'}  "
          f"({seconds:.1f} s training; history in {out})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        vcli = importlib.import_module("verification.cli")
    except ImportError as exc:
        raise UnknownNameError("the verification suite is not available: run from the repository "
                               f"root, where the 'verification/' package lives ({exc})") from None
    argv = []
    if args.quick:
        argv.append("--quick")
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    if args.backend is not None:
        argv += ["--backend", args.backend]
    if args.out is not None:
        argv += ["--out", args.out]
    return int(vcli.main(argv) or 0)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import commands, reproduce
    if args.dry_run:
        import shlex
        for argv in commands(args.figure, data_dir=args.data_dir, epochs=args.epochs, out=args.out,
                             seed=args.seed, backend=args.backend, models=args.models):
            print("cvx-fenchel " + shlex.join(argv))
        return 0
    reproduce(args.figure, data_dir=args.data_dir, epochs=args.epochs, out=args.out, seed=args.seed,
              backend=args.backend, models=args.models, quiet=args.quiet)
    return 0


# --------------------------------------------------------------------------------------------
# parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cvx-fenchel", description="Fenchel lifted networks: train, "
                                "verify the subproblem solvers against CVXPY, report the setup.")
    subs = p.add_subparsers(dest="command")

    s = subs.add_parser("info", help="versions, CVXPY solvers, BLAS, GPU")
    s.set_defaults(func=cmd_info)

    s = subs.add_parser("train", help="train a model and write history.json / history.png")
    s.add_argument("--model", default="fenchel", choices=sorted(MODELS))
    s.add_argument("--dataset", default="mnist", choices=DATASETS)
    s.add_argument("--data-dir", default=None,
                   help="folder of the official files (default for MNIST: the embedded subset)")
    s.add_argument("--arch", default="784-300-10", help="'784-300-10' (any a-b-..-k) or 'lenet5'")
    s.add_argument("--loss", default=None, choices=["cross_entropy", "mse"])
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="runs/train")
    s.add_argument("--settings", default="original", choices=["original", "none"],
                   help="fenchel: the original code's per-layer settings (784-300-10, lenet5) or "
                        "plain defaults with --lam")
    s.add_argument("--lam", type=float, default=1.0, help="fenchel with --settings none")
    s.add_argument("--dtype", default=None, choices=["float32", "float64"])
    s.add_argument("--max-iter-x", type=int, default=None, help="fenchel: X-step iteration cap")
    s.add_argument("--max-iter-w", type=int, default=None, help="fenchel: W-step iteration cap")
    s.add_argument("--algorithm", default="batched", choices=["batched", "full"],
                   help="fenchel: Algorithm 2 (batched, default) or Algorithm 1 (full batch, one "
                        "BCD sweep per epoch)")
    s.add_argument("--w-step", default="solve", choices=["solve", "gradient"],
                   help="fenchel: solve each W-step, or take one Adam step (the paper's CIFAR-10 "
                        "setting)")
    s.add_argument("--lr", type=float, default=1e-3, help="fenchel --w-step gradient: Adam step size")
    s.add_argument("--predict-rule", default="feedforward", choices=["feedforward", "lifted"],
                   help="fenchel: feed-forward prediction or the lifted rule (minimise the relaxed "
                        "objective over a test batch's hidden variables)")
    s.add_argument("--checkpoint-dir", default=None, help="fenchel: save/resume checkpoints here")
    s.add_argument("--quiet", action="store_true", help="no progress bar or warnings")
    s.set_defaults(func=cmd_train)

    from .reproduce import FIGURES
    s = subs.add_parser("reproduce", help="run every model of one of the papers' MNIST figures "
                        "and write results.md/json and figure.png")
    s.add_argument("figure", choices=sorted(FIGURES))
    s.add_argument("--data-dir", default=None,
                   help="MNIST folder (official files); default: the embedded subset")
    s.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    s.add_argument("--models", nargs="+", default=None, help="run only these models")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
    s.add_argument("--out", default="runs/reproduce")
    s.add_argument("--dry-run", action="store_true", help="print the train commands only")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_reproduce)

    s = subs.add_parser("verify", help="compare every fast path with CVXPY (verification suite)")
    s.add_argument("--quick", action="store_true")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--backend", default=None, choices=["numpy", "cupy"])
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    if args.command == "train" and args.settings == "none":
        args.settings = None
    try:
        return args.func(args)
    except CvxFenchelError as exc:
        print(f"cvx-fenchel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cvx-fenchel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
