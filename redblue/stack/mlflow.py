"""MLflow in the local stack: a tracking server (sqlite backend, local artifacts) on 127.0.0.1:15000.

With security on (the default) the server runs MLflow's own basic-auth app: every request
logs in, the admin creates users, the creator of a registered model or experiment gets MANAGE
on it and everyone else READ (``default_permission``), and redblue's authorization function
(:mod:`redblue.adapters.mlflow.server_auth`) keeps each team's new names inside
``<prefix>.<team>.…`` and the ``reader`` read-only. Files under the stack's directory::

    mlflow/mlflow.db          runs, models, registry (sqlite)
    mlflow/artifacts/         model files and run artifacts (served by the server: mlflow-artifacts:/)
    mlflow/basic_auth.db      users and permissions (password hashes)
    mlflow/basic_auth.ini     the auth app's configuration (mode 0600)
    mlflow/logs/server.log    the server's output; mlflow.pid

A ``sqlite:///`` tracking URI (scratch stores in tests and benchmarks) needs no server: the
store is only initialised. Another host's URI is only checked.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import urllib.request
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

from redblue.adapters.mlflow.auth import ensure_user
from redblue.adapters.mlflow.local_store import StoreFiles
from redblue.adapters.mlflow.tracking import TrackingError, init_store
from redblue.core.arena import REPO_ROOT
from redblue.core.credentials import MLFLOW_READER
from redblue.core.model_names import EXPERIMENT
from redblue.core.settings import Settings
from redblue.stack.credentials import ensure_credentials
from redblue.stack.process import (
    ComponentStatus,
    Out,
    Service,
    StackError,
    command_line,
    is_local,
    spawn_detached,
    wait_ready,
    write_private,
)

AUTH_FUNCTION = "redblue.adapters.mlflow.server_auth:authenticate"
READY_TIMEOUT = 300.0  # importing MLflow and starting uvicorn takes 20 s on an idle machine, minutes on a busy one


def mlflow_dir(settings: Settings) -> Path:
    """The local MLflow data: ``mlflow.db``, ``artifacts/``, the auth database and the server's log."""
    return settings.stack_home / "mlflow"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def mlflow_service(settings: Settings) -> Service | None:
    """The tracking server of these settings, or None for a local sqlite store (no server)."""
    uri = settings.mlflow_uri
    if not is_server(uri):
        return None
    parts = urlsplit(uri)
    state = mlflow_dir(settings)
    return Service(
        name="mlflow",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (443 if parts.scheme == "https" else 80),
        env_var="REDBLUE_MLFLOW_TRACKING_URI",
        pid_file=state / "mlflow.pid",
        log_file=state / "logs" / "server.log",
        marker="--backend-store-uri",
        answers=lambda: _http_ok(uri.rstrip("/") + "/health"),
        start=lambda out: start_mlflow(settings, out),
        ready_timeout=READY_TIMEOUT,
        group=True,  # the server runs uvicorn as a child: stop the whole process group
    )


def store_files(settings: Settings) -> StoreFiles | None:
    """The files behind the tracking server of these settings when it is this stack's own server
    running on this machine (its pid file's process serves this stack's ``mlflow.db`` on the
    URI's port), or None. The processor reads a champion's version and ONNX file from them,
    read-only, instead of importing MLflow and downloading through the server
    (:mod:`redblue.adapters.mlflow.local_store`)."""
    service = mlflow_service(settings)
    if service is None or not is_local(service.host):
        return None
    state = mlflow_dir(settings)
    db = state / "mlflow.db"
    args = command_line(service.pid_file)
    if args is None or not db.is_file():
        return None
    serves = f"sqlite:///{db}" in args and ("--port", str(service.port)) in pairwise(args)
    return StoreFiles(f"sqlite:///{db}", state / "artifacts") if serves else None


def start_mlflow(settings: Settings, out: Out = print) -> None:
    """Start the tracking server in the background (with the basic-auth app unless security is off)."""
    settings = ensure_credentials(settings, out)
    service = mlflow_service(settings)
    assert service is not None
    cmd, env = server_command(settings, service.host, service.port)
    mode = "with users and permissions (basic-auth)" if settings.security else "WITHOUT authentication"
    out(f"mlflow: starting the tracking server on {service.address}, {mode} (log: {service.log_file})")
    pid = spawn_detached(cmd, service.log_file, cwd=mlflow_dir(settings), env=env)
    service.pid_file.write_text(f"{pid}\n")
    wait_ready(service, pid)


def serve_foreground(settings: Settings) -> None:
    """Replace this process with the MLflow server of these settings, on every interface (a
    container's command: ``redblue stack mlflow`` in docker-compose.yml)."""
    port = urlsplit(settings.mlflow_uri).port or 5000
    cmd, env = server_command(settings, "0.0.0.0", port)
    os.execvpe(cmd[0], cmd, env)


def server_command(settings: Settings, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and environment of this stack (writes its auth config)."""
    state = mlflow_dir(settings)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "artifacts").mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1"]
    cmd += [
        "--backend-store-uri",
        f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination",
        str(state / "artifacts"),
    ]
    served = urlsplit(settings.mlflow_uri).hostname or host
    cmd += ["--allowed-hosts", f"{served},{served}:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONPATH": _python_path(settings)}
    if settings.security:
        cmd += ["--app-name", "basic-auth"]
        write_private(state / "basic_auth.ini", render_auth_config(state))
        env |= {
            "MLFLOW_AUTH_CONFIG_PATH": str(state / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": settings.stack_login("mlflow", "admin").password.get_secret_value(),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret_key(settings),
        }
    return cmd, env


def _secret_key(settings: Settings) -> str:
    key = settings.mlflow_secret_key
    if key is None:
        raise StackError("mlflow: no server secret key (REDBLUE_MLFLOW_SECRET_KEY); run bin/redblue stack up")
    return key.get_secret_value()


def _python_path(settings: Settings) -> str:
    """The server imports redblue's authorization function (its basic-auth app needs Flask-WTF:
    ``mlflow[auth]`` in requirements.in)."""
    return os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def render_auth_config(state: Path) -> str:
    """The basic-auth app's configuration: users in ``basic_auth.db``, READ by default, redblue's rules."""
    return f"""# Written by redblue/stack/mlflow.py on every start; edit that, not this.
[mlflow]
default_permission = READ
database_uri = sqlite:///{state / "basic_auth.db"}
admin_username = admin
authorization_function = {AUTH_FUNCTION}
"""


def mlflow_users_up(settings: Settings, out: Out) -> None:
    """Create (or re-password) the read-only ``reader`` that serving logs in with."""
    if not settings.security or not is_server(settings.mlflow_uri):
        return
    admin = settings.stack_login("mlflow", "admin")
    reader = settings.stack_login("mlflow", MLFLOW_READER)
    created = ensure_user(settings.mlflow_uri, admin, reader)
    out(f"mlflow: user {MLFLOW_READER} {'created' if created else 'ready'} (read-only; teams are added by train)")


def mlflow_store_up(settings: Settings, out: Out) -> None:
    """Initialise a local sqlite store (no server) once per MLflow version."""
    uri = settings.mlflow_uri
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


def mlflow_store_status(settings: Settings) -> ComponentStatus:
    uri = settings.mlflow_uri
    note = f"a store, no server; UI: mlflow ui --backend-store-uri {uri}"
    return ComponentStatus("mlflow", "running" if _mlflow_ready(settings) else "stopped", uri, note=note)


def _http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False
