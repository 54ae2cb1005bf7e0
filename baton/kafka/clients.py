"""Kafka client construction with the settings the durability contract needs."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from baton.settings import Settings


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    # acks=all is the durable-accept contract. The idempotent producer is off on purpose: the
    # design needs none (stages are at-least-once, the sender dedupes) and some Kafka-compatible
    # brokers used in development do not implement it.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{client_id}-{settings.instance}",
        acks="all",
        enable_idempotence=False,
        max_request_size=settings.kafka_max_request_bytes,
        linger_ms=2,
        request_timeout_ms=int(settings.kafka_ack_timeout_s * 1000),
    )


def make_consumer(settings: Settings, group_id: str, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{client_id}-{settings.instance}",
        group_id=group_id,
        # Offsets are committed by the stage loop only after its outputs are acknowledged.
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka_max_request_bytes,
        fetch_max_bytes=max(settings.kafka_max_request_bytes, 52428800),
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 5, 500),
        # A handler may take long (a slow remote MX); the loop bounds its own batches.
        max_poll_interval_ms=600000,
    )
