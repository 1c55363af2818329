"""``cvx-fenchel bench``: run a workload, write ``bench.json`` and ``bench.md`` (see
:mod:`cvx_fenchel.bench`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from ..backend import check_int, check_scalar
from ..errors import InputError, UnknownNameError
from ..machine import summary
from .workloads import (ADAM_BATCH_SIZES, ADAM_TIMED_BATCHES, ARCHS, DEFAULT_BATCHES, WORKLOADS,
                        bench_adam, bench_fenchel, fenchel_bench_config, gemm_peak, load_average,
                        load_bench_data, resolve_backend, time_to_accuracy)

__all__ = ["run_bench", "bench_markdown", "write_bench", "git_commit", "porcelain_paths"]


def porcelain_paths(status: str) -> list[str]:
    """Paths of ``git status --porcelain`` output (``XY path`` per line). Each line is cut at its
    own third character: stripping the whole text first would cut a character off the first path
    (its status ``" M"`` starts with a blank)."""
    return [line[3:] for line in status.splitlines() if line.strip()]


def git_commit() -> dict:
    """``{"commit", "dirty_cvx_fenchel", "modified_files"}`` of the checkout holding this package
    (None outside git): uncommitted changes under ``cvx_fenchel/`` are named."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", "cvx_fenchel"], capture_output=True, text=True, timeout=10,
                               check=True).stdout
        files = porcelain_paths(dirty)
        return {"commit": commit or None, "dirty_cvx_fenchel": bool(files), "modified_files": files}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty_cvx_fenchel": None, "modified_files": None}


def run_bench(workload: str, *, backend: str = "numpy", batches: int | None = None,
              data_dir: str | None = None, to_accuracy: float | None = None, seed: int = 0,
              max_epochs: int = 5, arch: str | None = None, batch_size: int | None = None,
              adam_batches: int = ADAM_TIMED_BATCHES, adam_batch_sizes: tuple = ADAM_BATCH_SIZES,
              command: list[str] | None = None, log: Callable[[str], None] | None = None,
              tol: float | None = None) -> dict:
    """Run one bench ``workload`` (``mlp``, ``lenet5``, ``steps``) and return its JSON-able result.

    ``batches``: timed Fenchel batches (default :data:`DEFAULT_BATCHES`); ``data_dir``: MNIST
    folder (default: the embedded subset); ``to_accuracy``: also train both models until this test
    accuracy (at most ``max_epochs``); ``arch``/``batch_size``: override the workload's network
    and Fenchel batch (tests; the ``auto`` preset then picks ``plain`` for other networks);
    ``tol``: the Fenchel trainer's X- and W-step tolerance instead of the config's default (1e-4).
    """
    if workload not in WORKLOADS:
        raise UnknownNameError(f"unknown bench workload {workload!r}; choose one of {WORKLOADS}")
    xp, device = resolve_backend(backend)
    seed = check_int(seed, "seed", 0)
    say = log or (lambda s: None)
    base = {"workload": workload, "backend": backend, "seed": seed, "command": command,
            "machine": summary(), **git_commit(), "load_average_start": load_average(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    t0 = time.perf_counter()
    if workload == "steps":
        if to_accuracy is not None or batches is not None or tol is not None:
            raise InputError("--batches, --to-accuracy and --tol apply to the mlp and lenet5 workloads")
        from .steps import run_steps
        res = {**base, **run_steps(seed, log=say)}
    else:
        batches = DEFAULT_BATCHES[workload] if batches is None else check_int(batches, "batches", 1)
        if to_accuracy is not None:
            to_accuracy = check_scalar(to_accuracy, "to_accuracy", low=0.0, high=1.0, low_inclusive=False)
        cfg = fenchel_bench_config(workload, arch=arch, batch_size=batch_size, seed=seed, tol=tol,
                                   backend=backend)
        net_arch = arch or ARCHS[workload]
        say(f"bench {workload}: loading data ({data_dir or 'embedded MNIST subset'})")
        data = load_bench_data(net_arch, data_dir)
        say("bench: float32 GEMM peak")
        peak = gemm_peak(xp)
        fen = bench_fenchel(cfg, data, batches, xp=xp, log=say)
        adams = []
        for bs in adam_batch_sizes:
            if data["n_train"] // bs <= 3:
                continue
            say(f"adam: batch {bs}, {adam_batches} timed batches on {device}")
            a = bench_adam(net_arch, data, bs, batches=adam_batches, device=device, seed=seed)
            a["label"] = {100: "the paper's Adam batch", cfg.batch_size: "Fenchel's batch"}.get(bs, "")
            a["ratio_epoch_fenchel_over_adam"] = (fen["seconds_per_epoch_extrapolated"]
                                                  / a["seconds_per_epoch_extrapolated"])
            a["ratio_batch_fenchel_over_adam"] = fen["seconds_per_batch"] / a["seconds_per_batch"]
            adams.append(a)
        fen["w_steps_fraction_of_peak"] = (None if fen["w_steps_gflops"] is None
                                           else fen["w_steps_gflops"] / peak["gflops"])
        for b in fen["blocks"].values():
            b["fraction_of_peak"] = None if b["gflops"] is None else b["gflops"] / peak["gflops"]
        res = {**base, "arch": net_arch, "device": device,
               "data": {k: data[k] for k in ("source", "n_train", "n_test")},
               "gemm_peak": peak, "fenchel": fen, "adam": adams,
               "ratio_epoch_fenchel_over_adam": {str(a["batch_size"]): a["ratio_epoch_fenchel_over_adam"]
                                                 for a in adams}}
        if to_accuracy is not None:
            res["to_accuracy"] = time_to_accuracy(cfg, data, to_accuracy, xp=xp, max_epochs=max_epochs,
                                                  device=device, seed=seed, log=say)
    res["wall_seconds"] = time.perf_counter() - t0
    res["load_average_end"] = load_average()
    return res


def _f(v: Any, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _machine_line(res: dict) -> str:
    m = res["machine"]
    la = res.get("load_average_start")
    return (f"Machine: {m.get('cpu_model')}, {m.get('logical_cpus')} logical CPUs, BLAS {m.get('blas')}; "
            f"torch {m.get('versions', {}).get('torch', '-')}; CuPy: {m.get('cupy')}. Commit "
            f"{(res.get('commit') or '?')[:10]}"
            f"{' with uncommitted changes in ' + ', '.join(res.get('modified_files') or []) if res.get('dirty_cvx_fenchel') else ''}; "
            f"load average at start {la[0] if la else '?'} (1 min), at end "
            f"{(res.get('load_average_end') or ['?'])[0]}.")


#: A 1-minute load average above this at the start or end of a run is flagged in the report.
BUSY_LOAD = 1.5


def bench_markdown(res: dict) -> str:
    """The Markdown report of a :func:`run_bench` result."""
    cmd = " ".join(res.get("command") or [])
    head = [f"# bench {res['workload']}", "", f"`{cmd}`" if cmd else "", "", _machine_line(res), ""]
    loads = [la[0] for la in (res.get("load_average_start"), res.get("load_average_end")) if la]
    if loads and max(loads) > BUSY_LOAD:
        head += [f"**The machine was busy** (1-minute load average up to {max(loads):g} on "
                 f"{res['machine'].get('logical_cpus', '?')} CPUs): another job shared the cores, so "
                 "these times are inflated.", ""]
    if res["workload"] == "steps":
        return "\n".join(head + _steps_md(res))
    fen, adams, peak = res["fenchel"], res["adam"], res["gemm_peak"]
    lines = head + [
        f"{res['arch']} on {res['data']['source']} ({res['data']['n_train']} training samples), "
        f"backend {res['backend']} (Adam: torch on {res['device']}). Fenchel: {fen['settings']}.", "",
        f"Fenchel: {fen['timed_batches']} timed batches after one warm-up batch ({fen['warmup_seconds']:.3f} s); "
        f"Adam: lr 1e-3, float32, the mean of {', '.join(str(a['timed_batches']) for a in adams)} timed "
        "batches after 3 warm-up batches. Epochs are **extrapolated**: seconds per batch x batches per "
        "epoch.", "",
        "| | Fenchel (batch %d) | " % fen["batch_size"]
        + " | ".join(f"Adam (batch {a['batch_size']}: {a['label']})" for a in adams) + " |",
        "|---|---|" + "---|" * len(adams),
        f"| s/batch (mean; min) | {fen['seconds_per_batch']:.4f}; {fen['seconds_per_batch_min']:.4f} | "
        + " | ".join(f"{a['seconds_per_batch']:.5f}; {a['seconds_per_batch_min']:.5f}" for a in adams) + " |",
        f"| s/epoch, extrapolated (batches/epoch) | {fen['seconds_per_epoch_extrapolated']:.2f} "
        f"({fen['batches_per_epoch']}) | "
        + " | ".join(f"{a['seconds_per_epoch_extrapolated']:.3f} ({a['batches_per_epoch']})" for a in adams) + " |",
        "| ratio Fenchel/Adam per epoch | 1 | "
        + " | ".join(f"**{a['ratio_epoch_fenchel_over_adam']:.1f}x**" for a in adams) + " |",
        "| ratio Fenchel/Adam per batch | 1 | "
        + " | ".join(f"{a['ratio_batch_fenchel_over_adam']:.1f}x" for a in adams) + " |",
        f"| host syncs per batch (counted) | {fen.get('host_syncs_per_batch', '-')} | "
        + " | ".join("-" for _ in adams) + " |", "",
        "Fenchel by step (mean per timed batch; inner iterations over the timed batches; nominal FLOPs "
        "= one forward and one adjoint GEMM of the layer's map per iteration):", "",
        "| block | s/batch | share | iterations mean / max | at cap (cap) | method | GFLOP/iter "
        "| GFLOP/s | % of GEMM peak |", "|---|---|---|---|---|---|---|---|---|"]
    per = fen["seconds_per_batch"]
    order = sorted(fen["blocks"].items(), key=lambda kv: (kv[1]["kind"] != "x", -kv[1]["layer"]))
    for name, b in order:
        cap = "-" if b["at_cap_fraction"] is None else f"{100 * b['at_cap_fraction']:.0f}% ({b['max_iter']})"
        lines.append(f"| {name} | {b['seconds_per_batch']:.4f} | {100 * b['seconds_per_batch'] / per:.0f}% | "
                     f"{_f(b['n_iter_mean'], '.1f')} / {_f(b['n_iter_max'], 'd')} | {cap} | "
                     f"{', '.join(b['methods']) or '-'} | {b['flops_per_iter'] / 1e9:.3f} | "
                     f"{_f(b['gflops'], '.1f')} | {_f(None if b['fraction_of_peak'] is None else 100 * b['fraction_of_peak'], '.0f')} |")
    for k, v in fen["split_seconds_per_batch"].items():
        lines.append(f"| {k} | {v:.4f} | {100 * v / per:.0f}% | | | | | | |")
    lines += ["", f"W-steps: **{_f(fen['w_steps_gflops'], '.1f')} GFLOP/s** nominal = "
              f"{_f(None if fen['w_steps_fraction_of_peak'] is None else 100 * fen['w_steps_fraction_of_peak'], '.0f')}% "
              f"of the float32 GEMM peak measured in this run ({peak['gflops']:.0f} GFLOP/s, "
              f"{peak['n']}x{peak['n']} matmul, best of {peak['repeats']}).", ""]
    hs = fen.get("host_syncs")
    if hs:
        lines += [f"Host synchronisations of timed batch 1 (counted on the CPU by the instrumented "
                  f"namespace, `cvx_fenchel.bench.syncs`): **{hs['total']}**; by kind "
                  + ", ".join(f"{k} {v}" for k, v in hs["by_kind"].items()) + "; by block "
                  + ", ".join(f"{k} {v}" for k, v in hs["by_block"].items()) + ". Top sites: "
                  + "; ".join(f"`{s['site']}` {s['count']}" for s in hs["top_sites"][:6]) + ".", ""]
    ta = res.get("to_accuracy")
    if ta:
        fa, aa = ta["fenchel"], ta["adam"]
        lines += [f"Time to test accuracy {ta['target']} (training seconds, evaluation every "
                  f"{ta['evaluated_every_samples']} samples not counted; at most {fa['epochs_max']} epochs):", "",
                  "| model | seconds | samples seen | accuracy then | best accuracy |", "|---|---|---|---|---|",
                  f"| Fenchel (batch {fen['batch_size']}) | {_f(fa['seconds'], '.2f')} | {_f(fa['samples'], 'd')} | "
                  f"{_f(fa['accuracy'], '.4f')} | {_f(fa['best_accuracy'], '.4f')} |",
                  f"| Adam (batch {aa['batch_size']}) | {_f(aa['seconds'], '.2f')} | {_f(aa['samples'], 'd')} | "
                  f"{_f(aa['accuracy'], '.4f')} | {_f(aa['best_accuracy'], '.4f')} |", "",
                  f"Ratio Fenchel/Adam: **{_f(ta['ratio_fenchel_over_adam'], '.1f')}x**.", ""]
    lines.append(f"Wall time of the bench: {res['wall_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def _steps_md(res: dict) -> list[str]:
    inst = res["instance"]
    lines = [f"{inst.get('samples')} MNIST images (shipped subset), {inst.get('inputs')}-{inst.get('hidden')}-"
             f"{inst.get('classes')}, {inst.get('activation')}, {inst.get('loss')}. Fast path at the loosest "
             f"tolerance within {res['match_tol']:g} (relative objective) of a tol-1e-13 reference, best of 3; "
             "L-BFGS-B at scipy's defaults from the same start.", "",
             "| subproblem | variables | fast path s (tol, iterations, method) | fast rel. diff | L-BFGS-B s "
             "(iterations) | L-BFGS-B rel. diff | speed-up | issue 12 target |", "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        f, lb = r["fast"], r["lbfgsb"]
        tgt = r.get("issue_target_speedup")
        lines.append(f"| {r['subproblem']} | {r['variables']:,} | {f['seconds']:.3f} ({f['tol']:g}, {f['n_iter']}, "
                     f"{f.get('method') or '-'}) | {f['rel_diff']:.1e} | {lb['seconds']:.2f} ({lb['n_iter']}) | "
                     f"{lb['rel_diff']:.1e} | **{r['speedup_vs_lbfgsb']:.1f}x** | "
                     f"{'-' if tgt is None else f'{tgt:g}x: ' + ('met' if r['issue_target_met'] else 'not met')} |")
    lines += ["", f"Wall time of the bench: {res['wall_seconds']:.0f} s.", ""]
    return lines


def write_bench(res: dict, out: str | Path) -> tuple[Path, Path]:
    """Write ``OUT/bench.json`` and ``OUT/bench.md``; returns their paths."""
    from ..history import atomic_write_bytes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pj, pm = out / "bench.json", out / "bench.md"
    atomic_write_bytes(pj, json.dumps(res, indent=1, default=_json_default).encode())
    atomic_write_bytes(pm, bench_markdown(res).encode())
    return pj, pm


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, tuple)):
        return list(o)
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)
