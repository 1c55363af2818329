r"""Speed row: the fast path against scipy's L-BFGS-B (the original code's solver) and CVXPY.

At MNIST scale (500 samples of the shipped subset, pixels in [0, 1]; 784-300-10,
ReLU; Xavier weights, biases 0.1, as the original code initialises them) two
subproblems with the original code's settings:

* **X-last-ce**: :math:`\min_{Z \ge 0} 10\,\mathrm{CE}(Y, Z W_1 + b_1) + \sum B(Z, X W_0 + b_0)`
  (``Z``: 500 x 300 = 150,000 variables; lam = 1, coef = ``lbd_coef`` = 10);
* **W-hidden**: :math:`\min_{W, b} \sum B(X_1, X W + b) + 10\,\|(W, b) - (W_0, b_0)\|^2`
  (784 x 300 + 300 = 235,500 variables; lam = 1, rho = 0, gamma = 10), with
  ``X_1 = relu(X W_0 + b_0 + 0.3 N)`` (a perturbed feed-forward value).

Each is solved

* by a high-accuracy reference (the fast path at ``tol=1e-13``),
* by the fast path at the loosest tolerance of 1e-4, 1e-5, ... whose objective is within 1e-7
  (relative) of the reference (the timed run is a second, separate solve at that tolerance),
* by ``scipy.optimize.minimize(method="L-BFGS-B")`` with analytic gradients (bounds ``Z >= 0``
  for the X-step) at its default tolerances, from the same starting point as the fast path
  (the feed-forward value for the X-step, ``(W_0, b_0)`` for the W-step),
* by CVXPY with Clarabel in a child process with a time limit (X-last-ce), or recorded as
  ``skipped (size)`` where the declaration is too large to build (W-hidden: the affine map
  ``(W, b) -> XW + b`` alone has about 22 million non-zeros).

Reported: seconds, objectives, relative differences to the reference, and the speed-up of the
fast path over L-BFGS-B, with the CPU model and thread count.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import sys
import time

import numpy as np

from cvx_fenchel.machine import cpu_info, versions

__all__ = ["run_speed", "build_mnist_instances", "speed_markdown", "main"]

#: Target of the issue: fast path at least this many times faster than L-BFGS-B.
TARGET_SPEEDUP = 100.0
#: Objective agreement demanded of the timed fast-path run (relative to the reference).
MATCH_TOL = 1e-7
CVXPY_TIME_LIMIT = 180.0


def build_mnist_instances(seed: int = 0, m: int = 500, hidden: int = 300):
    """``(xlast, whidden, info)``: the two MNIST-scale subproblems described in the module docstring."""
    from cvx_fenchel.datasets import load_mnist
    from cvx_fenchel.maps import Dense
    from cvx_fenchel.subproblems import WHidden, XLast

    Xtr, ytr, _, _ = load_mnist(normalize=True, flatten=True)
    rng = np.random.default_rng(seed)
    idx = rng.choice(Xtr.shape[0], m, replace=False)
    X = np.ascontiguousarray(Xtr[idx], dtype=np.float64)
    Y = np.eye(10)[ytr[idx]]
    W0, b0 = Dense(X.shape[1], hidden).init_weights(rng, "xavier")
    W1, b1 = Dense(hidden, 10).init_weights(rng, "xavier")
    U0 = X @ W0 + b0
    xlast = XLast(Y, U0, W1, b1, "relu", loss="cross_entropy", lam_prev=1.0, coef=10.0)
    X1 = np.maximum(U0 + 0.3 * rng.standard_normal(U0.shape), 0.0)
    whidden = WHidden(X, X1, "relu", lam=1.0, rho=0.0, gamma=10.0, W0=W0, b0=b0)
    info = {"samples": m, "inputs": X.shape[1], "hidden": hidden, "classes": 10,
            "data": "cvx_fenchel.datasets.load_mnist() subset, 500 random training images, pixels / 255",
            "init": "Xavier (Glorot uniform) weights, biases 0.1", "activation": "relu"}
    return xlast, whidden, info


# ---------------------------------------------------------------------------------------------
# objective + gradient for L-BFGS-B (written out here, independent of the fast path's internals)
# ---------------------------------------------------------------------------------------------
def _xlast_fun(sub):
    r"""``f(z), grad`` of :math:`c\,\mathrm{CE}(Y, ZW + b) + \lambda \sum (Z^2/2 + \max(U,0)^2/2 - UZ)`."""
    Y, U, W, b = sub.Y, sub.U_prev, sub.W, sub.b
    c, lam = sub.coef, sub.lam_prev
    shape = U.shape
    const = 0.5 * lam * float(np.sum(np.maximum(U, 0.0) ** 2))

    def fun(z):
        Z = z.reshape(shape)
        O = Z @ W + b
        mx = O.max(axis=1, keepdims=True)
        E = np.exp(O - mx)
        s = E.sum(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(s[:, 0])
        f = c * (lse.sum() - np.sum(Y * O)) + lam * (0.5 * np.sum(Z * Z) - np.sum(U * Z)) + const
        G = c * (E / s - Y) @ W.T + lam * (Z - U)
        return float(f), G.ravel()

    return fun, shape


def _whidden_fun(sub):
    r"""``f(theta), grad`` of :math:`\lambda \sum (X_1^2/2 + \max(U,0)^2/2 - U X_1) + \gamma\|\theta - \theta_0\|^2`,
    ``U = XW + b`` (ReLU, rho = 0)."""
    X, V, W0, b0 = sub.X, sub.X_next, sub.W0, sub.b0
    lam, rho, gamma = sub.lam, sub.rho, sub.gamma
    n, k = W0.shape
    const = 0.5 * lam * float(np.sum(V * V))

    def fun(theta):
        W = theta[: n * k].reshape(n, k)
        b = theta[n * k:]
        U = X @ W + b
        P = np.maximum(U, 0.0)
        f = lam * (0.5 * np.sum(P * P) - np.sum(U * V)) + const
        f += rho * (np.sum(W * W) + np.sum(b * b)) + gamma * (np.sum((W - W0) ** 2) + np.sum((b - b0) ** 2))
        R = lam * (P - V)
        gW = X.T @ R + 2 * rho * W + 2 * gamma * (W - W0)
        gb = R.sum(axis=0) + 2 * rho * b + 2 * gamma * (b - b0)
        return float(f), np.concatenate([gW.ravel(), gb])

    return fun, (n, k)


def _lbfgsb(fun, x0, bounds):
    from scipy.optimize import minimize
    t0 = time.perf_counter()
    r = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds)
    return r, time.perf_counter() - t0


def _cvxpy_child(kind: str, seed: int, queue) -> None:  # pragma: no cover - runs in a child process
    try:
        xlast, whidden, _ = build_mnist_instances(seed)
        sub = xlast if kind == "X-last-ce" else whidden
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


def _rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


def _time_fast(sub, f_ref: float, n_vars: int) -> dict:
    """Loosest tolerance matching the reference to MATCH_TOL; then a separate timed solve."""
    tried = []
    chosen = None
    for tol in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10):
        r = sub.solve_fast(tol=tol, max_iter=200_000, warn=False)
        tried.append({"tol": tol, "objective": r.objective, "rel_diff": _rel(r.objective, f_ref),
                      "n_iter": r.n_iter, "seconds": r.seconds})
        if _rel(r.objective, f_ref) <= MATCH_TOL:
            chosen = tol
            break
    if chosen is None:
        chosen = 1e-10
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = sub.solve_fast(tol=chosen, max_iter=200_000, warn=False)
        times.append(time.perf_counter() - t0)
    return {"tol": chosen, "seconds": min(times), "seconds_all": times, "objective": r.objective,
            "rel_diff": _rel(r.objective, f_ref), "n_iter": r.n_iter, "residual": r.residual,
            "calibration": tried, "variables": n_vars}


def run_speed(seed: int = 0, *, cvxpy_limit: float = CVXPY_TIME_LIMIT, with_cvxpy: bool = True,
              log=None) -> dict:
    """Run the speed comparison; returns a JSON-able dict (rows, machine, verdict)."""
    def say(msg):
        if log is not None:
            log(msg)

    xlast, whidden, info = build_mnist_instances(seed)
    rows = []
    for name, sub in (("X-last-ce", xlast), ("W-hidden", whidden)):
        say(f"speed: {name} reference")
        t0 = time.perf_counter()
        ref = sub.solve_fast(tol=1e-13, max_iter=500_000, warn=False)
        ref_sec = time.perf_counter() - t0
        if name == "X-last-ce":
            fun, shape = _xlast_fun(sub)
            x0 = np.asarray(sub.start(), dtype=np.float64).ravel()
            bounds = [(0.0, None)] * x0.size
            n_vars = x0.size
        else:
            fun, _ = _whidden_fun(sub)
            x0 = np.concatenate([np.asarray(sub.W0).ravel(), np.asarray(sub.b0).ravel()])
            bounds = None
            n_vars = x0.size
        # the hand-written L-BFGS-B objective must be the subproblem's objective
        f0 = fun(x0)[0]
        f0_sub = sub.objective(sub.start())
        say(f"speed: {name} fast path")
        fast = _time_fast(sub, ref.objective, n_vars)
        say(f"speed: {name} L-BFGS-B")
        r, lsec = _lbfgsb(fun, x0, bounds)
        lb = {"seconds": lsec, "objective": float(r.fun), "rel_diff": _rel(float(r.fun), ref.objective),
              "n_iter": int(r.nit), "n_fev": int(r.nfev), "status": str(r.message), "settings": "scipy defaults"}
        if with_cvxpy and name == "X-last-ce":
            say(f"speed: {name} CVXPY/Clarabel (limit {cvxpy_limit:.0f} s)")
            cv = _cvxpy_timed(name, seed, cvxpy_limit)
            if cv.get("objective") is not None:
                cv["rel_diff"] = _rel(cv["objective"], ref.objective)
        elif name == "W-hidden":
            cv = {"status": "skipped (size): 235,500 variables and a 150,000 x 235,500 affine map with "
                            "about 22 million non-zeros", "seconds": None, "objective": None}
        else:
            cv = {"status": "skipped (not requested)", "seconds": None, "objective": None}
        speedup = lsec / fast["seconds"] if fast["seconds"] > 0 else math.inf
        # cost model: one objective + gradient evaluation (two matrix products) and how many of them
        # the target's time budget (L-BFGS-B time / 100) allows
        t_evals = []
        for _ in range(5):
            t1 = time.perf_counter()
            fun(x0)
            t_evals.append(time.perf_counter() - t1)
        t_eval = min(t_evals)
        rows.append({"subproblem": name, "variables": n_vars, "reference": {
            "objective": ref.objective, "tol": 1e-13, "seconds": ref_sec, "residual": ref.residual,
            "n_iter": ref.n_iter}, "fast": fast, "lbfgsb": lb, "cvxpy_clarabel": cv,
            "speedup_vs_lbfgsb": speedup, "objective_check_rel": _rel(f0, f0_sub),
            "eval_seconds": t_eval, "budget_evals_for_target": lsec / TARGET_SPEEDUP / t_eval,
            "fast_matches": fast["rel_diff"] <= MATCH_TOL, "target_met": speedup >= TARGET_SPEEDUP})
    return {"instance": info, "machine": cpu_info(), "versions": versions(), "target_speedup": TARGET_SPEEDUP,
            "match_tol": MATCH_TOL, "rows": rows,
            "correct": all(r["fast_matches"] and r["objective_check_rel"] <= 1e-10 for r in rows),
            "target_met": all(r["target_met"] for r in rows)}


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def speed_markdown(speed: dict | None) -> str:
    """Markdown section of the speed row."""
    if not speed:
        return "## Speed (MNIST scale)\n\nNot run (quick mode; run without `--quick` or `python -m verification.speed`).\n"
    mach = speed["machine"]
    lines = ["## Speed (MNIST scale)", "",
             f"{speed['instance']['samples']} MNIST images (shipped subset, pixels in [0, 1]), 784-300-10, ReLU, "
             "Xavier weights, biases 0.1. X-last-ce: lam = 1, coef (`lbd_coef`) = 10; W-hidden: lam = 1, "
             "rho = 0, gamma = 10. Reference: the fast path at tol 1e-13. The fast path runs at the loosest "
             f"tolerance whose objective is within {speed['match_tol']:g} (relative) of the reference "
             "(best of 3 runs); L-BFGS-B (scipy defaults, analytic gradient, bounds Z >= 0 for the X-step) "
             "from the same start.", "",
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
    """The W-hidden instance solved by every preconditioned W-step strategy that applies to it
    (:data:`cvx_fenchel.subproblems.strategies.STRATEGIES`: sample space, weight-space Gram steps;
    plain FISTA needs thousands of iterations here) at one tolerance: best-of-``repeats`` seconds,
    iterations, objective (same machine state, back to back)."""
    from cvx_fenchel.subproblems.strategies import STRATEGIES
    _, whidden, _ = build_mnist_instances(seed)
    rows = []
    for name, strategy in STRATEGIES.items():
        if name in ("closed-form", "gradient-step", "fista") or not strategy.applies(whidden):
            continue
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = whidden.solve_fast(tol=tol, max_iter=200_000, warn=False, strategy=strategy)
            times.append(time.perf_counter() - t0)
        rows.append({"path": name, "tol": tol, "seconds": min(times), "n_iter": r.n_iter,
                     "objective": r.objective, "residual": r.residual})
    return rows


def main(argv=None) -> int:
    """``python -m verification.speed [--seed N] [--out FILE.json] [--no-cvxpy] [--w-paths]``: print the
    speed table (or, with ``--w-paths``, the W-hidden instance by each preconditioned W-step strategy)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m verification.speed", description=main.__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON result here")
    ap.add_argument("--no-cvxpy", action="store_true", help="skip the CVXPY/Clarabel column")
    ap.add_argument("--w-paths", action="store_true",
                    help="only time W-hidden by each preconditioned W-step strategy (sample space, Gram)")
    args = ap.parse_args(argv)
    if args.w_paths:
        rows = compare_w_paths(args.seed)
        print("| W-hidden strategy | tol | best of 3 s | iterations | objective | residual |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['path']} | {r['tol']:g} | {r['seconds']:.3f} | {r['n_iter']} | {r['objective']:.10g} | "
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
