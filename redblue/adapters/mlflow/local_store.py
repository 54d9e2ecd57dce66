"""A read-only shortcut into a local MLflow store (a sqlite file, artifacts on this machine).

Importing MLflow and opening its SQLAlchemy store costs several seconds of CPU in every process
that asks where an alias points, which is most of a short simulation's start-up. For the common
case (the local stack's sqlite store) the answers the processor needs are read directly:

- :func:`alias_version`: the version a registered model's alias points at;
- :func:`version_tags`: a model version's tags (its training cutoff and data hash);
- :func:`model_bytes`: the ONNX file of a model version whose artifacts are local files.

Both read the store only (``mode=ro``) and return ``None`` whenever the store is not such a
file, or its tables or files are not laid out as this code knows them (MLflow 2.3 to 3.x): the
caller then asks MLflow itself, so a newer MLflow costs time, never correctness.

The local stack's MLflow *server* (basic auth) keeps the same sqlite file and serves artifacts
from a local directory (``mlflow-artifacts:/…`` locations): given that directory
(:class:`StoreFiles`), a process on the stack's machine reads the same two answers from the files,
read-only — what any logged-in user may read anyway (READ is the server's default permission).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

SQLITE = "sqlite:///"
# what MLflow writes next to a logged model's file
_MLFLOW_FILES = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
                 "serving_input_example.json", "registered_model_meta"}  # fmt: skip


@dataclass(frozen=True)
class StoreFiles:
    """Where a store's files are: its sqlite ``uri`` and, for a server's store, the directory
    its ``mlflow-artifacts:/`` locations point into."""

    uri: str
    artifacts: Path | None = None


def _one(tracking_uri: str, query: str, *args: object) -> object | None:
    """The single value ``query`` selects from the store, or ``None`` (no such store, row or table)."""
    rows = _rows(tracking_uri, query, *args)
    return rows[0][0] if rows is not None and len(rows) == 1 else None


def _rows(tracking_uri: str, query: str, *args: object) -> list[tuple[object, ...]] | None:
    """The rows ``query`` selects from the store, or ``None`` (no such store or table)."""
    if not tracking_uri.startswith(SQLITE):
        return None
    path = Path(tracking_uri[len(SQLITE) :])
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute(query, args).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return rows


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version ``alias`` of ``name`` points at, or ``None`` (unknown here: ask MLflow)."""
    found = _one(tracking_uri, "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", name, alias)
    return None if found is None else str(found)


def version_tags(tracking_uri: str, name: str, version: str) -> dict[str, str] | None:
    """The tags of ``name`` version ``version``, or ``None`` (unknown here: ask MLflow)."""
    if (
        not version.isdigit()
        or _one(tracking_uri, "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", name, int(version)) is None
    ):
        return None
    rows = _rows(
        tracking_uri, "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", name, int(version)
    )
    return None if rows is None else {str(key): str(value) for key, value in rows}


def model_bytes(tracking_uri: str, name: str, version: str, artifacts: Path | None = None) -> bytes | None:
    """The ONNX model file of ``name`` version ``version``, or ``None`` (not local: ask MLflow).

    ``artifacts``: the directory a server's ``mlflow-artifacts:/`` locations point into.
    """
    if not version.isdigit():
        return None
    where = _one(
        tracking_uri, "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?", name, int(version)
    )
    if not isinstance(where, str):
        return None
    folder = _folder(where, artifacts)
    if folder is None:
        return None
    try:
        data = str(yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["onnx"]["data"])
        if {p.name for p in folder.iterdir()} - {data, *_MLFLOW_FILES}:
            return None  # more than one model file (e.g. external tensor data): MLflow knows how to load it
        return (folder / data).read_bytes()
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _folder(where: str, artifacts: Path | None) -> Path | None:
    """The local directory of a storage location, or None (not on this machine's disk)."""
    location = urlsplit(where)
    if location.scheme == "file":
        return Path(unquote(location.path))
    if location.scheme == "mlflow-artifacts" and artifacts is not None and not location.netloc:
        root = artifacts.resolve()
        folder = (root / unquote(location.path).lstrip("/")).resolve()
        return folder if folder.is_relative_to(root) else None
    return None
