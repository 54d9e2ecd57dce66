"""``redblue report --html``: one self-contained file (no service, in-memory run stores)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from redblue.app.web.app import plotly_js
from redblue.app.web.share import render_html, snapshot
from tests.unit.test_web_api import RUN, populated

WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def test_the_report_holds_every_answer_the_page_asks_for() -> None:
    stores = populated()
    answers = snapshot(stores, RUN)
    assert {f"runs/{RUN}/teams/{t}" for t in ("blue", "red")} <= set(answers)
    assert {f"runs/{RUN}/symbols/{s}" for s in ("AAPL", "AMZN", "SAP")} <= set(answers)
    assert f"runs/{RUN}/series/blue/alt/AAPL" in answers and f"runs/{RUN}/series/blue/alt/SAP" not in answers
    assert [r["run"] for r in answers["runs"]] == [RUN]


def test_the_report_is_one_file_with_the_numbers_and_nothing_to_fetch() -> None:
    stores = populated()
    html = render_html(stores, RUN, WHEN)
    board = snapshot(stores, RUN)[f"runs/{RUN}/leaderboard?by=mase"]
    for row in board["rows"]:
        assert json.dumps(row["values"]["mae"]) in html
    assert "Simulation period: 2024-01-03 + 11 days" in html and "Mean Absolute Error (MAE): " in html
    assert not re.search(r"""<(script|link|img|iframe)[^>]*\b(src|href)=["'](?!data:)""", html)
    outside_plotly = html.replace(plotly_js().read_text().replace("</", "<\\/"), "")
    assert len(outside_plotly) < len(html) - 1_000_000  # Plotly is inlined
    assert "http://" not in outside_plotly and "https://" not in outside_plotly
    assert "2026-01-02 03:04 UTC" in html
