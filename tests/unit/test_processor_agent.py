"""The Faust agent, fed through ``agent.test_context()`` (no broker): decode, window, forecast, send."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock

from processors.app import create_app
from processors.forecasting import Horizon
from redblue.core.access import processor_changelogs
from redblue.core.arena import load_arena
from redblue.core.calendar import get_calendar
from redblue.core.settings import Settings
from schemas import Bar, BarProcessed, BarRevision, DeadLetter, Forecast, decode, decode_all, encode
from tests.factories import BASELINES, T0, bar

SESSIONS = get_calendar().sessions(date(2024, 1, 2), date(2024, 3, 1))


def run_agent(tmp_path: Path, messages: list[bytes]) -> dict[str, list[Any]]:
    settings = Settings(home=tmp_path, stack_dir=tmp_path / "stack", security=False)
    app = create_app(settings, "t1", load_arena(BASELINES), Horizon())
    app.finalize()
    app.conf.store = "memory://"
    (agent,) = app.agents.values()
    sent: dict[str, list[Any]] = {}

    async def capture(self: Any, key: Any = None, value: Any = None, **_: Any) -> None:
        sent.setdefault(self.get_topic_name().rsplit(".", 1)[-1], []).append(decode(value))

    async def produce(topic: str, key: Any, value: Any, *_: Any) -> None:
        sent.setdefault(topic.rsplit(".", 1)[-1], []).extend(decode_all(value))

    async def feed() -> None:
        with mock.patch("faust.topics.Topic.send", capture), mock.patch.object(app.producer, "send", produce):
            async with agent.test_context() as ctx:
                for raw in messages:
                    await ctx.put(raw, key=b"AAPL")

    asyncio.run(feed())
    sent["windows"] = [dict(app.tables["windows"].data)]
    return sent


def test_agent_forecasts_every_model_then_marks_the_bar(tmp_path: Path) -> None:
    bars = [bar("AAPL", d, 100.0 + i) for i, d in enumerate(SESSIONS[:25])]
    sent = run_agent(tmp_path, [encode(b) for b in bars])
    events = sent["forecasts"]
    last = [e for e in events if getattr(e, "as_of", None) == SESSIONS[24]]
    assert {(f.team, f.model) for f in last} == {("baseline", "persistence"), ("red", "drift"), ("blue", "trend")}
    assert isinstance(events[-1], BarProcessed) and events[-1].bar == bars[-1]
    assert sum(isinstance(e, BarProcessed) for e in events) == 25
    assert all(isinstance(e, Forecast | BarProcessed) for e in events)
    [table] = sent["windows"]
    assert [Bar.model_validate_json(b).date for b in table["AAPL"]] == SESSIONS[:25]  # the window survives


def test_agent_dead_letters_garbage_and_re_emits_a_redelivered_bar(tmp_path: Path) -> None:
    b = bar("AAPL", SESSIONS[0], 100.0)
    conflicting = bar("AAPL", SESSIONS[0], 90.0)
    sent = run_agent(tmp_path, [b"{not json", encode(b), encode(b), encode(conflicting)])
    letters = sent["deadletter"]
    assert [type(x) for x in letters] == [DeadLetter, DeadLetter]
    assert "not JSON" in letters[0].reason and letters[0].original == b"{not json"
    assert "conflicting bar" in letters[1].reason
    markers = [e for e in sent["forecasts"] if isinstance(e, BarProcessed)]
    assert [m.bar for m in markers] == [b, b]  # the redelivery is marked again, the conflict is not


def test_agent_re_sends_the_forecasts_of_a_bar_redelivered_after_a_crash(tmp_path: Path) -> None:
    """The window table already holds bar D (stored before the crash); D comes again."""
    bars = [bar("AAPL", d, 100.0 + i) for i, d in enumerate(SESSIONS[:25])]
    sent = run_agent(tmp_path, [encode(b) for b in [*bars, bars[-1]]])
    events = sent["forecasts"]
    of_last = [e for e in events if getattr(e, "as_of", None) == SESSIONS[24] or getattr(e, "bar", None) == bars[-1]]
    first, again = of_last[: len(of_last) // 2], of_last[len(of_last) // 2 :]
    assert len(first) == 4 and [type(e) for e in again] == [type(e) for e in first]
    assert [e.model_dump(exclude={"produced_at"}) for e in again] == [
        e.model_dump(exclude={"produced_at"}) for e in first
    ]


def test_agent_forwards_a_revision_and_forecasts_later_from_the_revised_bar(tmp_path: Path) -> None:
    final = [bar("AAPL", d, 100.0 + i) for i, d in enumerate(SESSIONS[:25])]
    first_print = final[20].model_copy(update={"close": 150.0, "high": 151.5})
    revision = BarRevision(bar=final[20], previous=first_print, produced_at=final[20].produced_at)
    live = [*final[:20], first_print, revision, *final[21:]]

    with_revision = run_agent(tmp_path / "live", [encode(b) for b in live])["forecasts"]
    clean = run_agent(tmp_path / "clean", [encode(b) for b in final])["forecasts"]

    assert revision in with_revision  # forwarded, in its place after the revised bar's marker
    assert with_revision.index(revision) == next(
        i + 1 for i, e in enumerate(with_revision) if isinstance(e, BarProcessed) and e.bar == first_print
    )
    made = [e.model_dump(exclude={"produced_at"}) for e in with_revision if isinstance(e, Forecast)]
    expected = [e.model_dump(exclude={"produced_at"}) for e in clean if isinstance(e, Forecast)]
    as_of = SESSIONS[20]
    assert [f for f in made if f["as_of"] != as_of] == [f for f in expected if f["as_of"] != as_of]
    assert [f["last_close"] for f in made if f["as_of"] == as_of] == [150.0] * 3  # made from the first print


def test_the_worker_does_not_turn_logging_down_to_debug(tmp_path: Path) -> None:
    """Faust's spinner sets the root logger to DEBUG: a log record for every message sent."""
    import logging

    from processors.app import build_worker

    app = create_app(
        Settings(home=tmp_path, stack_dir=tmp_path / "stack", security=False), "t1", load_arena(BASELINES), Horizon()
    )
    worker = build_worker(app, "warn")
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.WARNING)
        worker.on_setup_root_logger(root, logging.WARNING)
        assert root.level == logging.WARNING
    finally:
        root.setLevel(before)


def test_the_stopped_worker_closes_its_loop_once_its_cancelled_tasks_have_finished(tmp_path: Path) -> None:
    """mode's worker ran the loop a fixed second after stopping: each simulation waited for it."""
    import asyncio
    import time

    from processors.app import build_worker

    app = create_app(
        Settings(home=tmp_path, stack_dir=tmp_path / "stack", security=False), "t1", load_arena(BASELINES), Horizon()
    )
    worker = build_worker(app, "warn")
    cleaned: list[str] = []

    async def service() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # a cancelled task still cleaning up when the sentinel starts
            cleaned.append("yes")
            raise

    async def stop() -> float:
        task = asyncio.create_task(service())
        await asyncio.sleep(0)
        task.cancel()
        began = time.monotonic()
        await worker._sentinel_task()
        return time.monotonic() - began

    took = asyncio.run(stop())
    assert cleaned == ["yes"]  # waited for it
    assert took < 0.5  # and no longer (mode's own waits 1 s whatever runs)


def test_a_batch_of_bars_in_one_message_gives_what_one_bar_per_message_gives(tmp_path: Path) -> None:
    from schemas import encode_many

    bars = [bar("AAPL", d, 100.0 + i) for i, d in enumerate(SESSIONS[:25])]
    one_by_one = run_agent(tmp_path / "a", [encode(b) for b in bars])["forecasts"]
    together = run_agent(tmp_path / "b", [encode_many(bars[:10]), encode_many(bars[10:])])["forecasts"]
    strip = [e.model_copy(update={"produced_at": T0}) for e in one_by_one]
    assert [e.model_copy(update={"produced_at": T0}) for e in together] == strip


def test_the_admin_creates_exactly_the_changelogs_the_worker_uses(tmp_path: Path) -> None:
    """The orchestrator creates the processor's changelog topics before its worker starts (named
    without importing Faust); they must be the app's own, with the bars topic's partitions."""
    settings = Settings(home=tmp_path, stack_dir=tmp_path / "stack", security=False)
    app = create_app(settings, "t1", load_arena(BASELINES), Horizon())
    assert {t.changelog_topic_name: t.partitions for t in app.tables.values()} == processor_changelogs("t1")


def test_a_prepared_worker_starts_its_tables_without_faust_s_pause(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, stack_dir=tmp_path / "stack", security=False)
    slept: dict[str, list[float]] = {}
    for prepared in (False, True):
        app = create_app(settings, "t1", load_arena(BASELINES), Horizon(), prepared=prepared)
        tables: Any = app.tables
        pauses = slept.setdefault(str(prepared), [])

        async def sleep(seconds: float, pauses: list[float] = pauses) -> None:
            pauses.append(seconds)

        async def nothing() -> None:
            pass

        with (
            mock.patch.object(tables, "sleep", sleep),
            mock.patch.object(tables, "_update_channels", nothing),
            mock.patch.object(type(tables.recovery), "start", lambda _self: nothing()),
        ):
            asyncio.run(tables.on_start())
    assert slept == {"False": [1.0], "True": []}  # Faust's own manager pauses; the prepared one does not
