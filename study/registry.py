"""A name → entry registry whose unknown-name error lists the valid names (uncertainty-
baselines' `get(name)`); entries register themselves when their modules are imported."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from study.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: list[str]):
        self.kind = kind  # "dataset", "model", "method": named in errors
        self.modules = modules  # imported before the first lookup (they register themselves)
        self.entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        self.entries[name] = entry
        return entry

    def names(self) -> list[str]:
        self._load()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The entry of `name`; ConfigError listing the valid names otherwise."""
        self._load()
        if name not in self.entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self.entries[name]

    def _load(self) -> None:
        for module in self.modules:
            importlib.import_module(module)
