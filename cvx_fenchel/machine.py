"""What machine and software a run used: package versions, CPU, BLAS, CuPy.

One module for the facts every report records (``cvx-fenchel info``, the verification report,
results of reproductions), so that none of them imports another to get them.
"""

from __future__ import annotations

import io
import os
import platform
from contextlib import redirect_stdout

from .backend import cupy_status

__all__ = ["versions", "cpu_info", "blas_info", "cupy_status", "summary", "source_commit", "run_place"]

_PACKAGES = ("numpy", "scipy", "cvxpy", "ecos", "scs", "clarabel", "cvx-fenchel", "torch", "cupy",
             "cupy-cuda12x", "cupy-cuda13x")


def versions() -> dict:
    """``{"python": ..., package: version}`` for the packages installed among those the library
    uses (missing ones are left out)."""
    from importlib import metadata
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_info() -> dict:
    """CPU model (``/proc/cpuinfo``), logical CPUs usable by this process, BLAS threads if known,
    and the thread-count environment variables that are set."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    info = {"cpu_model": model, "logical_cpus": n}
    try:
        from threadpoolctl import threadpool_info
        info["blas_threads"] = max((p.get("num_threads", 0) for p in threadpool_info()), default=None)
    except Exception:  # noqa: BLE001 - optional
        pass
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    return info


def blas_info() -> str:
    """NumPy's BLAS library, version and threads (threadpoolctl if installed, else NumPy's build
    configuration)."""
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


def summary() -> dict:
    """Everything above in one JSON-able dict (for results files)."""
    return {"versions": versions(), "platform": platform.platform(), **cpu_info(),
            "blas": blas_info(), "cupy": cupy_status()}


def source_commit() -> str | None:
    """The git commit of the code that runs (None outside a git checkout): recorded with every
    run so a result names the code that produced it."""
    import subprocess
    from pathlib import Path
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


def run_place() -> dict:
    """``{"commit", "machine": {"host", "cpu_model", "logical_cpus"}}``: the code and the machine
    of a run (what a results file records beside each number)."""
    return {"commit": source_commit(), "machine": {"host": platform.node(), **{
        k: v for k, v in cpu_info().items() if k in ("cpu_model", "logical_cpus")}}}
