"""Service settings: one frozen object, built at each entry point from the environment and ``.env``.

Nothing else in redblue reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from redblue.core.errors import RedblueError

DEFAULT_HOME = Path.home() / ".cache" / "redblue"
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
REDIS_PORT = 16379


class Settings(BaseSettings):
    """Where the services are. Every field can be set as ``REDBLUE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="REDBLUE_", env_file=".env", frozen=True, extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="caches (environment, Kafka jars), the local stack's data and logs")
    stack_dir: Path | None = Field(None, description="the local stack's data and logs; default: <home>/stack")
    kafka_bootstrap: str = f"127.0.0.1:{KAFKA_PORT}"
    redis_url: str = f"redis://127.0.0.1:{REDIS_PORT}/0"
    mlflow_tracking_uri: str = ""
    topic_prefix: str = "redblue"
    redis_prefix: str = "redblue"
    registry_prefix: str = "redblue"  # registered model names: {prefix}.{team}.{model}.{symbol}
    model_refresh_seconds: float = 10.0  # how often the processor checks for moved aliases
    stall_seconds: float = 120.0  # a season's consumer behind without committing this long is restarted
    trader_tick_seconds: float = 30.0  # how often the trader sends the orders its gateways held
    clock_file: Path | None = Field(
        None, description="a replayed market clock (rehearsals): the services' 'now' is the ISO time in this file"
    )
    allow_real_money: str = Field(
        "", description="comma-separated teams allowed on a real-money Alpaca account (their _ALPACA_PAPER=false)"
    )

    @property
    def stack_home(self) -> Path:
        """Where the local stack keeps its data: a fresh directory here means a brand-new stack."""
        return self.stack_dir or self.home / "stack"

    @property
    def real_money_teams(self) -> frozenset[str]:
        """The teams ``REDBLUE_ALLOW_REAL_MONEY`` names (lower case)."""
        return frozenset(t.strip().lower() for t in self.allow_real_money.split(",") if t.strip())

    @property
    def mlflow_uri(self) -> str:
        """The tracking URI; by default the local stack's sqlite store."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.stack_home / 'mlflow' / 'mlflow.db'}"


class AlpacaCredentials(BaseSettings):
    """An Alpaca account: ``<PREFIX>KEY``, ``<PREFIX>SECRET`` (and optionally ``PAPER``, ``URL_OVERRIDE``).

    The key and secret are ``SecretStr``: their ``repr`` and ``str`` are ``**********``.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=".env")

    key: SecretStr
    secret: SecretStr
    paper: bool = True
    url_override: str | None = None


def alpaca_credentials(prefix: str) -> AlpacaCredentials:
    """Credentials from ``{prefix}KEY`` / ``{prefix}SECRET``; a clear error names what is missing.

    Teams use ``REDBLUE_<TEAM>_ALPACA_``; the market-data producer ``REDBLUE_ALPACA_``.
    """
    try:
        return AlpacaCredentials(_env_prefix=prefix)
    except ValidationError as err:
        missing = ", ".join(f"{prefix}{str(e['loc'][0]).upper()}" for e in err.errors())
        raise RedblueError(f"Alpaca credentials missing or invalid: set {missing} (environment or .env)") from err


def team_alpaca_credentials(team: str, settings: Settings) -> AlpacaCredentials:
    """A team's account from ``REDBLUE_<TEAM>_ALPACA_*``.

    ``..._PAPER=false`` (a real-money account) is refused with a clear error unless
    ``REDBLUE_ALLOW_REAL_MONEY`` names the team too: one setting alone never reaches real money.
    """
    prefix = f"REDBLUE_{team.upper()}_ALPACA_"
    creds = alpaca_credentials(prefix)
    if not creds.paper and team.lower() not in settings.real_money_teams:
        raise RedblueError(
            f"{prefix}PAPER=false points team {team} at a REAL-MONEY Alpaca account; refused. "
            f"If that is meant, also set REDBLUE_ALLOW_REAL_MONEY={team} (a comma-separated list of teams)"
        )
    return creds


def as_env(settings: Settings) -> dict[str, str]:
    """The settings as ``REDBLUE_*`` variables, so a child process gets exactly these settings."""
    return {f"REDBLUE_{name.upper()}": str(value) for name, value in settings.model_dump().items() if value is not None}
