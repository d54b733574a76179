"""The registry's tables. Alembic migrations in ``migrations/versions`` must match these;
``tests/integration/test_migrations.py`` checks that they do."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Disposal states in which a record has a live case: at most one per record.
OPEN_STATES = (
    "pending_review", "held", "approved", "executing", "pending_confirmation", "failed",
    "cooling_off", "exception",
)
#: Every disposal state (DESIGN.md section 4). ``cooling_off``: approved at its last stage,
#: waiting until ``cooling_until`` before execution may claim it. ``exception``: raised by a
#: reviewer, back with the IG officer (``lifecycle/review.py``).
DISPOSAL_STATES = (
    "pending_review", "held", "approved", "executing", "pending_confirmation", "executed",
    "certified", "notified", "failed", "deferred", "rejected", "withdrawn",
    "cooling_off", "exception",
)
#: Who a review scope row belongs to (``review_scopes.principal_kind``).
PRINCIPAL_KINDS = ("group", "user")
HOLD_TYPES = ("legal", "subject_access", "inquiry", "complaint", "police", "other")
HOLD_SCOPES = ("record", "subject", "category", "controller", "filter")

Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes only: a naive datetime is refused (DESIGN.md section 3, rule 10)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: times are stored as aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Controller(Base):
    """An organisation that provides data (the originating controller of records)."""

    __tablename__ = "controllers"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Agreement(Base):
    """An Information Sharing Agreement; records may name the one they were provided under."""

    __tablename__ = "agreements"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="active")
    starts_on: Mapped[dt.date | None] = mapped_column(Date)
    notice_months: Mapped[int] = mapped_column(Integer, default=1)
    termination_action: Mapped[str] = mapped_column(String(20), default="return")
    terminated_on: Mapped[dt.date | None] = mapped_column(Date)
    #: The date records under it become due: terminated_on plus the notice period.
    disposal_due_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Subject(Base):
    """A child or young person, by opaque reference, with only what retention needs."""

    __tablename__ = "subjects"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(128), unique=True)
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    date_of_death: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Record(Base):
    """Metadata about one unit of disposal held somewhere; never its content."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    record_key: Mapped[str] = mapped_column(String(200), unique=True)
    category: Mapped[str] = mapped_column(String(100))
    controller_id: Mapped[int] = mapped_column(ForeignKey("controllers.id"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"))
    system: Mapped[str | None] = mapped_column(String(100))
    locator: Mapped[str | None] = mapped_column(String(2000))
    opened_on: Mapped[dt.date | None] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    event_on: Mapped[dt.date | None] = mapped_column(Date)
    flags: Mapped[str] = mapped_column(String(1000), default="")
    # The stored decision (recomputed when facts or policies change).
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    due_action: Mapped[str | None] = mapped_column(String(20))
    due_rule: Mapped[str | None] = mapped_column(String(200))
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_attention: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[str | None] = mapped_column(String(32))
    rules_digest: Mapped[str | None] = mapped_column(String(32))
    # Review outcomes that keep an otherwise due record out of the queue.
    deferred_until: Mapped[dt.date | None] = mapped_column(Date)
    rejected_due_on: Mapped[dt.date | None] = mapped_column(Date)
    last_import_id: Mapped[int | None] = mapped_column(Id)
    #: The feed that last stated this record's facts: a ``[sources.NAME]`` name, ``api`` for
    #: ``POST /api/v1/records``, None for ``records import`` (``retentiond/sources``).
    source: Mapped[str | None] = mapped_column(String(64))
    #: A digest of the row last applied (its facts and its feed): a row that digests the same
    #: is not written again (``retentiond/ingest/records.py``).
    facts_digest: Mapped[str | None] = mapped_column(String(32))
    #: When a full extract of ``source`` stopped listing the record. Never deleted for it:
    #: shown for review until a feed lists it again.
    gone_at_source_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_records_due_on", "due_on"),
        Index("ix_records_source", "source"),
        # The few records gone at source: found without reading the rest.
        Index("ix_records_gone_at_source", "gone_at_source_at",
              sqlite_where=text("gone_at_source_at IS NOT NULL"),
              postgresql_where=text("gone_at_source_at IS NOT NULL")),
        # Recompute finds a category's stale records by digest, and relabels those under an
        # older policy version by (digest, version): both read a range of this index.
        Index("ix_records_category_digest_version", "category", "rules_digest", "policy_version"),
        Index("ix_records_subject_id", "subject_id"),
        Index("ix_records_controller_id", "controller_id"),
        Index("ix_records_agreement_id", "agreement_id"),
    )


class Hold(Base):
    """A reason that blocks disposal of everything in its scope."""

    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    scope_kind: Mapped[str] = mapped_column(String(20))
    scope_value: Mapped[str] = mapped_column(String(200))
    hold_type: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    until: Mapped[dt.date | None] = mapped_column(Date)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lift_reason: Mapped[str | None] = mapped_column(Text)
    #: For a ``filter`` hold: the saved filter's record criteria, copied when the hold was
    #: placed (the filter may later be deleted; the hold's scope does not move with it).
    criteria: Mapped[Any | None] = mapped_column(JSON)
    #: For a ``filter`` hold: the saved filter it was placed from (no foreign key: deleting
    #: the filter leaves the hold as it was).
    filter_id: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (Index("ix_holds_scope", "scope_kind", "scope_value"),)


class SavedFilter(Base):
    """A named set of the review queue's criteria (``retentiond/lifecycle/filters.py``)."""

    __tablename__ = "saved_filters"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    criteria: Mapped[Any] = mapped_column(JSON)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Disposal(Base):
    """The case for disposing of one record."""

    __tablename__ = "disposals"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    state: Mapped[str] = mapped_column(String(20))
    due_on: Mapped[dt.date] = mapped_column(Date)
    action: Mapped[str] = mapped_column(String(20))
    rule_id: Mapped[str] = mapped_column(String(200))
    policy_version: Mapped[str] = mapped_column(String(32))
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    evaluation_id: Mapped[int | None] = mapped_column(ForeignKey("evaluations.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: After a transient connector error: not claimed again before this instant (backoff).
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: For a staged rule: the 0-based position (in ``disposal_stages``) of the stage the case
    #: waits for. None for a count rule (``approvals_required`` unordered approvals).
    stage: Mapped[int | None] = mapped_column(Integer)
    #: That stage's group (copied from ``disposal_stages`` for set-based queries); None for a
    #: count rule.
    stage_group: Mapped[str | None] = mapped_column(String(100))
    #: Days an approved case waits (state ``cooling_off``) before execution may claim it: the
    #: rule's ``cooling_off_days`` when the case was queued.
    cooling_off_days: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: While ``cooling_off``: when the wait ends.
    cooling_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_disposals_state", "state", "id"),
        # The review queue, sorted by due date within a state, pages by (due_on, id).
        Index("ix_disposals_state_due", "state", "due_on", "id"),
        Index("ix_disposals_record_id", "record_id"),
        Index("ix_disposals_evaluation_id", "evaluation_id"),
        # At most one live case per record: evaluating twice can never queue twice.
        Index(
            "uq_disposals_open_record",
            "record_id",
            unique=True,
            sqlite_where=text(f"state IN ({', '.join(repr(s) for s in OPEN_STATES)})"),
            postgresql_where=text(f"state IN ({', '.join(repr(s) for s in OPEN_STATES)})"),
        ),
    )


class DisposalStage(Base):
    """One ordered review stage of a staged case: written when the case is queued (evaluate,
    recompute), from its rule's ``stages`` whose ``when`` matched the record's facts then."""

    __tablename__ = "disposal_stages"
    disposal_id: Mapped[int] = mapped_column(ForeignKey("disposals.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    group_name: Mapped[str] = mapped_column(String(100))


class ReviewGroup(Base):
    """A named group of reviewers (a stage names one). ``name`` is checked like a user name
    and stored NFKC, lower-case (``retentiond/lifecycle/scopes.py`` ``check_group_name``)."""

    __tablename__ = "review_groups"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class GroupMember(Base):
    """A web user (by ``web_users.username``, as stored) in a review group."""

    __tablename__ = "group_members"
    group_name: Mapped[str] = mapped_column(ForeignKey("review_groups.name"), primary_key=True)
    username: Mapped[str] = mapped_column(String(200), primary_key=True)

    __table_args__ = (Index("ix_group_members_username", "username"),)


class ReviewScope(Base):
    """One row of a group's or user's review scope: controller (code) and category, each None
    for any. A principal with no rows is unscoped; with rows, a case is in scope if any row
    matches (``retentiond/lifecycle/scopes.py``)."""

    __tablename__ = "review_scopes"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: ``group`` or ``user`` (``PRINCIPAL_KINDS``).
    principal_kind: Mapped[str] = mapped_column(String(10))
    principal: Mapped[str] = mapped_column(String(200))
    controller: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_review_scopes_principal", "principal_kind", "principal"),)


class DisposalExecution(Base):
    """How one disposal was carried out (one row per disposal, written by the executor).

    Which system the record was removed from, by which connector, how that was verified; for
    a return, the package delivered to the controller and its SHA-256 (recorded before the
    source is deleted, so that a retry after a crash knows the return was made); for a manual
    task, the evidence of destruction an IG officer confirmed. What certificates are built from.
    """

    __tablename__ = "disposal_executions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    disposal_id: Mapped[int] = mapped_column(ForeignKey("disposals.id"), unique=True)
    action: Mapped[str] = mapped_column(String(20))
    system: Mapped[str | None] = mapped_column(String(100))
    connector: Mapped[str | None] = mapped_column(String(100))
    connector_kind: Mapped[str | None] = mapped_column(String(50))
    #: What was done, in words for a certificate (no personal data).
    method: Mapped[str | None] = mapped_column(Text)
    #: How the executor checked it was done (e.g. ``exists() is false after delete``).
    verification: Mapped[str | None] = mapped_column(Text)
    package_name: Mapped[str | None] = mapped_column(String(300))
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    package_delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    task_created_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    destroyed_by: Mapped[str | None] = mapped_column(String(200))
    destroyed_on: Mapped[dt.date | None] = mapped_column(Date)
    destruction_method: Mapped[str | None] = mapped_column(Text)
    certificate_no: Mapped[str | None] = mapped_column(String(200))
    confirmed_by: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    executed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    #: When this service first sent the action to the holding system, having just seen the
    #: data there. Data absent on a later attempt is then this service's own earlier delete
    #: ("already absent" is success only on such a retry, DESIGN.md section 4).
    action_sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: When the data was not found on the first attempt (the case went to a person).
    not_found_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: What the certificate states: ``deleted``, ``returned``, ``anonymised``,
    #: ``transferred``, ``destroyed_by_hand`` or ``confirmed_not_found`` (None before 0009:
    #: the action's word).
    outcome: Mapped[str | None] = mapped_column(String(30))
    #: For ``confirmed_not_found``: the person's evidence, in their words.
    outcome_note: Mapped[str | None] = mapped_column(Text)
    #: What outlives the action in the holding system: ``[{"what", "expire_by", "basis"}]``.
    remaining: Mapped[Any | None] = mapped_column(JSON)


class RecordPresence(Base):
    """Whether a record's data was found in its holding system when last asked (before
    review: the queue and the record page show data that is not there)."""

    __tablename__ = "record_presence"
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), primary_key=True)
    system: Mapped[str] = mapped_column(String(100))
    #: SHA-256 of the locator asked about: a finding holds only while the locator is the same.
    locator_sha256: Mapped[str] = mapped_column(String(64))
    found: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Approval(Base):
    """One person's approval of one disposal; a person approves a disposal at most once."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    disposal_id: Mapped[int] = mapped_column(ForeignKey("disposals.id"))
    approver: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    approved_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    #: Approvals are cleared (not deleted) when a hold or a changed due date resets review.
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: The stage position this approval satisfied (None for a count rule). With
    #: ``uq_approvals_live`` one person cannot approve two stages of one case.
    stage: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_approvals_disposal_id", "disposal_id"),
        # One live approval per case and person, however many sessions, tokens or processes
        # they approve from: the database refuses a second (DESIGN.md section 6).
        Index("uq_approvals_live", "disposal_id", "approver", unique=True,
              sqlite_where=text("voided_at IS NULL"), postgresql_where=text("voided_at IS NULL")),
    )


class Evaluation(Base):
    """One run of ``evaluate``: what it was asked and what it did."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    policy_version: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    queued: Mapped[int] = mapped_column(Integer, default=0)


class PolicyVersion(Base):
    """Every policy set a decision was made under, kept so that old decisions can be explained."""

    __tablename__ = "policy_versions"
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    packs: Mapped[Any] = mapped_column(JSON)
    first_used_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """An append-only record of one state change: who, when, why, under which policy."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[Any] = mapped_column(JSON, default=dict)
    # The hash chain (registry/chain.py seals it, audit/chain.py checks it): position, the
    # previous event's hash and this event's. Set in the transaction that writes the event,
    # just before it commits.
    seq: Mapped[int | None] = mapped_column(Id, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_entity", "entity", "entity_id"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_unsealed", "id", sqlite_where=text("seq IS NULL"),
              postgresql_where=text("seq IS NULL")),
    )


class ImportRun(Base):
    """One import of a file: its outcome, for the audit trail and for duplicate detection."""

    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)


class SourceRun(Base):
    """One run of a configured source (``[sources.NAME]``): its outcome and counts, for the
    Sources page, the metrics, the digest and the next run's time."""

    __tablename__ = "source_runs"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: ``ok``, ``refused`` (bad input: nothing of it applied) or ``failed`` (could not run).
    outcome: Mapped[str] = mapped_column(String(20))
    #: Counts (rows, created, updated, unchanged, gone, back, files_done, files_refused...).
    counts: Mapped[Any] = mapped_column(JSON, default=dict)
    #: What went wrong, for people: the first problems (file, line, field) or the error.
    errors: Mapped[Any] = mapped_column(JSON, default=list)
    actor: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_source_runs_source_started", "source", "started_at"),)


class IdempotentRequest(Base):
    """A push request (``POST /api/v1/records`` or ``/events``) and the answer it got, by the
    client's ``Idempotency-Key``: the same key and body get the same answer again."""

    __tablename__ = "idempotent_requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the request body as sent.
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("uq_idempotent_requests_user_key", "username", "key", unique=True),
    )


class WebUser(Base):
    """A person (or machine) who signs in to the review service, with their roles.

    ``roles`` is a comma-separated subset of ``retentiond.web.roles.ROLES``; a ``controller``
    user is bound to one controller and sees only its records. ``auth_method`` says how the
    user signs in, and the only way: ``password`` or ``oidc`` (OpenID Connect).
    ``username_key`` (``retentiond.web.usernames.username_key``: NFKC, case-folded) is unique,
    so that no two accounts differ only in case, width or an invisible character.
    """

    __tablename__ = "web_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    username_key: Mapped[str] = mapped_column(String(200), unique=True)
    auth_method: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str | None] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(200))
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("controllers.id"))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored,
    so a copy of the database cannot be used to sign in. Revoked by setting ``revoked_at``."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    #: The absolute limit: the session ends then however active it is.
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)


class ApiToken(Base):
    """A bearer token for machines, acting as its user; only its SHA-256 is stored.

    A token is made by its own user only (``issued_by`` is their user name): a token made by
    anyone else would let them act as that person. A token whose ``issued_by`` is not its
    user's name authenticates nobody.
    """

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"))
    name: Mapped[str] = mapped_column(String(200))
    #: Who made it (the actor of ``ApiTokenCreated``); None only for a token revoked at the
    #: upgrade that added this column because its maker was not its user (or not known).
    issued_by: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)


class LoginAttempt(Base):
    """One password sign-in attempt, kept for throttling (failures per user and per client)."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(200))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    succeeded: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_client_at", "client", "at"),
    )


# --- certificates and notifications (issue 4) ---------------------------------------------

class Certificate(Base):
    """A signed disposal certificate: one per originating controller per batch.

    Each controller's certificates form a chain: ``sequence`` counts from 1 and
    ``previous_sha256`` is the ``sha256`` of the one before (of its signed JSON payload).
    """

    __tablename__ = "certificates"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    controller_id: Mapped[int] = mapped_column(ForeignKey("controllers.id"))
    batch: Mapped[str] = mapped_column(String(100))
    sequence: Mapped[int] = mapped_column(Integer)
    previous_sha256: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    #: The audit trail's head hash when the certificate was issued (None before the chain).
    audit_head: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(200))
    records: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    issued_by: Mapped[str] = mapped_column(String(200))
    document: Mapped[Any] = mapped_column(JSON)
    #: The signed JSON as delivered (a flattened JWS JSON serialisation).
    jws: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("uq_certificates_controller_batch", "controller_id", "batch", unique=True),
        Index("uq_certificates_controller_sequence", "controller_id", "sequence", unique=True),
    )


class CertificateItem(Base):
    """One disposal a certificate states; a disposal is certified at most once."""

    __tablename__ = "certificate_items"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    disposal_id: Mapped[int] = mapped_column(ForeignKey("disposals.id"), unique=True)
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_certificate_items_certificate_id", "certificate_id"),)


class AdvanceNotice(Base):
    """One advance notice to a controller of its records falling due within its window."""

    __tablename__ = "advance_notices"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    controller_id: Mapped[int] = mapped_column(ForeignKey("controllers.id"))
    as_of: Mapped[dt.date] = mapped_column(Date)
    window_days: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer)
    document: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_advance_notices_controller_id", "controller_id"),)


class AdvanceNoticeItem(Base):
    """What was announced: a record and the due date announced, so it is never announced twice."""

    __tablename__ = "advance_notice_items"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("advance_notices.id"))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    due_on: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (
        Index("uq_advance_notice_items_record_due", "record_id", "due_on", unique=True),
        Index("ix_advance_notice_items_notice_id", "notice_id"),
    )


class Notification(Base):
    """The transactional outbox: one message to send on one channel, written in the same
    transaction as what it announces, delivered later with retries."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: ``certificate``, ``advance_notice`` or ``ig_alert``.
    kind: Mapped[str] = mapped_column(String(20))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    advance_notice_id: Mapped[int | None] = mapped_column(ForeignKey("advance_notices.id"))
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("controllers.id"))
    #: ``email`` or ``webhook``; ``target`` is the address or URL at the time it was queued.
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000))
    #: ``pending``, ``delivered`` or ``dead`` (gave up; IG officers alerted).
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[Any] = mapped_column(JSON, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_notifications_due", "state", "next_attempt_at"),
        Index("ix_notifications_certificate_id", "certificate_id"),
        Index("ix_notifications_advance_notice_id", "advance_notice_id"),
    )


class Acknowledgement(Base):
    """A controller's acknowledgement or dispute of a certificate."""

    __tablename__ = "acknowledgements"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    #: ``acknowledged`` or ``disputed``.
    kind: Mapped[str] = mapped_column(String(20))
    by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    #: ``link`` (signed token), ``api`` or ``cli`` (recorded by an officer).
    via: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_acknowledgements_certificate_id", "certificate_id"),)


class ControllerSettings(Base):
    """A controller's notification preferences: advance notice and channels."""

    __tablename__ = "controller_settings"
    controller_id: Mapped[int] = mapped_column(ForeignKey("controllers.id"), primary_key=True)
    #: Days of advance notice of disposals wanted (None: no advance notice).
    advance_notice_days: Mapped[int | None] = mapped_column(Integer)
    #: Comma-separated channels (None: email, plus webhook when the controller has a URL).
    channels: Mapped[str | None] = mapped_column(String(100))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


__all__ = [
    "DISPOSAL_STATES",
    "HOLD_SCOPES",
    "HOLD_TYPES",
    "OPEN_STATES",
    "PRINCIPAL_KINDS",
    "Acknowledgement",
    "AdvanceNotice",
    "AdvanceNoticeItem",
    "Agreement",
    "ApiToken",
    "Approval",
    "AuditEvent",
    "Base",
    "Certificate",
    "CertificateItem",
    "Controller",
    "ControllerSettings",
    "Disposal",
    "DisposalExecution",
    "DisposalStage",
    "Evaluation",
    "GroupMember",
    "Hold",
    "IdempotentRequest",
    "ImportRun",
    "LoginAttempt",
    "Notification",
    "PolicyVersion",
    "Record",
    "RecordPresence",
    "ReviewGroup",
    "ReviewScope",
    "SavedFilter",
    "SourceRun",
    "Subject",
    "WebSession",
    "WebUser",
]
