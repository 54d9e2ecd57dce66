"""Kafka users and ACLs: SCRAM credentials of the services and each run's grants (admin only).

The policy is :mod:`redblue.core.access`; this module translates it into confluent-kafka's
admin API. Kafka applies new ACLs a moment after ``create_acls`` returns (``describe_acls``
right after may not show them yet), so :func:`grant_run` waits until the broker lists them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from redblue.adapters.kafka import KafkaUnavailable, admin_client, check_broker
from redblue.core.access import Grant, run_grants
from redblue.core.settings import Settings

log = logging.getLogger(__name__)

SCRAM_ITERATIONS = 8192
_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {
    "READ": AclOperation.READ,
    "WRITE": AclOperation.WRITE,
    "CREATE": AclOperation.CREATE,
    "DESCRIBE": AclOperation.DESCRIBE,
}


def binding(grant: Grant) -> AclBinding:
    """The ACL binding of one grant: ALLOW ``User:<principal>`` from any host."""
    return AclBinding(
        _RESOURCE[grant.resource],
        grant.name,
        _PATTERN[grant.pattern],
        f"User:{grant.principal}",
        "*",
        _OPERATION[grant.operation],
        AclPermissionType.ALLOW,
    )


def upsert_users(settings: Settings, passwords: Mapping[str, SecretStr]) -> None:
    """Create or update the SCRAM-SHA-512 users ``passwords`` names (as the admin)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, pw.get_secret_value().encode()) for user, pw in passwords.items()
    ]
    admin = admin_client(settings)  # keep a reference until the futures resolve
    try:
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(timeout=30)
    except KafkaException as err:
        raise KafkaUnavailable(f"cannot set the Kafka users' SCRAM credentials: {err}") from err


def grant_run(settings: Settings, run: str, timeout: float = 30.0) -> int:
    """Create the ACLs of ``run`` (idempotent) and wait until the broker applies them; return how many."""
    check_broker(settings)
    bindings = [binding(g) for g in run_grants(settings.topic_prefix, run)]
    admin = admin_client(settings)
    try:
        for future in admin.create_acls(bindings).values():
            future.result(timeout=30)
    except KafkaException as err:
        raise KafkaUnavailable(f"cannot create the ACLs of run {run}: {err}") from err
    _wait_listed(admin, bindings, timeout)
    return len(bindings)


def revoke_run(settings: Settings, run: str) -> int:
    """Delete the ACLs of ``run``; return how many were removed."""
    filters = [_filter(b) for b in {binding(g) for g in run_grants(settings.topic_prefix, run)}]
    admin = admin_client(settings)
    removed = 0
    try:
        for future in admin.delete_acls(filters).values():
            removed += len(future.result(timeout=30))
    except KafkaException as err:
        log.warning("could not delete the ACLs of run %s: %s", run, err)
    return removed


def _filter(found: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        found.restype,
        found.name,
        found.resource_pattern_type,
        found.principal,
        found.host,
        found.operation,
        found.permission_type,
    )


def _wait_listed(admin: object, bindings: Iterable[AclBinding], timeout: float) -> None:
    """Poll ``describe_acls`` until every binding is listed (Kafka applies ACLs asynchronously)."""
    wanted = set(bindings)
    anything: Any = None  # a filter's None matches any name, principal and host
    every = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        anything,
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout
    while True:
        listed = set(admin.describe_acls(every).result(timeout=30))  # type: ignore[attr-defined]
        missing = wanted - listed
        if not missing:
            return
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"{len(missing)} ACL(s) not applied after {timeout:.0f}s, e.g. {next(iter(missing))}"
            )
        threading.Event().wait(0.1)
