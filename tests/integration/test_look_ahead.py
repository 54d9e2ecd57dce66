"""No look-ahead through the whole pipeline, with the Ludwig team models, by a check that can fail.

The reference arena's team models (trained once per session up to 2023-12-29, the ``ludwig_store``
fixture) plus a team whose model cheats: a team-model-like ONNX export whose z-score statistics
were computed over the whole bar file, the future included (its metadata claims the honest
cutoff, so the cutoff check lets it through). Each run fits that model from the data directory
the run reads, as the team would have. The runs are real simulations (replay, Faust processor,
trader, scorer) over 45 target days from 2024-01-02, once on the bar files and once on a copy
whose bars after X = 2024-02-15 are poisoned. Every forecast as of X or earlier must be
byte-identical (and the orders decided from them); the same check must catch the cheat and
nothing else. Allocations of 45 000 per symbol against 100 000 of cash make the team accounts
run short, and a second clean run must give byte-identical files.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from redblue.adapters.kafka import read_topic
from redblue.adapters.mlflow.training import TrainingRuns
from redblue.app.provision import reset_run
from redblue.app.simulate import SimulationRequest, simulate
from redblue.core import model_names as names
from redblue.core.arena import DEFAULT_ARENA, Arena, load_arena
from redblue.core.bars import DATA_DIR
from schemas import Forecast
from schemas.topics import FORECASTS
from tests.integration.conftest import TrainedStore
from tests.lookahead import diverging, fitted_onnx, poison
from training.train import train

pytestmark = pytest.mark.integration

X = date(2024, 2, 15)
START, DAYS = date(2024, 1, 2), 45
FILES = ("forecasts.csv", "orders.csv", "fills.csv", "equity.csv", "summary.json")


def cheating_arena(path: Path) -> Arena:
    """The reference arena, a team ``leak`` with the cheating model, and allocations the cash cannot cover."""
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_ARENA.read_text())
    raw["name"] = "look-ahead"
    raw["teams"]["leak"] = {"models": [{"name": "norm", "kind": "ludwig", "params": {"lookback": 5}}]}
    raw["strategy"]["allocation"] = 45_000
    path.write_text(yaml.safe_dump(raw))
    return load_arena(path)


def publish_cheat(store: TrainedStore, data_dir: Path, arena: Arena) -> None:
    """Fit the cheating model from ``data_dir`` and make it the champion (as ``training/`` registers models)."""
    runs = TrainingRuns(store.settings)
    for symbol in arena.symbols:
        proto = fitted_onnx(data_dir, "leak", "norm", symbol, store.until, leak="normalisation")
        name = names.registry_name(store.settings.registry_prefix, "leak", "norm", symbol)
        run_id = runs.start(name, {"redblue.kind": "training"})
        metadata = {p.key: p.value for p in proto.metadata_props}
        runs.publish(run_id, proto, name, 5, metadata, {names.TAG_UNTIL: store.until.isoformat()})


def run(store: TrainedStore, arena: Arena, path: Path, data_dir: Path, run_id: str, out: Path) -> list[Forecast]:
    req = SimulationRequest(START, DAYS, arena, path, data_dir=data_dir, run_id=run_id, out=out, timeout=300)
    simulate(store.settings, req, say=lambda _: None)
    return [e for e in read_topic(store.settings, run_id, FORECASTS) if isinstance(e, Forecast)]


def orders(path: Path, team: str, *, before: date = date.max) -> list[dict[str, str]]:
    """A team's orders decided as of a day before ``before``, run id (and the ids made from it) aside."""
    with path.open() as handle:
        found = [r for r in csv.DictReader(handle) if r["team"] == team and r["as_of"] < before.isoformat()]
    return [{k: v for k, v in r.items() if k not in ("run", "client_order_id")} for r in found]


@pytest.mark.timeout(2400)  # the session's team models are trained in this test's setup if it runs first
def test_team_models_through_the_pipeline_see_nothing_after_x_and_the_cheat_is_caught(
    ludwig_store: TrainedStore, run_id: str, tmp_path: Path
) -> None:
    store = ludwig_store
    path = tmp_path / "arena.yaml"
    arena = cheating_arena(path)
    poisoned = tmp_path / "poisoned"
    poison(DATA_DIR, poisoned, X, arena.symbols)
    again = train(load_arena(DEFAULT_ARENA), store.settings, store.until, data_dir=poisoned, progress=False)
    assert {r.status for r in again} == {"up_to_date"}, "bars after the cutoff change no team model's training data"

    runs = {"clean": f"{run_id}-c", "again": f"{run_id}-a", "poisoned": f"{run_id}-p"}
    try:
        publish_cheat(store, DATA_DIR, arena)
        clean = run(store, arena, path, DATA_DIR, runs["clean"], tmp_path / "clean")
        run(store, arena, path, DATA_DIR, runs["clean"], tmp_path / "again")  # the same run id, the same inputs
        publish_cheat(store, poisoned, arena)  # what the cheating team would have trained from the poisoned files
        dirty = run(store, arena, path, poisoned, runs["poisoned"], tmp_path / "poisoned-run")
    finally:
        for name in runs.values():
            reset_run(store.settings, name)

    assert len(clean) == len(dirty) == 3 * 6 * DAYS  # 3 symbols, 3 baselines and 3 team models
    caught = diverging(clean, dirty, X)
    assert set(caught) == {"leak/norm"}, caught  # the Ludwig team models and the baselines are clean
    assert caught["leak/norm"] >= 3 * 30  # every one of its forecasts before X moved
    assert set(diverging(clean, dirty, date.max)) >= {"red/mlp", "blue/seq"}  # the poison did reach them after X
    for team in ("red", "blue"):  # decided before X: they executed (or were rejected) by X's open
        before = orders(tmp_path / "clean" / "orders.csv", team, before=X)
        assert before and before == orders(tmp_path / "poisoned-run" / "orders.csv", team, before=X)

    for name in FILES:
        assert (tmp_path / "clean" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    every = [r for team in ("red", "blue", "leak") for r in orders(tmp_path / "clean" / "orders.csv", team)]
    rejected = [r for r in every if r["status"] == "rejected"]
    assert rejected and all(r["reason"].startswith("insufficient cash") for r in rejected)  # cash ran short
    shutil.rmtree(tmp_path / "poisoned", ignore_errors=True)
