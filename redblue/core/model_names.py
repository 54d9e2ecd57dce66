"""Names shared by training and serving: registered models, their alias, the experiment, tags.

Import-light on purpose (no MLflow): the processors import these to find what training wrote.
"""

from __future__ import annotations

from datetime import date

EXPERIMENT = "redblue"  # the MLflow experiment of training (and evaluation) runs
CHAMPION = "champion"  # the alias serving loads: models:/NAME@champion
KIND = "ludwig"  # ModelSpec.kind of the models trained here

# ONNX metadata_props of a served model (the serving contract)
META_LOOKBACK = "redblue.lookback"
META_FEATURES_VERSION = "redblue.features_version"
META_TEAM = "redblue.team"
META_MODEL = "redblue.model"
META_SYMBOL = "redblue.symbol"
META_TRAINED_UNTIL = "redblue.trained_until"
META_DATA_HASH = "redblue.data_hash"  # optional: models exported before it lack it (the registry tag has it)
INPUT_NAME = "features"  # float32 [batch, lookback]: redblue.core.features.features(window, lookback)
OUTPUT_NAME = "log_return"  # float32 [batch]: the predicted next-day log return, de-scaled

# tags on each registered model version: what decides whether it is up to date
TAG_CONFIG_HASH = "redblue.config_hash"
TAG_DATA_HASH = "redblue.data_hash"
TAG_UNTIL = "redblue.trained_until"
TAG_FEATURES_VERSION = "redblue.features_version"
TAG_LOOKBACK = "redblue.lookback"


def registry_name(prefix: str, team: str, model: str, symbol: str) -> str:
    """The registered model name of one team model for one symbol: ``{prefix}.{team}.{model}.{symbol}``."""
    return f"{prefix}.{team}.{model}.{symbol}"


def champion_uri(name: str) -> str:
    """The URI serving loads, e.g. ``mlflow.onnx.load_model(champion_uri(name))``."""
    return f"models:/{name}@{CHAMPION}"


def onnx_metadata(
    team: str, model: str, symbol: str, lookback: int, features_version: int, until: date, data_hash: str | None = None
) -> dict[str, str]:
    """The ``metadata_props`` every served ONNX model carries (and the training data's hash, when given)."""
    return ({META_DATA_HASH: data_hash} if data_hash else {}) | {
        META_LOOKBACK: str(lookback),
        META_FEATURES_VERSION: str(features_version),
        META_TEAM: team,
        META_MODEL: model,
        META_SYMBOL: symbol,
        META_TRAINED_UNTIL: until.isoformat(),
    }


def experiment_name() -> str:
    return EXPERIMENT


def training_experiment(team: str) -> str:
    """The MLflow experiment of a team's training runs: ``redblue.<team>``, owned by the team's user."""
    return f"{EXPERIMENT}.{team}"
