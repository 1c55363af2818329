"""Checkpoints of a training run: ``weights-<epoch>-<batch>.npz`` plus ``state.json``.

* the npz holds the weights ``W_l``, ``b_l``, Adam's moments ``adam_{m|v}_{l}_{0|1}`` and, for
  Algorithm 1, the lifted variables ``X_l`` (``l >= 1``);
* ``state.json`` holds the network description, the :class:`~cvx_fenchel.config.TrainConfig`,
  the position (epoch, batch), the RNG state, Adam's step counts and the history, and names the
  npz it belongs to.

Both are written atomically, the JSON last (:func:`write_checkpoint`), so a run killed at any
moment leaves the previous checkpoint or the new one, never a mix. The torch baselines
(``--model sgd``/``adam``) write the same two files through the same functions, their
``state.json`` saying ``"model": "torch"`` (:mod:`cvx_fenchel.baselines.torch_checkpoint`); what
reads only the position and the npz name (:func:`read_state`, :func:`position`,
:func:`has_checkpoint`, the archive) serves both. :func:`load_checkpoint` also reads the format of earlier
versions (``"settings"`` instead of ``"config"``).

A checkpoint that cannot be read (a truncated or corrupt ``state.json`` or npz) raises
:class:`CheckpointError`, an :class:`~cvx_fenchel.errors.InputError` naming the file, never a raw
``BadZipFile``/``JSONDecodeError``. Resuming checks the run's settings first
(:func:`config_mismatch`, :func:`check_resumable`): a run continues only with the config it
started with (``epochs`` may grow; ``backend`` may change; a setting whose default has changed
since keeps its former default unless the resume names it, :data:`FORMER_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .bcd import AdamMoments, TrainState
from .config import TrainConfig
from .errors import InputError
from .history import History, atomic_write_bytes
from .network import Network

__all__ = [
    "FORMAT",
    "FORMER_DEFAULTS",
    "FREE_FIELDS",
    "STATE_FILE",
    "CheckpointError",
    "check_resumable",
    "clear_checkpoint",
    "config_mismatch",
    "with_former_defaults",
    "has_checkpoint",
    "load_checkpoint",
    "mismatch_error",
    "position",
    "read_arrays",
    "read_state",
    "save_checkpoint",
    "write_checkpoint",
]

STATE_FILE = "state.json"
FORMAT = 2
#: Config fields a resumed run may change: ``epochs`` (train further), ``backend`` (NumPy/CuPy)
#: and the provenance ``overrides`` (the values themselves are compared).
FREE_FIELDS = ("epochs", "backend", "overrides")
#: Config fields whose default changed, with their former default. A checkpoint made under the
#: former default resumes with it when the resume does not name the field (the run keeps the
#: settings it started with): the X- and W-step tolerances were 1e-5 until the default became
#: 1e-4 (docs/results/bench/README.md, "Iteration economy").
FORMER_DEFAULTS = {"tol_x": 1e-5, "tol_w": 1e-5}


class CheckpointError(InputError):
    """A checkpoint folder holds no checkpoint, or one that is truncated or corrupt."""


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_checkpoint(directory: str | os.PathLike, network: Network, config: TrainConfig,
                    state: TrainState, history: History) -> Path:
    """Write a checkpoint of ``state`` into ``directory`` (created); returns the npz path.
    Older npz files of the folder are removed once the new state points elsewhere."""
    d = Path(directory)
    arrays = {}
    for l, (W, b) in enumerate(state.weights):
        arrays[f"W_{l}"] = to_numpy(W)
        arrays[f"b_{l}"] = to_numpy(b)
    for l, mom in state.adam.items():
        for key in ("m", "v"):
            for i, a in enumerate(getattr(mom, key)):
                arrays[f"adam_{key}_{l}_{i}"] = to_numpy(a)
    if config.algorithm == "full" and state.Xs is not None:
        for l, Xl in enumerate(state.Xs[1:], start=1):
            if Xl is not None:
                arrays[f"X_{l}"] = to_numpy(Xl)
    npz_name = f"weights-{state.epoch}-{state.batch}.npz"
    doc = {"format": FORMAT, "npz": npz_name, "network": network.to_dict(),
           "config": config.to_dict(), "epoch": state.epoch, "batch": state.batch,
           "rng_state": state.rng_state, "adam": {str(l): m.t for l, m in state.adam.items()},
           "history": history.to_dict()}
    return write_checkpoint(d, arrays, doc)


def write_checkpoint(directory: str | os.PathLike, arrays: dict, doc: dict) -> Path:
    """Write one checkpoint: ``arrays`` into the npz that ``doc["npz"]`` names, then ``doc`` as
    ``state.json`` (both atomically, the JSON last), then remove the folder's other npz files.
    The one writer of every model's checkpoints (Fenchel here, the torch baselines in
    :mod:`cvx_fenchel.baselines.torch_checkpoint`); returns the npz path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    npz_name = doc["npz"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(d / npz_name, buf.getvalue())
    atomic_write_bytes(d / STATE_FILE, json.dumps(doc, default=_json_default).encode())
    for old in d.glob("weights-*.npz"):  # keep only the npz the state points at
        if old.name != npz_name:
            try:
                old.unlink()
            except OSError:
                pass
    return d / npz_name


def has_checkpoint(directory: str | os.PathLike | None) -> bool:
    """Whether ``directory`` holds a checkpoint (its ``state.json``), readable or not."""
    return directory is not None and (Path(directory) / STATE_FILE).is_file()


def read_state(directory: str | os.PathLike) -> dict:
    """The ``state.json`` document of the checkpoint in ``directory`` (no arrays read): ``config``
    (or ``settings``), ``network``, ``epoch`` (epochs done), ``batch`` (batches of the next epoch
    done), ``npz``, ``history``. :class:`CheckpointError` when there is none or it is unreadable."""
    d = Path(directory)
    if not has_checkpoint(d):
        raise CheckpointError(f"no checkpoint in {d} (no {STATE_FILE})")
    try:
        doc = json.loads((d / STATE_FILE).read_text())
        if not isinstance(doc, dict) or not {"npz", "epoch", "batch", "network"} <= set(doc):
            raise ValueError("keys npz, epoch, batch, network missing")
        int(doc["epoch"]), int(doc["batch"])
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint in {d} is corrupt or truncated ({STATE_FILE}: "
                              f"{type(exc).__name__}: {exc}); delete the folder or use another "
                              "one") from None
    return doc


def position(doc: dict) -> tuple[int, int]:
    """``(epochs done, batches of the next epoch done)`` of a :func:`read_state` document."""
    return int(doc["epoch"]), int(doc["batch"])


def clear_checkpoint(directory: str | os.PathLike) -> None:
    """Remove the checkpoint files of ``directory`` (``state.json``, ``weights-*.npz``, leftover
    temporary files), never anything else."""
    d = Path(directory)
    for f in [d / STATE_FILE, *d.glob("weights-*.npz"), *d.glob(".tmp-*")]:
        try:
            f.unlink()
        except FileNotFoundError:
            pass


def _fmt(v: Any) -> str:
    return repr(tuple(v) if isinstance(v, list) else v)


def config_mismatch(was: TrainConfig, now: TrainConfig) -> list[str]:
    """The config fields (other than :data:`FREE_FIELDS`) in which ``now`` differs from ``was``."""
    a, b = was.to_dict(), now.to_dict()
    return [k for k in b if k not in FREE_FIELDS and a.get(k) != b[k]]


def with_former_defaults(config: TrainConfig, was: TrainConfig, explicit: Any = ()) -> TrainConfig:
    """``config`` with each field of :data:`FORMER_DEFAULTS` that is not in ``explicit`` (the
    fields the resume names) set to ``was``'s value where ``was`` (the checkpoint's config) holds
    the former default and ``config`` the present one."""
    fields = TrainConfig.__dataclass_fields__
    keep = {k: getattr(was, k) for k, former in FORMER_DEFAULTS.items()
            if k not in explicit and getattr(was, k) == former and getattr(config, k) == fields[k].default}
    return dataclasses.replace(config, **keep) if keep else config


def check_resumable(directory: str | os.PathLike, config: TrainConfig, was: TrainConfig | None = None,
                    *, hint: str = "use another checkpoint_dir", explicit: Any = None) -> TrainConfig:
    """Raise :class:`CheckpointError` naming every field in which ``config`` differs from the
    config of the checkpoint in ``directory`` (or ``was``, when given). Returns the config the
    run continues with: ``config``, or, when ``explicit`` (the names of the fields the resume
    gives) is not None, ``config`` with the checkpoint's former defaults
    (:func:`with_former_defaults`)."""
    if was is None:
        doc = read_state(directory)
        if doc.get("model", "fenchel") != "fenchel":
            raise CheckpointError(f"the checkpoint in {directory} is of a {doc['model']} run, not "
                                  f"of a Fenchel run; {hint}")
        if "config" not in doc:
            return config  # format 1: compared by network only (load_checkpoint)
        was = TrainConfig.from_dict(doc["config"])
    if explicit is not None:
        config = with_former_defaults(config, was, explicit)
    bad = config_mismatch(was, config)
    if bad:
        raise mismatch_error(directory, was.to_dict(), config.to_dict(), bad, hint)
    return config


def mismatch_error(directory: str | os.PathLike, was: dict, now: dict, keys: list[str],
                   hint: str) -> CheckpointError:
    """The error refusing to resume the run in ``directory`` with settings ``now``: names every
    key of ``keys`` with its value in ``was`` (the checkpoint's) and in ``now``."""
    return CheckpointError(
        f"cannot resume the run in {directory}: it was made with "
        f"{', '.join(f'{k}={_fmt(was.get(k))}' for k in keys)}; this run has "
        f"{', '.join(f'{k}={_fmt(now.get(k))}' for k in keys)}. Resume with the same settings, "
        f"or {hint}")


def load_checkpoint(directory: str | os.PathLike, *, xp: Any = np, network: Network | None = None
                    ) -> tuple[Network, TrainConfig, TrainState, History]:
    """``(network, config, state, history)`` of the checkpoint in ``directory``. For Algorithm 1
    ``state.Xs`` is ``[None, X_1, ..., X_L]`` (the data ``X_0`` is not stored).

    Raises :class:`CheckpointError` when the folder holds no readable checkpoint."""
    d = Path(directory)
    doc = read_state(d)
    arrays = read_arrays(d, doc)
    try:
        return _restore(doc, arrays, xp, network)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"the checkpoint in {d} is corrupt or incomplete ({type(exc).__name__}: "
                              f"{exc}); delete the folder or use another one") from None


def read_arrays(directory: str | os.PathLike, doc: dict) -> dict:
    """Every array of the npz that the :func:`read_state` document ``doc`` names, read now, so a
    truncated npz fails here with a :class:`CheckpointError` naming it, not later."""
    d = Path(directory)
    try:
        with np.load(d / doc["npz"], allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"the checkpoint in {d} is corrupt or truncated ({doc.get('npz')}: "
                              f"{type(exc).__name__}: {exc}); delete the folder or use another "
                              "one") from None


def _restore(doc: dict, arrays: dict, xp: Any, network: Network | None
             ) -> tuple[Network, TrainConfig, TrainState, History]:
    net = network if network is not None else Network.from_dict(doc["network"])
    if "config" in doc:
        config = TrainConfig.from_dict(doc["config"])
        t = {int(l): int(v) for l, v in (doc.get("adam") or {}).items()}
    else:  # format 1: the trainer's settings dict; Adam's meta with step counts under "t"
        config = TrainConfig(**doc["settings"], loss=net.loss, dtype=net.dtype.name)
        t = {int(l): int(v) for l, v in ((doc.get("adam") or {}).get("t") or {}).items()}
    n = len(net.layers)
    weights = net.check_weights([(arrays[f"W_{l}"], arrays[f"b_{l}"]) for l in range(n)], xp)
    adam = {l: AdamMoments(tl, tuple(xp.asarray(arrays[f"adam_m_{l}_{i}"]) for i in range(2)),
                           tuple(xp.asarray(arrays[f"adam_v_{l}_{i}"]) for i in range(2)))
            for l, tl in t.items()}
    Xs = None
    if config.algorithm == "full" and "X_1" in arrays:
        Xs = [None] + [xp.asarray(arrays[f"X_{l}"]) for l in range(1, n)]
    state = TrainState(weights, Xs=Xs, epoch=int(doc["epoch"]), batch=int(doc["batch"]),
                       rng_state=doc.get("rng_state"), adam=adam)
    return net, config, state, History.from_dict(doc["history"])
