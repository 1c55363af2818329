# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Training and certifying a network on MNIST
#
# *Notebook 4 of 6 (about 15 minutes). Uses notebooks 2 (the certificate `G_W <= p(W)`) and 3 (BCD).*
#
# **Algorithm 2** of the paper (batched BCD): for each batch of samples,
#
# 1. keep the previous batch's weights as proximal centres `W^0`;
# 2. initialise the lifted `X_1, ..., X_L` by the feed-forward pass of the batch;
# 3. one sweep (`K = 1`): X-steps from the last layer down, then W-steps, each W-step with the extra
#    term `gamma_l ||W_l - W_l^0||^2` that keeps the weights close to the previous batch's.
#
# We train the paper's `784-300-10` ReLU network with cross-entropy on the MNIST subset shipped
# inside the package (10,000 training and 2,000 test images; here the first 3,000 training images
# and all test images, so the notebook runs in well under a minute), with the **`original`
# preset**: the original code's hyper-parameters converted to this library's scaling (`lam = 2`
# because the original code penalises `2B`; `coef = (1, 10)` is the original `lbd_coef`, the
# reweighted output X-step of notebook 3; `gamma = (10, 100 * batch size)`).
#
# After every epoch the trainer computes the certificate of notebook 2 on the epoch's last batch:
# `G_W(lambda) <= p(W)` at the current weights, a lower bound on that batch's loss that holds for
# the relaxation whatever the training did.

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from cvx_fenchel import bcd
from cvx_fenchel.config import describe, preset
from cvx_fenchel.datasets import load_mnist, one_hot
from cvx_fenchel.errors import ConvergenceWarning
from cvx_fenchel.trainer import BCDTrainer

warnings.filterwarnings("ignore", category=ConvergenceWarning)
warnings.filterwarnings("ignore", message="The problem includes expressions that don't support CPP")
X_all, y_all, X_test, y_test = load_mnist(normalize=True, flatten=True)   # the embedded subset
N_TRAIN = 3000
X, y = X_all[:N_TRAIN], y_all[:N_TRAIN]
Y = one_hot(y, 10)
print(f"train {X.shape}, test {X_test.shape}, pixels in [{X.min():.0f}, {X.max():.0f}]; "
      f"train labels per class: {np.bincount(y)}")

fig, axes = plt.subplots(1, 10, figsize=(12, 1.8))
for d, ax in enumerate(axes):
    ax.imshow(X[np.flatnonzero(y == d)[0]].reshape(28, 28), cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"label {d}")
axes[0].set_ylabel("28 x 28")
fig.suptitle("One training image per class (embedded MNIST subset)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Ordinary MNIST digits, one per class, as grey-level images in `[0, 1]`; each
# becomes a row of 784 features for the dense network.
#
# ## 1. The configuration and the training run

# %%
config = preset("original", epochs=3)
print(describe(config))
network = config.network()
trainer = BCDTrainer(network, config)
t0 = time.perf_counter()
history = trainer.fit(X, Y, y, X_test=X_test, y_test=y_test)
print(f"\ntrained {config.epochs} epochs of {N_TRAIN // config.batch_size} batches in "
      f"{time.perf_counter() - t0:.1f} s")
epochs = history.epochs
print(f"{'epoch':>5s} {'test acc':>9s} {'G_W(lam)':>10s} {'p(W)':>10s} {'gap':>8s} {'seconds':>8s} {'capped':>7s}")
for e in epochs:
    print(f"{e['epoch']:5d} {e['test_accuracy']:9.4f} {e['lower_bound']:10.3f} {e['lower_bound_p']:10.3f} "
          f"{e['lower_bound_p'] - e['lower_bound']:8.3f} {e['time']:8.1f} {e['n_capped']:7d}")
assert all(e["lower_bound"] <= e["lower_bound_p"] for e in epochs), "the certificate G <= p"
assert epochs[-1]["test_accuracy"] > max(0.85, epochs[0]["test_accuracy"])

# %%
ep = [e["epoch"] for e in epochs]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
a1.plot(ep, [e["test_accuracy"] for e in epochs], "o-")
a1.set_xlabel("epoch")
a1.set_ylabel("test accuracy (feed-forward rule)")
a1.set_title("Test accuracy on 2,000 held-out images")
a1.set_xticks(ep)
a2.plot(ep, [e["lower_bound_p"] for e in epochs], "s-", label="p(W): loss of the last batch")
a2.plot(ep, [e["lower_bound"] for e in epochs], "o-", label="G_W(lam): Lagrange lower bound")
a2.set_xlabel("epoch")
a2.set_ylabel("cross-entropy, summed over 500 samples")
a2.set_title("The certificate G_W(lam) <= p(W) per epoch")
a2.set_xticks(ep)
a2.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to see.** Left: test accuracy rises over the epochs (the paper reaches about 0.976 after 10
# epochs on the full 60,000 images; here 3,000 images, 3 epochs). Right: the lower bound (circles)
# stays below the batch loss (squares) at every epoch, and both fall as the network trains; the
# gap between them is the price of relaxing `X_1 = relu(U_0)` at `lam = 2` (notebook 2: it shrinks
# like `1/lam`).
#
# ## 2. Checking the certificate independently
#
# The trainer's certificate comes from the fast path (FISTA capped at 500 iterations, in float32).
# On 40 samples of the last batch we recompute it with CVXPY (`method="cvxpy"`, float64), and with
# the fast path run to a tight tolerance.

# %%
W = trainer.weights
Xb, Yb = trainer.state.Xs[0][:40], trainer.state.Y[:40]
fast = bcd.lower_bound(network, W, Xb, Yb, tol=1e-7, max_iter=20_000)
exact = bcd.lower_bound(network, W, Xb, Yb, method="cvxpy")
print(f"lam = {fast.lam}:  G fast = {fast.G:.5f}   G CVXPY = {exact.G:.5f}   p(W) = {exact.p:.5f}")
assert fast.G <= fast.p and exact.G <= exact.p + 1e-6 * exact.p
assert abs(fast.G - exact.G) <= 1e-4 * abs(exact.G)

# %% [markdown]
# Both ways give the same bound (float32 rounding aside), below the network's loss on those 40
# samples.
#
# ## 3. Lifted prediction rule versus feed-forward
#
# A lifted network can also *predict* by optimisation (eq. 12 of the paper): fix the weights, and
# for a test image minimise the relaxed objective over the hidden variables `X_1` and the label
# `y`. For cross-entropy the minimum over `y` is at a one-hot vector, so `bcd.predict_lifted`
# solves one X-step per class and picks the class with the smallest objective. The paper finds the
# ordinary feed-forward rule works as well; we compare the two on 500 test images.

# %%
n_pred = 500
t0 = time.perf_counter()
pred_lifted = bcd.predict_lifted(network, W, X_test[:n_pred], tol=1e-6, max_iter=2000)
t_lifted = time.perf_counter() - t0
scores = network.forward(np.asarray(X_test, dtype=np.float32), W)
pred_ff = np.argmax(scores, axis=1)
acc_ff, acc_lifted = np.mean(pred_ff[:n_pred] == y_test[:n_pred]), np.mean(pred_lifted == y_test[:n_pred])
agree = np.mean(pred_ff[:n_pred] == pred_lifted)
print(f"on {n_pred} test images: feed-forward accuracy {acc_ff:.3f}, lifted-rule accuracy {acc_lifted:.3f}, "
      f"the two agree on {agree:.1%} ({t_lifted:.1f} s for the lifted rule: 10 X-minimisations)")
assert agree > 0.9

# %% [markdown]
# The two rules agree on (almost) every image and their accuracies match, as the paper reports;
# the feed-forward rule costs one matrix product, the lifted rule one convex problem per class.
#
# ## 4. What the network gets wrong

# %%
wrong = np.flatnonzero(pred_ff != y_test)
print(f"{wrong.size} of {y_test.size} test images misclassified (accuracy {1 - wrong.size / y_test.size:.4f})")
assert abs((1 - wrong.size / y_test.size) - epochs[-1]["test_accuracy"]) < 1e-9
probs = np.exp(scores - scores.max(axis=1, keepdims=True))
probs /= probs.sum(axis=1, keepdims=True)
fig, axes = plt.subplots(2, 6, figsize=(11, 5.0))
for ax, i in zip(axes.ravel(), wrong[:12]):
    ax.imshow(X_test[i].reshape(28, 28), cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"true {y_test[i]}, predicted {pred_ff[i]}\n(p = {probs[i, pred_ff[i]]:.2f})", fontsize=9)
fig.suptitle("Misclassified test digits (feed-forward rule): true label, prediction, its softmax probability")
fig.tight_layout(h_pad=1.5)
plt.show()

# %% [markdown]
# **What to see.** The first twelve test images the trained network gets wrong, with the label,
# the prediction and the probability the network gave it. Many are ambiguous or badly written
# digits; the confident mistakes (the largest `p` above) show what 3 epochs on 3,000 images have
# not learnt yet.
#
# ## Summary
#
# * Algorithm 2 with the original settings trains the 784-300-10 network on the embedded subset in
#   seconds; the trainer reports the Lagrange certificate `G_W(lam) <= p(W)` every epoch.
# * The certificate checks out against CVXPY; the lifted and feed-forward prediction rules agree.
#
# ## Exercises
#
# 1. **Confusions.** Build the 10 x 10 confusion matrix of the feed-forward rule on the test set.
#    Which pair (true, predicted) is the most frequent mistake? Check that its trace over its sum
#    is the test accuracy.
# 2. **The certificate as a function of `lam`.** At the final weights, compute `G_W(lam)` on the
#    last batch for `lam` from `0.1` to `1000` (`bcd.lower_bound_curve`). Check that it is
#    nondecreasing, stays below `p(W)`, and find the smallest `lam` whose gap is below 1% of `p`.
# 3. **The estimator is the trainer.** `FenchelClassifier()` (defaults = the `original` preset, 1
#    epoch, seed 0) trained on the same 3,000 images must reach exactly the test accuracy of epoch 1
#    above. Check it.
#
# ## Solutions

# %%
# Exercise 1
C = np.zeros((10, 10), dtype=int)
np.add.at(C, (y_test, pred_ff), 1)
off = C.copy()
np.fill_diagonal(off, 0)
t, p_ = np.unravel_index(np.argmax(off), off.shape)
print(f"most frequent mistake: true {t} predicted as {p_} ({off[t, p_]} times)")
print("per-class test accuracy:", np.round(np.diag(C) / C.sum(axis=1), 3))
assert C.sum() == y_test.size and abs(np.trace(C) / C.sum() - epochs[-1]["test_accuracy"]) < 1e-9

# %%
# Exercise 2
lams = np.logspace(-1, 3, 9)
curve = bcd.lower_bound_curve(network, W, trainer.state.Xs[0], trainer.state.Y, lams, tol=1e-6, max_iter=3000)
G = np.array([c.G for c in curve])
p_batch = curve[0].p
for lam, c in zip(lams, curve):
    print(f"lam = {lam:8.2f}: G = {c.G:9.3f}  gap / p = {(p_batch - c.G) / p_batch:.3%}")
assert np.all(np.diff(G) >= -1e-3 * abs(p_batch)) and np.all(G <= p_batch * (1 + 1e-6))
small = lams[np.argmax((p_batch - G) / p_batch < 0.01)]
print(f"smallest lam on the grid with a gap below 1% of p: {small:g}")

# %%
# Exercise 3
from cvx_fenchel import FenchelClassifier

clf = FenchelClassifier().fit(X, y)
print(f"FenchelClassifier: test accuracy {clf.score(X_test, y_test):.4f}; "
      f"BCDTrainer after epoch 1: {epochs[0]['test_accuracy']:.4f}")
assert clf.config_ == config.replace(epochs=1)
assert abs(clf.score(X_test, y_test) - epochs[0]["test_accuracy"]) < 1e-12
