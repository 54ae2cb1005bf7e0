from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_KIND_UNSPECIFIED: _ClassVar[RouteKind]
    ROUTE_KIND_MX: _ClassVar[RouteKind]
    ROUTE_KIND_IMPLICIT_MX: _ClassVar[RouteKind]
    ROUTE_KIND_STATIC: _ClassVar[RouteKind]
ROUTE_KIND_UNSPECIFIED: RouteKind
ROUTE_KIND_MX: RouteKind
ROUTE_KIND_IMPLICIT_MX: RouteKind
ROUTE_KIND_STATIC: RouteKind

class Host(_message.Message):
    __slots__ = ("name", "preference", "addresses", "port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREFERENCE_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    preference: int
    addresses: _containers.RepeatedScalarFieldContainer[str]
    port: int
    def __init__(self, name: _Optional[str] = ..., preference: _Optional[int] = ..., addresses: _Optional[_Iterable[str]] = ..., port: _Optional[int] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("kind", "hosts")
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    kind: RouteKind
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    def __init__(self, kind: _Optional[_Union[RouteKind, str]] = ..., hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("message_id", "domain", "route", "recipients", "mail_from", "body", "sender_identity", "dkim_domain", "dkim_selector", "ip_pool", "attempt", "not_before_ms", "accepted_at_ms", "smtputf8")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    MAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SENDER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    DKIM_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DKIM_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    IP_POOL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SMTPUTF8_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    domain: str
    route: Route
    recipients: _containers.RepeatedScalarFieldContainer[str]
    mail_from: str
    body: bytes
    sender_identity: str
    dkim_domain: str
    dkim_selector: str
    ip_pool: str
    attempt: int
    not_before_ms: int
    accepted_at_ms: int
    smtputf8: bool
    def __init__(self, message_id: _Optional[str] = ..., domain: _Optional[str] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., recipients: _Optional[_Iterable[str]] = ..., mail_from: _Optional[str] = ..., body: _Optional[bytes] = ..., sender_identity: _Optional[str] = ..., dkim_domain: _Optional[str] = ..., dkim_selector: _Optional[str] = ..., ip_pool: _Optional[str] = ..., attempt: _Optional[int] = ..., not_before_ms: _Optional[int] = ..., accepted_at_ms: _Optional[int] = ..., smtputf8: _Optional[bool] = ...) -> None: ...
