"""The base of the package's small value types: a descriptor, a platform, a build's settings.

They were dataclasses, then NamedTuples; both cost start-up time that a short build notices.
`dataclasses` imports `inspect` and compiles each class's methods from source at every start,
and a NamedTuple compiles each field's annotation (a string, with `from __future__ import
annotations`) to check it: together about a tenth of a hello build's CPU. A value type is
instead a plain class with `__slots__` and an `__init__` that says its fields; this base gives
it what the dataclasses did: equality and a hash by type and fields, and a readable repr.
Fields are never assigned after `__init__`, by convention (nothing here enforces it).
"""

from __future__ import annotations

from typing import Any


class Value:
    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
