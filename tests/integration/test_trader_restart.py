"""A trader restarted on a finished run rebuilds itself from the real topics and doubles nothing."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

import pytest

from consumers.trader import bootstrap_trader, run_trader
from redblue.adapters.kafka import ConsumerStats, read_topic
from redblue.app.simulate import simulate
from redblue.core.settings import Settings
from schemas import Fill, Order, PositionMark
from schemas.topics import FILLS, FORECASTS, ORDERS
from tests.integration.test_pipeline import request

pytestmark = pytest.mark.integration


def test_a_restarted_trader_re_reads_every_forecast_and_sends_nothing_twice(
    settings: Settings, run_id: str, tmp_path: Path
) -> None:
    req = request(("SAP", "AAPL"), date(2024, 4, 1), 15, run_id, tmp_path)
    simulate(settings, req)
    orders, fills = read_topic(settings, run_id, ORDERS), read_topic(settings, run_id, FILLS)
    assert any(isinstance(e, Order) for e in orders) and any(isinstance(e, Fill) for e in fills)

    trader = bootstrap_trader(run_id, req.arena)  # fresh simulated brokers: all state from the topics
    stop = threading.Event()
    stats: list[ConsumerStats] = []
    thread = threading.Thread(
        target=lambda: stats.append(run_trader(settings, run_id, trader, stop, tick_seconds=0.5)), daemon=True
    )
    thread.start()
    try:
        time.sleep(15.0)  # long enough to re-read the whole forecasts topic from its start
    finally:
        stop.set()
        thread.join(timeout=60)
    assert trader.halted == {}
    assert stats and stats[0].consumed == len(read_topic(settings, run_id, FORECASTS))
    assert read_topic(settings, run_id, ORDERS) == orders
    assert read_topic(settings, run_id, FILLS) == fills
    marks = [e for e in fills if isinstance(e, PositionMark)]
    assert len({(m.team, m.symbol, m.as_of) for m in marks}) == len(marks)  # one mark per team, symbol and day
