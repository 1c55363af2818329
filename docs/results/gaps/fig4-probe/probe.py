"""Fig. 4 gap probe: CIFAR-10 (JPEG q75) LeNet-5 Fenchel variants on a subset (README.md).

python docs/results/gaps/fig4-probe/probe.py VARIANT[,VARIANT...] N_TRAIN EPOCHS [CIFAR_DIR]
prints one JSON line per variant (a VARIANT ending in "-std" is that variant on inputs standardised
per channel with the training subset's mean and standard deviation, instead of pixels in [0, 1]); CIFAR_DIR defaults to runs/cifar10 (made by
python ../shared/data/cifar10/to_canonical.py runs/cifar10)."""
import json, sys, time
import numpy as np
from cvx_fenchel import experiments as ex
from cvx_fenchel.datasets import standardize

n_tr, n_te, epochs = int(sys.argv[2]), 2000, int(sys.argv[3])
variants = {
    "orig-adam1e-3": dict(w_step="gradient", optimizer="adam", lr=1e-3),
    "orig-adam1e-2": dict(w_step="gradient", optimizer="adam", lr=1e-2),
    "orig-adam1e-4": dict(w_step="gradient", optimizer="adam", lr=1e-4),
    "orig-solve": dict(w_step="solve"),
    "coef1-adam1e-3": dict(w_step="gradient", optimizer="adam", lr=1e-3, coef=1.0),
    "plain-adam1e-3": dict(settings="plain", w_step="gradient", optimizer="adam", lr=1e-3),
    "adam-net": None,
}
Xtr, ytr, Xte, yte = ex.load_data("cifar10", sys.argv[4] if len(sys.argv) > 4 else "runs/cifar10", "lenet5")
sel = np.random.default_rng(0).permutation(len(yte))[:n_te]
Xtr, ytr, Xte, yte = Xtr[:n_tr], ytr[:n_tr], Xte[sel], yte[sel]
for name in sys.argv[1].split(","):
    std = name.endswith("-std")
    v = variants[name[:-4] if std else name]
    xtr, xte = Xtr, Xte
    if std:
        xtr, xte = standardize(Xtr, Xte)
    t0 = time.time()
    if v is None:
        m = ex.build_model("adam", dict(arch="lenet5", epochs=epochs, seed=0, lr=1e-3, batch_size=500))
    else:
        m = ex.build_model("fenchel", dict(arch="lenet5", epochs=epochs, seed=0, **v))
    m.fit(xtr, ytr, X_test=xte, y_test=yte)
    h = m.history_ if hasattr(m, "history_") else None
    accs = [round(e.get("test_accuracy", float("nan")), 4) for e in h.epochs] if h is not None else []
    tr = [round(e.get("train_accuracy", float("nan")), 4) for e in h.epochs] if h is not None else []
    nl = [round(e.get("network_loss", float("nan")), 1) for e in h.epochs] if h is not None else []
    print(json.dumps(dict(variant=name, n_train=n_tr, test=accs, train=tr, network_loss=nl,
                          seconds=round(time.time() - t0))), flush=True)
