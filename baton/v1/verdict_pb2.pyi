from baton.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_ACCEPT: _ClassVar[Action]
    ACTION_REJECT: _ClassVar[Action]
    ACTION_TEMPFAIL: _ClassVar[Action]
ACTION_UNSPECIFIED: Action
ACTION_ACCEPT: Action
ACTION_REJECT: Action
ACTION_TEMPFAIL: Action

class Reason(_message.Message):
    __slots__ = ("rule", "detail", "score")
    RULE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    detail: str
    score: float
    def __init__(self, rule: _Optional[str] = ..., detail: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("action", "score", "reasons", "decided_at_ms")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    action: Action
    score: float
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    decided_at_ms: int
    def __init__(self, action: _Optional[_Union[Action, str]] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., decided_at_ms: _Optional[int] = ...) -> None: ...

class FilteredMessage(_message.Message):
    __slots__ = ("envelope", "verdict")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    verdict: Verdict
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ...) -> None: ...
