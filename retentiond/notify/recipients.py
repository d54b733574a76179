"""Where a controller's notices go: the channels its settings choose, at the addresses the
registry holds. Certificates and advance notices both queue through it."""

from __future__ import annotations

from retentiond.registry.models import Controller, ControllerSettings


def controller_channels(controller: Controller, settings: ControllerSettings | None) -> list[
        tuple[str, str]]:
    """(channel, target) pairs a controller is notified through."""
    wanted = (settings.channels.split(",") if settings is not None and settings.channels
              else ["email", "webhook"])
    out = []
    if "email" in wanted and controller.email:
        out.append(("email", controller.email))
    if "webhook" in wanted and controller.webhook_url:
        out.append(("webhook", controller.webhook_url))
    return out
