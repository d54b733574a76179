"""Roles, what each may do, and the rule for every route (DESIGN.md section 6).

Every route of the app is named in ``ROUTE_RULES``. A route without a rule is refused to
everyone (fail closed), and ``tests/integration/test_int_web_authz.py`` fails: adding a route
means deciding who may use it, here, in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("admin", "ig_officer", "approver", "auditor", "controller", "feeder")

#: Anyone, signed in or not (the sign-in page itself, health, the OpenAPI document).
PUBLIC = "public"
#: Any signed-in user, whatever their role (their own account, signing out).
SIGNED_IN = "signed_in"
#: Any user signed in through a browser session, never through an API token: making an API
#: token (a token never makes another, so a leaked one cannot outlive its revocation).
SIGNED_IN_SESSION = "signed_in_session"

# Permissions. Read permissions never change anything.
VIEW = "view"                      # dashboard, queue, records, certificates (a controller: its own)
VIEW_HOLDS = "view_holds"          # the holds register (scopes name other controllers' records)
#: A hold's type, reason, author and lift reason wherever they show (a record's holds and
#: history, a case's reason, exports). Without it a user sees that a record is held, not why
#: or by whom: those are the council's business (a police investigation, a complaint).
VIEW_HOLD_DETAILS = "view_hold_details"
VIEW_POLICY = "view_policy"        # the rules in force and their citations
VIEW_AUDIT = "view_audit"          # the audit trail, and its export
EXPORT = "export"                  # lists as CSV and password-protected XLSX
PREVIEW_POLICY = "preview_policy"  # what a changed pack would move (computes, changes nothing)
APPROVE = "approve"                # approve disposals
REVIEW = "review"                  # defer and reject disposals; retry failed ones or send them back
                                   # to review; the tasks for a person (confirm data not found or a
                                   # destruction, send a finding back)
HOLD = "hold"                      # place and lift holds
#: Raise an exception on a case (out of review, back to the IG officer) and comment on it:
#: anyone who approves or reviews.
DISCUSS = "discuss"
VIEW_FILTERS = "view_filters"      # saved queue filters (their criteria name controllers)
MANAGE_FILTERS = "manage_filters"  # save and delete queue filters (a filter can scope a hold)
MANAGE_USERS = "manage_users"      # users, their sessions; list and revoke anyone's API
                                   # tokens, never make one for someone else (a token is made
                                   # by its own user only: see ``web.sessions.create_token``)
RESEND = "resend"                  # send a controller's notice again
ACKNOWLEDGE = "acknowledge"        # a controller acknowledges or disputes its certificate
VIEW_SOURCES = "view_sources"      # the Sources page: each source's runs, errors, next run
FEED = "feed"                      # push records and trigger events (API tokens only)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({VIEW, VIEW_HOLDS, VIEW_HOLD_DETAILS, VIEW_FILTERS, VIEW_POLICY,
                        VIEW_AUDIT, EXPORT, PREVIEW_POLICY, REVIEW, DISCUSS, HOLD, MANAGE_FILTERS, RESEND,
                        MANAGE_USERS, VIEW_SOURCES}),
    "ig_officer": frozenset({VIEW, VIEW_HOLDS, VIEW_HOLD_DETAILS, VIEW_FILTERS, VIEW_POLICY,
                             VIEW_AUDIT, EXPORT, PREVIEW_POLICY, REVIEW, DISCUSS, HOLD, MANAGE_FILTERS,
                             RESEND, VIEW_SOURCES}),
    # Approval is its own role so that deciding and approving can be different people; one
    # person may hold both roles where an organisation allows it.
    "approver": frozenset({VIEW, VIEW_HOLDS, VIEW_HOLD_DETAILS, VIEW_FILTERS, VIEW_POLICY,
                           EXPORT, APPROVE, DISCUSS}),
    "auditor": frozenset({VIEW, VIEW_HOLDS, VIEW_HOLD_DETAILS, VIEW_FILTERS, VIEW_POLICY,
                          VIEW_AUDIT, EXPORT, PREVIEW_POLICY, VIEW_SOURCES}),
    # Everything a controller reads is filtered to its own organisation's records; saved
    # filters and holds are shared by the council's officers and name any controller, so a
    # controller sees neither. It sees that its record is held, never the hold's type,
    # reason, author or lift reason (no VIEW_HOLD_DETAILS: retentiond/web/redact.py).
    "controller": frozenset({VIEW, VIEW_POLICY, EXPORT, ACKNOWLEDGE}),
    # A system that pushes records and trigger events (retentiond/web/api/feed.py): through
    # API tokens only (``authorise`` refuses a feeder's session), and it reads nothing.
    "feeder": frozenset({FEED}),
}

#: Roles that act only through API tokens: never a session, never a password.
TOKEN_ONLY_ROLES = frozenset({"feeder"})

#: Route name (the endpoint function's name) -> the permission it needs.
ROUTE_RULES: dict[str, str] = {
    # sign-in and account
    "login_form": PUBLIC,
    "login_submit": PUBLIC,
    "oidc_start": PUBLIC,
    "oidc_callback": PUBLIC,
    "logout": SIGNED_IN,
    "healthz": PUBLIC,
    # what a controller reaches from a notice, without an account: the token is the authority
    "public_jwks": PUBLIC,
    "public_ca": PUBLIC,
    "ack_form": PUBLIC,
    "ack_submit": PUBLIC,
    "openapi_document": PUBLIC,
    "account_page": SIGNED_IN,
    # a user's own API tokens: made by that user only, in a browser session
    "account_tokens_create": SIGNED_IN_SESSION,
    "account_tokens_revoke": SIGNED_IN,
    # pages
    "home": SIGNED_IN,
    "dashboard_page": VIEW,
    "dashboard_chart_svg": VIEW,
    "queue_page": VIEW,
    "queue_export_csv": EXPORT,
    "queue_export_xlsx": EXPORT,
    "queue_approve": APPROVE,
    "queue_defer": REVIEW,
    "queue_reject": REVIEW,
    "queue_hold": HOLD,
    "queue_retry": REVIEW,
    "queue_return": REVIEW,
    # every case a filter selects: the confirmation page needs the action's own permission
    # (checked in the route: APPROVE for approve, REVIEW for defer and reject)
    "queue_matching_page": VIEW,
    "queue_matching_approve": APPROVE,
    "queue_matching_defer": REVIEW,
    "queue_matching_reject": REVIEW,
    "queue_matching_exception": DISCUSS,
    "queue_exception": DISCUSS,
    "queue_comment": DISCUSS,
    "queue_resume": REVIEW,
    "queue_cancel_cooling": REVIEW,
    "record_page": VIEW,
    # tasks for a person: data not found, manual destruction and review actions to confirm
    "tasks_page": REVIEW,
    "task_confirm_not_found": REVIEW,
    "task_send_back": REVIEW,
    "task_confirm_destruction": REVIEW,
    "holds_page": VIEW_HOLDS,
    "hold_page": VIEW_HOLDS,
    "holds_export_csv": VIEW_HOLDS,
    "holds_place": HOLD,
    "holds_lift": HOLD,
    "filters_page": VIEW_FILTERS,
    "filters_save": MANAGE_FILTERS,
    "filters_delete": MANAGE_FILTERS,
    "policy_page": VIEW_POLICY,
    "policy_preview_submit": PREVIEW_POLICY,
    "audit_page": VIEW_AUDIT,
    "audit_export_csv": VIEW_AUDIT,
    "certificates_page": VIEW,
    "certificate_page": VIEW,
    "certificate_download": VIEW,
    "certificate_acknowledge": ACKNOWLEDGE,
    "notification_resend": RESEND,
    "users_page": MANAGE_USERS,
    "users_new_form": MANAGE_USERS,
    "users_add": MANAGE_USERS,
    "users_disable": MANAGE_USERS,
    "users_revoke_sessions": MANAGE_USERS,
    "users_revoke_token": MANAGE_USERS,
    "users_scope": MANAGE_USERS,
    "groups_page": MANAGE_USERS,
    "groups_add": MANAGE_USERS,
    "groups_member_add": MANAGE_USERS,
    "groups_member_remove": MANAGE_USERS,
    "groups_scope": MANAGE_USERS,
    # REST API (/api/v1)
    "api_me": SIGNED_IN,
    # the caller's own tokens (an administrator may list and revoke anyone's: checked in the
    # route, by MANAGE_USERS); made in a session only
    "api_tokens": SIGNED_IN,
    "api_tokens_create": SIGNED_IN_SESSION,
    "api_tokens_revoke": SIGNED_IN,
    "api_dashboard": VIEW,
    "api_disposals": VIEW,
    "api_disposals_approve": APPROVE,
    "api_disposals_defer": REVIEW,
    "api_disposals_reject": REVIEW,
    "api_disposals_retry": REVIEW,
    "api_disposals_return_to_review": REVIEW,
    "api_tasks": REVIEW,
    "api_disposals_confirm_not_found": REVIEW,
    "api_disposals_confirm_destruction": REVIEW,
    "api_disposals_send_back": REVIEW,
    # everything a filter selects: the preview needs the action's own permission (checked in
    # the route: APPROVE for approve, REVIEW for defer and reject)
    "api_disposals_matching_preview": VIEW,
    "api_disposals_approve_matching": APPROVE,
    "api_disposals_defer_matching": REVIEW,
    "api_disposals_reject_matching": REVIEW,
    "api_disposals_exception_matching": DISCUSS,
    "api_disposals_exception": DISCUSS,
    "api_disposals_comment": DISCUSS,
    "api_disposals_resume": REVIEW,
    "api_disposals_cancel_cooling": REVIEW,
    "api_record": VIEW,
    "api_holds": VIEW_HOLDS,
    "api_hold": VIEW_HOLDS,
    "api_holds_place": HOLD,
    "api_holds_lift": HOLD,
    "api_filters": VIEW_FILTERS,
    "api_filter": VIEW_FILTERS,
    "api_filters_save": MANAGE_FILTERS,
    "api_filters_delete": MANAGE_FILTERS,
    "api_policy": VIEW_POLICY,
    "api_policy_preview": PREVIEW_POLICY,
    "api_audit": VIEW_AUDIT,
    "api_certificates": VIEW,
    "api_certificate": VIEW,
    "api_records_push": FEED,
    "api_events_push": FEED,
    "sources_page": VIEW_SOURCES,
}


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is making a request, and through what."""

    user_id: int
    username: str
    roles: frozenset[str]
    #: Set for a ``controller`` user: every read is filtered to this controller.
    controller_id: int | None = None
    controller_code: str | None = None
    via: str = "session"  # session or token
    session_id: int | None = None
    csrf_token: str | None = None

    @property
    def permissions(self) -> frozenset[str]:
        perms: set[str] = set()
        for role in self.roles:
            perms |= ROLE_PERMISSIONS.get(role, frozenset())
        return frozenset(perms)

    def can(self, permission: str) -> bool:
        """True when one of the principal's roles grants ``permission``."""
        if permission in (PUBLIC, SIGNED_IN):
            return True
        if permission == SIGNED_IN_SESSION:
            return self.via == "session"
        return permission in self.permissions

    @property
    def is_controller(self) -> bool:
        """A controller user: sees only its own organisation's records."""
        return "controller" in self.roles


def parse_roles(text: str) -> frozenset[str]:
    """``ig_officer,approver`` -> a set of roles; unknown roles are refused."""
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    unknown = roles - set(ROLES)
    if not roles:
        raise ValueError(f"name at least one role (one of: {', '.join(ROLES)})")
    if unknown:
        raise ValueError(f"unknown role {', '.join(sorted(unknown))} (one of: {', '.join(ROLES)})")
    if "controller" in roles and len(roles) > 1:
        raise ValueError("the controller role cannot be combined with another role")
    if roles & TOKEN_ONLY_ROLES and len(roles) > 1:
        raise ValueError("the feeder role cannot be combined with another role (a feeder is a "
                         "system pushing facts through API tokens, not a person)")
    return roles
