"""Command line of the verification suite.

``python -m verification [--quick] [--seed N] [--backend numpy|cupy] [--out DIR]
[--workers N | --scheduler ADDRESS [--batch-size B]]`` and ``cvx-fenchel verify ...`` (which calls
:func:`main`) run :func:`verification.suite.run_suite` (with ``--workers``/``--scheduler`` its cases
as batched tasks on a Dask cluster, :mod:`verification.fanout`; same records and report),
write ``DIR/verification.json`` (one record per case plus the checks and metadata) and
``DIR/REPORT.md`` (the Markdown summary), print a short summary, and return 0 when every case
passed, 1 when any failed, 2 on a usage problem (for example ``--backend cupy`` without a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time

__all__ = ["main", "build_parser"]


def build_parser(prog: str = "python -m verification") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Verify every BCD subproblem's fast path against CVXPY (ECOS, SCS, Clarabel), the "
                    "activations' argmin property and the linear maps' adjoints; write verification.json "
                    "and REPORT.md; exit non-zero if any case fails.")
    p.add_argument("--quick", action="store_true",
                   help="reduced set (about a minute on 2 cores; no speed row)")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="array backend of the fast path (default numpy; cupy needs a CUDA GPU)")
    p.add_argument("--out", default="verification-results",
                   help="output directory (default ./verification-results)")
    from cvx_fenchel.distributed import add_cluster_arguments
    add_cluster_arguments(p)
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="with --workers/--scheduler: cases per Dask task (default 20)")
    return p


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _clean(o):
    """Replace NaN/inf by strings so the file is strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def main(argv=None) -> int:
    """Run the suite; returns the exit status (0 all passed, 1 failures, 2 usage/backend error)."""
    args = build_parser().parse_args(argv)
    from cvx_fenchel.distributed import check_cluster_args, client_from_args, cluster_requested
    from cvx_fenchel.errors import BackendError, InputError

    distributed = cluster_requested(args)
    try:  # before any work: Dask importable, a usable --scheduler value, a sane --batch-size
        check_cluster_args(args)
        if args.batch_size is not None and not distributed:
            raise InputError("--batch-size applies only with --workers or --scheduler")
        if args.batch_size is not None and args.batch_size < 1:
            raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}")
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.backend == "cupy":
        from cvx_fenchel.backend import get_backend
        try:
            get_backend("cupy")
        except (BackendError, InputError) as exc:
            print(f"error: --backend cupy needs CuPy and a CUDA GPU, and none is usable here: {exc}",
                  file=sys.stderr)
            return 2

    from cvx_fenchel.history import atomic_write_bytes
    from .report import markdown
    from .suite import run_suite

    argv_list = sys.argv[1:] if argv is None else list(argv)
    command = "python -m verification " + " ".join(argv_list)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(i, n, spec):
        now = time.perf_counter() - t0
        if i == n or now - last[0] >= 10:
            last[0] = now
            print(f"[{now:6.0f} s] {i}/{n} instances ({spec.subproblem})", file=sys.stderr, flush=True)

    extra_md = ""
    if distributed:
        from .fanout import DEFAULT_BATCH, distributed_markdown, run_suite_distributed
        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(client_from_args(args, log=say))
            except InputError as exc:  # the scheduler could not be reached
                print(f"error: {exc}", file=sys.stderr)
                return 2
            result = run_suite_distributed(client, batch_size=args.batch_size or DEFAULT_BATCH, log=say,
                                           quick=args.quick, seed=args.seed, backend=args.backend,
                                           command=command.strip())
        extra_md = distributed_markdown(result)
    else:
        result = run_suite(quick=args.quick, seed=args.seed, backend=args.backend, progress=progress,
                           command=command.strip())
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "verification.json")
    md_path = os.path.join(args.out, "REPORT.md")
    atomic_write_bytes(json_path, json.dumps(_clean(result), indent=1, default=_json_default,
                                             allow_nan=False).encode())
    atomic_write_bytes(md_path, (markdown(result) + extra_md).encode())
    s = result["summary"]
    print(f"{'PASSED' if s['passed'] else 'FAILED'}: {s['instances']} instances, {s['records']} comparisons, "
          f"{s['failed_records']} failed, {s.get('solver_failures', 0)} CVXPY solver failures; "
          f"{s['failed_checks']} failed activation/map checks; KKT: {len(s.get('fast_solved_but_wrong', []))} fast "
          f"solved but wrong, {len(s.get('cvx_optimal_but_inaccurate', []))} CVXPY optimal but inaccurate (flagged); "
          f"{s['seconds']:.0f} s. Wrote {json_path} and {md_path}")
    d = s.get("distributed")
    if d:
        print(f"Dask: {d['tasks']} tasks of up to {d['batch_size']} cases; "
              + (f"{d['retried_tasks']} task(s) retried ({d['lost_worker_reschedules']} after a lost worker, "
                 f"{d['exception_retries']} after an exception)" if d.get("retries_counted")
                 else f"retries not counted ({d.get('retries_not_counted_because')})"))
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
