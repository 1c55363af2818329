"""Time the captured X-steps (capture.py) with the code of the worktree given as the first
argument: ``python xstep.py WORKTREE [METHOD]`` (METHOD: auto, fista, dual-newton; a worktree
before the dual Newton method knows only FISTA). Prints shape, method, iterations, seconds,
certified residual, FISTA's residual recomputed at the result, objective."""
import pickle
import sys
import time

sys.path.insert(0, sys.argv[1])
import cvx_fenchel  # noqa: E402
from cvx_fenchel.subproblems import LNNX  # noqa: E402

assert cvx_fenchel.__file__.startswith(sys.argv[1]), cvx_fenchel.__file__
opts = {"method": sys.argv[2]} if len(sys.argv) > 2 else {}
for (T, U, W, b, Z0, lam, lp), _ in pickle.load(open("/tmp/lnncaps.pkl", "rb")):
    sub = LNNX(T, U, W, b, lam=lam, lam_prev=lp)
    t = time.perf_counter()
    r = sub.solve_fast(x0=Z0, tol=1e-9, max_iter=2000, warn=False, **opts)
    t = time.perf_counter() - t
    print(W.shape, getattr(r, "method", "fista"), r.n_iter, f"{t:.2f} s", r.converged,
          f"residual {r.residual:.3g}", f"FISTA's residual at it {sub.residual(r.x):.3g}",
          f"objective {r.objective:.12g}", flush=True)
