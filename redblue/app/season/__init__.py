"""A live season as one command: the long-lived services of a run, supervised (``redblue season``)."""
