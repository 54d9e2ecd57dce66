"""Pinned versions: which model version a simulation serves, decided once, before anything runs.

A live season serves whatever a registry alias points at and follows it when it moves. A
simulation must not: the orchestrator resolves every (team, model, symbol) to one version
(or, walking forward, to one version per period), checks the training cutoffs against the
replay (:func:`check_cutoffs`), writes the pins to a file and hands it to the processor, whose
:class:`~processors.book.ModelBook` then serves exactly those versions for the whole run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from redblue.core.calendar import TradingCalendar
from redblue.core.errors import RedblueError


class CutoffError(RedblueError):
    """A model would serve forecasts of days its training data already holds."""


@dataclass(frozen=True)
class Pin:
    """One version of one (team, model, symbol), served from the as-of day ``serve_from`` on.

    ``serve_from`` ``None`` means from the first as-of day of the run. ``trained_until`` and
    ``data_hash`` describe the training data (``None`` for a baseline). ``error`` says why the
    model cannot be served (then ``version`` is empty and its forecasts fail).
    """

    team: str
    model: str
    symbol: str
    version: str
    trained_until: date | None = None
    data_hash: str | None = None
    serve_from: date | None = None
    error: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.team, self.model, self.symbol)

    @property
    def label(self) -> str:
        return f"{self.team}/{self.model} {self.symbol} version {self.version}"

    def as_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Pin:
        dates = {k: date.fromisoformat(raw[k]) if raw.get(k) else None for k in ("trained_until", "serve_from")}
        return cls(**{**raw, **dates})


def sorted_pins(pins: Iterable[Pin]) -> list[Pin]:
    """Pins by key, then by the day they start serving."""
    return sorted(pins, key=lambda p: (p.key, p.serve_from or date.min))


def write_pins(path: Path, pins: Iterable[Pin]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([p.as_json() for p in sorted_pins(pins)], indent=1, sort_keys=True) + "\n")


def read_pins(path: Path) -> list[Pin]:
    try:
        raw = json.loads(path.read_text())
        return [Pin.from_json(item) for item in raw]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise RedblueError(f"cannot read pinned model versions from {path}: {err}") from err


def check_cutoffs(pins: Sequence[Pin], first_as_of: date) -> None:
    """Refuse every pin whose training data reaches past the first as-of day it serves.

    A version may serve the forecast as of day D (of the close of D+1) only if its training data
    ends on or before D: everything up to D's close is known when that forecast is made, nothing
    after it is. ``first_as_of`` is the run's first as-of day (a pin's ``serve_from`` overrides it).
    Raises :class:`CutoffError` naming every offending model, version and date.
    """
    bad = [
        p for p in sorted_pins(pins) if p.trained_until is not None and p.trained_until > (p.serve_from or first_as_of)
    ]
    if not bad:
        return
    lines = [
        f"{p.label} was trained on data up to {p.trained_until}, after {p.serve_from or first_as_of}, "
        "the first as-of day it would serve"
        + ("" if p.data_hash is None else f" (training data sha256 {p.data_hash[:12]})")
        for p in bad
    ]
    raise CutoffError(
        f"refusing to simulate with {len(bad)} model version(s) that have seen the answers: "
        + "; ".join(lines)
        + f". Train versions with data up to {first_as_of} at the latest (bin/redblue train --until {first_as_of}), "
        "or let the simulation train them: --train-missing"
    )


def walk_forward_cutoffs(first_as_of: date, last_as_of: date, every: int, calendar: TradingCalendar) -> list[date]:
    """The training cutoffs of a walk-forward simulation: the first as-of day, then every ``every`` sessions.

    A version trained up to cutoff C serves from the session after C (its first, from the first
    as-of day itself); a cutoff on or after the last as-of day would serve nothing and is left out.
    """
    if every < 1:
        raise RedblueError(f"--retrain-every must be at least 1 trading day, not {every}")
    sessions = calendar.sessions(first_as_of, last_as_of)
    return [day for day in sessions[::every] if day == first_as_of or day < last_as_of]


def serve_from(cutoff: date, first_as_of: date, calendar: TradingCalendar) -> date | None:
    """The first as-of day a version trained up to ``cutoff`` serves (``None``: from the run's start)."""
    return None if cutoff <= first_as_of else calendar.next_session(cutoff)
