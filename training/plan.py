"""What to train: one job per (team, Ludwig model, symbol) of the arena, and what makes it up to date.

A registered version is up to date when its tags (:func:`version_tags`) equal what the job would
train from now: the same config, data, ``until``, feature version and lookback.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from redblue.core import model_names as names
from redblue.core.arena import REPO_ROOT, Arena
from redblue.core.errors import RedblueError
from redblue.core.features import FEATURES_VERSION
from training.dataset import DEFAULT_TRAIN_FROM, SPLIT, TrainingData
from training.ludwig.export import input_layout


class TrainingError(RedblueError):
    """A model cannot be trained, exported or registered; the message says which and why."""


@dataclass(frozen=True)
class Job:
    """One model to train: a team's Ludwig model for one symbol, with its effective config."""

    team: str
    model: str
    symbol: str
    config_path: Path  # as the arena names it: relative to the repository root
    config: dict[str, Any]  # as trained: the file, plus the epochs override and the time-ordered split
    lookback: int
    train_from: date

    @property
    def label(self) -> str:
        return f"{self.team}/{self.model} {self.symbol}"

    @property
    def config_hash(self) -> str:
        """sha256 of what the model is trained from apart from the data."""
        spec = {"config": self.config, "lookback": self.lookback, "train_from": self.train_from.isoformat()}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def epochs(self) -> int:
        return int(self.config.get("trainer", {}).get("epochs", 100))


def plan(arena: Arena, only: str | None = None) -> list[Job]:
    """Every (team, Ludwig model, symbol) of the arena, or of ``only`` (``TEAM/MODEL``)."""
    jobs: list[Job] = []
    for team, spec in arena.all_models():
        if spec.kind != names.KIND or (only is not None and only != f"{team}/{spec.name}"):
            continue
        params = spec.params
        if "config" not in params or "lookback" not in params:
            raise TrainingError(f"{team}/{spec.name}: a ludwig model needs params.config and params.lookback")
        path = Path(str(params["config"]))
        lookback = int(params["lookback"])
        config = load_config(REPO_ROOT / path, lookback, params.get("epochs"))
        train_from = date.fromisoformat(str(params.get("train_from", DEFAULT_TRAIN_FROM.isoformat())))
        jobs.extend(Job(team, spec.name, s, path, config, lookback, train_from) for s in arena.symbols_of(spec))
    if only is not None and not jobs:
        raise TrainingError(f"--only {only}: no ludwig model of that name in arena {arena.name!r} (use TEAM/MODEL)")
    return jobs


def load_config(path: Path, lookback: int, epochs: int | None = None) -> dict[str, Any]:
    """The Ludwig config as trained: ``path``, the ``epochs`` override and the time-ordered split."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TrainingError(f"cannot read Ludwig config {path}: {err}") from err
    if not isinstance(config, dict):
        raise TrainingError(f"Ludwig config {path} is not a mapping")
    input_layout(config, lookback)  # refuses what the served model could not be fed
    config.setdefault("preprocessing", {})["split"] = {"type": "fixed", "column": SPLIT}
    if epochs is not None:
        config.setdefault("trainer", {})["epochs"] = int(epochs)
    return config


def version_tags(job: Job, data: TrainingData, until: date) -> dict[str, str]:
    """The tags of a registered version that decide whether it is up to date."""
    return {
        names.TAG_CONFIG_HASH: job.config_hash,
        names.TAG_DATA_HASH: data.data_hash,
        names.TAG_UNTIL: until.isoformat(),
        names.TAG_FEATURES_VERSION: str(FEATURES_VERSION),
        names.TAG_LOOKBACK: str(job.lookback),
    }


def contract_metadata(job: Job, until: date, data_hash: str | None = None) -> dict[str, str]:
    """The ONNX ``metadata_props`` of the served model (the serving contract), with the training data's hash."""
    return names.onnx_metadata(job.team, job.model, job.symbol, job.lookback, FEATURES_VERSION, until, data_hash)
