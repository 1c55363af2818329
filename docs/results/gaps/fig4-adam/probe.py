"""Fig. 4 gap probe for the Adam baseline: CIFAR-10 (JPEG q75) LeNet-5 trained by Adam (README.md).

python docs/results/gaps/fig4-adam/probe.py VARIANT[,VARIANT...] EPOCHS [CIFAR_DIR]
prints one JSON line per variant: test and train accuracy after each epoch on the full 50,000 /
10,000 split (train accuracy on 10,000 training samples), the best epoch, seconds. CIFAR_DIR
defaults to runs/cifar10 (python ../shared/data/cifar10/to_canonical.py runs/cifar10). Every
variant is `cvx-fenchel reproduce fig4`'s Adam run (lr 1e-3, batch 100, Xavier, seed 0, pixels
in [0, 1]) with the one named change."""
import json, sys, time
import numpy as np
from cvx_fenchel import experiments as ex
from cvx_fenchel.datasets import standardize
from cvx_fenchel.baselines.torch_nets import TorchNetClassifier

epochs = int(sys.argv[2])
variants = {
    "base": {},
    "standardize": dict(standardize=True),        # per-channel mean 0, std 1 (training statistics)
    "wd5e-4": dict(weight_decay=5e-4),              # L2 on the weights (torch's weight_decay)
    "bs500": dict(batch_size=500),                  # Fenchel's batch
}
Xtr, ytr, Xte, yte = ex.load_data("cifar10", sys.argv[3] if len(sys.argv) > 3 else "runs/cifar10", "lenet5")
for name in sys.argv[1].split(","):
    v = dict(variants[name])
    xtr, xte = Xtr, Xte
    if v.pop("standardize", False):
        xtr, xte = standardize(Xtr, Xte)
    t0 = time.time()
    m = TorchNetClassifier(arch="lenet5", optimizer="adam", lr=1e-3, epochs=epochs, seed=0,
                           **{"batch_size": 100, **v})
    m.fit(xtr, ytr, X_test=xte, y_test=yte)
    E = m.history_.epochs
    test = [round(e["test_accuracy"], 4) for e in E]
    train = [round(e.get("train_accuracy", float("nan")), 4) for e in E]
    best = int(np.argmax(test))
    print(json.dumps(dict(variant=name, settings=variants[name], test=test, train=train,
                          best_epoch=best + 1, best=test[best], seconds=round(time.time() - t0))),
          flush=True)
