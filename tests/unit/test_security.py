"""The pure parts of least privilege: who may do what, the stack's secured configuration, the
credentials file, the live-money opt-in. No services (the proofs against the real ones are in
tests/integration/test_security.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from redblue.core import credentials
from redblue.core.access import Grant, mlflow_refusal, run_grants
from redblue.core.settings import KAFKA_PORT, Settings, as_env
from redblue.stack import kafka as stack_kafka
from redblue.stack import redis as stack_redis
from redblue.stack.credentials import ensure_credentials
from tests.unit.test_stack import properties


def stack_settings(tmp_path: Path) -> Settings:
    return ensure_credentials(Settings(home=tmp_path, stack_dir=tmp_path / "stack"), out=lambda _: None)


def test_the_stack_generates_private_random_passwords_once(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    mode = stat.S_IMODE(settings.credentials_file.stat().st_mode)
    assert mode == 0o600
    first = credentials.read_file(settings.credentials_file)
    assert set(first) == set(credentials.secret_fields().values())
    assert len(set(first.values())) == len(first)  # all different
    assert all(len(v) >= 32 for v in first.values())
    assert credentials.read_file(stack_settings(tmp_path).credentials_file) == first  # kept, not regenerated
    # a fresh Settings() of this stack reads them (below the environment and .env)
    again = Settings(home=tmp_path, stack_dir=tmp_path / "stack")
    assert again.kafka_trader_password is not None
    assert again.kafka_trader_password.get_secret_value() == first["REDBLUE_KAFKA_TRADER_PASSWORD"]
    assert first["REDBLUE_KAFKA_TRADER_PASSWORD"] not in repr(again) + str(again)


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    settings.credentials_file.chmod(0o644)
    with pytest.raises(credentials.CredentialsError, match="chmod 600"):
        stack_settings(tmp_path)


def test_each_service_logs_in_as_itself(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    for service in credentials.SERVICES:
        login = settings.for_service(service).kafka_login()
        assert login is not None and login.username == service
    assert settings.for_service("leaderboard").redis_login().username == "leaderboard"  # type: ignore[union-attr]
    with pytest.raises(credentials.CredentialsError, match="no Redis user"):
        settings.for_service("processor").redis_login()
    assert settings.for_service("processor").mlflow_login().username == "reader"  # type: ignore[union-attr]
    assert settings.for_service("processor").model_copy(update={"security": False}).kafka_login() is None


def test_a_missing_password_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(credentials.CredentialsError, match="REDBLUE_KAFKA_TRADER_PASSWORD"):
        Settings(home=tmp_path, stack_dir=tmp_path / "empty").for_service("trader").kafka_login()


def test_a_child_process_gets_only_its_own_passwords(tmp_path: Path) -> None:
    env = as_env(stack_settings(tmp_path).for_service("processor"))
    assert env["REDBLUE_SERVICE"] == "processor"
    assert env["REDBLUE_KAFKA_PROCESSOR_PASSWORD"] and env["REDBLUE_MLFLOW_READER_PASSWORD"]
    assert env["REDBLUE_KAFKA_ADMIN_PASSWORD"] == "" and env["REDBLUE_REDIS_SCORER_PASSWORD"] == ""
    assert env["REDBLUE_KAFKA_TRADER_PASSWORD"] == "" and env["REDBLUE_MLFLOW_ADMIN_PASSWORD"] == ""


def test_secured_broker_configuration(tmp_path: Path) -> None:
    secrets = stack_kafka.KafkaSecrets(SecretStr("admin-pw"), SecretStr("ctl-pw"))
    props = properties(stack_kafka.render_server_properties(tmp_path / "data", KAFKA_PORT, secrets))
    assert props["listener.security.protocol.map"] == "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    assert props["listener.name.broker.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert 'username="admin" password="admin-pw"' in props["listener.name.broker.scram-sha-512.sasl.jaas.config"]


def test_grants_follow_each_services_job() -> None:
    grants = run_grants("redblue", "r1")

    def may(service: str, op: str, suffix: str) -> bool:
        return Grant(service, "topic", f"redblue.r1.{suffix}", "literal", op) in grants  # type: ignore[arg-type]

    assert may("producer", "WRITE", "bars") and not may("producer", "WRITE", "forecasts")
    assert may("processor", "READ", "bars") and may("processor", "WRITE", "forecasts")
    assert not may("processor", "WRITE", "orders") and not may("processor", "WRITE", "bars")
    assert may("trader", "WRITE", "orders") and may("trader", "WRITE", "fills") and may("trader", "READ", "forecasts")
    assert not may("trader", "WRITE", "forecasts")
    assert not any(g.operation != "READ" and g.name.endswith(("bars", "forecasts", "orders", "fills"))
                   for g in grants if g.principal in ("scorer", "leaderboard"))  # fmt: skip
    assert Grant("processor", "topic", "redblue-processor-r1-", "prefixed", "CREATE") in grants
    assert Grant("trader", "transactional_id", "redblue-trader-r1", "literal", "WRITE") in grants
    assert not [g for g in grants if g.principal == "admin"]  # a super user needs none
    assert all(g.pattern == "literal" or g.name.endswith("-") for g in grants)  # prefixes end with a delimiter


def test_redis_acl_has_no_default_user_and_a_read_only_leaderboard(tmp_path: Path) -> None:
    acl = stack_redis.render_acl(stack_settings(tmp_path)).splitlines()
    users = {line.split()[1]: line for line in acl}
    assert users["default"].startswith("user default off")
    assert "%R~redblue:*" in users["leaderboard"] and "+@write" not in users["leaderboard"]
    assert "-@dangerous" in users["scorer"] and "~redblue:*" in users["scorer"]
    password = Settings(home=tmp_path, stack_dir=tmp_path / "stack").redis_scorer_password
    assert password is not None and password.get_secret_value() not in "\n".join(acl)  # hashes only


@pytest.mark.parametrize(
    ("user", "method", "path", "body", "refused"),
    [
        ("team-red", "POST", "/api/2.0/mlflow/registered-models/create", {"name": "redblue.red.mlp.AAPL"}, False),
        ("team-red", "POST", "/api/2.0/mlflow/registered-models/create", {"name": "redblue.blue.seq.AAPL"}, True),
        ("team-red", "POST", "/ajax-api/2.0/mlflow/registered-models/rename",
         {"name": "redblue.red.mlp.AAPL", "new_name": "redblue.blue.mlp.AAPL"}, True),
        ("team-red", "POST", "/api/2.0/mlflow/experiments/create", {"name": "redblue.red"}, False),
        ("team-red", "POST", "/api/2.0/mlflow/experiments/create", {"name": "redblue.blue"}, True),
        ("team-red", "POST", "/api/2.0/mlflow/experiments/create", None, True),
        ("team-red", "POST", "/api/2.0/mlflow/registered-models/alias", {"name": "redblue.blue.seq.AAPL"}, False),
        ("reader", "GET", "/api/2.0/mlflow/registered-models/alias", None, False),
        ("reader", "POST", "/api/2.0/mlflow/runs/search", {}, False),
        ("reader", "POST", "/api/2.0/mlflow/registered-models/alias", {"name": "x"}, True),
        ("reader", "DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": "x"}, True),
    ],
)  # fmt: skip
def test_mlflow_namespace_and_read_only_rules(user: str, method: str, path: str, body: object, refused: bool) -> None:
    # (moving another team's alias is refused by MLflow's own per-model permissions: READ only)
    assert (mlflow_refusal(user, method, path, body) is not None) is refused


def test_the_policy_follows_what_the_consumers_read() -> None:
    """A consumer that starts reading another topic must get the right: this fails first."""
    from consumers.scorer import TOPICS as SCORED
    from redblue.core.access import TOPIC_RIGHTS
    from schemas.topics import DEADLETTER, FILLS, FORECASTS, ORDERS

    assert set(SCORED) <= set(TOPIC_RIGHTS["scorer"][0])
    assert FORECASTS in TOPIC_RIGHTS["trader"][0]
    assert DEADLETTER in TOPIC_RIGHTS["producer"][0]  # the live producer reads back what it dead-lettered
    assert {ORDERS, FILLS} <= set(TOPIC_RIGHTS["trader"][0])  # a restarted trader rebuilds from its own output
