"""Each symbol's window of bars: kept as :class:`~schemas.Bar` objects in memory, stored in a
durable table (the processor's Faust table, a changelogged topic) once per batch.

Reading a window from the table means validating every bar of it again, and writing it means
serialising the whole window: per bar, that cost as much as everything else the processor
does. So the table is read only when the memory copy is missing or no longer matches it (after
a restart, or when another worker of the group had the partition in between), and written once
per batch for each symbol the batch moved, each bar serialised (to its JSON text) only once.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import date
from typing import Any

from schemas import Bar

Stored = list[str]  # the window's bars as JSON texts, oldest first


class Windows:
    """The windows of the symbols a worker serves, backed by ``table`` (symbol -> stored bars)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table
        self._memory: dict[str, list[Bar]] = {}
        self._texts: dict[str, dict[date, str]] = {}
        self._moved: set[str] = set()

    def load(self, symbols: set[str]) -> dict[str, list[Bar]]:
        """The current window of each of ``symbols`` (empty for a symbol never seen)."""
        for symbol in symbols:
            if symbol in self._moved:
                continue  # moved by this worker since the last save: memory is ahead of the table
            stored = self._table.get(symbol) or []
            if not self._matches(symbol, stored):
                bars = [_bar(item) for item in stored]
                self._memory[symbol] = bars
                texts = zip(bars, stored, strict=True)
                self._texts[symbol] = {b.date: item for b, item in texts if isinstance(item, str)}
        return {symbol: self._memory[symbol] for symbol in symbols}

    def update(self, windows: dict[str, list[Bar]]) -> None:
        """Take the windows a batch moved (memory now; the table on :meth:`save`)."""
        for symbol, window in windows.items():
            if window is not self._memory.get(symbol):
                self._memory[symbol] = window
                self._moved.add(symbol)

    def save(self, write: Callable[[str, Stored], None] | None = None) -> None:
        """Write the moved windows to the table (through ``write(symbol, stored)`` if given)."""
        for symbol in sorted(self._moved):
            known = self._texts.get(symbol, {})
            texts = {b.date: known.get(b.date) or _text(b) for b in self._memory[symbol]}
            self._texts[symbol] = texts
            stored = list(texts.values())
            if write is None:
                self._table[symbol] = stored
            else:
                write(symbol, stored)
        self._moved.clear()

    def _matches(self, symbol: str, stored: list[Any]) -> bool:
        """Whether the memory copy is the stored window (same length, same last bar)."""
        memory = self._memory.get(symbol)
        if memory is None:
            return False
        if not stored or not memory:
            return not stored and not memory
        return len(memory) == len(stored) and self._texts.get(symbol, {}).get(memory[-1].date) == stored[-1]


def _text(bar: Bar) -> str:
    return bar.__pydantic_serializer__.to_json(bar).decode()


def _bar(item: str | dict[str, Any]) -> Bar:
    """A stored bar: a JSON text (or, as windows were stored before, a dict of its fields)."""
    return Bar.model_validate_json(item) if isinstance(item, str) else Bar.model_validate(item)
