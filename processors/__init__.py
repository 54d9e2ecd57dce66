"""The processors: one Faust worker serves every model of an arena (see :mod:`processors.app`)."""


def app_id(run: str) -> str:
    """The Faust app (and consumer group) of a run; its internal topics start with this too.

    Here rather than in :mod:`processors.app`, so naming a run's group does not import Faust.
    """
    return f"redblue-processor-{run}"
