"""Plumbing settings from LABELLOOP_* variables: Kafka connection, SASL secrets, topics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from streams.settings import KafkaSettings, Settings

SECRET = "hunter2"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LABELLOOP_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("LABELLOOP_"):
            monkeypatch.delenv(name)


def test_defaults_reach_a_local_plaintext_broker() -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_list == ["127.0.0.1:9092"]
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.topics.prefix == "labelloop."
    assert settings.kafka.kafka_python_options() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 30_000,
        "bootstrap_timeout_ms": 30_000,
    }


def test_nested_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_KAFKA__BOOTSTRAP_SERVERS", "k1:9092, k2:9092,")
    monkeypatch.setenv("LABELLOOP_TOPICS__PREFIX", "prod.labelloop.")
    monkeypatch.setenv("LABELLOOP_TOPICS__PARTITIONS", "12")
    monkeypatch.setenv("LABELLOOP_APP_ID", "labelloop-prod")
    settings = Settings()
    assert settings.kafka.bootstrap_list == ["k1:9092", "k2:9092"]
    assert settings.topics.prefix == "prod.labelloop."
    assert settings.topics.partitions == 12
    assert settings.app_id == "labelloop-prod"


def test_a_prefix_with_spaces_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_TOPICS__PREFIX", "my topics/")
    with pytest.raises(ValidationError, match=r"topics\.prefix"):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.app_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "missing",
    ["LABELLOOP_KAFKA__SASL_MECHANISM", "LABELLOOP_KAFKA__SASL_USERNAME", "LABELLOOP_KAFKA__SASL_PASSWORD"],
)
def test_sasl_without_its_credentials_is_rejected(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    complete = {
        "LABELLOOP_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "LABELLOOP_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "LABELLOOP_KAFKA__SASL_USERNAME": "labelloop",
        "LABELLOOP_KAFKA__SASL_PASSWORD": SECRET,
    }
    for name, value in complete.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(
        ValidationError, match="SASL_SSL needs sasl_mechanism, sasl_username and sasl_password"
    ):
        Settings()


def test_the_password_can_come_from_a_file_and_never_shows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(f"{SECRET}\n", encoding="utf-8")
    monkeypatch.setenv("LABELLOOP_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_USERNAME", "labelloop")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_PASSWORD_FILE", str(password_file))
    settings = Settings()
    password = settings.kafka.password
    assert password is not None
    assert password.get_secret_value() == SECRET
    assert settings.kafka.kafka_python_options()["sasl_plain_password"] == SECRET
    for text in (repr(settings), str(settings), repr(settings.kafka), settings.model_dump_json()):
        assert SECRET not in text


def test_an_inline_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_USERNAME", "labelloop")
    monkeypatch.setenv("LABELLOOP_KAFKA__SASL_PASSWORD", SECRET)
    settings = Settings()
    assert settings.kafka.sasl_password == SecretStr(SECRET)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in text


def test_the_password_file_wins_over_the_inline_password(tmp_path: Path) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text("from-file", encoding="utf-8")
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="labelloop",
        sasl_password=SecretStr("inline"),
        sasl_password_file=password_file,
    )
    assert kafka.kafka_python_options()["sasl_plain_password"] == "from-file"


def test_kafka_python_options_map_sasl_and_ssl(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="labelloop",
        sasl_password=SecretStr(SECRET),
        ssl_cafile=tmp_path / "ca.pem",
        ssl_certfile=tmp_path / "client.pem",
        ssl_keyfile=tmp_path / "client.key",
        request_timeout_ms=5_000,
    )
    assert kafka.kafka_python_options() == {
        "bootstrap_servers": ["b1:9093", "b2:9093"],
        "security_protocol": "SASL_SSL",
        "request_timeout_ms": 5_000,
        "bootstrap_timeout_ms": 5_000,
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "labelloop",
        "sasl_plain_password": SECRET,
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "ssl_certfile": str(tmp_path / "client.pem"),
        "ssl_keyfile": str(tmp_path / "client.key"),
    }


def test_an_incomplete_sasl_config_does_not_leak_the_password_in_its_error() -> None:
    with pytest.raises(ValidationError) as caught:
        # As read from a config file or the environment: the password is a plain string.
        KafkaSettings.model_validate(
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password": SECRET}
        )
    assert SECRET not in str(caught.value)
