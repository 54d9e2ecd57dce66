"""The web page in a real browser (Debian's chromium driven by Playwright) against a real run.

One short simulation through the real pipeline (baselines arena) under a fresh Redis key prefix
is served by the real server on a free port. Screenshots for the reviewer go to out/screenshots/.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.leaderboard import Scoreboard
from redblue.adapters.redis_store import RedisStore, RedisStores
from redblue.app.cli import main
from redblue.app.provision import reset_run
from redblue.app.simulate import SimulationRequest, simulate
from redblue.app.web.app import create_app, running
from redblue.core.arena import REPO_ROOT, load_arena
from redblue.core.calendar import get_calendar
from redblue.core.settings import Settings
from schemas import BarProcessed, Forecast
from tests.factories import BASELINES, T0, bar

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO_ROOT / "out" / "screenshots"
LAPTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


@dataclass(frozen=True)
class Served:
    settings: Settings
    run: str
    url: str

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/{path}", timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A 12-day simulation of AAPL and SAP under a fresh key prefix, served with a 0.3 s poll."""
    # a fresh prefix below the stack's: the services' Redis users may only touch keys under it
    mine = settings.model_copy(update={"redis_prefix": f"{settings.redis_prefix}:t-web-{uuid.uuid4().hex[:8]}"})
    run = f"t-web-{uuid.uuid4().hex[:8]}"
    arena = load_arena(BASELINES).with_symbols(("AAPL", "SAP"))
    req = SimulationRequest(
        start=date(2024, 2, 1), days=12, arena=arena, arena_path=BASELINES, run_id=run,
        out=tmp_path_factory.mktemp("sim"), timeout=120,
    )  # fmt: skip
    simulate(mine, req)
    stores = RedisStores.from_settings(mine.for_service("leaderboard"))  # as `serve` runs: Redis read-only
    try:
        with running(create_app(stores, poll_seconds=0.3)) as url:
            yield Served(mine, run, url)
    finally:
        stores.close()
        reset_run(mine, run)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def open_page(browser: Any, url: str, viewport: dict[str, int] = LAPTOP) -> Any:
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert errors == []
    assert page.locator("#error").is_hidden()
    return page


def table(page: Any) -> list[dict[str, Any]]:
    """The leaderboard as shown: member, n, and per metric the raw value and the text."""
    return page.eval_on_selector_all(
        "#board tbody tr",
        """rows => rows.map(tr => ({
            member: tr.dataset.member,
            n: Number(tr.children[2].textContent),
            cells: Object.fromEntries([...tr.querySelectorAll('td[data-metric]')].map(
                td => [td.dataset.metric, {value: td.dataset.value ?? null, text: td.textContent}])),
        }))""",
    )


def shown_number(text: str) -> float:
    return float(re.sub(r"[,+%]", "", text))


def test_the_table_shows_the_apis_numbers(served: Served, browser: Any) -> None:
    page = open_page(browser, f"{served.url}/?run={served.run}")
    api = {r["member"]: r for r in served.api(f"runs/{served.run}/leaderboard")["rows"]}
    shown = table(page)
    assert [r["member"] for r in shown] == list(api)  # sorted by MASE, as the API
    for row in shown:
        assert row["n"] == api[row["member"]]["count"] == 24
        for metric, cell in row["cells"].items():
            expected = api[row["member"]]["values"][metric]
            if expected is None:
                assert cell["value"] is None and cell["text"] == "\N{EN DASH}"
                continue
            assert float(cell["value"]) == expected
            scale = 100 if metric in {"total_return", "max_drawdown"} else 1
            decimals = len(cell["text"].split(".")[1]) if "." in cell["text"] else 0
            assert shown_number(cell["text"]) == pytest.approx(expected * scale, abs=0.51 * 10**-decimals)
    page.close()


def test_every_column_sorts_like_the_api(served: Served, browser: Any) -> None:
    page = open_page(browser, f"{served.url}/?run={served.run}")
    metrics = served.api(f"runs/{served.run}/leaderboard")["metrics"]
    assert {"mae", "mase", "direction_pct", "pnl", "sharpe"} <= {m["name"] for m in metrics}
    for metric in metrics:
        page.click(f"#board th[data-metric='{metric['name']}']")
        expected = [r["member"] for r in served.api(f"runs/{served.run}/leaderboard?by={metric['name']}")["rows"]]
        assert [r["member"] for r in table(page)] == expected, metric["name"]
        assert page.inner_text("#sorted-by")
    page.click("#board th[data-metric='pnl']")
    page.click("#board th[data-metric='pnl']")  # again: reversed, unknown values still last
    best_first = [r["member"] for r in served.api(f"runs/{served.run}/leaderboard?by=pnl")["rows"]]
    assert [r["member"] for r in table(page)][:2] == best_first[:2][::-1]
    page.close()


def trace_lengths(page: Any, chart: str) -> dict[str, int]:
    return page.evaluate(f"Object.fromEntries(document.getElementById('{chart}').data.map(t => [t.name, t.x.length]))")


def test_each_chart_holds_the_expected_points(served: Served, browser: Any) -> None:
    page = open_page(browser, f"{served.url}/?run={served.run}")
    teams = {t: served.api(f"runs/{served.run}/teams/{t}") for t in ("blue", "red")}
    for chart in ("equity", "drawdown"):
        assert trace_lengths(page, chart) == {t: len(d["equity"]) for t, d in teams.items()}
    assert {len(d["equity"]) for d in teams.values()} == {13}  # the as-of day before the first target, then 12
    for symbol, member in (("SAP", "red/drift"), ("AAPL", "blue/trend")):
        page.select_option("#symbol", symbol)
        page.select_option("#model", member)
        page.wait_for_function(f"document.getElementById('forecast').data?.some(t => t.name === '{member} forecast')")
        prices = served.api(f"runs/{served.run}/symbols/{symbol}")
        series = served.api(f"runs/{served.run}/series/{member}/{symbol}")
        expected = {f"{symbol} close": len(prices["closes"]), f"{member} forecast": len(series["points"])}
        for team in ("blue", "red"):
            trades = [t for t in prices["trades"] if t["team"] == team]
            if trades:
                expected[f"{team} trades"] = len(trades)
        assert trace_lengths(page, "forecast") == expected
        assert len(series["points"]) == 12 and len(prices["closes"]) == 60 + 12
    page.close()


def test_a_late_answer_for_an_earlier_choice_does_not_replace_the_chart(served: Served, browser: Any) -> None:
    """Choosing a symbol draws the current model's forecast, choosing a model right after draws
    another's: the first answer, if it comes last, must not paint over the second (a test here
    once waited 30 s for a chart that a late answer had replaced)."""
    page = open_page(browser, f"{served.url}/?run={served.run}")
    first = page.input_value("#model")
    other = "red/drift" if first != "red/drift" else "blue/trend"
    page.evaluate(
        """member => {
            const real = window.fetch;
            window.fetch = (url, ...rest) => String(url).includes(`/series/${member}/`)
                ? new Promise(resolve => setTimeout(resolve, 1000)).then(() => real(url, ...rest))
                : real(url, ...rest);
        }""",
        first,
    )
    page.select_option("#symbol", "SAP")  # draws `first`: its answer comes a second late
    page.select_option("#model", other)  # draws `other` at once
    page.wait_for_function(f"document.getElementById('forecast').data?.some(t => t.name === '{other} forecast')")
    page.wait_for_timeout(1500)  # the late answer has come
    names = page.evaluate("document.getElementById('forecast').data.map(t => t.name)")
    assert f"{other} forecast" in names and f"{first} forecast" not in names
    page.close()


def test_a_new_score_appears_without_a_reload(served: Served, browser: Any) -> None:
    page = open_page(browser, f"{served.url}/?run={served.run}")
    page.evaluate("window.notReloaded = true")
    before = {r["member"]: r for r in table(page)}
    last = next(
        Forecast.model_validate(f)
        for f in served.api(f"runs/{served.run}/forecasts/latest")["forecasts"]
        if (f["team"], f["model"], f["symbol"]) == ("red", "drift", "SAP")
    )  # its target is the last day of the simulation: forecast one more day, then let it happen
    calendar = get_calendar()
    as_of, target = last.target, calendar.offset(last.target, 1)
    close = served.api(f"runs/{served.run}/symbols/SAP")["closes"][-1]["close"]
    forecast = last.model_copy(update={"as_of": as_of, "target": target, "last_close": close})
    new_bar = bar("SAP", target, close * 1.01)
    with RedisStore.from_settings(served.settings, served.run) as store:
        board = Scoreboard(store, load_arena(BASELINES).with_symbols(("AAPL", "SAP")))
        board.on_forecast(forecast)
        scored = board.on_bar_processed(BarProcessed(run=served.run, bar=new_bar, forecasts=1, produced_at=T0))
    assert len(scored) == 1
    page.wait_for_function("document.querySelector(\"#board tr[data-member='red/drift'] td:nth-child(3)\")"
                           ".textContent === '25'", timeout=15_000)  # fmt: skip
    after = {r["member"]: r for r in table(page)}
    api = {r["member"]: r for r in served.api(f"runs/{served.run}/leaderboard")["rows"]}
    assert float(after["red/drift"]["cells"]["mae"]["value"]) == api["red/drift"]["values"]["mae"]
    assert after["red/drift"]["cells"]["mae"] != before["red/drift"]["cells"]["mae"]
    assert after["blue/trend"] == before["blue/trend"]
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#board tr.flash").count() == 1
    last_bar = served.api(f"runs/{served.run}/progress")["bars"]["SAP"]
    assert last_bar == target.isoformat() == calendar.offset(date(2024, 2, 1), 12).isoformat()
    page.close()


def test_screenshots_for_the_reviewer(served: Served, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        page = open_page(browser, f"{served.url}/?run={served.run}", viewport)
        page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the {name} page scrolls sideways ({width}px)"
        page.close()
    assert (SHOTS / "laptop.png").stat().st_size > 10_000 and (SHOTS / "phone.png").stat().st_size > 10_000


def test_the_shared_report_opens_offline(
    served: Served, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    for name, value in served.settings.model_dump().items():
        if value is not None:
            shown = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            monkeypatch.setenv(f"REDBLUE_{name.upper()}", shown)
    assert main(["report", "--run", served.run, "--html", str(target)]) == 0
    html = target.read_text()
    api = served.api(f"runs/{served.run}/leaderboard")
    assert all(json.dumps(r["values"]["mae"]) in html for r in api["rows"])
    requests: list[str] = []
    context = browser.new_context(offline=True)
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.goto(target.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    shown = table(page)
    assert [r["member"] for r in shown] == [r["member"] for r in api["rows"]]
    assert trace_lengths(page, "equity") == {t: 13 for t in ("blue", "red")}
    assert "Simulation period: 2024-02-01 + 12 days" in page.inner_text("#original")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "report.png", full_page=True)
    context.close()
