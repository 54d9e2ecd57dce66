from __future__ import annotations

from pathlib import Path

import pytest

from redblue.core.arena import ArenaError, load_arena


def test_reference_arena_loads() -> None:
    arena = load_arena()
    assert arena.symbols == ("AAPL", "AMZN", "SAP")
    assert {t for t, _ in arena.all_models()} == {"baseline", "red", "blue"}
    assert arena.teams["red"].trading_model == "mlp"
    assert {m.kind for _, m in arena.all_models()} == {"persistence", "drift", "trend", "ludwig"}


def test_missing_file_and_bad_yaml_have_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ArenaError, match="cannot read arena file"):
        load_arena(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("teams: [unclosed")
    with pytest.raises(ArenaError, match="not valid YAML"):
        load_arena(bad)


def test_invalid_arena_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("name: x\nsymbols: [AAPL]\nteams: {red: {models: [{name: m, kind: drift}], trade_with: other}}\n")
    with pytest.raises(ArenaError, match="trade_with 'other'"):
        load_arena(path)


def test_symbols_override_restricts_models() -> None:
    arena = load_arena().with_symbols(("AAPL",))
    assert all(arena.symbols_of(m) == ("AAPL",) for _, m in arena.all_models())
    with pytest.raises(ArenaError):
        arena.with_symbols(("aapl lower",))
