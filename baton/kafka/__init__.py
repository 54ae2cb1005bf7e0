"""Kafka plumbing shared by every stage: clients, topics and the one consume-handle-produce loop."""
