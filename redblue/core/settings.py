"""Service settings: one frozen object, built at each entry point from the environment and ``.env``.

Nothing else in redblue reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from redblue.core import credentials
from redblue.core.credentials import CREDENTIALS_FILE, MLFLOW_READER, CredentialsError, Login, Service
from redblue.core.errors import RedblueError

DEFAULT_HOME = Path.home() / ".cache" / "redblue"
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
REDIS_PORT = 16379
MLFLOW_PORT = 15000


class _StackCredentials(PydanticBaseSettingsSource):
    """The passwords ``redblue stack up`` generated (``<stack dir>/credentials.env``), below the
    environment and ``.env``: a field set there wins."""

    def __init__(self, settings_cls: type[BaseSettings], *above: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._above = above

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for source in reversed(self._above):  # lowest priority first, so the highest wins
            given.update(source())
        home = Path(given.get("home") or DEFAULT_HOME)
        stack = Path(given["stack_dir"]) if given.get("stack_dir") else home / "stack"
        found = credentials.read_file(stack / CREDENTIALS_FILE)
        return {field: found[var] for field, var in credentials.secret_fields().items() if var in found}


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
    processor_session_seconds: float = 60.0  # a processor worker silent this long leaves its group (Faust's default)
    trader_tick_seconds: float = 30.0  # how often the trader sends the orders its gateways held
    clock_file: Path | None = Field(
        None, description="a replayed market clock (rehearsals): the services' 'now' is the ISO time in this file"
    )
    ready_file: Path | None = Field(
        None, description="where the service says it is ready (pid and time; set by the season supervisor)"
    )
    service: Service = Field("admin", description="whose credentials this process uses (each command sets its own)")
    security: bool = Field(True, description="false: the local stack and every client without authentication")
    allow_real_money: str = Field(
        "", description="comma-separated teams allowed on a real-money Alpaca account (their _ALPACA_PAPER=false)"
    )
    # Passwords: from the environment, .env, or the stack's generated credentials.env.
    kafka_admin_password: SecretStr | None = None
    kafka_controller_password: SecretStr | None = None
    kafka_producer_password: SecretStr | None = None
    kafka_processor_password: SecretStr | None = None
    kafka_trader_password: SecretStr | None = None
    kafka_scorer_password: SecretStr | None = None
    kafka_leaderboard_password: SecretStr | None = None
    redis_admin_password: SecretStr | None = None
    redis_scorer_password: SecretStr | None = None
    redis_leaderboard_password: SecretStr | None = None
    mlflow_admin_password: SecretStr | None = None
    mlflow_reader_password: SecretStr | None = None
    mlflow_secret_key: SecretStr | None = None  # the MLflow server's Flask secret (its sessions)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        stack = _StackCredentials(settings_cls, init_settings, env_settings, dotenv_settings)
        return init_settings, env_settings, dotenv_settings, stack, file_secret_settings

    @field_validator("registry_prefix")
    @classmethod
    def _no_dot(cls, prefix: str) -> str:
        if not prefix or "." in prefix:
            raise ValueError(f"registry_prefix must be non-empty and without '.', got {prefix!r}")
        return prefix

    @property
    def stack_home(self) -> Path:
        """Where the local stack keeps its data: a fresh directory here means a brand-new stack."""
        return self.stack_dir or self.home / "stack"

    @property
    def credentials_file(self) -> Path:
        """The passwords ``redblue stack up`` generated for this stack (mode 0600)."""
        return self.stack_home / CREDENTIALS_FILE

    @property
    def real_money_teams(self) -> frozenset[str]:
        """The teams ``REDBLUE_ALLOW_REAL_MONEY`` names (lower case)."""
        return frozenset(t.strip().lower() for t in self.allow_real_money.split(",") if t.strip())

    @property
    def mlflow_uri(self) -> str:
        """The tracking URI; by default the local stack's MLflow server."""
        return self.mlflow_tracking_uri or f"http://127.0.0.1:{MLFLOW_PORT}"

    def for_service(self, service: Service) -> Settings:
        """The same settings for another service's process (its credentials, nothing else changes)."""
        return self.model_copy(update={"service": service})

    def kafka_login(self) -> Login | None:
        """This service's Kafka SCRAM user; None without security."""
        return self._login("kafka", self.service) if self.security else None

    def redis_login(self) -> Login | None:
        """This service's Redis ACL user; None without security. Only some services use Redis."""
        if not self.security:
            return None
        if self.service not in credentials.REDIS_USERS:
            raise CredentialsError(f"the {self.service} service has no Redis user (only {credentials.REDIS_USERS})")
        return self._login("redis", self.service)

    def mlflow_login(self) -> Login | None:
        """This service's MLflow user (the admin, or the read-only ``reader`` for every other
        service); None without security or for a local sqlite store (no server to log in to)."""
        if not self.security or not self.mlflow_uri.startswith(("http://", "https://")):
            return None
        return self._login("mlflow", "admin" if self.service == "admin" else MLFLOW_READER)

    def kafka_service_passwords(self) -> dict[str, SecretStr]:
        """The SCRAM passwords of every service but the admin that this process knows."""
        found = {s: getattr(self, f"kafka_{s}_password") for s in credentials.SERVICES if s != "admin"}
        return {s: pw for s, pw in found.items() if isinstance(pw, SecretStr) and pw.get_secret_value()}

    def stack_login(self, system: str, user: str) -> Login:
        """A named user of the stack (for the stack itself and run setup)."""
        return self._login(system, user)

    def _login(self, system: str, user: str) -> Login:
        field = f"{system}_{user}_password"
        password = getattr(self, field, None)
        if not isinstance(password, SecretStr) or not password.get_secret_value():
            raise CredentialsError(
                f"no {system} password for {user}: set REDBLUE_{field.upper()} (environment or .env), or start "
                f"the local stack (bin/redblue stack up writes {self.credentials_file})"
            )
        return Login(user, password)


class AlpacaCredentials(BaseSettings):
    """An Alpaca account: ``<PREFIX>KEY``, ``<PREFIX>SECRET`` (and optionally ``PAPER``, ``URL_OVERRIDE``,
    ``TIMEOUT``: seconds to wait for each of its answers before retrying).

    The key and secret are ``SecretStr``: their ``repr`` and ``str`` are ``**********``.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=".env")

    key: SecretStr
    secret: SecretStr
    paper: bool = True
    url_override: str | None = None
    timeout: float = Field(10.0, gt=0)


def alpaca_credentials(prefix: str) -> AlpacaCredentials:
    """Credentials from ``{prefix}KEY`` / ``{prefix}SECRET``; a clear error names what is missing.

    Teams use ``REDBLUE_<TEAM>_ALPACA_``; the market-data producer ``REDBLUE_ALPACA_``.
    """
    try:
        return AlpacaCredentials(_env_prefix=prefix)
    except ValidationError as err:
        missing = ", ".join(f"{prefix}{str(e['loc'][0]).upper()}" for e in err.errors())
        raise RedblueError(f"Alpaca credentials missing or invalid: set {missing} (environment or .env)") from err


def team_mlflow_login(settings: Settings, team: str) -> Login | None:
    """The MLflow user a team trains with: ``team-<team>``, its password from
    ``REDBLUE_<TEAM>_MLFLOW_PASSWORD`` (environment, .env or the stack's credentials file);
    None without security or for a local sqlite store."""
    if not settings.security or not settings.mlflow_uri.startswith(("http://", "https://")):
        return None
    variable = credentials.team_password_variable(team)
    found = _TeamPassword(_env_prefix=variable.removesuffix("PASSWORD"), _env_file=(settings.credentials_file, ".env"))
    if found.password is None or not found.password.get_secret_value():
        raise CredentialsError(
            f"no MLflow password for team {team}: set {variable}, or let an admin create the user "
            f"(bin/redblue train creates missing team users when the admin password is configured)"
        )
    return Login(credentials.team_user(team), found.password)


class _TeamPassword(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    password: SecretStr | None = None


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
    """The settings as ``REDBLUE_*`` variables, so a child process gets exactly these settings.

    The child gets ``settings.service``'s own passwords in clear (only for its environment, never
    to print) and every other password blanked, so it cannot fall back on the stack's file for them.
    """
    own = credentials.own_secret_fields(settings.service)
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in credentials.secret_fields():
            env[f"REDBLUE_{name.upper()}"] = value.get_secret_value() if name in own and value is not None else ""
        elif value is not None:
            env[f"REDBLUE_{name.upper()}"] = str(value)
    return env
