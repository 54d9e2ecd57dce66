"""The read-only shortcut into a local MLflow store: a server's ``mlflow-artifacts:/`` locations
are read from its artifacts directory, and nothing outside that directory is ever read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from redblue.adapters.mlflow import local_store


def store(tmp_path: Path, location: str) -> str:
    """A sqlite file with the one table :func:`local_store.model_bytes` reads; its URI."""
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, storage_location TEXT)")
        connection.execute("INSERT INTO model_versions VALUES ('m', 1, ?)", (location,))
    connection.close()
    return f"sqlite:///{db}"


def model_folder(root: Path, data: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    (root / "model.onnx").write_bytes(data)
    return root


def test_a_servers_artifact_location_is_read_from_its_artifacts_directory(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    model_folder(artifacts / "1" / "models" / "m-1" / "artifacts", b"onnx bytes")
    uri = store(tmp_path, "mlflow-artifacts:/1/models/m-1/artifacts")
    assert local_store.model_bytes(uri, "m", "1", artifacts) == b"onnx bytes"
    assert local_store.model_bytes(uri, "m", "1") is None  # where the server keeps them is not known: ask it


def test_a_location_outside_the_artifacts_directory_is_not_read(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    model_folder(tmp_path / "secret", b"not served")
    uri = store(tmp_path, "mlflow-artifacts:/../secret")
    assert local_store.model_bytes(uri, "m", "1", artifacts) is None
    (tmp_path / "other").mkdir()
    other = store(tmp_path / "other", "mlflow-artifacts://elsewhere/1/models/m-1/artifacts")
    assert local_store.model_bytes(other, "m", "1", artifacts) is None  # another server's artifacts
