"""The sender stage: delivers `routed` Deliveries over SMTP and reports one Outcome per recipient."""
