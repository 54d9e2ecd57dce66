"""Least privilege on Kafka: which service may do what on which topic and consumer group of a run.

Topic names are ``{prefix}.{run}.{suffix}`` (:mod:`schemas.topics`). Kafka's PREFIXED ACLs
match the *start* of a name, so ``{prefix}.`` cannot say "only the bars topics": a grant on it
would give the producer every topic of every run. Each run therefore gets LITERAL grants on
its own topic names, created by the admin when the run is set up (:func:`run_grants`, applied
by :func:`redblue.adapters.kafka_security.grant_run`) and removed with the run. The Faust
processor's changelog and assignor topics all start with its app id (the admin creates the
changelogs with the run; a processor may create them, and creates its assignor topic, itself),
so it gets a PREFIXED grant on ``<app id>-`` (its group and its own topics only).

Nothing here imports a vendor library: the adapter translates these grants into ACL bindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redblue.core.credentials import TEAM_USER_PREFIX, Service
from schemas.topics import BARS, DEADLETTER, FILLS, FORECASTS, ORDERS, TOPICS, TopicSpec, topic_name

Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE"]
ResourceKind = Literal["topic", "group", "transactional_id"]
Pattern = Literal["literal", "prefixed"]


@dataclass(frozen=True)
class Grant:
    """``principal`` may do ``operation`` on a topic or consumer group named (or starting with) ``name``."""

    principal: Service
    resource: ResourceKind
    name: str
    pattern: Pattern
    operation: Operation


def processor_app_id(run: str) -> str:
    """The Faust app (and consumer group) of a run's processor; its internal topics start with it + '-'."""
    return f"redblue-processor-{run}"


PROCESSOR_TABLES = ("windows",)  # the processor's Faust tables (processors.app), each with a changelog topic


def processor_changelogs(run: str) -> dict[str, int]:
    """The changelog topics of the run's processor tables and their partitions (those of the bars
    topic: a window is stored with the bar that moved it). The admin creates them with the run."""
    return {f"{processor_app_id(run)}-{table}-changelog": BARS.partitions for table in PROCESSOR_TABLES}


def trader_group(run: str) -> str:
    """The trader's consumer group, and the transactional id of its producer."""
    return f"redblue-trader-{run}"


def scorer_group(run: str) -> str:
    return f"redblue-scorer-{run}"


def reader_group(run: str) -> str:
    """The group id of whole-topic reads (reports, resume, rebuild): assigned, never joined or committed."""
    return f"redblue-reader-{run}"


def run_groups(run: str) -> list[str]:
    """Every consumer group a run uses (deleted when the run is reset)."""
    return [processor_app_id(run), trader_group(run), scorer_group(run), reader_group(run)]


# service -> (topic suffix reads, topic suffix writes): the bus as each service sees it
TOPIC_RIGHTS: dict[Service, tuple[tuple[TopicSpec, ...], tuple[TopicSpec, ...]]] = {
    # writes bars and revisions (and dead-letters the rows it cannot use); reads both back to resume
    "producer": ((BARS, DEADLETTER), (BARS, DEADLETTER)),
    # reads bars, writes forecasts and markers (and dead letters)
    "processor": ((BARS,), (FORECASTS, DEADLETTER)),
    # reads forecasts (the bar_processed markers carry each bar), writes orders, fills and marks,
    # and reads its own orders and fills back to rebuild its positions after a restart
    "trader": ((FORECASTS, ORDERS, FILLS), (ORDERS, FILLS, DEADLETTER)),
    # reads forecasts, orders and fills; its only write is a dead letter for a message it cannot decode
    "scorer": ((FORECASTS, ORDERS, FILLS), (DEADLETTER,)),
    # reads everything of a run (reports, the web page), writes nothing
    "leaderboard": (TOPICS, ()),
}


def run_grants(prefix: str, run: str) -> list[Grant]:
    """Every ACL a run needs, for every service but the admin (a super user)."""
    grants: list[Grant] = []
    for service, (reads, writes) in TOPIC_RIGHTS.items():
        for spec in reads:
            grants.append(Grant(service, "topic", topic_name(prefix, run, spec), "literal", "READ"))
        for spec in writes:
            grants.append(Grant(service, "topic", topic_name(prefix, run, spec), "literal", "WRITE"))
    grants += [
        Grant("trader", "group", trader_group(run), "literal", "READ"),
        Grant("scorer", "group", scorer_group(run), "literal", "READ"),
        Grant("processor", "group", processor_app_id(run), "literal", "READ"),
        # the trader's output per batch is one transaction (fills, marks, orders and its offsets)
        Grant("trader", "transactional_id", trader_group(run), "literal", "WRITE"),
    ]
    # whole-topic reads assign partitions and never commit, but librdkafka still looks up the
    # group's coordinator, which needs DESCRIBE on the group
    grants += [
        Grant(s, "group", reader_group(run), "literal", "DESCRIBE")
        for s in ("producer", "trader", "scorer", "leaderboard")
    ]
    internal = f"{processor_app_id(run)}-"
    grants += [Grant("processor", "topic", internal, "prefixed", op) for op in ("CREATE", "READ", "WRITE", "DESCRIBE")]
    return grants


# -- MLflow ------------------------------------------------------------------------------------
# MLflow's basic-auth app grants per resource: the creator of a registered model or experiment
# gets MANAGE on it, everyone else the default (READ). It has no rule on *names*, so a team
# could create (or rename one of its own models to) ``redblue.<other team>.…`` first and own it.
# The stack's MLflow server therefore runs mlflow_refusal on every request after logging in.

# (path ending, JSON field holding the new name): the requests that create or rename by name
NAMING_REQUESTS = (
    ("/registered-models/create", "name"),
    ("/registered-models/rename", "new_name"),
    ("/experiments/create", "name"),
    ("/experiments/update", "new_name"),
)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def mlflow_refusal(username: str, method: str, path: str, body: object) -> str | None:
    """Why the MLflow server must refuse this request of a non-admin user, or None to let
    MLflow's own per-resource permissions decide.

    - ``reader`` (serving, the web page) reads only: any request but a read or a search is refused;
    - ``team-<team>`` may create or rename registered models and experiments only inside its
      namespace: names whose second dot-separated part is the team (``redblue.<team>.<model>.<symbol>``,
      the training experiment ``redblue.<team>``);
    - any other user is treated like ``reader``.
    """
    if not username.startswith(TEAM_USER_PREFIX):
        if method.upper() in READ_METHODS or path.endswith("/search"):
            return None
        return f"user {username!r} is read-only"
    team = username.removeprefix(TEAM_USER_PREFIX)
    for ending, field in NAMING_REQUESTS:
        if not path.endswith(ending):
            continue
        name = body.get(field) if isinstance(body, dict) else None
        if name is None and field == "new_name" and isinstance(body, dict):
            return None  # an update that renames nothing
        if not isinstance(name, str) or not in_namespace(name, team):
            return f"team {team!r} may only create or rename names like '<prefix>.{team}.…', not {name!r}"
    return None


def in_namespace(name: str, team: str) -> bool:
    """True for ``<prefix>.<team>`` and ``<prefix>.<team>.<anything>``."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[1] == team and all(parts[:2])
