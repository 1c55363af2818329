"""The table of README.md from ``lr-sweep.jsonl`` and Table 1's own seed-0 cells.

``python docs/results/gaps/table1-nets/summarize.py [RESULTS_JSON]`` (default: the archived
``docs/results/runs/table1-full/results.json``). ``normal_sd0.1`` is compared with the
report's NN[Normal]. For every (architecture, column, the report's
rate r) it prints our seed-0 test accuracy at r, 2r, 3r, 5r, the report's mean, and the factor
c at which ours equals it (linear interpolation of accuracy in log c between the bracketing
runs; "< 1" or "> 5" outside the runs).
"""
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).parent
FACTORS = (1, 2, 3, 5)


def match(points, target):
    """c with acc(c) = target by interpolating acc in log c between neighbours (acc rising)."""
    pts = sorted(points.items())
    for (c0, a0), (c1, a1) in zip(pts, pts[1:]):
        if (a0 - target) * (a1 - target) <= 0 and a0 != a1:
            t = (target - a0) / (a1 - a0)
            return math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0)))
    if all(a > target for _, a in pts):
        return f"< {pts[0][0]}"
    if all(a < target for _, a in pts):
        return f"> {pts[-1][0]}"
    return "not monotone"


def main(results=HERE.parents[1] / "runs" / "table1-full" / "results.json"):
    from cvx_fenchel.table1 import PAPER
    from probe import column  # this folder's probe.py (the script's folder is on sys.path)
    sweep = [json.loads(l) for l in (HERE / "lr-sweep.jsonl").read_text().splitlines()]
    base = [r for r in json.loads(Path(results).read_text())["rows"] if r["seed"] == 0]
    acc = {}
    for r in base:
        if r["init"] in ("normal", "xavier", "var_scale"):
            acc[(r["arch"], r["init"], r["lr"], 1)] = r["test_accuracy"]
    for r in sweep:
        if r["seed"] != 0:
            continue
        for rate in (1e-5, 1e-6):
            c = round(r["lr"] / rate, 6)
            if c in FACTORS:
                acc[(r["arch"], r["init"], rate, int(c))] = r["test_accuracy"]
    archs = sorted({r["arch"] for r in sweep}, key=len)
    print("| architecture | column | report's rate r | ours at r | 2r | 3r | 5r | report | c where ours = report |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arch in archs:
        for init in ("normal", "normal_sd0.1", "xavier", "var_scale"):
            for rate in (1e-5, 1e-6):
                pts = {c: acc[(arch, init, rate, c)] for c in FACTORS if (arch, init, rate, c) in acc}
                if not pts:
                    continue
                paper = PAPER[(arch, rate, column(init))][0]
                cells = [f"{pts[c]:.4f}" if c in pts else "-" for c in FACTORS]
                c = match(pts, paper)
                c = f"{c:.1f}" if isinstance(c, float) else c
                print(f"| {arch} | {init} | {rate:g} | " + " | ".join(cells) + f" | {paper:.3f} | {c} |")
    seeds = {}
    for r in sweep:
        seeds.setdefault((r["arch"], r["init"], r["lr"]), {})[r["seed"]] = r["test_accuracy"]
    multi = {k: v for k, v in seeds.items() if len(v) > 1}
    if multi:
        print("\nSeeds (the points run with more than one):\n")
        print("| architecture | column | lr | test accuracy by seed | spread (pp) |")
        print("|---|---|---|---|---|")
        for (arch, init, lr), v in sorted(multi.items()):
            accs = " / ".join(f"{v[k]:.4f}" for k in sorted(v))
            print(f"| {arch} | {init} | {lr:g} | {accs} (seeds {', '.join(map(str, sorted(v)))}) "
                  f"| {100 * (max(v.values()) - min(v.values())):.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
