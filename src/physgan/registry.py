"""Name -> object registries: how YAML names (``loss: hinge``) find their code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from physgan.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named objects (factories, functions), filled by a decorator; a miss lists
    the known names.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("hinge")
    ... def hinge(): ...
    >>> LOSSES.get("hinge") is hinge
    True
    >>> LOSSES.get("hing")
    Traceback (most recent call last):
    ...
    physgan.errors.ConfigError: unknown loss 'hing'; choose from: hinge
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
