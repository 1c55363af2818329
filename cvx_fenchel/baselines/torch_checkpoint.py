"""Checkpoints of the torch baselines (:class:`~cvx_fenchel.baselines.torch_nets.TorchNetClassifier`,
``cvx-fenchel train --model sgd|adam``), so that their runs, like the Fenchel model's, continue
after a kill or in the next session (issue 15: Fig. 4's 80 CIFAR-10 epochs outlast a session).

The format is :mod:`cvx_fenchel.checkpoint`'s: one ``weights-<epoch>-<batch>.npz`` and a
``state.json`` naming it, written atomically by
:func:`~cvx_fenchel.checkpoint.write_checkpoint`, so :func:`~cvx_fenchel.checkpoint.has_checkpoint`,
:func:`~cvx_fenchel.checkpoint.read_state`, ``--resume``'s checks and the committed archive
(:mod:`cvx_fenchel.report.archive`) treat both models alike.

* the npz: the weights ``W_l``, ``b_l`` (the network's dtype) and every tensor of the optimizer's
  ``state_dict()["state"]`` as ``opt_<i>_<key>`` (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``;
  SGD with momentum: ``momentum_buffer``). LeNet-5 on CIFAR-10 with Adam: about 0.75 MB.
* ``state.json``: ``"model": "torch"``, the estimator's hyper-parameters (``params``,
  :meth:`TorchNetClassifier.get_params`), the layer shapes (``network``), the position (``epoch``
  epochs done, ``batch`` batches of the next done), the global batch counter ``step``, the
  training seconds ``elapsed``, the sums of the epoch in progress (``epoch_sums``: loss x
  samples, right predictions, seconds), the state of the NumPy generator that shuffles
  (``rng_state``: before the permutation of the epoch in progress, so a mid-epoch resume draws
  the same order again and skips the batches done), the optimizer's ``param_groups`` and the
  non-tensor entries of its state, ``n_train``, ``torch_threads`` and the history.

The torch global generator is not stored: nothing in training draws from it (the initial
weights come from a NumPy generator and there is no dropout). The weights, moments, order and
sums being those of the uninterrupted run, a resumed run on CPU gives its records bit for bit,
on the same number of torch threads (another count can change the last bits of the reductions:
a resume on another count warns).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import (CheckpointError, mismatch_error, read_arrays, read_state,
                          write_checkpoint)
from ..history import History

__all__ = ["FREE_PARAMS", "MODEL", "Resumed", "check_resumable", "load", "save"]

#: The ``model`` of a torch baseline's ``state.json``.
MODEL = "torch"
FORMAT = 1
#: Hyper-parameters a resumed run may change: ``epochs`` (train further), ``device`` (CPU/CUDA,
#: as the Fenchel model's ``backend``), ``verbose``.
FREE_PARAMS = ("epochs", "device", "verbose")


def _plain(v: Any) -> Any:
    """JSON-safe copy of an optimizer hyper-parameter (tuples become lists)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    return v


def save(directory: str | Path, est: Any, opt: Any, *, epoch: int, batch: int, step: int,
         elapsed: float, sums: tuple[float, float, int], rng_state: dict, n_train: int,
         history: History) -> Path:
    """Checkpoint ``est`` (its ``_params``) and ``opt`` after ``epoch`` epochs and ``batch``
    batches of the next (see the module docstring); returns the npz path."""
    import torch
    arrays = {}
    for l, (W, b) in enumerate(est._params):
        arrays[f"W_{l}"] = W.detach().cpu().numpy()
        arrays[f"b_{l}"] = b.detach().cpu().numpy()
    sd = opt.state_dict()
    state: dict[str, dict] = {}
    for i, entries in sd["state"].items():
        state[str(i)] = {}
        for key, v in entries.items():
            if torch.is_tensor(v):
                arrays[f"opt_{i}_{key}"] = v.detach().cpu().numpy()
                v = "npz"
            state[str(i)][key] = _plain(v)
    doc = {"format": FORMAT, "model": MODEL, "npz": f"weights-{epoch}-{batch}.npz",
           "network": {"arch": _plain(est.arch), "shapes": [list(W.shape) for W, _ in est._params]},
           "params": est.get_params(), "epoch": int(epoch), "batch": int(batch), "step": int(step),
           "elapsed": float(elapsed), "epoch_sums": [float(sums[0]), float(sums[1]), int(sums[2])],
           "rng_state": rng_state, "n_train": int(n_train), "torch_threads": torch.get_num_threads(),
           "optimizer": {"param_groups": [{k: _plain(v) for k, v in g.items()}
                                          for g in sd["param_groups"]], "state": state},
           "history": history.to_dict()}
    return write_checkpoint(directory, arrays, doc)


def check_resumable(directory: str | Path, params: dict, *, hint: str = "use another checkpoint_dir",
                    doc: dict | None = None) -> dict:
    """The ``state.json`` document of the torch checkpoint in ``directory``, after checking that
    the hyper-parameters ``params`` (:meth:`TorchNetClassifier.get_params`) are those it was made
    with, :data:`FREE_PARAMS` aside; :class:`CheckpointError` naming every field that differs (or
    saying the checkpoint is another model's)."""
    doc = read_state(directory) if doc is None else doc
    if doc.get("model") != MODEL:
        raise CheckpointError(f"the checkpoint in {directory} is of a {doc.get('model', 'fenchel')} "
                              f"run, not of a torch baseline (sgd/adam); {hint}")
    was = doc.get("params")
    if not isinstance(was, dict):
        raise CheckpointError(f"the checkpoint in {directory} is corrupt or incomplete (state.json "
                              "has no params); delete the folder or use another one")
    bad = [k for k in params if k not in FREE_PARAMS and was.get(k) != _plain(params[k])]
    if bad:
        raise mismatch_error(directory, was, params, bad, hint)
    return doc


class Resumed:
    """What :func:`load` restored: the position and counters of the run (see :func:`save`)."""

    def __init__(self, doc: dict):
        self.epoch, self.batch = int(doc["epoch"]), int(doc["batch"])
        self.step, self.elapsed = int(doc["step"]), float(doc["elapsed"])
        t, loss, right = doc["epoch_sums"]
        self.sums = (float(t), float(loss), int(right))
        self.rng_state = doc["rng_state"]
        self.history = History.from_dict(doc["history"])


def load(directory: str | Path, est: Any, opt: Any, n_train: int) -> Resumed:
    """Restore the checkpoint in ``directory`` into ``est._params`` and ``opt`` (built as for a
    fresh run, with the same hyper-parameters: checked) and return its position, counters and
    history. :class:`CheckpointError` for a checkpoint that is unreadable, of other settings or
    another network; :class:`~cvx_fenchel.errors.InputError` for other training data."""
    import torch
    doc = check_resumable(directory, est.get_params())
    arrays = read_arrays(directory, doc)
    shapes = [list(W.shape) for W, _ in est._params]
    if doc["network"].get("shapes") != shapes:
        raise CheckpointError(f"the checkpoint in {directory} is for a network of layer shapes "
                              f"{doc['network'].get('shapes')}, this run's are {shapes} (other input "
                              "channels?); use another checkpoint_dir")
    if int(doc.get("n_train", n_train)) != n_train:
        from ..errors import InputError
        raise InputError(f"the run in {directory} trained on {doc['n_train']} samples; continue it "
                         f"on the same data (got {n_train})")
    try:
        with torch.no_grad():
            for l, (W, b) in enumerate(est._params):
                W.copy_(torch.from_numpy(arrays[f"W_{l}"]))
                b.copy_(torch.from_numpy(arrays[f"b_{l}"]))
        dev = est._params[0][0].device
        # load_state_dict moves the moments to the parameters' device and dtype (not ``step``)
        state = {int(i): {k: torch.from_numpy(np.array(arrays[f"opt_{i}_{k}"])) if v == "npz" else v
                          for k, v in entries.items()}
                 for i, entries in doc["optimizer"]["state"].items()}
        groups = [{k: v if k == "params" or not isinstance(v, list) else tuple(v) for k, v in g.items()}
                  for g in doc["optimizer"]["param_groups"]]
        opt.load_state_dict({"state": state, "param_groups": groups})
        resumed = Resumed(doc)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint in {directory} is corrupt or incomplete "
                              f"({type(exc).__name__}: {exc}); delete the folder or use another "
                              "one") from None
    threads = doc.get("torch_threads")
    if dev.type == "cpu" and threads is not None and int(threads) != torch.get_num_threads():
        warnings.warn(f"the run in {directory} trained on {threads} torch threads, this process "
                      f"has {torch.get_num_threads()}: its remaining epochs may differ from an "
                      "uninterrupted run's in the last bits (torch.set_num_threads to match)",
                      RuntimeWarning, stacklevel=3)
    return resumed
