"""docker-compose.yml agrees with the settings and with the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from redblue.core.settings import KAFKA_PORT, REDIS_PORT, Settings
from redblue.stack import kafka as stack_kafka

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
OURS = ("processor", "trader", "scorer", "producer")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    parsed: dict[str, dict[str, dict[str, Any]]] = yaml.safe_load(COMPOSE.read_text())
    return parsed["services"]


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).split(":")[-2]) for mapping in service.get("ports", [])}


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"kafka", "redis", "mlflow", *OURS}


def test_host_ports_are_the_settings_defaults(services: dict[str, dict[str, Any]]) -> None:
    assert KAFKA_PORT in host_ports(services["kafka"])
    assert REDIS_PORT in host_ports(services["redis"])
    assert (
        f"advertised.listeners=INTERNAL://kafka:9092,HOST://localhost:{KAFKA_PORT}" in services["kafka"]["command"][0]
    )


def test_redblue_variables_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    used = {name for s in services.values() for name in s.get("environment", {}) if name.startswith("REDBLUE_")}
    assert used >= {"REDBLUE_KAFKA_BOOTSTRAP", "REDBLUE_REDIS_URL", "REDBLUE_MLFLOW_TRACKING_URI"}
    assert {name.removeprefix("REDBLUE_").lower() for name in used} <= set(Settings.model_fields)


def test_our_services_reach_the_infrastructure_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    from redblue.app.cli import build_parser

    for name in OURS:
        service = services[name]
        assert {"kafka", "redis"} <= set(service["depends_on"]), name
        assert service["environment"]["REDBLUE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["environment"]["REDBLUE_REDIS_URL"].startswith("redis://redis:6379/")
        assert service["build"] == "."
        assert build_parser().parse_args(service["command"]).run == "live"


@pytest.mark.parametrize("name", [*OURS, "web", "setup", "mlflow"])
def test_every_redblue_command_is_one_the_cli_accepts(services: dict[str, dict[str, Any]], name: str) -> None:
    """Parsed by the CLI's own parser (argparse exits on anything it does not accept)."""
    from redblue.app.cli import build_parser

    try:
        args = build_parser().parse_args(services[name]["command"])
    except SystemExit as exc:
        pytest.fail(
            f"docker-compose service {name!r} runs a command the CLI refuses: {services[name]['command']} ({exc})"
        )
    commands = {"producer": "produce", "processor": "process", "trader": "trade", "scorer": "score"}
    assert args.command == (commands | {"setup": "setup", "mlflow": "stack", "web": "serve"})[name]


def test_kafka_image_is_the_stack_version(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{stack_kafka.kafka_version()}"


def test_dockerfile_runs_the_cli() -> None:
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile
    assert "requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "redblue"]' in dockerfile


def test_the_web_service_reads_redis_only_with_the_clis_arguments(services: dict[str, dict[str, Any]]) -> None:
    from redblue.app.cli import build_parser

    web = services["web"]
    assert set(web["depends_on"]) == {"redis"}
    assert web["environment"]["REDBLUE_REDIS_URL"].startswith("redis://redis:6379/")
    args = build_parser().parse_args(web["command"])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8080)
    assert host_ports(web) == {8080}


def test_each_service_gets_only_its_own_passwords(services: dict[str, dict[str, Any]]) -> None:
    from redblue.core import credentials

    secret = set(credentials.secret_fields().values())
    for name, service in services.items():
        given = {var for var in service.get("environment", {}) if var in secret}
        if name in ("setup", "mlflow") or name not in (*OURS, "web"):
            continue
        service_name = {"web": "leaderboard"}.get(name, name)
        own = {f"REDBLUE_{f.upper()}" for f in credentials.own_secret_fields(service_name)}  # type: ignore[arg-type]
        assert given <= own, f"{name} gets passwords that are not its own: {sorted(given - own)}"
        assert "env_file" not in service or name == "trader", f"{name} reads a whole env file"


def test_the_redis_users_are_the_local_stacks(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """docker-compose's Redis users have the same rules as the local stack's ACL file."""
    from redblue.stack import redis as stack_redis
    from redblue.stack.credentials import ensure_credentials

    local = stack_redis.render_acl(ensure_credentials(Settings(home=tmp_path, stack_dir=tmp_path), out=lambda _: None))
    script = services["redis"]["command"][0]
    for line in local.splitlines():
        user = line.split()[1]
        rule = line.split("#", 1)[1].split(" ", 1)[1] if "#" in line else line.split(" ", 3)[3]
        assert rule in script, f"the compose Redis user {user} differs from the local stack's: {rule}"


def test_compose_runs_the_supervisors_command_lines(services: dict[str, dict[str, Any]]) -> None:
    """Compose and ``season up`` run the same services with the same arguments, compared as parsed
    by the CLI's own parser (so an option spelled differently but meaning the same still agrees)."""
    from redblue.app.cli import build_parser
    from redblue.app.season.services import SeasonSpec, service_args

    supervised = service_args(SeasonSpec("live", source="yfinance", host="0.0.0.0", port=8080))
    assert set(supervised) == {*OURS, "web"}
    for name, args in supervised.items():
        assert build_parser().parse_args(services[name]["command"]) == build_parser().parse_args(args), name


def test_compose_scales_the_processor_as_the_supervisor_runs_several(services: dict[str, dict[str, Any]]) -> None:
    """``season up --processors 2`` runs processor and processor-2 with compose's processor command;
    compose runs more by ``--scale processor=2``, which a fixed container name or host port forbids."""
    from redblue.app.cli import build_parser
    from redblue.app.season.services import SeasonSpec, kind_of, service_args

    supervised = service_args(SeasonSpec("live", source="yfinance", host="0.0.0.0", port=8080, processors=2))
    workers = [name for name in supervised if kind_of(name) == "processor"]
    assert workers == ["processor", "processor-2"]
    compose = build_parser().parse_args(services["processor"]["command"])
    assert all(build_parser().parse_args(supervised[name]) == compose for name in workers)
    assert not {"container_name", "ports"} & set(services["processor"])
    assert services["processor"].get("deploy", {}).get("replicas", 1) == SeasonSpec("live").processors
