"""The processors: one Faust worker serves every model of an arena (see :mod:`processors.app`)."""

from redblue.core.access import processor_app_id


def app_id(run: str) -> str:
    """The Faust app (and consumer group) of a run; its internal topics start with this too
    (:func:`redblue.core.access.processor_app_id`, which the run's ACLs grant).

    Here rather than in :mod:`processors.app`, so naming a run's group does not import Faust.
    """
    return processor_app_id(run)


def worker_client_id(pid: int) -> str:
    """The Kafka client id of the worker process ``pid``: several workers share one consumer
    group, and the group's description names each member by it (see :func:`worker_pid`)."""
    return f"redblue-processor-{pid}"


def worker_pid(client_id: str) -> int | None:
    """The process id of a worker from its client id (None for another client)."""
    number = client_id.removeprefix("redblue-processor-")
    return int(number) if number != client_id and number.isdigit() else None
