"""The dashboard: counts by state, what is overdue, failed executions, and the chart."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from retentiond.web import chart, queries, redact
from retentiond.web.auth import current, web_state
from retentiond.web.pages.common import render

router = APIRouter(include_in_schema=False)


def load_dashboard(request: Request) -> queries.Dashboard:
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        d = queries.dashboard(session, as_of=state.clock.today(),
                              overdue_days=state.settings.overdue_days,
                              controller_id=principal.controller_id,
                              reviewer=principal.username)
    d.oldest_overdue = redact.cases(principal, d.oldest_overdue)
    d.failed = redact.cases(principal, d.failed)
    return d


def load_notices(request: Request) -> dict[str, int]:
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        return queries.notices(session, controller_id=principal.controller_id)


@router.get("/dashboard", name="dashboard_page")
def dashboard_page(request: Request) -> HTMLResponse:
    data = load_dashboard(request)
    label = web_state(request).policy.category_label
    title = "Records falling due per month, next 24 months, by category"
    return render(request, "dashboard.html", title="Dashboard", d=data,
                  svg=chart.render_svg(data.due_by_month, title=title, label=label),
                  svg_narrow=chart.render_svg(data.due_by_month, title=title, label=label,
                                              layout="narrow"),
                  legend=chart.legend(data.due_by_month),
                  chart_text=chart.describe(data.due_by_month, label),
                  categories=chart.categories_of(data.due_by_month), notices=load_notices(request),
                  month_label=chart.month_words)


@router.get("/dashboard/chart.svg", name="dashboard_chart_svg")
def dashboard_chart_svg(request: Request) -> Response:
    data = load_dashboard(request)
    label = web_state(request).policy.category_label
    return Response(chart.render_svg(data.due_by_month, label=label), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})
