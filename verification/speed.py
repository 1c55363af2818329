r"""Speed rows: the fast path against scipy's L-BFGS-B (the original code's solver) and CVXPY.

The timing of each row (reference, fast path, L-BFGS-B, checks) is the library's
:func:`cvx_fenchel.bench.steps.time_step_row`, shared with ``cvx-fenchel bench steps``; this module
adds the CVXPY/Clarabel column, the 100x target and the report section.

One row per subproblem kind of the registry with an MNIST-scale instance at the original code's
settings (``SubproblemKind.speed_case``, :mod:`cvx_fenchel.subproblems.benchmark`: today
X-last-ce and W-hidden, 500 images of the shipped subset, 784-300-10, ReLU, Xavier weights).
Each is solved

* by a high-accuracy reference (the fast path at ``tol=1e-13``),
* by the fast path at the loosest tolerance of 1e-4, 1e-5, ... whose objective is within 1e-7
  (relative) of the reference (the timed run is a second, separate solve at that tolerance),
* by ``scipy.optimize.minimize(method="L-BFGS-B")`` on the subproblem's own ``objective`` and
  ``grad`` (bounds: the X-step's domain, ``bounds()``) at its default tolerances, from the same
  starting point as the fast path (``start()``: the feed-forward value for an X-step,
  ``(W_0, b_0)`` for a W-step); the gradient is checked by a central difference at the start,
* by CVXPY with Clarabel in a child process with a time limit, or recorded as
  ``skipped (size)`` where the declaration is too large to build (an affine map with more than
  :data:`CVXPY_MAX_NNZ` non-zeros, e.g. W-hidden's ``(W, b) -> XW + b``, about 22 million).

Reported: seconds, objectives, relative differences to the reference, and the speed-up of the
fast path over L-BFGS-B, with the CPU model and thread count.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time

import numpy as np

from cvx_fenchel.bench.steps import (MATCH_TOL, build_speed_instance, lbfgsb_problem, rel_diff,
                                     speed_kinds, time_step_row)
from cvx_fenchel.machine import cpu_info, versions

__all__ = ["run_speed", "speed_kinds", "build_speed_instance", "lbfgsb_problem", "speed_markdown", "main"]

#: Target of the issue: fast path at least this many times faster than L-BFGS-B.
TARGET_SPEEDUP = 100.0
CVXPY_TIME_LIMIT = 180.0
#: CVXPY is skipped for declarations whose affine map has more non-zeros than this.
CVXPY_MAX_NNZ = 10_000_000


def _affine_nnz(sub) -> int:
    """Non-zeros of the affine map the CVXPY declaration builds (dense maps): samples x weights."""
    W = getattr(sub, "W", None)
    return int(sub.m * (np.prod(sub.map.weight_shape) if W is None or hasattr(sub, "X") else W.size))


def _cvxpy_child(kind: str, seed: int, queue) -> None:  # pragma: no cover - runs in a child process
    try:
        sub, _ = build_speed_instance(kind, seed)
        t0 = time.perf_counter()
        _, res = sub.solve_cvxpy("CLARABEL")
        queue.put({"objective": res.objective, "seconds": time.perf_counter() - t0, "status": res.status})
    except Exception as exc:  # noqa: BLE001
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _cvxpy_timed(kind: str, seed: int, limit: float) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_cvxpy_child, args=(kind, seed, q), daemon=True)
    t0 = time.perf_counter()
    p.start()
    p.join(limit)
    if p.is_alive():
        p.terminate()
        p.join(5)
        return {"status": f"skipped (time limit {limit:.0f} s reached)", "seconds": None,
                "objective": None, "wall_seconds": time.perf_counter() - t0}
    try:
        out = q.get(timeout=5)
    except Exception:  # noqa: BLE001
        out = {"error": f"child exited with code {p.exitcode} without a result"}
    out["wall_seconds"] = time.perf_counter() - t0
    return out


_rel = rel_diff


def run_speed(seed: int = 0, *, cvxpy_limit: float = CVXPY_TIME_LIMIT, with_cvxpy: bool = True,
              log=None, m: int = 500, hidden: int = 300) -> dict:
    """Run the speed comparison (``m`` samples, ``hidden`` units); returns a JSON-able dict (rows,
    machine, verdict). The timing of each row is :func:`cvx_fenchel.bench.steps.time_step_row`
    (shared with ``cvx-fenchel bench steps``); this adds the CVXPY column and the target."""
    def say(msg):
        if log is not None:
            log(msg)

    rows = []
    info = {}
    for kind in speed_kinds():
        name = kind.name
        row, settings = time_step_row(kind, seed, m, hidden, log=say)
        info = {k: v for k, v in settings.items() if k not in ("lam", "coef (lbd_coef)", "rho", "gamma")}
        sub, _ = kind.speed_case()(seed, m, hidden)
        nnz = _affine_nnz(sub)
        n_vars = row["variables"]
        if nnz > CVXPY_MAX_NNZ:
            cv = {"status": f"skipped (size): {n_vars:,} variables and an affine map with about "
                            f"{nnz / 1e6:.0f} million non-zeros", "seconds": None, "objective": None}
        elif with_cvxpy:
            say(f"speed: {name} CVXPY/Clarabel (limit {cvxpy_limit:.0f} s)")
            cv = _cvxpy_timed(name, seed, cvxpy_limit)
            if cv.get("objective") is not None:
                cv["rel_diff"] = _rel(cv["objective"], row["reference"]["objective"])
        else:
            cv = {"status": "skipped (not requested)", "seconds": None, "objective": None}
        # cost model: how many objective + gradient evaluations the target's time budget
        # (L-BFGS-B time / 100) allows
        row.update(cvxpy_clarabel=cv, budget_evals_for_target=row["lbfgsb"]["seconds"] / TARGET_SPEEDUP
                   / row["eval_seconds"], target_met=row["speedup_vs_lbfgsb"] >= TARGET_SPEEDUP)
        rows.append(row)
    return {"instance": info, "machine": cpu_info(), "versions": versions(), "target_speedup": TARGET_SPEEDUP,
            "match_tol": MATCH_TOL, "rows": rows,
            "correct": all(r["fast_matches"] and r["objective_check_rel"] <= 1e-10 and r["gradient_check_rel"] <= 1e-5
                           for r in rows),
            "target_met": all(r["target_met"] for r in rows)}


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def speed_markdown(speed: dict | None) -> str:
    """Markdown section of the speed row."""
    if not speed:
        return "## Speed (MNIST scale)\n\nNot run (quick mode; run without `--quick` or `python -m verification.speed`).\n"
    mach, inst = speed["machine"], speed["instance"]
    lines = ["## Speed (MNIST scale)", "",
             f"{inst['samples']} MNIST images (shipped subset, pixels in [0, 1]), {inst['inputs']}-{inst['hidden']}-"
             f"{inst['classes']}, {inst.get('activation', '?')}, {inst.get('loss', '?')}, Xavier weights, biases 0.1. "
             + "; ".join(f"{r['subproblem']}: " + ", ".join(f"{k} = {v:g}" for k, v in r.get("settings", {}).items())
                         for r in speed["rows"])
             + ". Reference: the fast path at tol 1e-13. The fast path runs at the loosest "
             f"tolerance whose objective is within {speed['match_tol']:g} (relative) of the reference "
             "(best of 3 runs); L-BFGS-B (scipy defaults, the subproblem's objective and gradient, bounds of "
             "the X-step's domain) from the same start.", "",
             f"CPU: {mach.get('cpu_model')}; {mach.get('logical_cpus')} logical CPU(s) available"
             + (f", BLAS threads {mach['blas_threads']}" if mach.get("blas_threads") else "") + ".", "",
             "| subproblem | variables | fast path s (tol) | fast rel. diff | L-BFGS-B s | L-BFGS-B rel. diff "
             "| CVXPY Clarabel s | Clarabel rel. diff | speed-up vs L-BFGS-B | >= 100x |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in speed["rows"]:
        f, l, c = r["fast"], r["lbfgsb"], r["cvxpy_clarabel"]
        cv_s = _fmt(c.get("seconds"), ".1f") if c.get("seconds") is not None else (c.get("status") or c.get("error"))
        lines.append(f"| {r['subproblem']} | {r['variables']:,} | {f['seconds']:.3f} ({f['tol']:g}) | "
                     f"{f['rel_diff']:.1e} | {l['seconds']:.2f} | {l['rel_diff']:.1e} | {cv_s} | "
                     f"{_fmt(c.get('rel_diff'), '.1e')} | {r['speedup_vs_lbfgsb']:.1f}x | "
                     f"{'yes' if r['target_met'] else 'no'} |")
    lines += ["", "Cost model: one objective-and-gradient evaluation (the matrix products every method "
              "needs per iteration), L-BFGS-B's evaluations and iterations, the fast path's iterations, "
              "and how many evaluations the target's budget (L-BFGS-B time / "
              f"{speed['target_speedup']:g}) leaves:", "",
              "| subproblem | one f+grad eval s | L-BFGS-B evals (iters) | fast-path iterations | "
              "evals within the target's budget |", "|---|---|---|---|---|"]
    for r in speed["rows"]:
        if "eval_seconds" in r:
            lines.append(f"| {r['subproblem']} | {r['eval_seconds']:.4f} | {r['lbfgsb']['n_fev']} "
                         f"({r['lbfgsb']['n_iter']}) | {r['fast']['n_iter']} | "
                         f"{r['budget_evals_for_target']:.1f} |")
    lines += ["", "Objectives (reference / fast / L-BFGS-B): " + "; ".join(
        f"{r['subproblem']}: {r['reference']['objective']:.10g} / {r['fast']['objective']:.10g} / "
        f"{r['lbfgsb']['objective']:.10g}" for r in speed["rows"]) + ".", "",
        f"Target (fast path >= {speed['target_speedup']:g}x faster than L-BFGS-B with relative objective "
        f"difference <= {speed['match_tol']:g}): **{'met' if speed['target_met'] else 'not met'}**"
        + ("" if speed["target_met"] else " on this machine (see the row(s) marked 'no')") + ".", ""]
    return "\n".join(lines)


def compare_w_paths(seed: int = 0, tol: float = 1e-6, repeats: int = 3) -> list[dict]:
    """Each MNIST-scale W-step instance (:func:`speed_kinds`) solved by every preconditioned W-step
    strategy that applies to it (:data:`cvx_fenchel.subproblems.strategies.STRATEGIES`: sample space,
    weight-space Gram steps; plain FISTA needs thousands of iterations here) at one tolerance:
    best-of-``repeats`` seconds, iterations, objective (same machine state, back to back)."""
    from cvx_fenchel.subproblems.strategies import STRATEGIES
    rows = []
    for kind in speed_kinds():
        sub, _ = kind.speed_case()(seed, 500, 300)
        if not hasattr(sub, "strategy_state"):
            continue
        for name, strategy in STRATEGIES.items():
            if name in ("closed-form", "gradient-step", "fista") or not strategy.applies(sub):
                continue
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = sub.solve_fast(tol=tol, max_iter=200_000, warn=False, strategy=strategy)
                times.append(time.perf_counter() - t0)
            rows.append({"subproblem": kind.name, "path": name, "tol": tol, "seconds": min(times),
                         "n_iter": r.n_iter, "objective": r.objective, "residual": r.residual})
    return rows


def main(argv=None) -> int:
    """``python -m verification.speed [--seed N] [--out FILE.json] [--no-cvxpy] [--w-paths]``: print the
    speed table (or, with ``--w-paths``, the W-step instances by each preconditioned strategy)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m verification.speed", description=main.__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON result here")
    ap.add_argument("--no-cvxpy", action="store_true", help="skip the CVXPY/Clarabel column")
    ap.add_argument("--w-paths", action="store_true",
                    help="only time the W-step instances by each preconditioned strategy (sample space, Gram)")
    args = ap.parse_args(argv)
    if args.w_paths:
        rows = compare_w_paths(args.seed)
        print("| subproblem | strategy | tol | best of 3 s | iterations | objective | residual |\n"
              "|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['subproblem']} | {r['path']} | {r['tol']:g} | {r['seconds']:.3f} | {r['n_iter']} | {r['objective']:.10g} | "
                  f"{r['residual']:.1e} |")
        return 0
    res = run_speed(args.seed, with_cvxpy=not args.no_cvxpy, log=lambda s: print(s, file=sys.stderr))
    print(speed_markdown(res))
    if args.out:
        from cvx_fenchel.history import atomic_write_bytes
        atomic_write_bytes(args.out, json.dumps(res, indent=1, default=float).encode())
    return 0 if res["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
