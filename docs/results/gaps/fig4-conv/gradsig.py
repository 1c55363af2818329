"""Fig. 4 gap: how much of a W-step gradient is signal, how much X-step solver error?

python docs/results/gaps/fig4-conv/gradsig.py [init:]CHECKPOINT_DIR N_SAMPLES [CIFAR_DIR]
(``init:``: at the run's initial weights, seed 0, instead of the checkpoint's)

At the weights of a Fenchel run's checkpoint (e.g. runs/reproduce/fig4-gaps-full/fenchel-coef1/
checkpoints), for the first N_SAMPLES training images of the JPEG q75 CIFAR-10 copy as one batch:
feed forward, solve the X-steps X_L..X_1 once (as the trainer's sweep does) at a given dtype and
tolerance, and take each layer's W-step gradient ``problem.grad(W_l, b_l)`` (the direction of the
one Adam step of Fig. 4's W-step, before Adam's scaling). The reference is the same sweep in
float64 at tolerance 1e-10. Prints one JSON line per setting: per layer the cosine between its
gradient and the reference's, and the gradient norms (an X-step's samples are independent, so a
smaller batch shows the same per-sample behaviour). Last line: the cosine between the reference's
W-step gradients and the gradient of the network's own loss (summed cross-entropy of the
feed-forward network, by torch autograd in float64 on the same weights; the torch forward is
checked against the package's first)."""
import dataclasses, json, sys, time
import numpy as np
from cvx_fenchel import bcd
from cvx_fenchel import experiments as ex
from cvx_fenchel.checkpoint import load_checkpoint

ck, n = sys.argv[1], int(sys.argv[2])
at_init = ck.startswith("init:")  # the seed-0 initial weights of that run's network instead
net, cfg, state, _ = load_checkpoint(ck[5:] if at_init else ck)
if at_init:
    state.weights = net.init_weights(np.random.default_rng(cfg.seed), np)
Xtr, ytr, _, _ = ex.load_data("cifar10", sys.argv[3] if len(sys.argv) > 3 else "runs/cifar10", "lenet5")
X0 = Xtr[:n]
Y = np.eye(10)[ytr[:n]]


def sweep(dtype, tol, max_iter):
    c = dataclasses.replace(cfg, dtype=dtype, tol_x=tol, max_iter_x=max_iter)
    network = c.network()
    dt = network.dtype
    W = [(a.astype(dt), b.astype(dt)) for a, b in state.weights]
    Xs, Yd = bcd.feed_forward(network, W, X0.astype(dt), Y.astype(dt), np)
    t0 = time.time()
    iters = []
    for l in range(network.L, 0, -1):
        Xs, res = bcd.x_step(network, c, W, Xs, Yd, l)
        iters.append(int(res.n_iter or 0))
    g = [bcd.w_problem(network, Xs, Yd, W, l).grad(W[l]) for l in range(network.L + 1)]
    flat = [np.concatenate([a.ravel() for a in gl]).astype(np.float64) for gl in g]
    ff = [x.astype(np.float64) for x in bcd.feed_forward(network, W, X0.astype(dt), Y.astype(dt), np)[0]]
    dev = [float(np.linalg.norm(Xs[l].astype(np.float64) - ff[l]) / max(np.linalg.norm(ff[l]), 1e-30))
           for l in range(1, network.L + 1)]
    return flat, iters[::-1], dev, time.time() - t0


ref, it_ref, dev_ref, s_ref = sweep("float64", 1e-10, 20000)
import pathlib
where = "initial weights (seed 0)" if at_init else \
    "checkpoint " + json.loads((pathlib.Path(ck) / "state.json").read_text())["npz"]
print(json.dumps(dict(weights=where, n_samples=n, setting="float64 tol 1e-10 (reference)", x_iters=it_ref, seconds=round(s_ref),
                      x_deviation_from_feedforward=[float(f"{d:.3g}") for d in dev_ref],
                      grad_norm=[float(f"{np.linalg.norm(r):.4g}") for r in ref])), flush=True)
for dtype, tol in (("float32", 1e-4), ("float32", 1e-5), ("float32", 1e-6), ("float64", 1e-5),
                   ("float64", 1e-7)):
    g, it, dev, s = sweep(dtype, tol, 50 if tol >= 1e-5 else 2000)
    cos = [float(a @ r / max(np.linalg.norm(a) * np.linalg.norm(r), 1e-300)) for a, r in zip(g, ref)]
    print(json.dumps(dict(setting=f"{dtype} tol {tol:g}", x_iters=it, seconds=round(s),
                          cos_to_reference=[round(c, 4) for c in cos],
                          grad_norm=[float(f"{np.linalg.norm(a):.4g}") for a in g])), flush=True)


def backprop(W):
    """Gradient of the summed cross-entropy of the feed-forward LeNet-5 (the torch baseline's
    forward, package weight layout), flattened per layer; and the largest output difference."""
    import torch
    F = torch.nn.functional
    P = [(torch.tensor(a, dtype=torch.float64, requires_grad=True),
          torch.tensor(b.reshape(-1), dtype=torch.float64, requires_grad=True)) for a, b in W]
    h = torch.tensor(X0, dtype=torch.float64).reshape(n, 32, 32, -1).permute(0, 3, 1, 2)
    for A, b in P[:2]:
        h = F.avg_pool2d(torch.relu(F.conv2d(h, A.permute(3, 2, 0, 1), b)), 2)
    h = h.permute(0, 2, 3, 1).reshape(n, -1)
    for l, (A, b) in enumerate(P[2:]):
        h = torch.addmm(b, h, A)
        if l < 2:
            h = torch.relu(h)
    F.cross_entropy(h, torch.tensor(ytr[:n]), reduction="sum").backward()
    ours = net.forward(X0.astype(np.float64), [(a.astype(np.float64), b.astype(np.float64)) for a, b in W])
    diff = float(np.max(np.abs(h.detach().numpy() - ours)))
    return [np.concatenate([A.grad.numpy().ravel(), b.grad.numpy().ravel()]) for A, b in P], diff


bp, diff = backprop(state.weights)
cos = [float(a @ r / max(np.linalg.norm(a) * np.linalg.norm(r), 1e-300)) for a, r in zip(bp, ref)]
print(json.dumps(dict(setting="backprop gradient of the network loss vs the reference W-step gradient",
                      forward_max_abs_diff=float(f"{diff:.3g}"), cos_to_reference=[round(c, 4) for c in cos],
                      grad_norm=[float(f"{np.linalg.norm(a):.4g}") for a in bp])), flush=True)
