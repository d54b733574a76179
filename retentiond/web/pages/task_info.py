"""What a task for a person says (shared by the Tasks page and the record page): each kind's
heading and next step in words, when it was opened, and whether data not found can be
confirmed from this app (its connectors must reach the holding system)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from retentiond.clock import LONDON
from retentiond.config import ConfigError
from retentiond.lifecycle import tasks
from retentiond.web.auth import context_for, web_state
from retentiond.wording import long_date

#: Each kind of task: its heading, and what to do next in plain words.
KIND_WORDS: dict[str, tuple[str, str]] = {
    "not_found": (
        "Data not found",
        "Nothing was deleted: the holding system did not find this record's data on the "
        "first attempt. Find out what happened to it. If it was destroyed earlier, confirm "
        "what happened in your own words. If its location was wrong, correct it (import the "
        "record again) and send the case back to review."),
    "manual": (
        "Manual destruction to confirm",
        "This record is not deleted by the service: have it destroyed where it is kept, then "
        "confirm who destroyed it, on which date and how."),
    "review": (
        "Review action",
        "The rule says a person decides what happens to this record. Review it; if it is to be "
        "destroyed, have it destroyed, then confirm who destroyed it, on which date and how."),
}


def connector_problem(request: Request, system: str | None) -> str | None:
    """Why data not found cannot be confirmed from here (the service must ask the holding
    system again, through its connector), in words; None when it can."""
    try:
        registry = web_state(request).holding_connectors()
    except ConfigError as exc:
        return ("The service cannot ask the holding system again: its connectors' "
                f"configuration cannot be used ({exc}). Ask an administrator to correct it.")
    label = web_state(request).cfg.system_label(system) if system else "the holding system"
    if not system or system not in registry.systems():
        return (f"The service has no connector for {label} set up here, so it cannot ask it "
                "again whether the data is there: confirming is not possible from this page. "
                "Ask an administrator to configure one, or confirm from the command line on "
                "the machine that has it (retentiond disposals confirm).")
    return None


def task_context(request: Request, case_id: int) -> dict[str, Any]:
    """What the record page needs to show a case's task and its forms (empty when the case
    is not pending confirmation)."""
    task = tasks.get_task(context_for(request), case_id)
    if task is None:
        return {}
    heading, next_step = KIND_WORDS[task.kind]
    return {"task": task, "task_heading": heading, "task_next": next_step,
            "task_since": since(task),
            "task_problem": connector_problem(request, task.system)
            if task.kind == "not_found" else None}



def since(task: tasks.TaskView) -> str:
    """The day the task was opened, in words (London's day, as the lifecycle counts)."""
    return long_date(task.task_created_at.astimezone(LONDON).date()) \
        if task.task_created_at else "–"
