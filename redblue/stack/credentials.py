"""The stack's passwords: generated once per stack directory, kept in ``credentials.env`` (0600).

``up`` writes a random password for every principal the file lacks (a brand-new stack gets all
of them) and hands the services settings that carry them. A password set in the environment
or ``.env`` wins over the file: the file only fills what is not configured.
"""

from __future__ import annotations

from pydantic import SecretStr

from redblue.core import credentials
from redblue.core.settings import Settings, team_mlflow_login
from redblue.stack.process import Out


def ensure_credentials(settings: Settings, out: Out = print) -> Settings:
    """Generate the passwords the stack's credentials file lacks; the settings with them filled in."""
    if not settings.security:
        return settings
    path = settings.credentials_file
    credentials.check_private(path)
    found = credentials.read_file(path)
    missing = [variable for variable in credentials.secret_fields().values() if variable not in found]
    if missing:
        credentials.write_file(path, {**found, **{variable: credentials.new_password() for variable in missing}})
        out(f"credentials: {len(missing)} random password(s) written to {path} (mode 0600; never commit or print it)")
    return with_stack_credentials(settings)


def with_stack_credentials(settings: Settings) -> Settings:
    """``settings`` with every password it lacks taken from the stack's credentials file."""
    found = credentials.read_file(settings.credentials_file)
    update = {
        field: SecretStr(found[variable])
        for field, variable in credentials.secret_fields().items()
        if getattr(settings, field) is None and variable in found
    }
    return settings.model_copy(update=update) if update else settings


def ensure_team_password(settings: Settings, team: str) -> bool:
    """Add a random MLflow password for ``team`` to the credentials file unless one is configured
    (environment, .env or the file); True when one was added."""
    path = settings.credentials_file
    variable = credentials.team_password_variable(team)
    found = credentials.read_file(path)
    if variable in found:
        return False
    try:
        team_mlflow_login(settings, team)
        return False  # configured in the environment or .env
    except credentials.CredentialsError:
        pass
    credentials.write_file(path, {**found, variable: credentials.new_password()})
    return True
