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
    assert f"localhost:{KAFKA_PORT}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_redblue_variables_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    used = {name for s in services.values() for name in s.get("environment", {}) if name.startswith("REDBLUE_")}
    assert used >= {"REDBLUE_KAFKA_BOOTSTRAP", "REDBLUE_REDIS_URL", "REDBLUE_MLFLOW_TRACKING_URI"}
    assert {name.removeprefix("REDBLUE_").lower() for name in used} <= set(Settings.model_fields)


def test_our_services_reach_the_infrastructure_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    for name in OURS:
        service = services[name]
        assert {"kafka", "redis"} <= set(service["depends_on"]), name
        assert service["environment"]["REDBLUE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["environment"]["REDBLUE_REDIS_URL"].startswith("redis://redis:6379/")
        assert service["build"] == "."
        assert service["command"][-2:] == ["--run", "live"]


def test_kafka_image_is_the_stack_version(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{stack_kafka.kafka_version()}"


def test_dockerfile_runs_the_cli() -> None:
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile
    assert "requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "redblue"]' in dockerfile
