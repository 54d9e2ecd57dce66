"""The root of redblue's own errors: the CLI prints these as one clear line, without a traceback."""


class RedblueError(Exception):
    """Something the user can act on: bad input, a missing prerequisite, a service not running."""
