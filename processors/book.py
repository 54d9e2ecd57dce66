"""Which forecaster serves which (team, model, symbol), and picking up new versions live.

A :class:`ModelSource` says, cheaply, which version *should* be served (a baseline: always the
same; a registry model: the version its ``champion`` alias points at) and loads it. The
:class:`ModelBook` builds every entry of the arena and, on :meth:`ModelBook.refresh`, reloads the
entries whose version moved. An entry that fails to load keeps serving its previous version (or
stays down with its error) while every other entry goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol

from processors.baselines import ServedModel, build_baseline
from redblue.core.arena import Arena, ModelSpec
from redblue.core.forecaster import Forecaster, ModelError

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Where the forecasters of one model ``kind`` come from."""

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        """The version that should be served now; raises :class:`ModelError` if unknown."""
        ...

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str | None = None) -> Forecaster:
        """The forecaster of ``version`` (as :meth:`version` gave it; default: the current one);
        raises :class:`ModelError` if it cannot be loaded."""
        ...


class BaselineSource:
    """The built-in baselines: one version each, built from the arena parameters."""

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        return build_baseline(spec).version

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str | None = None) -> Forecaster:
        return build_baseline(spec)


class ModelBook:
    """Every (team, model, symbol) of the arena with its current forecaster.

    The first load happens in the constructor, or with ``background=True`` on a thread of its
    own (a worker can start meanwhile: loading registry models takes seconds); :attr:`ready` is
    set once it is done, and :attr:`models` is empty before.
    """

    def __init__(
        self, arena: Arena, sources: Mapping[str, ModelSource] | None = None, *, background: bool = False
    ) -> None:
        self._arena = arena
        self._sources: Mapping[str, ModelSource] = sources or {}
        self._baselines = BaselineSource()
        self._entries: dict[tuple[str, str, str], ServedModel] = {}
        self.ready = threading.Event()
        if background:
            threading.Thread(target=self._first_load, name="model-book", daemon=True).start()
        else:
            self._first_load()

    def _first_load(self) -> None:
        try:
            self.refresh()
        finally:
            self.ready.set()

    @property
    def models(self) -> list[ServedModel]:
        return list(self._entries.values())

    def refresh(self) -> list[str]:
        """Load what is missing or has moved; return a line per change (for the log).

        The new set of entries replaces the old one in a single assignment, so a reader on
        another thread always sees a consistent book.
        """
        entries = dict(self._entries)
        changes = []
        for team, spec in self._arena.all_models():
            for symbol in self._arena.symbols_of(spec):
                change = self._refresh_one(entries, team, spec, symbol)
                if change:
                    changes.append(change)
                    log.warning("%s", change)
        self._entries = entries
        return changes

    def _refresh_one(
        self, entries: dict[tuple[str, str, str], ServedModel], team: str, spec: ModelSpec, symbol: str
    ) -> str:
        key = (team, spec.name, symbol)
        current = entries.get(key)
        source = self._sources.get(spec.kind, self._baselines)
        try:
            wanted = source.version(team, spec, symbol)
            if current is not None and current.forecaster is not None and current.forecaster.version == wanted:
                return ""
            forecaster = source.load(team, spec, symbol, wanted)  # that version, even if the alias moved since
        except ModelError as err:
            return _failed(entries, key, current, str(err))
        entries[key] = ServedModel(team, spec.name, symbol, forecaster)
        before = "" if current is None or current.forecaster is None else f" (was {current.forecaster.version})"
        return f"serving {team}/{spec.name} {symbol} version {forecaster.version}{before}"


def _failed(
    entries: dict[tuple[str, str, str], ServedModel], key: tuple[str, str, str], current: ServedModel | None, error: str
) -> str:
    team, name, symbol = key
    if current is not None and current.forecaster is not None:
        return f"{team}/{name} {symbol}: keeping version {current.forecaster.version}: {error}"
    if current is not None and current.error == error:
        return ""
    entries[key] = ServedModel(team, name, symbol, None, error)
    return f"{team}/{name} {symbol} cannot be served: {error} (the other models go on)"
