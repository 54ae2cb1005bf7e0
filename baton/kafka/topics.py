"""The topics Baton uses, and their creation for development and tests.

In production topics are declared by the platform (Strimzi KafkaTopic resources from the chart);
here Baton creates them itself, explicitly, because a broker that auto-creates topics would pick its
own partition count.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from baton.settings import Settings

log = logging.getLogger(__name__)

# Stages that own a dead-letter topic named "<stage>.dlq".
STAGES_WITH_DLQ = ("filter", "router", "sender", "reputation", "feedback", "notifier")


def dlq_topic(stage: str) -> str:
    return f"{stage}.dlq"


def all_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic name with its topic-level configuration."""
    topics: dict[str, dict[str, str]] = {
        settings.topic_accepted: {},
        settings.topic_filtered: {},
        settings.topic_routed: {},
        settings.topic_result: {},
        settings.topic_notifications: {},
        # Latest status per sender is all that matters; compaction keeps it forever.
        settings.topic_reputation: {"cleanup.policy": "compact"},
    }
    for retry in settings.retry_topics():
        topics[retry] = {}
    for stage in STAGES_WITH_DLQ:
        topics[dlq_topic(stage)] = {}
    return topics


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics; returns the names created. Waits for the broker up to ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="baton-topics")
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        wanted = all_topics(settings)
        missing = [
            NewTopic(name, settings.topic_partitions, 1, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in (tuple(e)[:3] for e in response.topic_errors):
                # 36 = TOPIC_ALREADY_EXISTS: another process created it first.
                if code not in (0, 36):
                    raise KafkaError(f"creating topic {name} failed: {code} {message}")
            log.info("topics created", extra={"topics": ",".join(t.name for t in missing)})
        return [t.name for t in missing]
    finally:
        await admin.close()
