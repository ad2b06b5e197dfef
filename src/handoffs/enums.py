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


class HandoffState(StrEnum):
    """Where a handoff is in its life: ``open`` (in the queue) → ``claimed`` → ``resolved``;
    release puts a claimed one back to ``open``, reassign keeps it ``claimed`` by someone else."""

    open = "open"
    claimed = "claimed"
    resolved = "resolved"


class Outcome(StrEnum):
    """How a resolved handoff ended. ``withdrawn`` is set only by its creator's withdraw."""

    fixed = "fixed"
    workaround = "workaround"
    not_reproducible = "not_reproducible"
    duplicate = "duplicate"
    other = "other"
    withdrawn = "withdrawn"


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
    """What a bell entry is about. ``escalation`` is the v1 kind of a new escalation."""

    escalation = "escalation"
    parked = "parked"
    claimed = "claimed"
    released = "released"
    assigned = "assigned"
    resolved = "resolved"
    comment = "comment"
    escalated = "escalated"


class TimelineKind(StrEnum):
    """The kinds of a handoff's timeline (audit trail) entries."""

    created = "created"
    claimed = "claimed"
    released = "released"
    reassigned = "reassigned"
    resolved = "resolved"
    withdrawn = "withdrawn"
    commented = "commented"
    escalated = "escalated"
    assessment_ready = "assessment_ready"
    assessment_failed = "assessment_failed"
    assessment_retried = "assessment_retried"
    emails_sent = "emails_sent"
    psa_synced = "psa_synced"
    psa_failed = "psa_failed"
    chat_posted = "chat_posted"
    chat_failed = "chat_failed"


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
    send_resolution_email = "send_resolution_email"
    post_to_chat = "post_to_chat"


#: The outbox topic of rows that are live events to publish, not jobs to run.
EVENT_TOPIC = "event"
