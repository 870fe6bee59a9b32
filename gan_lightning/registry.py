"""Small name -> object registries, so configs choose parts by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A problem in the user's configuration; the message names the field and the fix."""


def close_matches(word: str, choices: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``choices`` that look like ``word`` (for 'did you mean')."""
    return difflib.get_close_matches(word, choices, n=n, cutoff=0.5)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type), for one-line error reports."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def unknown_name_message(kind: str, name: str, known: list[str], field: str | None = None) -> str:
    where = f" (config field '{field}')" if field else ""
    msg = f"unknown {kind} '{name}'{where}."
    near = close_matches(str(name), known)
    if near:
        msg += f" Did you mean {', '.join(repr(m) for m in near)}?"
    return msg + f" Known {kind}s: {', '.join(sorted(known))}."


class Registry(Generic[T]):
    """A named collection: ``@REG.register("name")`` adds, ``REG["name"]`` finds."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._items:
            raise ConfigError(unknown_name_message(self.kind, name, self.names(), field))
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)


# model classes by ``model.name``, here beside the Registry class so that the loader, checkpoints
# and the models share it without importing each other
MODELS: Registry[Any] = Registry("model")
