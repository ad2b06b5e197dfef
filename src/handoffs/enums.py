"""The closed vocabularies of the domain, shared by tables, schemas and services."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    engineer = "engineer"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.viewer: 0, Role.engineer: 1, Role.admin: 2, Role.owner: 3}

#: Roles that work the escalation queue: claim, subscribe, receive escalations.
SENIOR_ROLES = (Role.engineer, Role.admin, Role.owner)


class SessionStatus(StrEnum):
    active = "active"
    parked = "parked"
    escalated = "escalated"
    claimed = "claimed"
    resolved = "resolved"


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"
    tool = "tool"


class HandoffIntent(StrEnum):
    park = "park"
    escalate = "escalate"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class AssessmentStatus(StrEnum):
    pending = "pending"
    ready = "ready"
    failed = "failed"
    not_requested = "not_requested"


class OutboxStatus(StrEnum):
    pending = "pending"
    dispatched = "dispatched"
    done = "done"
    failed = "failed"


class NotificationKind(StrEnum):
    escalation = "escalation"


class PsaVendor(StrEnum):
    none = "none"
    connectwise = "connectwise"
    autotask = "autotask"
    halo = "halo"


class PsaSyncStatus(StrEnum):
    not_applicable = "not_applicable"
    pending = "pending"
    synced = "synced"
    failed = "failed"


class DeliveryStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    skipped = "skipped"
    failed = "failed"


class JobTopic(StrEnum):
    """The background jobs: each is an outbox topic and the arq function of the same name.

    The only list of job names: the worker's functions, the CLI's ``--topic`` choices and
    the outbox rows all derive from it (``handoffs.jobs.worker`` checks the functions match).
    """

    enrich_escalation = "enrich_escalation"
    send_escalation_emails = "send_escalation_emails"
    push_to_psa = "push_to_psa"


#: The outbox topic of rows that are live events to publish, not jobs to run.
EVENT_TOPIC = "event"
