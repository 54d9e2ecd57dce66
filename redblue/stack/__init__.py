"""The local stack behind ``redblue stack up|down|status``: Kafka, Redis and an MLflow server.

No Docker needed. Kafka runs from Maven Central jars on the local JVM (single-node KRaft),
Redis is the system's ``redis-server``, MLflow is ``mlflow server`` over a sqlite store. Every
service logs in (Kafka SASL/SCRAM with ACLs, Redis ACL users, MLflow basic auth) with the
passwords ``up`` generates once into ``stack/credentials.env`` (mode 0600); ``REDBLUE_SECURITY=false``
starts a stack without any (for comparisons only). Everything lives under ``settings.home``
(default ``~/.cache/redblue``), outside the clone::

    kafka/<version>/lib/     the broker's jars, fetched once per machine (``.complete`` marker)
    stack/credentials.env    the generated passwords (0600)
    stack/kafka/             server.properties (0600), log4j2.properties, data/, logs/, kafka.pid
    stack/redis/             users.acl (0600), dump.rdb, redis.log, redis.pid
    stack/mlflow/            mlflow.db, artifacts/, basic_auth.db, basic_auth.ini, logs/, mlflow.pid

``up`` starts only what is not running, ``down`` stops only what ``up`` started (by pid file)
and keeps the data. When the settings point Kafka or Redis at another host (Docker Compose,
a shared cluster), nothing is started for it: ``up`` only checks that it answers.
"""

from __future__ import annotations

from redblue.core.settings import Settings
from redblue.stack.credentials import ensure_credentials
from redblue.stack.kafka import kafka_service, kafka_users_up
from redblue.stack.mlflow import mlflow_service, mlflow_store_status, mlflow_store_up, mlflow_users_up
from redblue.stack.process import (
    ComponentStatus,
    Out,
    Service,
    StackError,
    locked,
    read_pid,
    service_down,
    service_status,
    service_up,
)
from redblue.stack.redis import redis_service

__all__ = ["ComponentStatus", "StackError", "down", "status", "up"]


def up(settings: Settings, out: Out = print) -> Settings:
    """Start Kafka, Redis and the MLflow server unless already there (idempotent); the settings
    with the stack's passwords filled in.

    Blocks until each answers. Raises :class:`StackError` with a message that says what to
    install or which log to read when something cannot be started.
    """
    with locked(settings.stack_home):
        settings = ensure_credentials(settings, out)
        for service in services(settings):
            _refuse_unsecured(settings, service)
            service_up(service, out)
        kafka_users_up(settings, out)
        if mlflow_service(settings) is None:
            mlflow_store_up(settings, out)
        else:
            mlflow_users_up(settings, out)
    return settings


# The file each server was started with, and what it holds once the server is secured.
_SECURED_BY = {"kafka": ("server.properties", "SASL_PLAINTEXT"), "redis": ("users.acl", "user default off")}


def _refuse_unsecured(settings: Settings, service: Service) -> None:
    """A server ``up`` started before the stack had users keeps running without them: say so."""
    if not settings.security or service.name not in _SECURED_BY or read_pid(service.pid_file, service.marker) is None:
        return
    file, mark = _SECURED_BY[service.name]
    config = service.pid_file.parent / file
    if not config.exists() or mark not in config.read_text():
        raise StackError(
            f"{service.name}: the running server (pid file {service.pid_file}) was started without authentication; "
            "restart the stack with its users and passwords: bin/redblue stack down && bin/redblue stack up"
        )


def down(settings: Settings, out: Out = print) -> None:
    """Stop the processes ``up`` started (SIGTERM, SIGKILL after 30 s); data stays in place."""
    with locked(settings.stack_home):
        for service in services(settings):
            service_down(service, out)
        if mlflow_service(settings) is None:
            out("mlflow: nothing to stop (a sqlite store, no server)")


def status(settings: Settings) -> list[ComponentStatus]:
    """Each part of the stack: running or stopped, its address, pid and log file."""
    parts = [service_status(s) for s in services(settings)]
    return parts if mlflow_service(settings) is not None else [*parts, mlflow_store_status(settings)]


def services(settings: Settings) -> list[Service]:
    found = [kafka_service(settings), redis_service(settings)]
    server = mlflow_service(settings)
    return found if server is None else [*found, server]
