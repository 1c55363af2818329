"""``cvx-fenchel train --workers N | --scheduler ADDRESS``: the Fenchel model's Algorithm 1
(``--algorithm full``) trained data-parallel on a Dask cluster by
:func:`cvx_fenchel.dataparallel.fit_full_batch_parallel`, one shard of the samples per worker,
inside :func:`cvx_fenchel.experiments.train` (which loads the data and writes the same files as a
serial run).

:func:`refusal` says, before any work, what the data-parallel trainer cannot run;
:func:`fit_data_parallel` fits a :class:`~cvx_fenchel.estimator.FenchelClassifier` with it. A
module of its own so that :mod:`cvx_fenchel.experiments` stays one readable file; it sits in the
layer just below it (pyproject.toml's import contract).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import InputError
from .network import is_lenet5

__all__ = ["CLUSTER", "fit_data_parallel", "refusal"]

#: How the errors name the flags.
CLUSTER = "--workers/--scheduler (data-parallel Algorithm 1)"


def refusal(model: str, opts: dict, algorithm: str | None, resume: bool) -> str | None:
    """Why the data-parallel trainer cannot run ``model`` with the (checked, None-free) options
    ``opts`` whose config has ``algorithm``, or None when it can. It runs Algorithm 1 only
    (``--model fenchel --algorithm full``), of dense layers, with NumPy on the workers, and writes
    no checkpoints (the lifted variables stay on the workers' shards): ``--checkpoint-every``,
    ``--checkpoint-dir`` and ``--resume`` are refused rather than ignored."""
    if model != "fenchel":
        return f"{CLUSTER} need --model fenchel --algorithm full; got --model {model}"
    if algorithm != "full":
        return f"{CLUSTER} need --algorithm full (full-batch BCD); got --algorithm {algorithm}"
    given = [f for f, on in (("--checkpoint-every", "checkpoint_every" in opts),
                             ("--checkpoint-dir", "checkpoint_dir" in opts), ("--resume", resume)) if on]
    if given:
        return (f"{CLUSTER} write no checkpoints (the lifted variables stay on the workers); "
                f"drop {', '.join(given)}")
    if opts.get("backend") == "cupy":
        return f"{CLUSTER} run NumPy on the workers; drop --backend cupy (or use numpy/auto)"
    if is_lenet5(opts.get("arch")):
        return f"{CLUSTER} support dense architectures only (a-b-..-k); got --arch {opts['arch']}"
    return None


def fit_data_parallel(est: Any, client: Any, Xtr: Any, ytr: Any, Xte: Any, yte: Any, *,
                      in_channels: int, verbose: bool, log: Callable[[str], None]) -> None:
    """``est.fit(Xtr, ytr, X_test=Xte, y_test=yte)`` of a Fenchel estimator with the sweeps of
    Algorithm 1 on the workers of ``client`` (one shard of the samples per worker): the config,
    network and inputs are built by the estimator as in its own ``fit`` (the architecture is
    always explicit in ``train``, so the outputs are the classes ``0..k-1``), then
    :func:`~cvx_fenchel.dataparallel.fit_full_batch_parallel` trains, and the estimator gets the
    fitted trainer (``score``, ``history_``, ``weights_`` work as after ``fit``). The history's
    meta records ``data_parallel``: shards, workers and the scheduler's address."""
    from .dataparallel import fit_full_batch_parallel
    from .datasets import one_hot
    info = client.scheduler_info()
    workers = len(info.get("workers", {}))
    if workers < 1:
        raise InputError("the Dask cluster has no workers connected; start workers or use --workers N")
    address = info.get("address") or getattr(client.scheduler, "address", None)
    config = est.make_config(in_channels, n_samples=len(Xtr))
    net = config.network()
    est._fixed_outputs = True
    est.n_classes_ = net.n_outputs
    est.classes_ = np.arange(net.n_outputs)
    X = est._prepare_X(Xtr, net)
    y = est._encode(np.asarray(ytr))
    X_test, y_test = est._test_set(Xte, yte, net)
    log(f"data-parallel Algorithm 1: {workers} shard(s) of the {len(X)} samples on the {workers} "
        f"worker(s) of the Dask scheduler {address}")
    sys.stdout.flush()
    tr = fit_full_batch_parallel(net, X, one_hot(y, net.n_outputs, dtype=net.dtype), client, workers,
                                 config, y=y, epochs=config.epochs, X_test=X_test, y_test=y_test,
                                 verbose=verbose)
    tr.close()  # the shards' rows are released; the weights stay here
    tr.history.meta.update({"config": tr.config.to_dict(), "backend": tr.xp.__name__,
                            "data_parallel": {**tr.history.meta.get("data_parallel", {}),
                                              "n_shards": workers, "workers": workers,
                                              "scheduler": address}})
    est.config_, est.network_, est.trainer_ = tr.config, net, tr
    est.n_features_in_ = int(np.prod(net.input_shape))
    est.resumed_from_ = None
    est.history_ = tr.history
