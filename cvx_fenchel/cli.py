"""Command line: ``cvx-fenchel info | train | reproduce | verify | bench``.

* ``cvx-fenchel info`` -- versions, CVXPY solvers, NumPy BLAS, whether CuPy sees a GPU.
* ``cvx-fenchel train`` -- train a model (default: Fenchel 784-300-10 on the MNIST subset shipped
  with the package), write ``history.json`` and ``history.png``, print the final test accuracy.
  ``--checkpoint-every N`` (``--model fenchel``, ``sgd``, ``adam``) checkpoints every ``N`` batches
  and at epoch ends (``0``: epoch ends only; atomic writes) into ``OUT/checkpoints``; ``--resume`` continues a killed run from there, bit for bit as if it had
  never stopped (:func:`cvx_fenchel.experiments.train`). ``--workers N`` or ``--scheduler ADDRESS``
  with ``--algorithm full``: Algorithm 1 data-parallel on a Dask cluster (:mod:`cvx_fenchel.dataparallel`).
* ``cvx-fenchel reproduce fig1|fig2|fig3|fig4|fig2-gaps|fig3-gaps|fig4-gaps|all`` -- every model
  of one of the papers' figures or gap studies (:mod:`cvx_fenchel.reproduce`): results table,
  JSON and a comparison plot; ``--resume`` skips the finished models and resumes the Fenchel,
  SGD and Adam runs from their checkpoints; ``--dry-run`` prints the commands with time estimates from a short probe; ``--workers N``
  or ``--scheduler ADDRESS`` run the models as tasks on a Dask cluster (:mod:`cvx_fenchel.sweeps`).
* ``cvx-fenchel report`` -- the paper-vs-ours report of every paper number from the reproduce
  runs (:mod:`cvx_fenchel.report`): ``REPRODUCTION.md``/``.json`` and one plot per figure.
* ``cvx-fenchel verify`` -- the verification suite (``verification.cli``); ``--workers N`` or
  ``--scheduler ADDRESS`` run its cases as tasks on a Dask cluster (:mod:`cvx_fenchel.distributed`).
* ``cvx-fenchel bench mlp|lenet5|steps`` -- the Fenchel trainer timed against Adam in one run
  (:mod:`cvx_fenchel.bench`): ``bench.md`` and ``bench.json``.

Training goes through :func:`cvx_fenchel.experiments.train` (also used by ``reproduce``); the
Fenchel model's flags become one :class:`~cvx_fenchel.config.TrainConfig` (``--settings``
names the preset). Flags left out take the preset's values; a flag for a value the preset fixes
(e.g. ``--lam`` with the ``original`` preset) overrides it, and the run's header says so
(``lam=1 overrides preset original (lam=2)``); a flag the chosen model does not use is an error.

Library errors (:class:`~cvx_fenchel.errors.CvxFenchelError`) print one line and exit with
status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import CvxFenchelError, UnknownNameError

__all__ = ["build_parser", "main"]


# --------------------------------------------------------------------------------------------
# subcommands

def cmd_info(args: argparse.Namespace) -> int:
    from . import __version__
    from .machine import blas_info, cupy_status, versions
    v = versions()
    lines = [f"cvx-fenchel {__version__}", f"Python {v['python']} ({sys.executable})"]
    lines += [f"{pkg} {v[pkg]}" for pkg in ("numpy", "scipy") if pkg in v]
    try:
        from .cvx import installed_solvers
        lines.append(f"cvxpy {v.get('cvxpy', '?')}; solvers: {', '.join(installed_solvers()) or 'none'}")
    except ImportError as exc:  # pragma: no cover - cvxpy is a dependency
        lines.append(f"cvxpy: not importable ({exc})")
    lines.append("NumPy BLAS: " + blas_info())
    lines.append("CuPy: " + cupy_status())
    lines.append(f"torch {v['torch']} (baselines sgd/adam)" if "torch" in v
                 else "torch: not installed (baselines sgd/adam unavailable)")
    print("\n".join(lines))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .experiments import OPTIONS, fresh_folder, recorded_model, resumable_folder, train
    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k, None) is not None}
    for k in ("lam", "rho", "gamma", "coef", "lr"):  # one value: every layer; several: one per layer
        if isinstance(options.get(k), list):
            options[k] = options[k][0] if len(options[k]) == 1 else tuple(options[k])
    from .distributed import check_cluster_args, client_from_args, cluster_requested
    def log(line: str) -> None:
        print(line, flush=True)
    if cluster_requested(args):  # data-parallel Algorithm 1: refusals before any work
        from .experiments import check_data_parallel, check_out
        check_data_parallel(args.model or "fenchel", options, resume=args.resume)
        check_cluster_args(args)
    out = args.out
    if out is None:
        out = resumable_folder("runs/train") if args.resume else fresh_folder("runs/train")
    # --resume without --model: the model of the run resumed (its run.json), else fenchel
    args.model = args.model or (recorded_model(out, options) if args.resume else None) or "fenchel"
    if not cluster_requested(args):
        train(args.model, options, dataset=args.dataset, data_dir=args.data_dir, out=out,
              quiet=args.quiet, overwrite=args.overwrite, resume=args.resume, log=log)
        return 0
    check_out(out, overwrite=args.overwrite)  # before the cluster starts
    with client_from_args(args, log=log) as client:
        train(args.model, options, dataset=args.dataset, data_dir=args.data_dir, out=out,
              quiet=args.quiet, overwrite=args.overwrite, log=log, client=client)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        import verification.cli as vcli
    except ImportError as exc:
        raise UnknownNameError("the verification suite is not available: run from the repository "
                               f"root, where the 'verification/' package lives ({exc})") from None
    from .distributed import check_cluster_args
    check_cluster_args(args)  # Dask importable, --scheduler usable: before any work
    argv = []
    if args.quick:
        argv.append("--quick")
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    if args.backend is not None:
        argv += ["--backend", args.backend]
    if args.out is not None:
        argv += ["--out", args.out]
    for flag in ("workers", "scheduler", "batch_size"):
        if getattr(args, flag) is not None:
            argv += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    return int(vcli.main(argv) or 0)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import WORKLOADS, bench_markdown, run_bench, write_bench
    from .errors import InputError
    if args.workload not in WORKLOADS:
        raise UnknownNameError(f"unknown bench workload {args.workload!r}; choose one of {WORKLOADS}")
    if args.backend not in ("numpy", "cupy"):
        raise UnknownNameError(f"unknown backend {args.backend!r}; choose one of ('numpy', 'cupy')")
    if args.workload == "steps" and args.data_dir is not None:
        raise InputError("--data-dir applies to the mlp and lenet5 workloads (steps uses the "
                         "shipped subset's 500-image instances)")
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    res = run_bench(args.workload, backend=args.backend, batches=args.batches, data_dir=args.data_dir,
                    to_accuracy=args.to_accuracy, seed=args.seed, max_epochs=args.max_epochs,
                    command=["cvx-fenchel"] + list(args.argv), log=log, tol=args.tol)
    if args.out is not None:
        pj, pm = write_bench(res, args.out)
        log(f"wrote {pm} and {pj}")
    print(bench_markdown(res))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import shlex

    from .report import build_report
    from .report.archive import archive
    runs = args.runs or ["runs/reproduce"]
    if args.archive:  # first the committed copy of the runs, then the report from both
        arc = archive(runs, args.archive)
        print(f"archived {len(arc['folders'])} run folder(s) into {args.archive}: "
              f"{len(arc['files'])} files, {arc['bytes']:,} bytes")
    rep = build_report(runs, args.out, include_subset=args.subset, archived=args.archive,
                       command="cvx-fenchel " + shlex.join(args.argv))
    nums = [e for s in rep["sections"] for e in s["numbers"]]
    print(f"wrote {args.out}/REPRODUCTION.md and REPRODUCTION.json: {len(nums)} paper numbers, "
          + ", ".join(f"{sum(e['status'] == k for e in nums)} {k}"
                      for k in ("done", "partial", "started", "not run")))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .distributed import check_cluster_args, client_from_args, cluster_requested
    from .errors import InputError
    from .reproduce import commands, dry_run, reproduce
    kw = dict(data_dir=args.data_dir, cifar_dir=args.cifar_dir, epochs=args.epochs, out=args.out,
              seed=args.seed, backend=args.backend, models=args.models,
              checkpoint_every=args.checkpoint_every, until_converged=args.until_converged)
    check_cluster_args(args)  # Dask importable, --scheduler usable: before any work
    if args.dry_run:
        if cluster_requested(args):
            raise InputError("--dry-run probes the models here and runs nothing: drop "
                             "--workers/--scheduler (give them to the real run)")
        dry_run(args.figure, probe=not args.no_probe, **kw)
        return 0
    if not cluster_requested(args):
        reproduce(args.figure, quiet=args.quiet, resume=args.resume, **kw)
        return 0
    commands(args.figure, **kw)  # target, models and data folders checked before a cluster starts
    with client_from_args(args, log=lambda line: print(line, flush=True)) as client:
        reproduce(args.figure, quiet=args.quiet, resume=args.resume, client=client, **kw)
    return 0


# --------------------------------------------------------------------------------------------
# parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cvx-fenchel", description="Fenchel lifted networks: train, "
                                "verify the subproblem solvers against CVXPY, report the setup.")
    subs = p.add_subparsers(dest="command")

    s = subs.add_parser("info", help="versions, CVXPY solvers, BLAS, GPU")
    s.set_defaults(func=cmd_info)

    from . import config as C
    from .experiments import DATASETS, MODELS
    from .losses import loss_names
    s = subs.add_parser("train", help="train a model and write history.json / history.png")
    s.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="default fenchel; with --resume, the model of the run resumed")
    s.add_argument("--dataset", default="mnist", choices=DATASETS)
    s.add_argument("--data-dir", default=None,
                   help="folder of the official files (default for MNIST: the embedded subset)")
    s.add_argument("--out", default=None,
                   help="results folder (default: runs/train, or runs/train-2, -3, ... when taken); "
                        "one holding an earlier run is refused unless --overwrite")
    s.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    s.add_argument("--resume", action="store_true",
                   help="continue the killed run of --out (default: the last runs/train[-N] holding "
                        "a checkpoint) from its checkpoint, with the options it was started with; "
                        "flags given must agree (--epochs may grow)")
    s.add_argument("--quiet", action="store_true", help="no progress bar or warnings")
    g = s.add_argument_group("every model (left out: the preset's or the model's default)")
    g.add_argument("--arch", default=None, help="'784-300-10' (default; any a-b-..-k) or 'lenet5'")
    g.add_argument("--loss", default=None, choices=loss_names())
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--backend", default=None, choices=C.BACKENDS)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--dtype", default=None, choices=C.DTYPES)
    g.add_argument("--standardize", action="store_true", default=None,
                   help="standardise the inputs per channel (mean 0, deviation 1) with the training "
                        "set's statistics instead of pixels in [0, 1]")
    g.add_argument("--until-converged", action="store_true", default=None,
                   help="train until the stop rule holds (relative change of the objective <= 1e-5 "
                        "over 5 epochs, or test accuracy within 0.1 pp over 10); --epochs is then "
                        "the maximum; history.json records the stop_reason")
    g = s.add_argument_group("fenchel (see cvx_fenchel.config; a flag for a value the preset "
                             "fixes overrides it and the header says so)")
    g.add_argument("--settings", default=None, choices=("auto", "original", "plain", "none"),
                   help="preset: 'original' (the original code's per-layer values, 784-300-10 and "
                        "lenet5), 'plain' (= 'none': scalar lam/rho/gamma/coef on every layer); "
                        "default 'auto': original where it exists for --arch, else plain")
    for name, typ, what in (("lam", float, "divergence weight (every layer)"),
                            ("rho", float, "ridge weight"), ("gamma", float, "proximal weight"),
                            ("coef", float, "X-step weight of the next layer's term")):
        g.add_argument(f"--{name}", type=typ, nargs="+", default=None, metavar="V",
                       help=what + "; several values: one per weighted layer")
    g.add_argument("-K", "--K", dest="K", type=int, default=None, help="BCD sweeps per batch")
    g.add_argument("--w-first", action="store_true", default=None, help="W-steps before X-steps")
    g.add_argument("--algorithm", default=None, choices=C.ALGORITHMS,
                   help="Algorithm 2 (batched, default) or Algorithm 1 (full batch, one BCD pass "
                        "per epoch)")
    g.add_argument("--w-step", default=None, choices=C.W_STEPS,
                   help="solve each W-step, or take one gradient step (the paper's CIFAR-10 setting)")
    g.add_argument("--optimizer", default=None, choices=C.OPTIMIZERS, help="--w-step gradient")
    g.add_argument("--lr", type=float, nargs="+", default=None, metavar="V",
                   help="--w-step gradient: step size (several values: one per weighted layer); "
                        "also --model sgd/adam: learning rate (one value)")
    g.add_argument("--tol-x", type=float, default=None, help="X-step residual tolerance")
    g.add_argument("--tol-w", type=float, default=None, help="W-step residual tolerance")
    g.add_argument("--max-iter-x", type=int, default=None, help="X-step iteration cap")
    g.add_argument("--max-iter-w", type=int, default=None, help="W-step iteration cap")
    g.add_argument("--predict-rule", default=None, choices=C.PREDICT_RULES,
                   help="feed-forward prediction or the lifted rule (minimise the relaxed "
                        "objective over a test batch's hidden variables)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="--model fenchel, sgd or adam: checkpoint after every N batches and at every "
                        "epoch's end (0: epoch ends only), into --checkpoint-dir (default "
                        "OUT/checkpoints); see --resume")
    g.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default OUT/checkpoints with --checkpoint-every; "
                        "without it: at epoch ends only)")
    from .distributed import add_cluster_arguments
    add_cluster_arguments(s)  # --workers/--scheduler: data-parallel Algorithm 1 (--algorithm full)
    s.set_defaults(func=cmd_train)

    from .reproduce import TARGETS
    s = subs.add_parser("reproduce", help="run every model of one of the papers' figures (or a gap "
                        "study, or all) and write results.md/json and figure.png")
    s.add_argument("figure", choices=TARGETS)
    s.add_argument("--data-dir", default=None,
                   help="MNIST folder (official files); default: the embedded subset")
    s.add_argument("--cifar-dir", default=None,
                   help="CIFAR-10 folder (official python layout) for fig4, fig4-gaps and all: the "
                        "JPEG quality-75 copy, written by 'python ../shared/data/cifar10/"
                        "to_canonical.py DIR'")
    s.add_argument("--epochs", type=int, default=None,
                   help="override every model's epochs (the maximum when training until converged)")
    s.add_argument("--until-converged", action="store_true",
                   help="every model trains until the stop rule holds (fig1 always does)")
    s.add_argument("--models", nargs="+", default=None, help="run only these models")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
    s.add_argument("--out", default="runs/reproduce")
    s.add_argument("--dry-run", action="store_true",
                   help="print the train commands, what --resume would do with each, and each "
                        "model's estimated time from a short timed probe (and the load average)")
    s.add_argument("--no-probe", action="store_true", help="--dry-run: the commands only (fast)")
    s.add_argument("--resume", action="store_true",
                   help="continue a killed reproduce run: models finished with the same command "
                        "are skipped, a Fenchel, SGD or Adam run with a checkpoint is resumed, "
                        "others (full-batch baselines) run again")
    s.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="the Fenchel, SGD and Adam runs also checkpoint every N batches (always: at "
                        "epoch ends)")
    s.add_argument("--quiet", action="store_true")
    from .distributed import add_cluster_arguments
    add_cluster_arguments(s)
    s.set_defaults(func=cmd_reproduce)

    s = subs.add_parser("verify", help="compare every fast path with CVXPY (verification suite)")
    s.add_argument("--quick", action="store_true")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--backend", default=None, choices=["numpy", "cupy"])
    s.add_argument("--out", default=None)
    from .distributed import add_cluster_arguments
    add_cluster_arguments(s)
    s.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="with --workers/--scheduler: cases per Dask task (default 20)")
    s.set_defaults(func=cmd_verify)

    s = subs.add_parser("bench", help="time the Fenchel trainer against Adam in one run (mlp, lenet5) "
                        "or each subproblem against L-BFGS-B (steps); write bench.md/bench.json")
    s.add_argument("workload", help="mlp (784-300-10, Fig. 2 settings), lenet5 (Fig. 3 settings) or "
                                    "steps (subproblems at MNIST scale vs L-BFGS-B)")
    s.add_argument("--backend", default="numpy",
                   help="numpy (Adam on torch CPU) or cupy (Adam on torch CUDA)")
    s.add_argument("--batches", type=int, default=None,
                   help="timed Fenchel batches after one warm-up batch (default: mlp 20, lenet5 3)")
    s.add_argument("--data-dir", default=None,
                   help="MNIST folder (official files); default: the embedded subset")
    s.add_argument("--to-accuracy", type=float, default=None, metavar="A",
                   help="also train both from scratch until test accuracy A; report the times and "
                        "their ratio")
    s.add_argument("--max-epochs", type=int, default=5, help="--to-accuracy: epochs at most")
    s.add_argument("--tol", type=float, default=None,
                   help="the Fenchel trainer's X- and W-step tolerance (default: the config's 1e-4, "
                        "the measured economical setting, docs/results/bench/README.md; 1e-5 before)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="write bench.md and bench.json here")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.set_defaults(func=cmd_bench)

    s = subs.add_parser("report", help="one generated paper-vs-ours report of every number of "
                        "both papers from the reproduce runs: REPRODUCTION.md/json and plots")
    s.add_argument("--runs", action="append", default=None, metavar="DIR",
                   help="folder holding the <figure>-full (and gap-study) folders reproduce writes "
                        "(or table1-full/); repeat it to read several (default: runs/reproduce)")
    s.add_argument("--archive", default=None, metavar="DIR",
                   help="first copy the runs' results and the state of unfinished (resumable) runs "
                        "into DIR, small enough to commit (cvx_fenchel.report.archive; e.g. "
                        "docs/results/runs), then report from the runs and DIR (newest copy wins)")
    s.add_argument("--out", default="docs/results", help="where REPRODUCTION.md/json and the "
                   "reproduction-<figure>.png plots go")
    s.add_argument("--subset", action="store_true",
                   help="also read the *-subset folders (runs on the embedded MNIST subset)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
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
