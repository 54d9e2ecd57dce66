"""``redblue report --html``: one self-contained HTML file of a run that opens offline.

It is the web page itself with its stylesheet, Plotly and its script inlined, and with a
snapshot of every API answer the page asks for (board, teams, symbols, every series, latest
forecasts, the original project's per-symbol block) in place of the API. Nothing is fetched.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redblue.app.web import views
from redblue.app.web.app import STATIC, page, plotly_js
from redblue.core.store import RunStores


def snapshot(stores: RunStores, run: str) -> dict[str, Any]:
    """Every answer the page needs for ``run``, keyed by the API path it would request."""
    detail = views.run_detail(stores, run)
    p = f"runs/{run}"
    responses: dict[str, Any] = {
        "runs": [row for row in views.run_list(stores) if row["run"] == run],
        p: detail,
        f"{p}/leaderboard?by=mase": views.leaderboard(stores, run, "mase"),
        f"{p}/forecasts/latest": views.latest_forecasts(stores, run),
        f"{p}/original": views.original(stores, run),
    }
    for team in detail["arena"]["teams"]:
        responses[f"{p}/teams/{team['team']}"] = views.team_detail(stores, run, team["team"])
    for symbol in detail["arena"]["symbols"]:
        responses[f"{p}/symbols/{symbol['symbol']}"] = views.symbol_detail(stores, run, symbol["symbol"])
    for row in views.series_list(stores, run)["rows"]:
        path = f"{row['team']}/{row['model']}/{row['symbol']}"
        responses[f"{p}/series/{path}"] = views.series_detail(stores, run, row["team"], row["model"], row["symbol"])
    return responses


def _inline(text: str) -> str:
    """``text`` made safe inside a ``<script>`` element."""
    return text.replace("</", "<\\/")


def render_html(stores: RunStores, run: str, written_at: datetime) -> str:
    """The page of ``run`` as one HTML document with everything inlined."""
    data = {"written_at": written_at.strftime("%Y-%m-%d %H:%M UTC"), "responses": snapshot(stores, run)}
    scripts = (
        f"<script>{_inline(plotly_js().read_text())}</script>\n"
        f"<script>window.REDBLUE_SNAPSHOT = {_inline(json.dumps(data, separators=(',', ':')))};</script>\n"
        f"<script>{_inline((STATIC / 'app.js').read_text())}</script>\n"
    )
    html = page(0)
    html = html.replace(
        '<link rel="stylesheet" href="static/style.css">', f"<style>\n{(STATIC / 'style.css').read_text()}</style>"
    )
    html = html.replace('<script src="static/vendor/plotly.min.js"></script>\n', "")
    html = html.replace('<script src="static/app.js" defer></script>\n', "")
    html = html.replace(' <a id="api-link" href="docs">API</a>', "")
    html = html.replace("<title>redblue leaderboard</title>", f"<title>redblue · {run}</title>")
    return html.replace("</body>", scripts + "</body>")
