"""The processors: one Faust worker serves every model of an arena (see :mod:`processors.app`)."""

from redblue.core.access import processor_app_id


def app_id(run: str) -> str:
    """The Faust app (and consumer group) of a run; its internal topics start with this too
    (:func:`redblue.core.access.processor_app_id`, which the run's ACLs grant).

    Here rather than in :mod:`processors.app`, so naming a run's group does not import Faust.
    """
    return processor_app_id(run)
