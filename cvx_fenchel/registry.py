"""A small named registry: what activations, maps, losses and subproblem kinds are kept in.

A :class:`Registry` is a read-only mapping ``name -> item`` in registration order, with aliases,
one error message for unknown names (listing the known ones), and ``unregister`` for tests that
register a toy item. Every extension point of the library is one of these, so "which
activations exist" has a single answer that the verification suite iterates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, TypeVar

from .errors import InputError, UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping, Generic[T]):
    """Read-only mapping ``name -> item`` (names lower-case) with aliases.

    ``what`` names the kind of item in error messages (``"activation"``, ``"loss"``, ...);
    ``same(a, b)`` decides whether re-registering ``b`` under ``a``'s name is harmless
    (default: identity).
    """

    def __init__(self, what: str, same: Callable[[Any, Any], bool] | None = None):
        self.what = what
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._same = same or (lambda a, b: a is b)

    # ---- Mapping -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        return self._items[self.key(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        k = name.lower()
        return k in self._items or k in self._aliases

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._items)})"

    # ---- registration --------------------------------------------------------------------------
    def register(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> T:
        """Add ``item`` under ``name`` (and ``aliases``); returns ``item``. Registering a different
        item under a taken name (or alias) is an :class:`InputError`."""
        if not isinstance(name, str) or not name:
            raise InputError(f"a registered {self.what} needs a non-empty name, got {name!r}")
        key = name.lower()
        if key in self._items and not self._same(self._items[key], item):
            raise InputError(f"a different {self.what} is already registered as {key!r}")
        for a in aliases:
            taken = self._aliases.get(a.lower(), key)
            if taken != key or (a.lower() in self._items and a.lower() != key):
                raise InputError(f"the {self.what} alias {a!r} is already taken by {taken!r}")
        self._items[key] = item
        for a in aliases:
            self._aliases[a.lower()] = key
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (or the item an alias points at) and its aliases; no error if absent."""
        key = self._aliases.get(name.lower(), name.lower())
        self._items.pop(key, None)
        for a in [a for a, k in self._aliases.items() if k == key]:
            del self._aliases[a]

    def key(self, name: str) -> str:
        """The registered name ``name`` (or an alias) stands for; UnknownNameError otherwise."""
        if isinstance(name, str):
            k = self._aliases.get(name.lower(), name.lower())
            if k in self._items:
                return k
        raise UnknownNameError(f"unknown {self.what} {name!r}; choose one of {self.names()}")

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._items)
