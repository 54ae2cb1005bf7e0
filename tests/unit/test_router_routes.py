import pytest

from baton.v1 import delivery_pb2
from services.router.routes import StaticRoutes, parse_host_port, parse_route


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.test", ("relay.test", 0)),
        ("relay.test:587", ("relay.test", 587)),
        ("192.0.2.1:25", ("192.0.2.1", 25)),
        ("[2001:db8::1]:2525", ("2001:db8::1", 2525)),
        ("[::1]", ("::1", 0)),
        ("::1", ("::1", 0)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["", "relay:0", "relay:70000", "relay:x", "[::1", "[::1]x", "[relay]:25", ":25"]
)
def test_parse_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the mistake
        parse_host_port(text)


def test_route_hosts_keep_list_order_and_ip_addresses() -> None:
    route = parse_route("b.test:587, 192.0.2.7, [::1]:2525")
    assert route.kind == delivery_pb2.ROUTE_KIND_STATIC
    assert [(h.name, h.port, h.preference, list(h.addresses)) for h in route.hosts] == [
        ("b.test", 587, 0, []),
        ("192.0.2.7", 0, 1, ["192.0.2.7"]),
        ("::1", 2525, 2, ["::1"]),
    ]


def test_lookup_precedence_exact_then_parent_then_default() -> None:
    routes = StaticRoutes.parse(
        {
            "Example.TEST": "exact:25",
            ".example.test": "parent:25",
            ".deep.example.test": "deeper:25",
            "*": "star:25",
        }
    )

    def first(domain: str) -> str | None:
        route = routes.lookup(domain)
        return route.hosts[0].name if route else None

    assert first("example.test") == "exact"
    assert first("sub.example.test") == "parent"
    assert first("a.deep.example.test") == "deeper"
    assert first("other.test") == "star"
    assert StaticRoutes.parse({".example.test": "parent"}).lookup("example.test") is None


def test_lookup_returns_a_copy() -> None:
    routes = StaticRoutes.parse({"*": "relay"})
    routes.lookup("a.test").hosts[0].name = "changed"  # type: ignore[union-attr]
    assert routes.lookup("a.test").hosts[0].name == "relay"  # type: ignore[union-attr]


def test_parse_names_the_bad_key() -> None:
    with pytest.raises(ValueError, match=r"routes\['bad.test'\]"):
        StaticRoutes.parse({"good.test": "relay", "bad.test": "relay:99999"})
    with pytest.raises(ValueError, match="no host"):
        StaticRoutes.parse({"x.test": " , "})
