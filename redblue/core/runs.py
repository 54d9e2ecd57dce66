"""A run's description in its leaderboard store: what ``redblue serve`` says about a run.

The simulation orchestrator writes its kind, status and dates; the scorer writes the arena, so
the leaderboard can be read from the store alone (no arena file, no Kafka). A scorer started on
a run nobody described (a live season) marks it ``live``. Wall-clock fields live here only, never
in a simulation's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import ValidationError

from redblue.core.arena import Arena
from redblue.core.clock import Clock, utc_now
from redblue.core.store import LeaderboardStore

SIMULATION, LIVE = "simulation", "live"
RUNNING, COMPLETE, FAILED = "running", "complete", "failed"


@dataclass(frozen=True)
class RunInfo:
    """What the store knows about a run; ``arena`` is ``None`` for a run no scorer described."""

    run: str
    kind: str  # simulation | live | unknown
    status: str  # running | complete | failed (simulations), live, or unknown
    arena: Arena | None
    start: date | None  # a simulation's first and last target day and its number of days
    last_target: date | None
    days: int | None
    started_at: str | None  # UTC, ISO 8601
    finished_at: str | None
    error: str | None


def describe_simulation(
    store: LeaderboardStore, arena: Arena, start: date, last_target: date, days: int, clock: Clock = utc_now
) -> None:
    """Describe a simulation that is about to run."""
    store.set_meta(
        {
            "kind": SIMULATION,
            "status": RUNNING,
            "arena": arena.model_dump_json(),
            "start": start.isoformat(),
            "last_target": last_target.isoformat(),
            "days": str(days),
            "started_at": clock().isoformat(),
        }
    )


def note_arena(store: LeaderboardStore, arena: Arena, clock: Clock = utc_now) -> None:
    """The scorer's part: the arena it scores with; a run nobody described is a live season."""
    store.set_meta({"arena": arena.model_dump_json()})
    store.set_meta({"kind": LIVE, "status": LIVE, "started_at": clock().isoformat()}, only_missing=True)


def finish(store: LeaderboardStore, status: str, error: str = "", clock: Clock = utc_now) -> None:
    """Mark a simulation ``complete`` or ``failed`` (with the reason)."""
    store.set_meta({"status": status, "finished_at": clock().isoformat(), "error": error})


def run_info(run: str, store: LeaderboardStore) -> RunInfo:
    """Read the description back; fields never written are ``None`` (or ``unknown``)."""
    meta = store.meta()
    return RunInfo(
        run=run,
        kind=meta.get("kind", "unknown"),
        status=meta.get("status", "unknown"),
        arena=_arena(meta.get("arena")),
        start=_day(meta.get("start")),
        last_target=_day(meta.get("last_target")),
        days=int(meta["days"]) if meta.get("days", "").isdigit() else None,
        started_at=meta.get("started_at") or None,
        finished_at=meta.get("finished_at") or None,
        error=meta.get("error") or None,
    )


def _arena(raw: str | None) -> Arena | None:
    if not raw:
        return None
    try:
        return Arena.model_validate_json(raw)
    except ValidationError:
        return None  # written by another version of redblue: shown as a run without an arena


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
