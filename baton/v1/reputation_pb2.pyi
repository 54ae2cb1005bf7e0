from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SenderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENDER_STATE_UNSPECIFIED: _ClassVar[SenderState]
    SENDER_STATE_OK: _ClassVar[SenderState]
    SENDER_STATE_THROTTLED: _ClassVar[SenderState]
    SENDER_STATE_BLOCKED: _ClassVar[SenderState]
SENDER_STATE_UNSPECIFIED: SenderState
SENDER_STATE_OK: SenderState
SENDER_STATE_THROTTLED: SenderState
SENDER_STATE_BLOCKED: SenderState

class SenderStatus(_message.Message):
    __slots__ = ("sender_identity", "state", "score", "reason", "updated_at_ms")
    SENDER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    sender_identity: str
    state: SenderState
    score: float
    reason: str
    updated_at_ms: int
    def __init__(self, sender_identity: _Optional[str] = ..., state: _Optional[_Union[SenderState, str]] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class OperatorEvent(_message.Message):
    __slots__ = ("sender_identity", "kind", "summary", "at_ms", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SENDER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    sender_identity: str
    kind: str
    summary: str
    at_ms: int
    details: _containers.ScalarMap[str, str]
    def __init__(self, sender_identity: _Optional[str] = ..., kind: _Optional[str] = ..., summary: _Optional[str] = ..., at_ms: _Optional[int] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...
