"""A small name -> factory registry, one per kind of oracle (folding, inverse folding).

Factories are called only when an oracle is asked for, so registering one imports nothing
heavy and loads no weights. The project's own models plug in the same way as the external
ones: ``FOLDING_ORACLES.register("multiflow-fold", factory, replace=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from multiflow.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories ``factory(**options) -> oracle``; each oracle carries a ``name`` used in every output."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, factory: Callable[..., T], *, help: str = "", replace: bool = False) -> None:
        """Add ``factory`` under ``name``; an existing name needs ``replace=True``."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ConfigError(f"{self.kind} names must be non-empty strings without surrounding spaces, got {name!r}")
        if name in self._factories and not replace:
            raise ConfigError(f"a {self.kind} named {name!r} is already registered; pass replace=True to override it")
        self._factories[name] = factory
        self._help[name] = help

    def create(self, name: str, /, **options: Any) -> T:
        """Build the oracle registered as ``name`` with keyword ``options`` (e.g. a weights path)."""
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {known}")
        oracle = self._factories[name](**options)
        if not isinstance(getattr(oracle, "name", None), str) or not oracle.name:
            raise ConfigError(f"the {self.kind} factory {name!r} returned an object without a string 'name' attribute")
        return oracle

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        self._factories.pop(name, None)
        self._help.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Name -> one-line help, for command-line listings."""
        return {name: self._help[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._factories
