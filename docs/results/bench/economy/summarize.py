"""Summarise Fenchel runs (10-epoch Fig. 2, 2-epoch LeNet-5) that differ only in the X-/W-step tolerances (issue 12,
iteration economy): final and per-epoch test accuracy, mean inner iterations per block in epochs 1
and 10, and training seconds. Usage: ``python summarize.py RUN_DIR ... > economy.md`` where each
RUN_DIR is a ``cvx-fenchel train --model fenchel --data-dir ... --epochs 10 --tol-x T --tol-w T``
output folder."""

import json
import sys
from pathlib import Path

import numpy as np


def row(folder: Path) -> str:
    h = json.loads((folder / "history.json").read_text())
    opts = h["meta"].get("options", {})
    accs = [e["test_accuracy"] for e in h["epochs"]]
    its = {}
    for ep in (1, len(h["epochs"])):
        for b in (b for b in h["batches"] if b["epoch"] == ep):
            for s in b["steps"]:
                its.setdefault((ep, s["block"]), []).append(s["n_iter"])
    blocks = sorted({blk for _, blk in its})
    it_txt = "; ".join(f"{blk} {np.mean(its[(1, blk)]):.1f} / {np.mean(its[(len(accs), blk)]):.1f}" for blk in blocks)
    first = next((i + 1 for i, a in enumerate(accs) if a >= 0.97), None)
    secs = sum(e["time"] for e in h["epochs"])
    return (f"| {opts.get('tol_x')} / {opts.get('tol_w')} | **{accs[-1]:.4f}** | {first} | {it_txt} | "
            f"{secs:.0f} | {' '.join(f'{a:.4f}' for a in accs)} |")


if __name__ == "__main__":
    print("| tol X / W | final test accuracy | first epoch >= 0.97 | mean inner iterations, first / last epoch |"
          " training s | test accuracy by epoch |")
    print("|---|---|---|---|---|---|")
    for d in sys.argv[1:]:
        print(row(Path(d)))
