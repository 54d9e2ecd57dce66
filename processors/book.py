"""Which forecaster serves which (team, model, symbol), and picking up new versions live.

A :class:`ModelSource` says, cheaply, which version *should* be served (a baseline: always the
same; a registry model: the version its ``champion`` alias points at) and loads a version. The
:class:`ModelBook` builds every entry of the arena and, on :meth:`ModelBook.refresh`, reloads the
entries whose version moved. An entry that fails to load keeps serving its previous version (or
stays down with its error) while every other entry goes on.

A book built with ``pins`` (a simulation, see :mod:`processors.pins`) serves exactly the pinned
versions, each from its ``serve_from`` day, and :meth:`ModelBook.refresh` changes nothing: a
moved alias never swaps a model in the middle of a simulation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Protocol

from processors.baselines import ServedModel, build_baseline
from processors.pins import Pin
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
    """Every (team, model, symbol) of the arena with its current forecaster (or its pinned ones).

    The first load happens in the constructor, or with ``background=True`` on a thread of its
    own (a worker can start meanwhile: loading registry models takes seconds); :attr:`ready` is
    set once it is done, and :attr:`models` is empty before.
    """

    def __init__(
        self,
        arena: Arena,
        sources: Mapping[str, ModelSource] | None = None,
        pins: Sequence[Pin] | None = None,
        *,
        background: bool = False,
    ) -> None:
        self._arena = arena
        self._sources: Mapping[str, ModelSource] = sources or {}
        self._baselines = BaselineSource()
        self._entries: dict[tuple[str, str, str], ServedModel] = {}
        self._pins = pins
        self._pinned: list[ServedModel] | None = None
        self.ready = threading.Event()
        self.failure: Exception | None = None  # why the first load failed (then nothing is served)
        self._background = background
        if background:
            threading.Thread(target=self._first_load, name="model-book", daemon=True).start()
        else:
            self._first_load()

    def _first_load(self) -> None:
        try:
            if self._pins is not None:
                self._pinned = self._load_pins(self._pins)
            self.refresh()
        except Exception as err:  # on the loading thread: kept for whoever waits on ``ready``
            self.failure = err
            if not self._background:
                raise
        finally:
            self.ready.set()

    @property
    def pinned(self) -> bool:
        return self._pins is not None

    @property
    def models(self) -> list[ServedModel]:
        """Every entry serving now (pinned: every pinned version, each serving its own as-of days)."""
        return list(self._entries.values()) + list(self._pinned or [])

    def models_at(self, as_of: date) -> list[ServedModel]:
        """The entries that serve the forecast as of ``as_of``: per (team, model, symbol), the latest
        pinned version whose ``serve_from`` is not after ``as_of``, or the current one."""
        return [model for model in self.models if model.serves(as_of)]

    def refresh(self) -> list[str]:
        """Load what is missing or has moved; return a line per change (for the log).

        Pinned entries never change. The new set of entries replaces the old one in a single
        assignment, so a reader on another thread always sees a consistent book.
        """
        entries = dict(self._entries)
        changes = []
        for team, spec in self._arena.all_models():
            if self._pins is not None and spec.kind in self._sources:
                continue
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
            forecaster = source.load(team, spec, symbol, wanted)
        except ModelError as err:
            return _failed(entries, key, current, str(err))
        entries[key] = ServedModel(team, spec.name, symbol, forecaster)
        before = "" if current is None or current.forecaster is None else f" (was {current.forecaster.version})"
        return f"serving {team}/{spec.name} {symbol} version {forecaster.version}{before}"

    def _load_pins(self, pins: Sequence[Pin]) -> list[ServedModel]:
        """Load every pinned version of the models that come from a source; fail-closed per entry."""
        specs = {(team, spec.name): spec for team, spec in self._arena.all_models()}
        loaded = []
        for pin in sorted(pins, key=lambda p: (p.key, p.serve_from or date.min)):
            spec = specs.get((pin.team, pin.model))
            if spec is None or spec.kind not in self._sources:
                continue
            try:
                forecaster = self._load_pinned(pin, spec)
            except ModelError as err:
                log.warning("%s", err)
                loaded.append(ServedModel(pin.team, pin.model, pin.symbol, None, str(err), pin.serve_from))
                continue
            log.warning("serving %s (pinned)%s", pin.label, f" from {pin.serve_from}" if pin.serve_from else "")
            loaded.append(ServedModel(pin.team, pin.model, pin.symbol, forecaster, "", pin.serve_from))
        missing = {(t, s.name, sym) for t, s in self._arena.all_models() if s.kind in self._sources
                   for sym in self._arena.symbols_of(s)} - {(m.team, m.name, m.symbol) for m in loaded}  # fmt: skip
        loaded += [ServedModel(*key, None, "no version pinned for this run") for key in sorted(missing)]
        return _successive(loaded)

    def _load_pinned(self, pin: Pin, spec: ModelSpec) -> Forecaster:
        if pin.error:
            raise ModelError(pin.error)
        forecaster = self._sources[spec.kind].load(pin.team, spec, pin.symbol, pin.version)
        until = ServedModel(pin.team, pin.model, pin.symbol, forecaster).trained_until
        if until != pin.trained_until:
            raise ModelError(f"{pin.label} says it was trained until {until}, but it was pinned as {pin.trained_until}")
        return forecaster


def _successive(entries: list[ServedModel]) -> list[ServedModel]:
    """Each version of a (team, model, symbol) serves until the next one starts (sorted by serve_from)."""
    bounded = []
    for entry, after in zip(entries, [*entries[1:], None], strict=False):
        same = after is not None and (after.team, after.name, after.symbol) == (entry.team, entry.name, entry.symbol)
        bounded.append(replace(entry, serve_until=after.serve_from) if same and after is not None else entry)
    return bounded


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
