"""Typed settings for every Baton service, read from ``BATON_*`` environment variables.

One class serves all services because one image and one Helm values file configure them all; each
service reads the fields it needs. Settings are validated at start-up: an unknown ``BATON_*`` variable
is refused (a typo must not silently fall back to a default), and outside development insecure
defaults are refused too.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BATON_"


class Environment(StrEnum):
    """Where Baton runs; decides which insecure defaults are tolerated."""

    # make run, tests: self-signed TLS and SQLite are fine.
    DEVELOPMENT = "development"
    # Anything a user relies on: every secret and certificate must be given.
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    # Name of this host/replica in logs, Received headers and the Kafka client id.
    instance: str = Field(default_factory=lambda: os.environ.get("HOSTNAME") or os.uname().nodename)
    log_level: str = "INFO"

    # --- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_accepted: str = "accepted"
    topic_filtered: str = "filtered"
    topic_routed: str = "routed"
    topic_result: str = "result"
    topic_reputation: str = "reputation"
    topic_notifications: str = "notifications"
    # Partition count used when Baton creates topics itself (dev and tests); bounds replicas.
    topic_partitions: int = Field(default=8, ge=1)
    # Upper bound on one produced record; a message larger than this cannot be accepted.
    kafka_max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # How long ingress waits for the acks=all acknowledgement before answering 451.
    kafka_ack_timeout_s: float = Field(default=10.0, gt=0)
    # A consumer that stops heartbeating (killed) loses its partitions after this long.
    kafka_session_timeout_ms: int = Field(default=10000, ge=1000)

    # --- the stage loop --------------------------------------------------------------------
    # Records handled concurrently per stage replica; the backpressure bound.
    max_in_flight: int = Field(default=64, ge=1)
    # The stage stops when more than this share of the last `dlq_window` records went to its DLQ.
    dlq_max_ratio: float = Field(default=0.5, gt=0, le=1)
    dlq_window: int = Field(default=100, ge=1)
    # Records in the window before the ratio is enforced, so one bad record at start-up is tolerated.
    dlq_min_records: int = Field(default=20, ge=1)

    # --- admin HTTP (metrics and health) ----------------------------------------------------
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=9100, ge=0, le=65535)

    # --- store -----------------------------------------------------------------------------
    database_url: str = "sqlite:///var/baton.db"

    # --- ingress ---------------------------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=0, le=65535)
    # Name in the greeting and the Received header.
    smtp_hostname: str = "baton.localhost"
    smtp_max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    smtp_max_recipients: int = Field(default=100, ge=1)
    # Clients in these networks may relay without AUTH.
    smtp_trusted_networks: list[str] = ["127.0.0.0/8", "::1/128"]
    smtp_tls_cert: str = ""
    smtp_tls_key: str = ""
    # Where the development self-signed certificate is written when no certificate is given.
    smtp_dev_tls_dir: str = "var/tls"
    # Expect a PROXY protocol (v1 or v2) header from a load balancer on every connection.
    smtp_proxy_protocol: bool = False
    smtp_timeout_s: float = Field(default=300.0, gt=0)
    # SMTP transactions waiting for Kafka at once; beyond it ingress answers 451.
    smtp_max_pending: int = Field(default=1000, ge=1)
    # Hard cap on one connection's lifetime: a client dripping a byte or a NOOP just inside
    # smtp_timeout_s would otherwise hold its connection forever (421 4.4.2 when it runs out).
    smtp_session_timeout_s: float = Field(default=1800.0, gt=0)
    # Pause before the greeting; a client that talks before it is a spam bot (postscreen's greet
    # action) and gets 554. 0 disables the check; one second costs real clients little.
    smtp_greet_pause_s: float = Field(default=1.0, ge=0)
    # Concurrent connections per client IP (the PROXY header's address when that is on); the
    # excess gets 421 4.7.0 so one client cannot take every slot.
    smtp_max_connections_per_ip: int = Field(default=50, ge=1)
    # AUTH brute-force throttle: after this many failures within the window, further AUTH from
    # that client IP, or for that username from anywhere, gets 454 without a password check.
    smtp_auth_max_failures_per_ip: int = Field(default=10, ge=1)
    smtp_auth_max_failures_per_user: int = Field(default=20, ge=1)
    smtp_auth_failure_window_s: float = Field(default=300.0, gt=0)
    # Keys (IPs and usernames) the throttle remembers; the least recently failed are forgotten first.
    smtp_auth_throttle_max_keys: int = Field(default=10000, ge=1)
    # Refuse raw 8-bit bytes in the header section unless MAIL FROM declared SMTPUTF8 or
    # BODY=8BITMIME (RFC 6152, 6532); off only for legacy applications that cannot be fixed.
    smtp_strict_8bit_headers: bool = True

    # --- router ----------------------------------------------------------------------------
    # "host" or "host:port"; empty means the system resolver configuration.
    dns_nameserver: str = ""
    dns_timeout_s: float = Field(default=5.0, gt=0)
    # Static routes, like Postfix transport maps: {"example.com": "smarthost.example:587",
    # "*": "relay:25"}; a route value may list several hosts separated by commas.
    routes: dict[str, str] = {}
    dns_cache_size: int = Field(default=10000, ge=1)
    # TTLs from DNS are clamped to this range; negative answers (RFC 2308) get their own bounds.
    dns_cache_min_ttl_s: float = Field(default=5.0, ge=0)
    dns_cache_max_ttl_s: float = Field(default=3600.0, gt=0)
    dns_negative_ttl_s: float = Field(default=60.0, ge=0)
    dns_max_negative_ttl_s: float = Field(default=900.0, ge=0)
    # Accept MX hosts that resolve to loopback addresses. Off in production (a mail loop);
    # development and tests turn it on because their sinks listen on 127.0.0.0/8.
    router_allow_loopback: bool = False

    # --- sender ----------------------------------------------------------------------------
    # Port used for MX hosts (25 in the world; tests point it at their sinks).
    delivery_port: int = Field(default=25, ge=1, le=65535)
    delivery_helo: str = ""
    delivery_connect_timeout_s: float = Field(default=30.0, gt=0)
    delivery_timeout_s: float = Field(default=120.0, gt=0)
    # Connections kept open per destination host for reuse.
    delivery_pool_size: int = Field(default=4, ge=1)
    delivery_pool_idle_s: float = Field(default=30.0, gt=0)
    delivery_max_messages_per_connection: int = Field(default=100, ge=1)
    # Pauses before the next attempt for deferred recipients; the last one repeats. Each delay has
    # its own topic "<routed>.retry.<delay>s", so records of a topic fall due in their order.
    retry_schedule_s: list[int] = [60, 600, 3600, 14400]
    # Deferred recipients this long after acceptance expire (RFC 5321 4.5.4.1 suggests 4-5 days).
    retry_max_age_s: float = Field(default=5 * 86400, gt=0)

    # --- reputation API --------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule_positive(cls, value: list[int]) -> list[int]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("retry_schedule_s needs at least one positive delay")
        return value

    @field_validator("smtp_trusted_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @model_validator(mode="after")
    def _dlq_limit_can_fire(self) -> Self:
        if self.dlq_min_records > self.dlq_window:
            raise ValueError("dlq_min_records larger than dlq_window would disable the DLQ limit")
        return self

    @model_validator(mode="after")
    def _no_insecure_defaults(self) -> Self:
        if self.environment is Environment.DEVELOPMENT:
            return self
        problems = []
        if not (self.smtp_tls_cert and self.smtp_tls_key):
            problems.append("BATON_SMTP_TLS_CERT and BATON_SMTP_TLS_KEY are required")
        for net in self.smtp_trusted_networks:
            if ipaddress.ip_network(net, strict=False).prefixlen == 0:
                problems.append(f"trusted network {net} would make Baton an open relay")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def retry_topics(self) -> list[str]:
        return [f"{self.topic_routed}.retry.{delay}s" for delay in dict.fromkeys(self.retry_schedule_s)]

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.smtp_trusted_networks]


def unknown_variables(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """``BATON_*`` variables that match no setting (most often a typo)."""
    # pydantic-settings matches names case-insensitively, so a lower-case typo must be caught too.
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings() -> Settings:
    """Read and validate settings; raise ``ValueError`` naming every unknown variable."""
    unknown = unknown_variables()
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    return Settings()
