"""Training history shared by every model (Fenchel, LNN, ADMM, BCD, SGD/Adam).

A :class:`History` holds one record (a dict of numbers) per batch and one per
epoch, plus free-form metadata (model, settings, seed). It saves to JSON
atomically and plots its curves with matplotlib.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any


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

    def series(self, key: str, level: str = "epochs") -> list:
        """Values of ``key`` over ``level`` ("epochs" or "batches"), skipping records without it."""
        return [r[key] for r in getattr(self, level) if key in r]

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

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
