"""Setting a run up and tearing it down: the admin's part of every run.

A run's topics are created explicitly and each service gets LITERAL ACLs on that run's topic
names and consumer groups (:mod:`redblue.core.access` says why not PREFIXED ones). Only the
admin may do this; the services themselves then run as their own principals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from redblue.adapters.kafka import delete_run, ensure_topics
from redblue.adapters.kafka_security import grant_run, revoke_run, upsert_users
from redblue.adapters.mlflow.auth import ensure_user, grant_owned_models
from redblue.adapters.redis_store import RedisStore
from redblue.core.access import processor_app_id, processor_changelogs, run_groups
from redblue.core.credentials import MLFLOW_READER, Login
from redblue.core.settings import Settings, team_mlflow_login
from redblue.stack.credentials import ensure_team_password
from redblue.stack.process import locked

log = logging.getLogger(__name__)


def prepare_run(settings: Settings, run: str, granted: Callable[[], object] | None = None) -> list[str]:
    """Create (with security) the run's ACLs, then its topics and the processor's table
    changelogs, as the admin; return the topic names.

    ``granted`` is called once the ACLs are in place, before the topics are created: a producer
    made then acquires its producer id meanwhile (the broker gives an idempotent producer one only
    if it may write some topic, KIP-679; on a brand-new stack no other run's ACLs exist).
    """
    admin = settings.for_service("admin")
    if admin.security:
        grant_run(admin, run)  # ACLs name topics: they need not exist yet
    if granted is not None:
        granted()
    return ensure_topics(admin, run, compacted=processor_changelogs(run))  # its worker then starts promptly


def can_administer(settings: Settings) -> bool:
    """True when this process has the admin's Kafka password (the local stack's operator has it;
    a deployed service has only its own)."""
    password = settings.kafka_admin_password
    return not settings.security or (password is not None and bool(password.get_secret_value()))


def prepare_if_admin(settings: Settings, run: str) -> None:
    """Set the run up when the admin's credentials are configured; otherwise trust it was
    (``redblue setup --run ID`` by the admin), so a service never needs more than its own password."""
    if can_administer(settings):
        prepare_run(settings, run)
    else:
        log.info("no admin credentials: assuming run %s was set up (redblue setup --run %s)", run, run)


def reset_run(settings: Settings, run: str) -> None:
    """Remove everything an earlier run with this id left: topics, consumer groups, ACLs, Redis keys."""
    admin = settings.for_service("admin")
    delete_run(admin, run, extra_prefixes=(f"{processor_app_id(run)}-",), groups=run_groups(run))
    if admin.security:
        revoke_run(admin, run)
    RedisStore.from_settings(admin, run).delete_run()


def prepare_teams(settings: Settings, teams: Iterable[str]) -> list[str]:
    """Give each team an MLflow user of its own (``team-<team>``) unless it has one; the password
    goes into the stack's credentials file unless configured. Needs the admin's MLflow password
    (the local stack's operator has it); without it, the teams' users must exist. Returns the
    users created."""
    if not settings.security or not settings.mlflow_uri.startswith(("http://", "https://")):
        return []
    if settings.mlflow_admin_password is None or not settings.mlflow_admin_password.get_secret_value():
        return []
    admin = settings.stack_login("mlflow", "admin")
    created = []
    with locked(settings.stack_home):
        for team in teams:
            ensure_team_password(settings, team)
            login = team_mlflow_login(settings, team)
            if login is None:
                continue
            if ensure_user(settings.mlflow_uri, admin, login):
                created.append(login.username)
            grant_owned_models(settings.mlflow_uri, admin, login.username, f"{settings.registry_prefix}.{team}.")
    return created


def provision_users(settings: Settings) -> list[str]:
    """Create or re-password the Kafka SCRAM user of every service whose password is configured,
    and MLflow's ``reader`` (as the admin). ``stack up`` does this for the local stack;
    ``redblue setup`` for a deployment (docker-compose), where the admin holds the passwords."""
    if not settings.security:
        return []
    passwords = settings.kafka_service_passwords()
    upsert_users(settings.for_service("admin"), passwords)
    done = [f"kafka:{service}" for service in passwords]
    reader = settings.mlflow_reader_password
    if settings.mlflow_uri.startswith(("http://", "https://")) and reader is not None and reader.get_secret_value():
        ensure_user(settings.mlflow_uri, settings.stack_login("mlflow", "admin"), Login(MLFLOW_READER, reader))
        done.append(f"mlflow:{MLFLOW_READER}")
    return done
