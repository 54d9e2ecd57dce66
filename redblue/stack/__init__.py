"""The local stack behind ``redblue stack up|down|status``: Kafka, Redis and MLflow's store.

No Docker needed. Kafka runs from Maven Central jars on the local JVM (single-node KRaft),
Redis is the system's ``redis-server``, MLflow is a sqlite store (no server process). Everything
lives under ``settings.home`` (default ``~/.cache/redblue``), outside the clone::

    kafka/<version>/lib/     the broker's jars, fetched once per machine (``.complete`` marker)
    stack/kafka/             server.properties, log4j2.properties, data/, logs/, kafka.pid
    stack/redis/             dump.rdb, redis.log, redis.pid
    stack/mlflow/            mlflow.db, artifacts/ (initialised once: ``.complete`` marker)

``up`` starts only what is not running, ``down`` stops only what ``up`` started (by pid file)
and keeps the data. When the settings point Kafka or Redis at another host (Docker Compose,
a shared cluster), nothing is started for it: ``up`` only checks that it answers.
"""

from __future__ import annotations

from redblue.core.settings import Settings
from redblue.stack.kafka import kafka_service
from redblue.stack.mlflow import mlflow_status, mlflow_up
from redblue.stack.process import (
    ComponentStatus,
    Out,
    Service,
    StackError,
    locked,
    service_down,
    service_status,
    service_up,
)
from redblue.stack.redis import redis_service

__all__ = ["ComponentStatus", "StackError", "down", "status", "up"]


def up(settings: Settings, out: Out = print) -> None:
    """Start Kafka and Redis and initialise the MLflow store, unless already there (idempotent).

    Blocks until Kafka and Redis answer. Raises :class:`StackError` with a message that says
    what to install or which log to read when something cannot be started.
    """
    with locked(settings.stack_home):
        for service in services(settings):
            service_up(service, out)
        mlflow_up(settings, out)


def down(settings: Settings, out: Out = print) -> None:
    """Stop the processes ``up`` started (SIGTERM, SIGKILL after 30 s); data stays in place."""
    with locked(settings.stack_home):
        for service in services(settings):
            service_down(service, out)
        out("mlflow: nothing to stop (a sqlite store, no server)")


def status(settings: Settings) -> list[ComponentStatus]:
    """Each part of the stack: running or stopped, its address, pid and log file."""
    return [*(service_status(s) for s in services(settings)), mlflow_status(settings)]


def services(settings: Settings) -> tuple[Service, Service]:
    return kafka_service(settings), redis_service(settings)
