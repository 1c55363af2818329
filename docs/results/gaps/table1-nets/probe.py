"""Table 1 gap probe: the standard networks' test accuracy against the SGD step size.

``python docs/results/gaps/table1-nets/probe.py ARCH INITS LRS OUT.jsonl [SEED] [DATA_DIR]``

ARCH: a Table 1 architecture (e.g. ``300``); INITS: comma-separated columns (``normal,xavier,
var_scale``, or ``normal_sd0.1``: Gaussian weights of standard deviation 0.1 instead of variance
0.1, biases 0.1, the ``weight_variable``/``bias_variable`` idiom of TensorFlow's MNIST tutorials
of the time, untruncated); LRS: comma-separated learning rates. Every network is Table 1's cell
(``cvx_fenchel.table1.network``: plain SGD, batch 100, 17 epochs, summed cross-entropy +
rho ||W||^2, float32, [0, 1] pixels, full MNIST) except for its learning rate. One JSON line per
network, appended to OUT as it finishes (a rerun skips the lines already there).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from cvx_fenchel.baselines.torch_arch import init_weights, layer_shapes
from cvx_fenchel.table1 import PAPER, Settings, _accuracy, _data, network


def column(init):
    """The report's Table 1 column a probed init is compared with."""
    return "normal" if init == "normal_sd0.1" else init


def weights(arch, init, seed):
    """None (Table 1's own init) or the given weights of ``normal_sd0.1``."""
    if init != "normal_sd0.1":
        return None
    w = init_weights(layer_shapes(f"784-{arch}-10"), "normal", np.random.default_rng(seed))
    return [(W * np.sqrt(0.1), b) for W, b in w]  # std sqrt(0.1) -> 0.1; the same draws


def main(arch, inits, lrs, out, seed="0", data_dir="/work/shared/data/mnist"):
    out, seed = Path(out), int(seed)
    done = set()
    if out.exists():
        done = {(r["arch"], r["init"], r["lr"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())}
    st = Settings(data="full")
    Xtr, ytr, Xte, yte = _data(data_dir, None)
    for lr in map(float, lrs.split(",")):
        for init in inits.split(","):
            if (arch, init, lr, seed) in done:
                continue
            col = column(init)
            t0 = time.perf_counter()
            w = weights(arch, init, seed)
            m = network(arch, lr, "given" if w else init, seed, st, w).fit(Xtr, ytr)
            row = {"arch": arch, "init": init, "lr": lr, "seed": seed,
                   "test_accuracy": _accuracy(m, Xte, yte), "train_accuracy": _accuracy(m, Xtr, ytr),
                   "paper_1e-5": PAPER[(arch, 1e-5, col)][0], "paper_1e-6": PAPER[(arch, 1e-6, col)][0],
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
