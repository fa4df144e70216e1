"""``@record``: how every result record is declared: a frozen, slotted dataclass
that pickles as (class, field values), several times faster than the generic
slot-state path; that matters when worker processes send back thousands of
connections (see _analyze.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypeVar

T = TypeVar("T")


def record(cls: type[T]) -> type[T]:
    made = dataclass(frozen=True, slots=True)(cls)
    names = tuple(f.name for f in fields(made))

    def __reduce__(self):  # noqa: ANN001, ANN202, N807
        return made, tuple(getattr(self, n) for n in names)

    made.__reduce__ = __reduce__
    return made
