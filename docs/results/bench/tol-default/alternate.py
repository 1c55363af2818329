"""The default tolerance change (1e-5 -> 1e-4), measured batch by batch in one process.

python docs/results/bench/tol-default/alternate.py [torch] [peak]

Two trainers built as ``bench mlp`` builds them (preset original, full MNIST, batch 500,
float32, seed 0), one with X- and W-step tolerance 1e-5 and one with 1e-4, train batches 0..20
of epoch 1 alternately (batch k of one, then batch k of the other), so both see the same machine
state; batch 0 is a warm-up. Prints the mean seconds per batch and per step with the mean inner
iterations. ``torch``: import torch first; ``peak``: time bench's GEMM peak first (the bench
process does both; neither changed the result)."""
import sys, time, numpy as np
if "torch" in sys.argv: import torch
if "peak" in sys.argv:
    from cvx_fenchel.bench.workloads import gemm_peak; print(gemm_peak())
from cvx_fenchel.bench.workloads import fenchel_bench_config, load_bench_data
from cvx_fenchel.trainer import BCDTrainer
data = load_bench_data("784-300-10", "/work/shared/data/mnist")
trs = {}
for tol in (1e-5, 1e-4):
    cfg = fenchel_bench_config("mlp", tol=tol)
    trs[tol] = BCDTrainer(cfg.network(), cfg, xp=np)
order = trs[1e-5].epoch_order(0, data["X"].shape[0]); bs = 500
acc = {t: {} for t in trs}
for k in range(21):
    ii = order[k*bs:(k+1)*bs]
    for tol, tr in trs.items():
        t0 = time.perf_counter()
        rec = tr.train_batch(data["X"][ii], data["Y"][ii], data["y"][ii])
        dt = time.perf_counter() - t0
        if k == 0: continue
        a = acc[tol]
        a.setdefault("batch", []).append(dt)
        for s in rec["steps"]:
            a.setdefault(s["block"], []).append((s["seconds"], s["n_iter"]))
for tol, a in acc.items():
    print(tol, "batch %.1f ms" % (1e3*np.mean(a["batch"])), {b: "%.1f ms / %.1f it" % (1e3*np.mean([x for x,_ in v]), np.mean([y for _,y in v])) for b, v in a.items() if b != "batch"})
