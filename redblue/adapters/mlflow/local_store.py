"""A read-only shortcut into a local MLflow store (a sqlite file, artifacts on this machine).

Importing MLflow and opening its SQLAlchemy store costs several seconds of CPU in every process
that asks where an alias points, which is most of a short simulation's start-up. For the common
case (the local stack's sqlite store) the two answers the processor needs are read directly:

- :func:`alias_version`: the version a registered model's alias points at;
- :func:`model_bytes`: the ONNX file of a model version whose artifacts are local files.

Both read the store only (``mode=ro``) and return ``None`` whenever the store is not such a
file, or its tables or files are not laid out as this code knows them (MLflow 2.3 to 3.x): the
caller then asks MLflow itself, so a newer MLflow costs time, never correctness.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

SQLITE = "sqlite:///"
# what MLflow writes next to a logged model's file
_MLFLOW_FILES = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
                 "serving_input_example.json", "registered_model_meta"}  # fmt: skip


def _connect(tracking_uri: str) -> sqlite3.Connection | None:
    if not tracking_uri.startswith(SQLITE):
        return None
    path = Path(tracking_uri[len(SQLITE) :])
    if not path.is_file():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version ``alias`` of ``name`` points at, or ``None`` (unknown here: ask MLflow)."""
    connection = _connect(tracking_uri)
    if connection is None:
        return None
    try:
        rows = connection.execute(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(rows[0][0]) if len(rows) == 1 else None


def model_bytes(tracking_uri: str, name: str, version: str) -> bytes | None:
    """The ONNX model file of ``name`` version ``version``, or ``None`` (not local: ask MLflow)."""
    connection = _connect(tracking_uri)
    if connection is None:
        return None
    try:
        rows = connection.execute(
            "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?", (name, int(version))
        ).fetchall()
    except (sqlite3.Error, ValueError):
        return None
    finally:
        connection.close()
    if len(rows) != 1 or not isinstance(rows[0][0], str):
        return None
    location = urlsplit(rows[0][0])
    if location.scheme != "file":
        return None
    folder = Path(unquote(location.path))
    try:
        data = str(yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["onnx"]["data"])
        if {p.name for p in folder.iterdir()} - {data, *_MLFLOW_FILES}:
            return None  # more than one model file (e.g. external tensor data): MLflow knows how to load it
        return (folder / data).read_bytes()
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
