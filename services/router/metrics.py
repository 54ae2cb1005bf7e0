"""Every metric of the router, declared once (names ``baton_router_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DNS_LOOKUPS = Counter(
    "baton_router_dns_lookups_total",
    "DNS queries sent by the router (cache misses only), by record type and result: "
    "ok, nodata, nxdomain, timeout, servfail.",
    ["type", "result"],
)
DNS_LOOKUP_SECONDS = Histogram(
    "baton_router_dns_lookup_seconds",
    "Time a DNS query sent by the router took, by record type, whatever its result.",
    ["type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DNS_CACHE_HITS = Counter(
    "baton_router_dns_cache_hits_total",
    "DNS lookups answered from the router's cache (positive or negative), by record type.",
    ["type"],
)
DNS_CACHE_MISSES = Counter(
    "baton_router_dns_cache_misses_total",
    "DNS lookups not in the router's cache; a query was sent or an in-flight one joined, by record type.",
    ["type"],
)
DNS_INFLIGHT_JOINS = Counter(
    "baton_router_dns_inflight_joins_total",
    "DNS lookups that shared a query already in flight for the same name and type, by record type.",
    ["type"],
)
DELIVERIES_PLANNED = Counter(
    "baton_router_deliveries_planned_total",
    "Delivery records planned (one per message and destination domain), by route kind: "
    "mx, implicit_mx, static, literal.",
    ["kind"],
)
RECIPIENTS_BOUNCED = Counter(
    "baton_router_recipients_bounced_total",
    "Recipients the router bounced without trying delivery, by reason "
    "(no_such_domain, null_mx, no_mail_host, no_address, bad_address).",
    ["reason"],
)
RECIPIENTS_REJECTED = Counter(
    "baton_router_recipients_rejected_total",
    "Recipients of messages whose filter verdict was not accept, by verdict action (reject, tempfail).",
    ["action"],
)
