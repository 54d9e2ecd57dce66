"""Least privilege, proven against the real stack (Kafka SASL/SCRAM + ACLs, Redis ACL users,
MLflow's basic-auth app with redblue's rules): each service and each team can do its job and
nothing else, and nobody gets in without logging in."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.onnx
import onnx
import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from mlflow.exceptions import MlflowException
from pydantic import SecretStr

from processors.book import ModelBook
from redblue.adapters.kafka import EventProducer, KafkaUnavailable, Outgoing, client_config, read_topic
from redblue.adapters.mlflow import local_store
from redblue.adapters.mlflow.auth import AsUser, logged_in
from redblue.adapters.mlflow.registry import RegistrySource
from redblue.adapters.mlflow.training import TrainingRuns
from redblue.adapters.redis_store import RedisStore
from redblue.app.provision import prepare_run, prepare_teams
from redblue.core import model_names as names
from redblue.core.arena import Arena, ModelSpec, TeamSpec
from redblue.core.credentials import Login
from redblue.core.settings import Settings, team_mlflow_login
from redblue.core.store import StoreRefused
from redblue.stack.mlflow import store_files
from schemas import Forecast, Order
from schemas.topics import BARS, FORECASTS, ORDERS
from tests.factories import bar
from tests.unit.test_onnx_model import contract_metadata, linear_model

pytestmark = pytest.mark.integration

DAY = date(2024, 1, 3)


@pytest.fixture(autouse=True)
def _secured(settings: Settings) -> None:
    if not settings.security:
        pytest.fail("the stack runs without security (REDBLUE_SECURITY=false): these proofs need the secured stack")


@pytest.fixture
def run(settings: Settings, run_id: str) -> str:
    prepare_run(settings, run_id)
    return run_id


def forecast(run: str) -> Forecast:
    return Forecast(
        run=run, team="red", model="drift", model_version="1", symbol="AAPL", as_of=DAY, target=date(2024, 1, 4),
        predicted_close=101.0, last_close=100.0, produced_at=bar("AAPL", DAY, 100.0).produced_at,
    )  # fmt: skip


def order(run: str) -> Order:
    return Order.model_validate(
        {
            "run": run, "team": "red", "model": "drift", "symbol": "AAPL", "as_of": DAY, "target": date(2024, 1, 4),
            "side": "buy", "quantity": 1, "reference_price": 100.0, "client_order_id": f"{run}-x",
            "status": "submitted", "produced_at": bar("AAPL", DAY, 100.0).produced_at,
        }
    )  # fmt: skip


def send(settings: Settings, run: str, out: Outgoing) -> None:
    producer = EventProducer(settings, run)
    producer.send(out)
    producer.flush(timeout=20)


# -- Kafka ---------------------------------------------------------------------------------------


def test_the_processor_cannot_write_orders(settings: Settings, run: str) -> None:
    processor = settings.for_service("processor")
    send(processor, run, Outgoing(FORECASTS, "AAPL", forecast(run)))  # its job
    with pytest.raises(KafkaUnavailable, match=r"TOPIC_AUTHORIZATION_FAILED|Topic authorization failed"):
        send(processor, run, Outgoing(ORDERS, "AAPL", order(run)))
    assert read_topic(settings, run, ORDERS) == []


def test_each_service_writes_only_its_own_topics(settings: Settings, run: str) -> None:
    send(settings.for_service("producer"), run, Outgoing(BARS, "AAPL", bar("AAPL", DAY, 100.0)))
    send(settings.for_service("trader"), run, Outgoing(ORDERS, "AAPL", order(run)))
    for service, spec, event in (
        ("producer", FORECASTS, forecast(run)),
        ("scorer", FORECASTS, forecast(run)),
        ("leaderboard", BARS, bar("AAPL", DAY, 100.0)),
        ("trader", BARS, bar("AAPL", DAY, 100.0)),
    ):
        with pytest.raises(KafkaUnavailable, match="uthorization"):
            send(settings.for_service(service), run, Outgoing(spec, "AAPL", event))  # type: ignore[arg-type]
    assert len(read_topic(settings.for_service("leaderboard"), run, ORDERS)) == 1  # readers read


def test_a_service_cannot_read_what_is_not_its_input(settings: Settings, run: str) -> None:
    send(settings.for_service("trader"), run, Outgoing(ORDERS, "AAPL", order(run)))
    with pytest.raises(KafkaUnavailable, match="uthorization"):
        read_topic(settings.for_service("processor"), run, ORDERS)


def test_an_unauthenticated_kafka_client_is_refused(settings: Settings) -> None:
    plain = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        plain.list_topics(timeout=5)
    wrong = settings.for_service("trader").model_copy(update={"kafka_trader_password": SecretStr("not-the-password")})
    with pytest.raises(KafkaException):
        AdminClient({**client_config(wrong), "log_level": 0}).list_topics(timeout=5)
    assert AdminClient(client_config(settings)).list_topics(timeout=10).topics  # the admin gets in


# -- Redis ---------------------------------------------------------------------------------------


def test_the_leaderboard_reader_cannot_write_redis(settings: Settings, run_id: str) -> None:
    with RedisStore.from_settings(settings.for_service("scorer"), run_id) as scorer:
        scorer.set_equity("red", DAY, 100_000.0)  # the scorer writes the leaderboard
    with RedisStore.from_settings(settings.for_service("leaderboard"), run_id) as reader:
        assert reader.equity_history("red") == [(DAY, 100_000.0)]  # the reader reads it
        with pytest.raises(StoreRefused, match=r"NOPERM|permission"):
            reader.set_equity("red", DAY, 1.0)
        with pytest.raises(StoreRefused):
            reader.delete_run()
    login = settings.for_service("leaderboard").redis_login()
    assert login is not None
    client = redis.Redis.from_url(
        settings.redis_url, username=login.username, password=login.password.get_secret_value()
    )
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get("not-a-leaderboard-key")
    client.close()


def test_the_scorer_scores_and_revises_only_the_leaderboard(settings: Settings, run_id: str) -> None:
    from dataclasses import replace

    from tests.integration.test_redis_store import AWKWARD

    scorer = settings.for_service("scorer")
    with RedisStore.from_settings(scorer, run_id) as store:
        assert all(store.add_score(s) for s in AWKWARD[:4])  # its Lua scripts
        assert store.revise_score(replace(AWKWARD[3], actual=AWKWARD[3].actual + 1))  # MULTI/EXEC
    login = scorer.redis_login()
    assert login is not None
    secret = login.password.get_secret_value()
    client = redis.Redis.from_url(settings.redis_url, username=login.username, password=secret)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("elsewhere", "x")  # keys outside the leaderboard's prefix
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    client.close()


def test_an_unauthenticated_redis_client_is_refused(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        client.ping()
    client.close()


# -- MLflow --------------------------------------------------------------------------------------


@pytest.fixture
def prefix(settings: Settings) -> Iterator[str]:
    """A registry prefix of this test's own; its registered models are deleted at the end."""
    found = f"t{uuid.uuid4().hex[:8]}"
    yield found
    admin = settings.mlflow_login()
    client = AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), admin)
    for model in client.search_registered_models(f"name LIKE '{found}.%'"):
        client.delete_registered_model(model.name)


def publish(settings: Settings, team: str, prefix: str, login: Login | None) -> str:
    """Register a small ONNX model as ``team`` would from training; its registered name."""
    name = names.registry_name(prefix, team, "mlp", "AAPL")
    runs = TrainingRuns(settings, names.training_experiment(team), login)
    run_id = runs.start(name, {"redblue.kind": "test"})
    proto = linear_model(metadata=contract_metadata(team=team, symbol="AAPL"))
    runs.publish(run_id, proto, name, 5, contract_metadata(team=team, symbol="AAPL"), {})
    return name


def test_team_red_cannot_move_blues_alias(settings: Settings, prefix: str) -> None:
    prepare_teams(settings, ["red", "blue"])
    red, blue = team_mlflow_login(settings, "red"), team_mlflow_login(settings, "blue")
    name = publish(settings, "blue", prefix, blue)
    publish(settings, "red", prefix, red)
    as_red = AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), red)
    assert as_red.get_registered_model(name).name == name  # red reads blue's model
    with pytest.raises(MlflowException, match="403") as refused:
        as_red.set_registered_model_alias(name, names.CHAMPION, "1")
    assert refused.value.get_http_status_code() == 403 and "Permission denied" in str(refused.value)
    with pytest.raises(MlflowException, match=r"403|Permission denied"):
        as_red.create_registered_model(names.registry_name(prefix, "blue", "squat", "AAPL"))  # blue's namespace
    with pytest.raises(MlflowException, match=r"403|Permission denied"):
        as_red.rename_registered_model(names.registry_name(prefix, "red", "mlp", "AAPL"), f"{prefix}.blue.x.AAPL")
    as_blue = AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), blue)
    as_blue.set_registered_model_alias(name, "challenger", "1")  # blue moves its own


def test_serving_reads_every_team_with_the_reader_only(settings: Settings, prefix: str) -> None:
    prepare_teams(settings, ["blue"])
    name = publish(settings, "blue", prefix, team_mlflow_login(settings, "blue"))
    reader = settings.for_service("processor").mlflow_login()
    arena = Arena(name="t", symbols=("AAPL",), teams={"blue": TeamSpec(models=(ModelSpec(name="mlp", kind="ludwig"),))})
    book = ModelBook(arena, {"ludwig": RegistrySource(settings.mlflow_uri, prefix, login=reader)})
    assert [m.forecaster.version for m in book.models if m.forecaster is not None] == ["1"]
    with logged_in(reader), pytest.raises(MlflowException, match=r"403|Permission denied|read-only"):
        mlflow.MlflowClient(tracking_uri=settings.mlflow_uri).set_registered_model_alias(name, "x", "1")


def test_serving_on_the_stacks_machine_reads_its_servers_files_as_the_server_would(
    settings: Settings, prefix: str, tmp_path: Path
) -> None:
    """The processor reads a champion's version and ONNX file straight from the files of this
    stack's own MLflow server (no MLflow import, no download), and they agree with the server."""
    prepare_teams(settings, ["blue"])
    name = publish(settings, "blue", prefix, team_mlflow_login(settings, "blue"))
    processor = settings.for_service("processor")
    files = store_files(processor)
    assert files is not None and files.artifacts is not None
    assert local_store.alias_version(files.uri, name, names.CHAMPION) == "1"
    quick = local_store.model_bytes(files.uri, name, "1", files.artifacts)
    assert quick is not None
    with logged_in(processor.mlflow_login()):  # what the server hands out for that version
        uri = mlflow.MlflowClient(tracking_uri=processor.mlflow_uri).get_model_version_download_uri(name, "1")
        served = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path), tracking_uri=processor.mlflow_uri)
        assert onnx.load_from_string(quick) == mlflow.onnx.load_model(served)
    spec = ModelSpec(name="mlp", kind="ludwig")
    source = RegistrySource(processor.mlflow_uri, prefix, login=processor.mlflow_login(), files=files)
    assert source.load("blue", spec, "AAPL").version == "1"
    # another stack's directory, or a server on another port, is not this server: asked over HTTP
    assert store_files(processor.model_copy(update={"stack_dir": tmp_path})) is None
    assert store_files(processor.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:1"})) is None


def test_an_unauthenticated_mlflow_client_is_refused(settings: Settings) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{settings.mlflow_uri}/api/2.0/mlflow/registered-models/search", timeout=10)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as signup:
        urllib.request.urlopen(f"{settings.mlflow_uri}/signup", timeout=10)
    assert signup.value.code == 401


def test_a_model_registered_before_its_team_had_a_user_becomes_the_teams(settings: Settings, prefix: str) -> None:
    """Models from before the server had users (or registered by the admin) are granted to their
    team when ``train`` prepares the team, so the team can still add versions and move aliases."""
    name = names.registry_name(prefix, "blue", "old", "AAPL")
    AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), settings.mlflow_login()).create_registered_model(name)
    prepare_teams(settings, ["blue", "red"])
    blue, red = (team_mlflow_login(settings, t) for t in ("blue", "red"))
    with pytest.raises(MlflowException, match="403"):
        AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), blue).update_registered_model(name, "mine")
    prepare_teams(settings.model_copy(update={"registry_prefix": prefix}), ["blue", "red"])
    AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), blue).update_registered_model(name, "mine")
    with pytest.raises(MlflowException, match="403"):
        AsUser(mlflow.MlflowClient(tracking_uri=settings.mlflow_uri), red).update_registered_model(name, "theirs")
