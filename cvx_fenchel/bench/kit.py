r"""The GPU kit: every device check of the fast path in one command, one report.

.. code-block:: console

    python -m cvx_fenchel.bench.kit --backend cupy --data-dir .data/mnist --out OUT/kit

runs, each in its own process with a share of one time budget (default 450 s, under the 8 minutes
a lent GPU command may take):

1. ``pytest -m gpu`` (``tests/test_gpu.py`` and the other ``gpu`` tests: CuPy against NumPy);
2. ``cvx-fenchel verify --quick --backend B`` (the fast path on ``B`` against CVXPY on the host);
3. ``cvx-fenchel bench mlp --backend B`` and 4. ``bench lenet5 --backend B`` (the Fenchel trainer
   on ``B`` against torch Adam on the same device, with the GEMM peak measured in the same run).

It installs nothing: on the GPU machine the missing wheels are installed by the prefix that
``../shared/gpu/prepare.sh`` prints, and CuPy and torch are the image's. ``OUT/KIT.md`` and
``OUT/kit.json`` hold each step's command, exit status, wall time, the tail of its output and the
headline numbers (verify's verdict, seconds per epoch, Fenchel/Adam ratio, host synchronisations
per batch, W-steps' share of the GEMM peak). With ``--backend numpy --tiny`` (CI, a test) the same
steps run on the CPU on the embedded MNIST subset with one timed batch each, so the kit does not rot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["kit_steps", "run_kit", "kit_markdown", "display_command", "main"]

_CLI = ["-c", "import sys; from cvx_fenchel.cli import main; sys.exit(main())"]
#: Share of the budget each step may use (the rest is left to the steps after it).
_SHARES = {"pytest-gpu": 0.25, "verify-quick": 0.2, "bench-mlp": 0.25, "bench-lenet5": 0.3}


def kit_steps(backend: str, out: Path, *, data_dir: str | None, tiny: bool) -> list[dict]:
    """The kit's steps as ``{"name", "argv"}`` (run with ``sys.executable``)."""
    data = [] if data_dir is None else ["--data-dir", str(data_dir)]
    mlp_batches = ["--batches", "1"] if tiny else ["--batches", "10"]
    lenet_batches = ["--batches", "1"] if tiny else ["--batches", "3"]
    steps = [
        {"name": "pytest-gpu", "argv": ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"]},
        {"name": "verify-quick", "argv": _CLI + ["verify", "--quick", "--backend", backend,
                                                  "--out", str(out / "verify")]},
        {"name": "bench-mlp", "argv": _CLI + ["bench", "mlp", "--backend", backend, *mlp_batches, *data,
                                               "--out", str(out / "bench-mlp"), "--quiet"]},
        {"name": "bench-lenet5", "argv": _CLI + ["bench", "lenet5", "--backend", backend, *lenet_batches,
                                                  *data, "--out", str(out / "bench-lenet5"), "--quiet"]},
    ]
    if tiny:  # the CPU path: no device tests to run, the rest on the embedded subset
        steps = steps[1:]
    return steps


def display_command(argv: list[str]) -> str:
    """A step's command as a reader would type it (``cvx-fenchel ...`` for the CLI)."""
    if argv[:2] == _CLI:
        return "cvx-fenchel " + " ".join(argv[2:])
    return " ".join(["python", *argv])


def _headline(name: str, out: Path, text: str) -> dict:
    """The numbers a reader wants from a finished step."""
    if name == "verify-quick":
        verdict = next((w for w in ("PASSED", "FAILED") if w in text), None)
        return {"verdict": verdict}
    if name.startswith("bench-"):
        path = out / name / "bench.json"
        if not path.exists():
            return {}
        res = json.loads(path.read_text())
        fen = res["fenchel"]
        return {"fenchel_seconds_per_epoch": fen["seconds_per_epoch_extrapolated"],
                "fenchel_seconds_per_batch": fen["seconds_per_batch"],
                "ratio_epoch_fenchel_over_adam": res.get("ratio_epoch_fenchel_over_adam"),
                "host_syncs_per_batch": fen.get("host_syncs_per_batch"),
                "w_steps_fraction_of_peak": fen.get("w_steps_fraction_of_peak"),
                "gemm_peak_gflops": res["gemm_peak"]["gflops"], "device": res.get("device")}
    if name == "pytest-gpu":
        last = [ln for ln in text.strip().splitlines() if ln.strip()]
        return {"summary": last[-1] if last else ""}
    return {}


def run_kit(backend: str, out: str | os.PathLike, *, data_dir: str | None = None, tiny: bool = False,
            budget: float = 450.0, cwd: str | os.PathLike | None = None) -> dict:
    """Run the kit's steps one after the other within ``budget`` seconds; write ``kit.json`` and
    ``KIT.md`` into ``out`` and return the result. A step that runs past its share of the budget
    is stopped and reported as ``timed out``; a step that fails does not stop the next."""
    from ..machine import summary
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows = []
    steps = kit_steps(backend, out, data_dir=data_dir, tiny=tiny)
    for i, st in enumerate(steps):
        left = budget - (time.perf_counter() - t_start)
        share = sum(_SHARES[s["name"]] for s in steps[i:])
        limit = max(5.0, left * _SHARES[st["name"]] / share)
        cmd = [sys.executable, *st["argv"]]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=limit)
            rc, text, status = p.returncode, p.stdout + p.stderr, "ok" if p.returncode == 0 else "failed"
        except subprocess.TimeoutExpired as e:
            rc, status = None, "timed out"
            text = "".join(s.decode() if isinstance(s, bytes) else (s or "") for s in (e.stdout, e.stderr))
        secs = time.perf_counter() - t0
        (out / f"{st['name']}.log").write_text(text)
        rows.append({"name": st["name"], "command": display_command(st["argv"]), "rc": rc,
                     "status": status, "seconds": secs, "limit_seconds": limit,
                     "tail": text[-3000:], **_headline(st["name"], out, text)})
    res = {"backend": backend, "tiny": tiny, "data_dir": data_dir, "budget_seconds": budget,
           "wall_seconds": time.perf_counter() - t_start, "machine": summary(), "steps": rows,
           "ok": all(r["status"] == "ok" for r in rows)}
    (out / "kit.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "KIT.md").write_text(kit_markdown(res))
    return res


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return ", ".join(f"batch {k}: {_fmt(x)}x" for k, x in v.items())
    return str(v)


def kit_markdown(res: dict) -> str:
    """The kit's report."""
    m = res["machine"]
    lines = [f"# GPU kit ({res['backend']}{', tiny' if res['tiny'] else ''})", "",
             f"Machine: {m.get('cpu_model')}, {m.get('logical_cpus')} CPUs; CuPy: {m.get('cupy')}; "
             f"torch {m.get('versions', {}).get('torch', '-')}. Data: {res['data_dir'] or 'embedded MNIST subset'}. "
             f"Wall time {res['wall_seconds']:.0f} s of a {res['budget_seconds']:.0f} s budget. "
             f"**{'All steps passed' if res['ok'] else 'Some steps did not pass'}.**", "",
             "| step | status | seconds | headline |", "|---|---|---|---|"]
    for r in res["steps"]:
        keys = [k for k in ("verdict", "summary", "fenchel_seconds_per_epoch", "ratio_epoch_fenchel_over_adam",
                            "host_syncs_per_batch", "w_steps_fraction_of_peak", "gemm_peak_gflops") if k in r]
        head = "; ".join(f"{k.replace('_', ' ')} {_fmt(r[k])}" for k in keys)
        lines.append(f"| {r['name']} | {r['status']} (rc {r['rc']}) | {r['seconds']:.1f} | {head} |")
    lines += ["", "Commands (run from the repository root):", ""]
    lines += [f"* `{r['name']}`: `{r['command']}`" for r in res["steps"]]
    for r in res["steps"]:
        if r["status"] != "ok":
            lines += ["", f"## {r['name']}: last lines of output", "", "```", r["tail"][-2000:], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cvx_fenchel.bench.kit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="cupy", choices=("cupy", "numpy"))
    ap.add_argument("--out", required=True, help="folder for KIT.md, kit.json and each step's output")
    ap.add_argument("--data-dir", default=None, help="MNIST folder (default: the embedded subset)")
    ap.add_argument("--tiny", action="store_true", help="one timed batch per bench, no device tests (CI)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all steps together")
    a = ap.parse_args(argv)
    res = run_kit(a.backend, a.out, data_dir=a.data_dir, tiny=a.tiny, budget=a.budget)
    print(kit_markdown(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
