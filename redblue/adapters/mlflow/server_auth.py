"""Runs inside the stack's MLflow server (its basic-auth app's ``authorization_function``).

MLflow checks the user's password (:func:`mlflow.server.auth.authenticate_request_basic_auth`),
then :func:`redblue.core.access.mlflow_refusal` adds what MLflow's per-resource permissions
cannot say: the read-only reader, and team namespaces for new model and experiment names.
Admins pass unchanged. Only the MLflow server imports this module (``redblue stack up``
names it in the server's auth config).
"""

from __future__ import annotations

from flask import Response, request
from mlflow.server.auth import authenticate_request_basic_auth, store
from werkzeug.datastructures import Authorization

from redblue.core.access import mlflow_refusal


def authenticate() -> Authorization | Response:
    """MLflow's basic auth, then redblue's namespace and read-only rules (403 with the reason)."""
    found = authenticate_request_basic_auth()
    if isinstance(found, Response) or found.username is None or store.get_user(found.username).is_admin:
        return found  # (not sender_is_admin(): it calls this function again)
    body = request.get_json(silent=True) if request.method in ("POST", "PATCH", "PUT") else None
    refusal = mlflow_refusal(found.username, request.method, request.path, body)
    if refusal is not None:
        return Response(f"Permission denied: {refusal}", status=403, mimetype="text/plain")
    return found
