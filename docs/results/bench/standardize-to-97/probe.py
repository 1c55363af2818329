"""Samples the Fenchel MLP (Fig. 2 settings, bench config) needs to reach a test accuracy, with
[0,1] or standardised inputs; also Adam batch 100 samples. No timing meaning under load."""
import sys, time, json
import numpy as np
from cvx_fenchel.bench.workloads import load_bench_data, fenchel_bench_config, _adam_model
from cvx_fenchel.datasets import standardize
from cvx_fenchel.trainer import BCDTrainer
std = sys.argv[1] == "std"; target = float(sys.argv[2]); which = sys.argv[3]
data = load_bench_data("784-300-10", "/work/shared/data/mnist")
if std:
    data["X"], data["X_test"] = standardize(data["X"], data["X_test"])
cfg = fenchel_bench_config("mlp")
if which == "fenchel":
    net = cfg.network(); tr = BCDTrainer(net, cfg)
    X, Y, y = data["X"], data["Y"], data["y"]; n, bs = len(X), cfg.batch_size
    seen = 0; t = 0.0
    for epoch in range(3):
        order = tr.epoch_order(epoch, n)
        for k in range(n // bs):
            ii = order[k*bs:(k+1)*bs]
            rec = tr.train_batch(X[ii], Y[ii], y[ii]); t += rec["time"]; seen += len(ii)
            acc = net.accuracy(data["X_test"], data["y_test"], tr.weights)
            if seen % 10000 == 0 or acc >= target:
                print(json.dumps({"std": std, "seen": seen, "acc": acc, "t": round(t, 1)}), flush=True)
            if acc >= target:
                sys.exit(0)
else:
    clf = _adam_model("784-300-10", 100, "cpu", 0, epochs=2, eval_every=5)
    clf.fit(data["X"], data["y"], X_test=data["X_test"], y_test=data["y_test"])
    for r in clf.history_.batches:
        if r.get("test_accuracy") is not None and r["test_accuracy"] >= target:
            print(json.dumps({"std": std, "adam_seen": r["batch"]*100, "acc": r["test_accuracy"], "t": r["elapsed"]})); break
