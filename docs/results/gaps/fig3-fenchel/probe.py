"""Fig. 3 gap probe: MNIST LeNet-5 Fenchel variants on full MNIST for a few epochs (README.md).

python docs/results/gaps/fig3-fenchel/probe.py VARIANT[,VARIANT...] EPOCHS [MNIST_DIR]
prints one JSON line per variant (test and train accuracy after each epoch, the network loss,
how many W/X-steps stopped at their iteration cap, seconds); MNIST_DIR defaults to
/work/shared/data/mnist. Every variant starts from the same seed-0 initialisation and batches as
``cvx-fenchel reproduce fig3`` (the original preset, batch 500, float32, caps 50 X / 30 W,
the default tolerances 1e-4); only the named setting changes. A VARIANT ending in "-std" is that variant on
inputs standardised with the training set's pixel mean and deviation (as ``--standardize``)."""
import json, sys, time
from cvx_fenchel import experiments as ex
from cvx_fenchel.datasets import standardize

epochs = int(sys.argv[2])
variants = {
    "base": {},
    "wcap100": dict(max_iter_w=100),
    "wcap300": dict(max_iter_w=300),
    "float64": dict(dtype="float64"),
    "tol1e-7": dict(tol_x=1e-7, tol_w=1e-7, max_iter_x=200, max_iter_w=300),
    "gamma-out-10": dict(gamma=(1e-4, 0.01, 1.0, 1.0, 10.0)),
}
Xtr, ytr, Xte, yte = ex.load_data("mnist", sys.argv[3] if len(sys.argv) > 3 else "/work/shared/data/mnist", "lenet5")
for name in sys.argv[1].split(","):
    std = name.endswith("-std")
    v = variants[name[:-4] if std else name]
    xtr, xte = Xtr, Xte
    if std:  # one channel: mean and deviation of the 28x28 training pixels (padding to 32x32 comes later: zeros = the mean)
        xtr, xte = standardize(Xtr, Xte)
    t0 = time.time()
    m = ex.build_model("fenchel", dict(arch="lenet5", loss="cross_entropy", epochs=epochs, seed=0, **v))
    m.fit(xtr, ytr, X_test=xte, y_test=yte)
    h = m.history_
    pick = lambda k, r: [round(e[k], r) if isinstance(e.get(k), float) else e.get(k) for e in h.epochs]
    print(json.dumps(dict(variant=name, settings=v, test=pick("test_accuracy", 4),
                          train=pick("train_accuracy", 4), network_loss=pick("network_loss", 2),
                          n_capped=pick("n_capped", 0), seconds=round(time.time() - t0))), flush=True)
