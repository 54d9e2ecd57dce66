"""The command lines of a season's long-lived services: built here, and only here.

The supervisor runs exactly these (as ``python -m redblue ARGS``) and docker-compose.yml runs the
same ARGS (a unit test parses both with the CLI's own parser and compares the parsed arguments).

Several processor workers (``processors``) run the same command line: Faust workers of one app
are one consumer group and share the bars topic's partitions. The supervisor names them
``processor``, ``processor-2``, ...; docker-compose scales its one ``processor`` service
(``docker compose up --scale processor=2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

# Start order: the web page first (it needs Redis only), the producer last (nothing consumes yet).
SERVICES = ("web", "scorer", "trader", "processor", "producer")


@dataclass(frozen=True)
class SeasonSpec:
    """What a season runs: its run id, arena file, bar source, and where the web page listens.

    ``first_target``: the first session the season forecasts (and so trades); the bars before it
    are the models' warm-up. ``interval``: seconds between the producer's polls (None: its default).
    ``processors``: how many processor workers share the bars topic's partitions.
    """

    season: str
    arena: Path | None = None
    source: str = "yfinance"
    host: str = "127.0.0.1"
    port: int = 8080
    first_target: date | None = None
    interval: float | None = None
    processors: int = 1


def processor_names(count: int) -> list[str]:
    """The supervisor's names of ``count`` processor workers: processor, processor-2, ..."""
    return ["processor", *(f"processor-{n}" for n in range(2, count + 1))]


def kind_of(service: str) -> str:
    """What a supervised service runs: ``processor-2`` is a ``processor``."""
    base, _, number = service.rpartition("-")
    return base if base == "processor" and number.isdigit() else service


def service_args(spec: SeasonSpec) -> dict[str, list[str]]:
    """Each service's ``redblue`` arguments (without the program name), in start order."""
    if spec.processors < 1:
        raise ValueError(f"a season needs at least one processor worker, not {spec.processors}")
    arena = ["--arena", str(spec.arena)] if spec.arena is not None else []
    run = ["--run", spec.season]
    args = {
        "web": ["serve", "--host", spec.host, "--port", str(spec.port)],
        "scorer": ["score", *run, *arena],
        "trader": ["trade", *run, *arena],
        "processor": ["process", *run, *arena, *_opt("--first-target", spec.first_target)],
        "producer": ["produce", *run, "--source", spec.source, *arena, *_opt("--interval", spec.interval)],
    }
    return {name: list(args[kind]) for kind in SERVICES for name in _named(kind, spec)}


def _named(kind: str, spec: SeasonSpec) -> list[str]:
    return processor_names(spec.processors) if kind == "processor" else [kind]


def _opt(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]
