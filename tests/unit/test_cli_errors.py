"""Every failure a user can meet at the command line is one clear line, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from redblue.app.cli import main
from redblue.core.errors import RedblueError
from redblue.stack import StackError


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Settings that point at nothing of the real stack."""
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("REDBLUE_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.setenv("REDBLUE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.fixture
def not_kafka() -> Iterator[int]:
    """A port held by a program that is not Kafka (it accepts connections and says nothing)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("redblue: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_stack_errors_are_redblue_errors() -> None:
    assert issubclass(StackError, RedblueError)


def test_a_stack_that_cannot_start_says_why_in_one_line(
    isolated: Path, not_kafka: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDBLUE_KAFKA_BOOTSTRAP", f"127.0.0.1:{not_kafka}")
    line = _one_line_error(capsys, main(["stack", "up"]))
    assert f"port {not_kafka}" in line and "is not kafka" in line


def test_a_model_that_cannot_be_trained_says_why_in_one_line(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arena = isolated / "arena.yaml"
    arena.write_text("name: bad\nsymbols: [AAPL]\nteams:\n  red: {models: [{name: mlp, kind: ludwig}]}\n")
    line = _one_line_error(capsys, main(["train", "--arena", str(arena)]))
    assert "red/mlp: a ludwig model needs params.config and params.lookback" in line


def test_a_simulation_outside_the_calendar_names_what_the_calendar_and_data_cover(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(capsys, main(["simulate", "--start", "1900-01-02", "--days", "5", "--no-mlflow"]))
    assert "1900-01-02 lies outside the XNYS calendar, which covers" in line
    assert "the data cover AAPL 1980-12-12 to" in line
