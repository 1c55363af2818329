"""Training history shared by every model (Fenchel, LNN, ADMM, BCD, SGD/Adam), and the rule
that stops a run "until convergence".

A :class:`History` holds one record (a dict of numbers) per batch and one per
epoch, plus free-form metadata (model, settings, seed). It saves to JSON
atomically and plots its curves with matplotlib.

:class:`StopRule` decides from the epoch records alone whether a run has converged (the
papers' Fig. 1 trains "until convergence"). Because it reads only the records, every model's
loop honours it in the same way (each checks :meth:`History.stop_reason` after logging an
epoch), and a resumed run stops where the uninterrupted one would have. The rule is made active
for the loops of one call with :func:`stopping` (``with stopping(StopRule()): model.fit(...)``),
so no estimator needs a new parameter.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History", "StopRule", "OBJECTIVE_KEYS", "STOP_REASONS", "active_rule",
           "atomic_write_bytes", "progress", "stopping"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        # mkstemp creates 0600; give the file the permissions open() would (0666 minus umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(value: Any) -> Any:
    """Make numbers JSON-safe (NumPy/CuPy scalars to Python floats, NaN/inf to None)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: Keys of an epoch record that hold the model's training objective, in order of preference:
#: the Fenchel model's relaxed objective ``J`` (epoch mean over its batches), the full-batch
#: baselines' ``objective`` (ADMM, Lau et al. BCD, LNN), the torch networks' mean ``loss``.
OBJECTIVE_KEYS = ("relaxed_objective", "objective", "loss")
#: What ``stop_reason`` can say about a finished run.
STOP_REASONS = ("rule: objective", "rule: accuracy flat", "max epochs")


@dataclass(frozen=True)
class StopRule:
    """When a run counts as converged (Fig. 1's "until convergence"), read from its epoch records.

    * ``"rule: objective"``: each of the last ``window`` relative changes of the objective is at
      most ``rel_tol``: ``|f_k - f_(k-1)| <= rel_tol * |f_(k-1)|`` for the last ``window``
      epochs ``k`` (so ``window + 1`` records are needed). The objective is the first key of
      :data:`OBJECTIVE_KEYS` the last record holds; every one of those records must hold a
      finite value of it.
    * ``"rule: accuracy flat"``: the test accuracy of the last ``acc_window + 1`` records (the
      last ``acc_window`` epochs and the one before them) lies within a band of ``acc_tol``
      (``max - min <= acc_tol``; ``1e-3`` = 0.1 percentage point). A slack of ``1e-12`` absorbs
      the rounding of differences such as ``0.9745 - 0.9735``.

    The objective rule is tested first. Both read only the records' tail, so the decision after
    epoch ``t`` is the same for any run with the same last records. Records without a
    ``test_accuracy`` (no test set) never satisfy the accuracy rule.
    """

    rel_tol: float = 1e-5
    window: int = 5
    acc_tol: float = 1e-3
    acc_window: int = 10

    def __post_init__(self) -> None:
        for name in ("rel_tol", "acc_tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"StopRule.{name} must be a finite number >= 0, got {v!r}")
        for name in ("window", "acc_window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"StopRule.{name} must be an integer >= 1, got {v!r}")

    def objective_converged(self, epochs: Sequence[dict]) -> bool:
        """The objective rule on ``epochs`` (see the class docstring)."""
        if len(epochs) < self.window + 1:
            return False
        key = next((k for k in OBJECTIVE_KEYS if _finite(epochs[-1].get(k))), None)
        if key is None:
            return False
        f = [r.get(key) for r in epochs[-(self.window + 1):]]
        if not all(_finite(v) for v in f):
            return False
        return all(abs(b - a) <= self.rel_tol * abs(a) for a, b in zip(f[:-1], f[1:]))

    def accuracy_flat(self, epochs: Sequence[dict]) -> bool:
        """The accuracy rule on ``epochs`` (see the class docstring)."""
        if len(epochs) < self.acc_window + 1:
            return False
        acc = [r.get("test_accuracy") for r in epochs[-(self.acc_window + 1):]]
        if not all(_finite(v) for v in acc):
            return False
        return max(acc) - min(acc) <= self.acc_tol + 1e-12

    def reason(self, epochs: Sequence[dict]) -> str | None:
        """``"rule: objective"``, ``"rule: accuracy flat"`` or None (not converged) for a run whose
        epoch records are ``epochs``."""
        if self.objective_converged(epochs):
            return STOP_REASONS[0]
        if self.accuracy_flat(epochs):
            return STOP_REASONS[1]
        return None

    def describe(self) -> str:
        return (f"relative change of the objective <= {self.rel_tol:g} over {self.window} epochs, "
                f"or test accuracy within {100 * self.acc_tol:g} pp over {self.acc_window} epochs")

    def to_dict(self) -> dict:
        return {"rel_tol": self.rel_tol, "window": self.window, "acc_tol": self.acc_tol,
                "acc_window": self.acc_window}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_ACTIVE: ContextVar[StopRule | None] = ContextVar("cvx_fenchel_stop_rule", default=None)


@contextmanager
def stopping(rule: StopRule | None) -> Iterator[StopRule | None]:
    """Make ``rule`` the active stop rule of the training loops run inside the ``with`` block
    (``None``: none; every loop then runs its full epoch count)."""
    if rule is not None and not isinstance(rule, StopRule):
        raise TypeError(f"stopping() takes a StopRule or None, got {type(rule).__name__}")
    token = _ACTIVE.set(rule)
    try:
        yield rule
    finally:
        _ACTIVE.reset(token)


def active_rule() -> StopRule | None:
    """The stop rule set by the innermost :func:`stopping` block, or None."""
    return _ACTIVE.get()


_PROGRESS: ContextVar[tuple | None] = ContextVar("cvx_fenchel_progress", default=None)


@contextmanager
def progress(path: str | os.PathLike, meta: dict) -> Iterator[None]:
    """While the block runs, every epoch record a :class:`History` logs also writes that history
    so far to ``path``, its meta ``meta`` plus ``partial: True``, ``finished: False`` and a
    ``stop_reason``: a run killed, or stopped by the end of a session, leaves its measured part
    (every model's loop logs its epochs, so every model is covered, also those that write no
    checkpoints). The run's final ``History.save`` replaces the file."""
    token = _PROGRESS.set((os.fspath(path), dict(meta)))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


@dataclass
class History:
    """Per-batch and per-epoch training records.

    Typical keys: ``epoch``, ``batch``, ``relaxed_objective``, ``network_loss``,
    ``batch_accuracy_before``/``batch_accuracy_after`` (per batch, at the weights before / after
    its update), ``train_accuracy`` (per epoch, on the training set), ``test_accuracy``,
    ``time_x``, ``time_w``, ``time`` (seconds).
    """

    meta: dict = field(default_factory=dict)
    batches: list = field(default_factory=list)
    epochs: list = field(default_factory=list)

    def log_batch(self, **record: Any) -> None:
        self.batches.append(_clean(record))

    def log_epoch(self, **record: Any) -> None:
        self.epochs.append(_clean(record))
        where = _PROGRESS.get()
        if where is not None:  # a partial copy of the run so far (see progress())
            path, meta = where
            n = sum(1 for r in self.epochs if r.get("epoch") != 0)
            doc = self.to_dict()
            doc["meta"] = {**doc["meta"], **_clean(meta), "partial": True, "finished": False,
                           "stop_reason": f"stopped (killed, or the session ended) after {n} epochs"}
            atomic_write_bytes(path, json.dumps(doc).encode())

    def series(self, key: str, level: str = "epochs") -> list:
        """Values of ``key`` over ``level`` ("epochs" or "batches"), skipping records without it."""
        return [r[key] for r in getattr(self, level) if key in r]

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def stop_reason(self) -> str | None:
        """The active :class:`StopRule`'s verdict on the epochs so far (:func:`stopping`): a
        reason to stop now, or None (no rule active, or not converged). Every training loop
        calls this after logging an epoch (the Fenchel trainer also before starting one, so a
        resumed run that had already converged does not train on)."""
        rule = _ACTIVE.get()
        return None if rule is None else rule.reason(self.epochs)

    def to_dict(self) -> dict:
        return {"meta": _clean(self.meta), "batches": self.batches, "epochs": self.epochs}

    def save(self, path: str | os.PathLike) -> None:
        """Save as JSON (atomic write)."""
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1).encode())

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(meta=dict(d.get("meta", {})), batches=list(d.get("batches", [])),
                   epochs=list(d.get("epochs", [])))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None):
        """Plot objective/loss per batch, accuracies per epoch and, where recorded (one hidden
        layer), the certificate ``G_W(lambda) <= p(W)`` per epoch; save to ``path`` if given.

        Returns the matplotlib figure.
        """
        import matplotlib
        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        bound = [(r.get("epoch", i + 1), r["lower_bound"], r.get("lower_bound_p"))
                 for i, r in enumerate(self.epochs) if r.get("lower_bound") is not None]
        fig, axes = plt.subplots(1, 3 if bound else 2, figsize=(16.5 if bound else 11, 4))
        ax = axes[0]
        for key in ("relaxed_objective", "network_loss", "loss"):
            ys = self.series(key, "batches")
            if ys:
                ax.plot([y for y in ys if y is not None], label=key.replace("_", " "))
        ax.set_xlabel("batch")
        ax.set_yscale("log") if any(ax.get_lines()) and all(
            (v or 0) > 0 for line in ax.get_lines() for v in line.get_ydata()) else None
        ax.set_title("objective per batch")
        if ax.get_lines():
            ax.legend()
        ax = axes[1]
        for key in ("train_accuracy", "test_accuracy"):
            ys = self.series(key, "epochs")
            if ys:
                xs = self.series("epoch", "epochs")[: len(ys)] or list(range(1, len(ys) + 1))
                ax.plot(xs, ys, marker="o", label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_title("accuracy per epoch")
        if ax.get_lines():
            ax.legend()
        if bound:
            ax = axes[2]
            ax.plot([b[0] for b in bound], [b[1] for b in bound], marker="o",
                    label=r"lower bound $G_W(\lambda)$")
            ax.plot([b[0] for b in bound], [b[2] for b in bound], marker="s",
                    label=r"network loss $p(W)$")
            ax.set_xlabel("epoch")
            ax.set_title("certificate on the last batch")
            ax.legend()
        fig.suptitle(title or str(self.meta.get("model", "")))
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig
