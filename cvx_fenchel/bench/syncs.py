r"""Counting host synchronisations of the fast path on the CPU: an instrumented NumPy namespace.

On a GPU every read of a device value by the host (``float(x)``, ``bool(x)`` in an ``if``,
``int(x)``, ``x.item()``, ``x.tolist()``, ``x.get()``/:func:`~cvx_fenchel.backend.to_numpy`)
waits for the device to finish the queued work: a *host synchronisation*. CuPy never returns a
host scalar from a reduction (``cupy.sum(a)`` is a 0-d device array), so each such read in the
fast path is one synchronisation. This module counts them without a GPU:

* :class:`SyncArray` is a view subclass of :class:`numpy.ndarray` that behaves like a CuPy array
  in the respect that matters here: reductions and scalar indexing give 0-d :class:`SyncArray`
  (never NumPy scalars), and every conversion of one to a host value -- ``__float__``,
  ``__int__``, ``__index__``, ``__bool__``, ``__complex__``, ``item()``, ``tolist()`` -- counts
  one synchronisation (whatever its size).
* :class:`SyncNamespace` wraps a module (``numpy``, ``scipy`` and their submodules, as
  :func:`~cvx_fenchel.backend.get_namespace` hands out) so that every array it returns is a
  :class:`SyncArray` (ufuncs, ``linalg``, ``special`` and creation functions included; types and
  constants pass through).
* :func:`counting` patches, for the duration of a ``with`` block, the names ``get_namespace``
  and ``to_numpy`` in every loaded ``cvx_fenchel`` module (no file is edited): ``get_namespace``
  returns the wrapped ``(numpy, scipy)`` when any argument is a :class:`SyncArray`, and
  ``to_numpy`` of a :class:`SyncArray` counts one synchronisation (a device-to-host copy) and
  returns a plain array.

What is counted: every conversion of an instrumented array to a host value, made by library code
or by NumPy/SciPy code that operates on the instrumented array itself; plus ``to_numpy`` calls on
instrumented arrays. What is not: conversions of plain arrays made inside NumPy/SciPy routines
after they converted their input (their CuPy counterparts may synchronise internally, e.g. error
checks of ``cupy.linalg``); kernel launches; Python arithmetic on values already on the host.
The arithmetic is NumPy's own on the same memory, so the iterates are those of a plain NumPy run.

Each synchronisation is recorded with its kind (``float``, ``bool``, ...), the first stack frame
outside NumPy/SciPy and this module (``module:function:line``) and the BCD block it happened in
(``X1``, ``W0``, ... from the :func:`cvx_fenchel.bcd.x_step`/``w_step`` frame on the stack, else
``other``: feed-forward, input checks, the batch record).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections import Counter
from typing import Any, Callable, Iterator

import numpy as np
import scipy

__all__ = ["SyncArray", "SyncNamespace", "SyncCounter", "counting", "sync_numpy", "sync_scipy",
           "instrument"]

_SKIP_PREFIXES = (np.__name__ + ".", scipy.__name__ + ".", __name__)


class SyncCounter:
    """The events of one counting run: ``total``, ``by_kind``, ``by_block``, ``by_site``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.mixed: list[str] = []  # sites of get_namespace calls mixing instrumented and plain arrays

    def hit(self, kind: str) -> None:
        site, block = _where()
        self.events.append((kind, site, block))

    @property
    def total(self) -> int:
        return len(self.events)

    def summary(self, top: int = 12) -> dict:
        """JSON-able counts: total, by kind, by BCD block, the ``top`` sites."""
        return {"total": self.total,
                "by_kind": dict(Counter(k for k, _, _ in self.events).most_common()),
                "by_block": dict(sorted(Counter(b for _, _, b in self.events).items())),
                "top_sites": [{"site": s, "count": n} for s, n in
                              Counter(s for _, s, _ in self.events).most_common(top)],
                "mixed_namespace_calls": len(self.mixed),
                "mixed_namespace_sites": dict(Counter(self.mixed).most_common())}


_ACTIVE: list[SyncCounter] = []


def _hit(kind: str) -> None:
    if _ACTIVE:
        _ACTIVE[-1].hit(kind)


def _where() -> tuple[str, str]:
    """(first frame outside numpy/scipy/this module as ``module:function:line``, BCD block)."""
    f = sys._getframe(2)
    site = None
    block = "other"
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if site is None and not mod.startswith(_SKIP_PREFIXES):
            site = f"{mod}:{f.f_code.co_name}:{f.f_lineno}"
        if mod == "cvx_fenchel.bcd" and f.f_code.co_name in ("x_step", "w_step"):
            block = ("X" if f.f_code.co_name == "x_step" else "W") + str(f.f_locals.get("l", "?"))
            break
        f = f.f_back
    return site or "?", block


def _wrap(out: Any) -> Any:
    """Arrays and NumPy scalars -> SyncArray (0-d for scalars); tuples/lists recursively."""
    if isinstance(out, SyncArray):
        return out
    if isinstance(out, np.ndarray):
        return out.view(SyncArray)
    if isinstance(out, np.generic):
        return np.asarray(out).view(SyncArray)
    if isinstance(out, tuple):
        items = [_wrap(o) for o in out]
        return type(out)(*items) if hasattr(out, "_fields") else type(out)(items)
    if isinstance(out, list):
        return [_wrap(o) for o in out]
    return out


class SyncArray(np.ndarray):
    """A NumPy array that counts its conversions to host values (see the module docstring)."""

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return _wrap(arr)

    def __getitem__(self, key):
        return _wrap(super().__getitem__(key))

    def __float__(self):
        _hit("float")
        return float(self.view(np.ndarray))

    def __int__(self):
        _hit("int")
        return int(self.view(np.ndarray))

    def __index__(self):
        _hit("index")
        return self.view(np.ndarray).__index__()

    def __complex__(self):
        _hit("complex")
        return complex(self.view(np.ndarray))

    def __bool__(self):
        _hit("bool")
        return bool(self.view(np.ndarray))

    def item(self, *args):
        _hit("item")
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        _hit("tolist")
        return self.view(np.ndarray).tolist()

    def get(self):
        """CuPy's device-to-host copy."""
        _hit("get")
        return np.array(self.view(np.ndarray))


def _call(fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        return _wrap(fn(*args, **kwargs))
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__wrapped__ = fn
    return wrapped


class _Ufunc:
    """A ufunc whose call and methods (``reduce``, ``outer``, ...) return SyncArrays."""

    def __init__(self, uf: np.ufunc):
        self._uf = uf

    def __call__(self, *args, **kwargs):
        return _wrap(self._uf(*args, **kwargs))

    def __getattr__(self, name):
        attr = getattr(self._uf, name)
        return _call(attr) if callable(attr) else attr


class SyncNamespace(types.ModuleType):
    """A module whose functions return :class:`SyncArray` (submodules wrapped lazily; types,
    dtypes and constants pass through)."""

    def __init__(self, module: types.ModuleType):
        super().__init__(module.__name__, getattr(module, "__doc__", None))
        self._module = module
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_module", "_cache"):
            raise AttributeError(name)
        cache = self._cache
        if name in cache:
            return cache[name]
        try:
            attr = getattr(self._module, name)
        except AttributeError:
            import importlib
            try:
                attr = importlib.import_module(f"{self._module.__name__}.{name}")
            except ImportError:
                raise AttributeError(name) from None
        if isinstance(attr, types.ModuleType):
            out = SyncNamespace(attr)
        elif isinstance(attr, np.ufunc):
            out = _Ufunc(attr)
        elif isinstance(attr, type) or not callable(attr):
            out = attr
        else:
            out = _call(attr)
        cache[name] = out
        return out


sync_numpy = SyncNamespace(np)
sync_scipy = SyncNamespace(scipy)


def instrument(a: Any) -> Any:
    """``a`` (an array, or a list/tuple of arrays, nested) as :class:`SyncArray` views."""
    return _wrap(a)


@contextlib.contextmanager
def counting() -> Iterator[SyncCounter]:
    """Count host synchronisations of instrumented arrays inside the block::

        with counting() as c:
            trainer.train_batch(instrument(X), instrument(Y))
        c.total, c.summary()

    Patches ``get_namespace``/``to_numpy`` in the loaded ``cvx_fenchel`` modules (module
    docstring) and restores them on exit.
    """
    from .. import backend
    orig_ns, orig_np = backend.get_namespace, backend.to_numpy
    counter = SyncCounter()

    def get_namespace(*arrays: Any):
        found = [isinstance(a, SyncArray) for a in arrays
                 if a is not None and not isinstance(a, (int, float, bool, np.generic))]
        if any(found):
            if not all(found):
                counter.mixed.append(_where()[0])
            import scipy.linalg  # noqa: F401 - as the real get_namespace does
            import scipy.special  # noqa: F401
            return sync_numpy, sync_scipy
        return orig_ns(*arrays)

    def to_numpy(a: Any) -> Any:
        if isinstance(a, SyncArray):
            _hit("to_numpy")
            return np.array(a.view(np.ndarray))
        return orig_np(a)

    patched = []
    for name, mod in list(sys.modules.items()):
        if not (name == "cvx_fenchel" or name.startswith("cvx_fenchel.")) or mod is None:
            continue
        for attr, orig, new in (("get_namespace", orig_ns, get_namespace),
                                ("to_numpy", orig_np, to_numpy)):
            if getattr(mod, attr, None) is orig:
                setattr(mod, attr, new)
                patched.append((mod, attr, orig))
    _ACTIVE.append(counter)
    try:
        yield counter
    finally:
        _ACTIVE.pop()
        for mod, attr, orig in patched:
            setattr(mod, attr, orig)
