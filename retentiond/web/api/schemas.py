"""The REST API's request and response bodies (they make its OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from retentiond.text import has_visible

#: Free text: at least one visible character, and no NUL (PostgreSQL refuses it in text).
TEXT = r"^[^\x00]*\S[^\x00]*$"


def _visible(value: str) -> str:
    if not has_visible(value):
        raise ValueError("needs at least one visible character (spaces and invisible "
                         "characters alone say nothing)")
    return value


#: A reason, as the lifecycle takes it: free text with at least one character a reader sees
#: (``retentiond.text``; ``\S`` alone lets a zero-width space through).
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=TEXT),
                   AfterValidator(_visible)]
#: Ids the registry can hold on every backend.
DbId = Annotated[int, Field(ge=1, le=2**62)]
HoldType = Literal["legal", "subject_access", "inquiry", "complaint", "police", "other"]


class Error(BaseModel):
    """Why a request was refused, in words a person can act on."""

    detail: str


class Me(BaseModel):
    username: str
    roles: list[str]
    controller: str | None
    via: str


class ApiToken(BaseModel):
    """An API token (never its secret, which is not stored)."""

    id: int
    username: str = Field(description="the user it acts as")
    name: str
    issued_by: str | None = Field(description="who made it: its user (a token made by anyone "
                                              "else authenticates nobody)")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiTokens(BaseModel):
    items: list[ApiToken]


class CreateTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT),
                    AfterValidator(_visible)] = Field(description="what uses the token")
    expires_at: AwareDatetime | None = Field(
        default=None, description="when it stops working, with its offset (none: never)")


class NewApiToken(BaseModel):
    token: str = Field(description="the secret, shown in this response only")
    item: ApiToken


class Disposal(BaseModel):
    """A disposal case (the same keys as ``retentiond disposals list --format json``)."""

    id: int
    record_id: str
    category: str
    controller: str
    state: str
    due_on: dt.date
    action: str
    rule: str
    policy_version: str
    approvals_required: int
    approved_by: list[str]
    reason: str | None
    updated_at: dt.datetime
    not_found_in: str | None = Field(
        default=None, description="the holding system that did not find the record's data "
        "when last asked; approving needs acknowledge_not_found")
    last_error: str | None = Field(
        default=None, description="why the last attempt to carry it out failed")
    attempts: int = Field(default=0, description="attempts to carry it out since it was "
                                                  "approved (or last retried)")
    stage: int | None = Field(default=None, description="a staged case: the 0-based position "
                              "of the stage it waits for (the last once complete); null for a "
                              "count rule")
    stage_group: str | None = Field(default=None, description="the review group whose member "
                                    "approves the stage it waits for")
    stages: list[dict[str, Any]] = Field(default_factory=list, description="a staged case's "
                                         "stages in order: position, name, group")
    cooling_off_days: int = Field(default=0, description="days it waits, once approved, "
                                  "before it may be carried out")
    cooling_until: dt.datetime | None = Field(default=None, description="while cooling_off: "
                                              "when it may be carried out")


class DisposalPage(BaseModel):
    """One page of the queue; pass ``next_cursor`` as ``after`` for the next."""

    items: list[Disposal]
    total: int = Field(description="matching cases, counted up to 10,000")
    total_capped: bool = Field(description="true when more than `total` cases match")
    next_cursor: str | None
    prev_cursor: str | None


class Disposals(BaseModel):
    items: list[Disposal]


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[DbId] = Field(min_length=1, max_length=500)
    reason: Reason
    acknowledge_not_found: bool = Field(
        default=False, description="approve cases whose data was not found in their holding "
        "system when last asked (refused otherwise)")


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[DbId] = Field(min_length=1, max_length=500)
    reason: Reason


class DeferRequest(RejectRequest):
    until: dt.date


class CaseRequest(RejectRequest):
    """Cases to raise an exception on, send on to review, or end the cooling-off of."""


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Reason


class RetryRequest(ApproveRequest):
    """Failed cases to try again (after their cause is fixed), or to send back to review."""


class Task(BaseModel):
    """A case waiting for a person (the same keys as ``retentiond disposals tasks --format
    json``)."""

    kind: Literal["not_found", "manual", "review"] = Field(
        description="not_found: the holding system did not find the data on the first attempt "
        "(confirm what happened to it, or send it back); manual or review: a person destroys "
        "the record and confirms it with evidence")
    reason: str | None = Field(description="why the case waits (for not_found: where it was "
                                           "not found)")
    disposal_id: int
    record_id: str
    category: str
    controller: str
    action: str
    system: str | None = Field(description="the holding system's code")
    system_name: str | None = Field(default=None,
                                    description="the holding system's display name")
    locator: str | None
    connector: str | None
    due_on: dt.date
    task_created_at: dt.datetime | None = Field(description="when the task was opened")
    state: str
    destroyed_by: str | None
    destroyed_on: dt.date | None
    method: str | None
    certificate_no: str | None
    confirmed_by: str | None


class Tasks(BaseModel):
    items: list[Task]
    counts: dict[str, int] = Field(description="open tasks by kind (items holds at most "
                                               "`limit` of each kind)")


def _evidence(value: str) -> str:
    from retentiond.lifecycle.tasks import MIN_EVIDENCE
    from retentiond.text import is_visible

    if sum(1 for c in value if is_visible(c)) < MIN_EVIDENCE:
        raise ValueError(f"needs at least {MIN_EVIDENCE} visible characters: what happened to "
                         "the data, in your own words")
    return value


class ConfirmNotFoundRequest(BaseModel):
    """What happened to data not found on the first attempt, in the confirmer's own words
    (quoted by the certificate). The holding system is asked once more first."""

    model_config = ConfigDict(extra="forbid")
    evidence: Annotated[str, Field(min_length=1, max_length=2000, pattern=TEXT),
                        AfterValidator(_evidence)]


class SendBackRequest(BaseModel):
    """Why a case of data not found goes back to review (its locator was corrected)."""

    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ConfirmDestructionRequest(BaseModel):
    """The evidence of a manual destruction (or of a review action's)."""

    model_config = ConfigDict(extra="forbid")
    destroyed_by: Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT),
                            AfterValidator(_visible)]
    destroyed_on: dt.date = Field(description="not in the future, nor before the record was "
                                              "due or the task was opened")
    method: Annotated[str, Field(min_length=1, max_length=500, pattern=TEXT),
                      AfterValidator(_visible)]
    certificate_no: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] | None = None


class Hold(BaseModel):
    id: int
    scope: str
    type: str
    reason: str
    placed_by: str
    placed_at: dt.datetime
    until: dt.date | None
    lifted_at: dt.datetime | None
    lifted_by: str | None
    lift_reason: str | None
    active: bool
    records_covered: int
    covers: str = Field(description="what the hold covers, in plain English")
    criteria: dict[str, str] | None = Field(
        description="a filter hold's record criteria, copied from the saved filter when the "
                    "hold was placed (null for other scopes)")


class Holds(BaseModel):
    items: list[Hold]


class CoveredRecord(BaseModel):
    record_id: str
    category: str
    controller: str
    due_on: dt.date | None


class HoldDetail(BaseModel):
    hold: Hold
    covers: list[CoveredRecord] = Field(description="the first 100 records in its scope")


class PlaceHoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(min_length=3, max_length=300, pattern=TEXT,
                       description="record:ID, subject:REF, category:CODE, controller:CODE, "
                                   "or filter:NAME (or filter:ID) for a saved filter")
    type: HoldType
    reason: Reason
    until: dt.date | None = None


class FilterCriteria(BaseModel):
    """The review queue's criteria (all optional; every one given must match). A hold by the
    filter keeps all but ``state``."""

    model_config = ConfigDict(extra="forbid")
    controller: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    rule: str | None = Field(default=None, max_length=200)
    action: str | None = Field(default=None, max_length=200)
    due_from: dt.date | None = None
    due_to: dt.date | None = None
    state: str | None = Field(default=None, max_length=200)


class LeftOut(BaseModel):
    reason: str = Field(description="held, not_pending, not_closable, not_exceptable, "
                        "not_due, already_approved, other_stage, stages_missing or not_found")
    count: int
    states: dict[str, int] = Field(description="for not_pending and not_closable: how many "
                                   "cases in each state")
    words: str = Field(description="the same in words: '12 are under a hold'")


class MatchingPreview(BaseModel):
    verb: str
    criteria: dict[str, str]
    gone_at_source: bool
    matching: int = Field(description="cases the filter selects (within the caller's scope)")
    acting: int = Field(description="cases the action would change now: send it as `expected`")
    left_out: list[LeftOut]


class RejectMatchingRequest(BaseModel):
    """Act on every case a queue filter selects. ``expected`` is the count the person
    confirmed (``acting`` of the preview): if the filter now selects another number of cases,
    the request is refused (409) and nothing changes."""

    model_config = ConfigDict(extra="forbid")
    criteria: FilterCriteria = Field(default_factory=FilterCriteria)
    gone_at_source: bool = False
    expected: int = Field(ge=0, le=10**9)
    reason: Reason


class ApproveMatchingRequest(RejectMatchingRequest):
    acknowledge_not_found: bool = Field(
        default=False, description="include cases whose data was not found in their holding "
        "system when last asked")


class DeferMatchingRequest(RejectMatchingRequest):
    until: dt.date


class MatchingResult(BaseModel):
    verb: str
    matching: int
    acted: int
    completed: int = Field(description="approve: cases now approved (or cooling off); defer "
                           "and reject: every case acted on")
    waiting: int = Field(description="approve: cases that wait for another approver or stage")
    left_out: list[LeftOut]
    event_id: int | None = Field(description="the audit event recording the action")


class SavedFilter(BaseModel):
    id: int
    name: str
    criteria: dict[str, str]
    description: str = Field(description="what the filter selects, in plain English")
    owner: str
    created_at: dt.datetime
    holds: list[int] = Field(description="active holds placed from it (each keeps its own copy "
                                         "of the criteria)")


class SavedFilters(BaseModel):
    items: list[SavedFilter]


class SaveFilterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=TEXT)
    criteria: FilterCriteria


class LiftHoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class Record(BaseModel):
    """``retentiond records explain --format json``, plus the plain-English headline."""

    model_config = ConfigDict(extra="allow")
    record_id: str
    category: str
    controller: str
    state: str
    due_on: dt.date | None
    action: str | None
    rule: str | None
    citation: str | None
    headline: str
    rules: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    history: list[dict[str, Any]]


class Dashboard(BaseModel):
    as_of: dt.date
    by_state: dict[str, int]
    overdue: int
    overdue_days: int
    needs_attention: int
    active_holds: int
    undelivered_notices: int = Field(description="notices to controllers given up (dead)")
    notices_pending: int = Field(description="notices still being tried")
    due_by_month: dict[str, dict[str, int]]
    oldest_overdue: list[Disposal]
    failed: list[Disposal]


class PolicyRule(BaseModel):
    id: str
    category: str
    title: str
    action: str
    approvals_required: int
    auto_approve: bool
    citation: str


class PolicyPack(BaseModel):
    name: str
    title: str
    sha256: str
    signed_off_by: str | None
    signed_off_on: dt.date | None


class Policy(BaseModel):
    version: str
    packs: list[PolicyPack]
    rules: list[PolicyRule]


class PolicyPreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pack_text: str = Field(min_length=1, max_length=1_000_000, pattern=TEXT,
                           description="a policy pack (TOML); replaces the pack of the same name")


class RecordMove(BaseModel):
    record_id: str
    change: Literal["earlier", "later", "newly_never_due", "newly_dated"]
    due_on: dt.date | None = Field(description="under the policy in force")
    proposed_due_on: dt.date | None = Field(description="under the changed policy")
    due_now: bool = Field(description="would fall due at once")


class CategoryMove(BaseModel):
    category: str
    records: int
    earlier: int
    later: int
    unchanged: int
    newly_never_due: int
    newly_dated: int
    newly_due_now: int
    records_moved: list[RecordMove] = Field(
        default_factory=list, description="the first 200 records that would move, by id")


class PolicyPreview(BaseModel):
    current_version: str
    proposed_version: str
    as_of: dt.date
    changed_categories: list[str]
    moves: list[CategoryMove]


class AuditEvent(BaseModel):
    id: int
    occurred_at: dt.datetime
    kind: str
    actor: str
    entity: str
    entity_id: str
    reason: str | None
    policy_version: str | None
    data: Any


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_before_id: int | None


class Certificate(BaseModel):
    """A disposal certificate, as ``retentiond certificates list --format json`` shows it."""

    serial: str
    controller: str
    sequence: int
    batch: str
    records: int
    issued_at: dt.datetime
    issued_by: str
    sha256: str
    previous_sha256: str | None
    audit_head: str | None
    key_id: str
    delivery: str = Field(description="notified, pending, failed or no channel")
    acknowledgement: str | None = Field(description="acknowledged, disputed or null")


class Certificates(BaseModel):
    items: list[Certificate]


class CertificateDetail(Certificate):
    """One certificate with its signed document, notices and acknowledgements."""

    document: dict[str, Any]
    notifications: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]]
