from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("message_id", "received_at_ms", "client_ip", "client_port", "helo", "auth_user", "php_script", "sender_identity", "mail_from", "rcpt_to", "body", "body_ref", "smtputf8", "body_type", "ingress_host", "tls_version")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PORT_FIELD_NUMBER: _ClassVar[int]
    HELO_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_FIELD_NUMBER: _ClassVar[int]
    PHP_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    SENDER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    MAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    RCPT_TO_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    BODY_REF_FIELD_NUMBER: _ClassVar[int]
    SMTPUTF8_FIELD_NUMBER: _ClassVar[int]
    BODY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INGRESS_HOST_FIELD_NUMBER: _ClassVar[int]
    TLS_VERSION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    received_at_ms: int
    client_ip: str
    client_port: int
    helo: str
    auth_user: str
    php_script: str
    sender_identity: str
    mail_from: str
    rcpt_to: _containers.RepeatedScalarFieldContainer[str]
    body: bytes
    body_ref: str
    smtputf8: bool
    body_type: str
    ingress_host: str
    tls_version: str
    def __init__(self, message_id: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., client_ip: _Optional[str] = ..., client_port: _Optional[int] = ..., helo: _Optional[str] = ..., auth_user: _Optional[str] = ..., php_script: _Optional[str] = ..., sender_identity: _Optional[str] = ..., mail_from: _Optional[str] = ..., rcpt_to: _Optional[_Iterable[str]] = ..., body: _Optional[bytes] = ..., body_ref: _Optional[str] = ..., smtputf8: _Optional[bool] = ..., body_type: _Optional[str] = ..., ingress_host: _Optional[str] = ..., tls_version: _Optional[str] = ...) -> None: ...
