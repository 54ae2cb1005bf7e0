from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutcomeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_STATUS_UNSPECIFIED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_DELIVERED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_DEFERRED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_BOUNCED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_REJECTED: _ClassVar[OutcomeStatus]
    OUTCOME_STATUS_EXPIRED: _ClassVar[OutcomeStatus]
OUTCOME_STATUS_UNSPECIFIED: OutcomeStatus
OUTCOME_STATUS_DELIVERED: OutcomeStatus
OUTCOME_STATUS_DEFERRED: OutcomeStatus
OUTCOME_STATUS_BOUNCED: OutcomeStatus
OUTCOME_STATUS_REJECTED: OutcomeStatus
OUTCOME_STATUS_EXPIRED: OutcomeStatus

class Outcome(_message.Message):
    __slots__ = ("message_id", "recipient", "status", "sender_identity", "stage", "domain", "remote_host", "smtp_code", "enhanced_status", "text", "failure_class", "attempt", "at_ms")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SENDER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    REMOTE_HOST_FIELD_NUMBER: _ClassVar[int]
    SMTP_CODE_FIELD_NUMBER: _ClassVar[int]
    ENHANCED_STATUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    recipient: str
    status: OutcomeStatus
    sender_identity: str
    stage: str
    domain: str
    remote_host: str
    smtp_code: int
    enhanced_status: str
    text: str
    failure_class: str
    attempt: int
    at_ms: int
    def __init__(self, message_id: _Optional[str] = ..., recipient: _Optional[str] = ..., status: _Optional[_Union[OutcomeStatus, str]] = ..., sender_identity: _Optional[str] = ..., stage: _Optional[str] = ..., domain: _Optional[str] = ..., remote_host: _Optional[str] = ..., smtp_code: _Optional[int] = ..., enhanced_status: _Optional[str] = ..., text: _Optional[str] = ..., failure_class: _Optional[str] = ..., attempt: _Optional[int] = ..., at_ms: _Optional[int] = ...) -> None: ...
