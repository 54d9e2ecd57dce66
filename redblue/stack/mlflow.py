"""MLflow in the local stack: a sqlite store with local artifacts (no server process).

Files under the stack's directory: ``mlflow/mlflow.db``, ``artifacts/``, ``.complete`` (the
store was initialised by this MLflow version).
"""

from __future__ import annotations

import importlib.metadata
import urllib.request
from pathlib import Path

from redblue.adapters.mlflow.tracking import TrackingError, init_store
from redblue.core.model_names import EXPERIMENT
from redblue.core.settings import Settings
from redblue.stack.process import ComponentStatus, Out, StackError


def mlflow_dir(settings: Settings) -> Path:
    """The local MLflow store: ``mlflow.db`` and ``artifacts/``."""
    return settings.stack_home / "mlflow"


def mlflow_up(settings: Settings, out: Out) -> None:
    uri = settings.mlflow_uri
    if uri.startswith(("http://", "https://")):
        if not _http_ok(uri.rstrip("/") + "/health"):
            raise StackError(f"mlflow: {uri} (REDBLUE_MLFLOW_TRACKING_URI) does not answer")
        out(f"mlflow: using the tracking server at {uri}")
        return
    if _mlflow_ready(settings):
        out(f"mlflow: store ready at {uri}")
    else:
        out(f"mlflow: initialising the store at {uri}…")
        _init_mlflow_store(uri, mlflow_dir(settings) / "artifacts")
        (mlflow_dir(settings) / ".complete").write_text(_mlflow_stamp(uri))
    out(f"mlflow: to browse it: mlflow ui --backend-store-uri {uri}")


def _mlflow_stamp(uri: str) -> str:
    return f"{uri} mlflow=={importlib.metadata.version('mlflow')}\n"


def _mlflow_ready(settings: Settings) -> bool:
    """True when ``up`` initialised this store with this MLflow version (and its db still exists)."""
    uri, marker = settings.mlflow_uri, mlflow_dir(settings) / ".complete"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return False
    return marker.exists() and marker.read_text() == _mlflow_stamp(uri)


def _init_mlflow_store(uri: str, artifacts: Path) -> None:
    """Create the store's tables and the ``redblue`` experiment, its artifacts in ``artifacts``."""
    try:
        init_store(uri, artifacts, EXPERIMENT)
    except TrackingError as err:
        raise StackError(f"mlflow: {err} (if MLflow was upgraded, run: mlflow db upgrade {uri})") from err


def mlflow_status(settings: Settings) -> ComponentStatus:
    uri = settings.mlflow_uri
    if uri.startswith(("http://", "https://")):
        answers = _http_ok(uri.rstrip("/") + "/health")
        return ComponentStatus("mlflow", "running" if answers else "stopped", uri, note="tracking server")
    note = f"a store, no server; UI: mlflow ui --backend-store-uri {uri}"
    return ComponentStatus("mlflow", "running" if _mlflow_ready(settings) else "stopped", uri, note=note)


def _http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False
