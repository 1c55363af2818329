"""Fig. 4 gap probe 2: do the convolutional layers learn if their W-steps do more?

python docs/results/gaps/fig4-conv/probe.py VARIANT[,VARIANT...] N_TRAIN EPOCHS [CIFAR_DIR]
prints one JSON line per variant (README.md). Every Fenchel variant starts from the
``fenchel-coef1`` setting of ``reproduce fig4-gaps`` (original preset, every X-step coef 1, one
Adam W-step per batch with step 1e-3, X- and W-step tolerances 1e-5). ``conv`` variants change only the W-steps of the two
convolutional layers (layers 0 and 1): ``steps`` Adam steps per batch (the gradient re-evaluated
after each) with step ``lr``; ``rho`` variants add a ridge ``rho ||W||^2`` (output layer only, or
every layer); ``b2`` variants run every layer's Adam with ``beta2`` 0.99 instead of 0.999 (its
second-moment estimate forgets over ~100 batches instead of ~1,000); this is done by wrapping :func:`cvx_fenchel.bcd.w_update` here, in
the probe, not in the library. The relative change of each layer's weights from the
initialisation is printed at the end of each run."""
import dataclasses, functools, json, sys, time
import numpy as np
from cvx_fenchel import bcd
from cvx_fenchel import experiments as ex

n_tr, n_te, epochs = int(sys.argv[2]), 2000, int(sys.argv[3])
# (tolerances 1e-5: the setting of the full-data Fig. 4 runs, the default when they started)
base = dict(w_step="gradient", optimizer="adam", lr=1e-3, coef=1.0, tol_x=1e-5, tol_w=1e-5)
variants = {
    "adam-net": None,
    "coef1": (base, None),
    "coef1-K2": (dict(base, K=2), None),
    "coef1-conv-lr3e-3": (base, dict(lr=3e-3, steps=1)),
    "coef1-conv-lr1e-2": (base, dict(lr=1e-2, steps=1)),
    "coef1-conv-steps3": (base, dict(lr=1e-3, steps=3)),
    "coef1-conv-steps3-lr3e-3": (base, dict(lr=3e-3, steps=3)),
    "coef1-conv-solve": (base, dict(solve=True)),
    "coef1-rho-out1": (dict(base, rho=(0.0, 0.0, 0.0, 0.0, 1.0)), None),
    "coef1-rho-out0.1": (dict(base, rho=(0.0, 0.0, 0.0, 0.0, 0.1)), None),
    "coef1-rho-all0.1": (dict(base, rho=0.1), None),
    "coef1-b2-0.99": (base, None, dict(beta2=0.99)),
}
_w_update = bcd.w_update
_adam_step = bcd.adam_step
CONV = {"lr": None}


def w_update(prob, config, weights, l, adam=None):
    conv = CONV["lr"]
    if conv is None or l > 1 or config.w_step != "gradient":
        return _w_update(prob, config, weights, l, adam)
    if conv.get("solve"):
        return _w_update(prob, dataclasses.replace(config, w_step="solve"), weights, l, adam)
    new, adam = list(weights), dict(adam or {})
    for _ in range(conv["steps"]):
        g = prob.grad(new[l])
        new[l], adam[l] = bcd.adam_step(tuple(new[l]), tuple(g), adam.get(l), lr=conv["lr"])
    return bcd.WStepOutcome(new, adam, "adam", True, conv["steps"])


bcd.w_update = w_update
Xtr, ytr, Xte, yte = ex.load_data("cifar10", sys.argv[4] if len(sys.argv) > 4 else "runs/cifar10", "lenet5")
sel = np.random.default_rng(0).permutation(len(yte))[:n_te]
Xtr, ytr, Xte, yte = Xtr[:n_tr], ytr[:n_tr], Xte[sel], yte[sel]
for name in sys.argv[1].split(","):
    v = variants[name]
    t0 = time.time()
    if v is None:
        CONV["lr"] = None
        m = ex.build_model("adam", dict(arch="lenet5", epochs=epochs, seed=0, lr=1e-3, batch_size=500))
    else:
        CONV["lr"] = v[1]
        bcd.adam_step = functools.partial(_adam_step, **(v[2] if len(v) > 2 else {}))
        m = ex.build_model("fenchel", dict(arch="lenet5", epochs=epochs, seed=0, **v[0]))
    m.fit(Xtr, ytr, X_test=Xte, y_test=yte)
    h = getattr(m, "history_", None)
    rows = h.epochs if h is not None else []
    get = lambda k, r=4: [round(e.get(k, float("nan")), r) for e in rows]  # noqa: E731
    change = None
    if v is not None:
        w0 = m.network_.init_weights(np.random.default_rng(0), np)
        change = [round(float(np.linalg.norm(np.asarray(W) - W0) / np.linalg.norm(W0)), 3)
                  for (W, _), (W0, _) in zip(m.weights_, w0)]
    print(json.dumps(dict(variant=name, n_train=n_tr, epochs=epochs, test=get("test_accuracy"),
                          train=get("train_accuracy"), network_loss=get("network_loss", 1),
                          weight_change=change, seconds=round(time.time() - t0))), flush=True)
