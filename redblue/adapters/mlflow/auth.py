"""Logging in to the stack's MLflow server, and the admin's user management.

MLflow's client reads its basic-auth login from ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` at every request; :func:`logged_in` sets them for the duration
of a block (under a process-wide lock, so two blocks never mix users) and restores them after.
The passwords never appear in a URI, a log line or an MLflow param.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redblue.core.credentials import Login
from redblue.core.errors import RedblueError

USERNAME, PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
_lock = threading.RLock()


class MlflowAuthError(RedblueError):
    """The MLflow server refused or failed a user-management request."""


@contextmanager
def logged_in(login: Login | None) -> Iterator[None]:
    """MLflow client calls inside the block run as ``login`` (no change when None)."""
    if login is None:
        yield
        return
    with _lock:
        saved = {name: os.environ.get(name) for name in (USERNAME, PASSWORD)}
        os.environ[USERNAME] = login.username
        os.environ[PASSWORD] = login.password.get_secret_value()
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _call(uri: str, admin: Login, endpoint: str, method: str, **kwargs: Any) -> Any:
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    creds = MlflowHostCreds(uri, username=admin.username, password=admin.password.get_secret_value())  # type: ignore[no-untyped-call]
    return http_request(creds, endpoint, method, max_retries=2, **kwargs)  # type: ignore[no-untyped-call]


def user_exists(uri: str, admin: Login, username: str) -> bool:
    found = _call(uri, admin, "/api/2.0/mlflow/users/get", "GET", params={"username": username})
    if found.status_code == 404:
        return False
    _check(found, f"look up user {username}")
    return True


def ensure_user(uri: str, admin: Login, user: Login) -> bool:
    """Create ``user`` (as the admin) or set its password; True when it was created."""
    secret = user.password.get_secret_value()
    if user_exists(uri, admin, user.username):
        body = {"username": user.username, "password": secret}
        _check(_call(uri, admin, "/api/2.0/mlflow/users/update-password", "PATCH", json=body), "set a password")
        return False
    body = {"username": user.username, "password": secret}
    _check(_call(uri, admin, "/api/2.0/mlflow/users/create", "POST", json=body), f"create user {user.username}")
    return True


def grant_owned_models(uri: str, admin: Login, username: str, prefix: str) -> list[str]:
    """Give ``username`` MANAGE on every registered model named ``<prefix>…`` (as the admin); the
    names. MLflow grants MANAGE to whoever creates a model; this covers models registered before
    the server had users (or by the admin), so their team can still add versions and move aliases."""
    import mlflow

    client = AsUser(mlflow.MlflowClient(tracking_uri=uri), admin)
    names = [m.name for m in client.search_registered_models(f"name LIKE '{prefix}%'") if m.name.startswith(prefix)]
    for name in names:
        grant(uri, admin, username, "registered_model", name, "MANAGE")
    return names


def grant(uri: str, admin: Login, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Give ``username`` ``permission`` (READ, EDIT, MANAGE, ...) on one registered model or experiment."""
    body = {"username": username, "resource_type": resource_type, "resource_id": resource_id, "permission": permission}
    answer = _call(uri, admin, "/api/3.0/mlflow/users/permissions/grant", "POST", json=body)
    if answer.status_code == 400 and "RESOURCE_ALREADY_EXISTS" in answer.text:
        return  # granted before (or the user created it: MANAGE)
    _check(answer, f"grant {permission}")


def _check(response: Any, what: str) -> None:
    if not 200 <= response.status_code < 300:
        # the body is MLflow's error message; it never contains the password sent
        raise MlflowAuthError(f"MLflow could not {what}: HTTP {response.status_code} {response.text[:300]}")


class AsUser:
    """An MLflow client whose every method call runs :func:`logged_in` as ``login``."""

    def __init__(self, client: Any, login: Login | None) -> None:
        self._client = client
        self._login = login

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            with logged_in(self._login):
                return found(*args, **kwargs)

        return call
