"""A real-money Alpaca account needs a second, explicit setting; one flipped flag never reaches it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from consumers.trader import live_gateways
from redblue.adapters.alpaca.broker import AlpacaBroker
from redblue.app.cli import main
from redblue.core.arena import Arena, load_arena
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings, team_alpaca_credentials
from tests.factories import BASELINES

ALPACA_RED = """
teams:
  red:
    trade_with: drift
    account: {broker: alpaca}
    models:
      - {name: drift, kind: drift}
"""


@pytest.fixture
def red_on_alpaca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Arena:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("REDBLUE_RED_ALPACA_KEY", "AKLIVE1234")
    monkeypatch.setenv("REDBLUE_RED_ALPACA_SECRET", "live-secret-5678")
    monkeypatch.setenv("REDBLUE_RED_ALPACA_PAPER", "false")
    monkeypatch.delenv("REDBLUE_ALLOW_REAL_MONEY", raising=False)
    text = BASELINES.read_text().split("teams:")[0] + ALPACA_RED + "strategy: {initial_cash: 100000}\n"
    (tmp_path / "arena.yaml").write_text(text)
    return load_arena(tmp_path / "arena.yaml")


def test_paper_false_alone_is_refused_with_what_to_set(red_on_alpaca: Arena) -> None:
    with pytest.raises(RedblueError) as caught:
        team_alpaca_credentials("red", Settings())
    text = str(caught.value)
    assert "REDBLUE_RED_ALPACA_PAPER=false points team red at a REAL-MONEY Alpaca account; refused" in text
    assert "REDBLUE_ALLOW_REAL_MONEY=red" in text
    assert "AKLIVE1234" not in text and "live-secret-5678" not in text


def test_an_opt_in_for_another_team_does_not_count(red_on_alpaca: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDBLUE_ALLOW_REAL_MONEY", "blue")
    with pytest.raises(RedblueError, match="REAL-MONEY"):
        live_gateways("live", red_on_alpaca, Settings())


def test_with_the_opt_in_the_account_is_built_with_a_loud_warning(
    red_on_alpaca: Arena, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDBLUE_ALLOW_REAL_MONEY", "Blue, RED")
    with caplog.at_level(logging.WARNING):
        gateways = live_gateways("live", red_on_alpaca, Settings())
    assert isinstance(gateways["red"], AlpacaBroker)
    assert "REAL MONEY: team red trades on a live Alpaca account" in caplog.text
    assert "AKLIVE1234" not in caplog.text and "live-secret-5678" not in caplog.text
    assert "AKLIVE1234" not in repr(team_alpaca_credentials("red", Settings()))  # SecretStr


def test_the_cli_says_it_in_one_line(red_on_alpaca: Arena, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trade", "--run", "live", "--arena", str(tmp_path / "arena.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("redblue: REDBLUE_RED_ALPACA_PAPER=false points team red at a REAL-MONEY")
