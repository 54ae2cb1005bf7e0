"""Settings from BATON_* variables: parsing, unknown names refused, insecure production refused."""

from __future__ import annotations

import ipaddress
import os

import pytest
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from baton.settings import Environment, Settings, load_settings, unknown_variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The shell running the tests may export BATON_* variables; none of them may leak in."""
    for name in list(os.environ):
        if name.upper().startswith("BATON_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_ENVIRONMENT", "production")
    monkeypatch.setenv("BATON_SMTP_TLS_CERT", "/etc/baton/tls.crt")
    monkeypatch.setenv("BATON_SMTP_TLS_KEY", "/etc/baton/tls.key")


def test_development_accepts_the_defaults() -> None:
    settings = load_settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.smtp_tls_cert == ""
    assert settings.routes == {}
    assert settings.trusted_networks() == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]


def test_scalars_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_SMTP_PORT", "2626")
    monkeypatch.setenv("BATON_KAFKA_ACK_TIMEOUT_S", "2.5")
    monkeypatch.setenv("BATON_SMTP_PROXY_PROTOCOL", "true")
    settings = load_settings()
    assert settings.smtp_port == 2626
    assert settings.kafka_ack_timeout_s == 2.5
    assert settings.smtp_proxy_protocol is True


def test_routes_are_parsed_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_ROUTES", '{"example.com": "smarthost.example:587", "*": "a:25,b:25"}')
    assert load_settings().routes == {"example.com": "smarthost.example:587", "*": "a:25,b:25"}


def test_routes_that_are_not_json_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_ROUTES", "example.com=smarthost")
    with pytest.raises(SettingsError, match="routes"):
        load_settings()


def test_trusted_networks_are_parsed_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_SMTP_TRUSTED_NETWORKS", '["10.0.0.0/8", "192.168.1.7/24", "fd00::/8"]')
    settings = load_settings()
    assert settings.smtp_trusted_networks == ["10.0.0.0/8", "192.168.1.7/24", "fd00::/8"]
    # Host bits are tolerated (strict=False) and masked off.
    assert settings.trusted_networks() == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("fd00::/8"),
    ]


@pytest.mark.parametrize("network", ["not-a-network", "10.0.0.0/33", "300.1.1.1", ""])
def test_an_invalid_trusted_network_is_refused(monkeypatch: pytest.MonkeyPatch, network: str) -> None:
    monkeypatch.setenv("BATON_SMTP_TRUSTED_NETWORKS", f'["127.0.0.0/8", "{network}"]')
    with pytest.raises(ValidationError, match="smtp_trusted_networks"):
        load_settings()


def test_an_out_of_range_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_SMTP_PORT", "70000")
    with pytest.raises(ValidationError, match="smtp_port"):
        load_settings()


def test_unknown_variables_lists_only_unknown_baton_names() -> None:
    environ = {
        "BATON_SMTP_PORT": "25",
        "BATON_SMTP_PROT": "25",
        "BATON_AAA": "x",
        "HOME": "/root",
        "NOT_BATON_X": "1",
    }
    assert unknown_variables(environ) == ["BATON_AAA", "BATON_SMTP_PROT"]
    assert unknown_variables({"BATON_LOG_LEVEL": "DEBUG"}) == []


def test_load_settings_refuses_an_unknown_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_SMTP_PROT", "2626")
    monkeypatch.setenv("BATON_KAFKA_BOOTSTRAPS", "kafka:9092")
    with pytest.raises(ValueError, match="BATON_KAFKA_BOOTSTRAPS, BATON_SMTP_PROT"):
        load_settings()


def test_unknown_environment_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_ENVIRONMENT", "staging")
    with pytest.raises(ValidationError, match="environment"):
        load_settings()


def test_production_with_certificate_and_narrow_networks_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    monkeypatch.setenv("BATON_SMTP_TRUSTED_NETWORKS", '["10.0.0.0/8"]')
    settings = load_settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.smtp_tls_key == "/etc/baton/tls.key"


@pytest.mark.parametrize("missing", ["BATON_SMTP_TLS_CERT", "BATON_SMTP_TLS_KEY"])
def test_production_refuses_a_missing_certificate_or_key(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    _production(monkeypatch)
    monkeypatch.delenv(missing)
    with pytest.raises(ValidationError, match="BATON_SMTP_TLS_CERT and BATON_SMTP_TLS_KEY are required"):
        load_settings()


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0", "10.1.2.3/0"])
def test_production_refuses_a_network_that_trusts_everyone(
    monkeypatch: pytest.MonkeyPatch, network: str
) -> None:
    _production(monkeypatch)
    monkeypatch.setenv("BATON_SMTP_TRUSTED_NETWORKS", f'["10.0.0.0/8", "{network}"]')
    with pytest.raises(ValidationError, match="would make Baton an open relay"):
        load_settings()


def test_development_tolerates_what_production_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_SMTP_TRUSTED_NETWORKS", '["0.0.0.0/0"]')
    assert load_settings().smtp_trusted_networks == ["0.0.0.0/0"]


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.smtp_port = 25
