"""Ingress: the SMTP server that accepts mail from clients and hands each message to Kafka."""
