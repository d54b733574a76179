"""Notifications: the transactional outbox and its channels (email, webhook), advance notices
and acknowledgements. See ``docs/certificates.md``.

For the daemon::

    from retentiond.notify import channels_from_config, deliver_notifications
    channels = channels_from_config(cfg)          # once, at start (reads [notify])
    result = deliver_notifications(ctx, channels, stop=stop_event)   # each tick
"""

from __future__ import annotations

from retentiond.config import Config
from retentiond.notify.channels import Channels, build_channels
from retentiond.notify.outbox import DeliveryResult, deliver_notifications
from retentiond.notify.settings import NotifySettings, notify_settings


def channels_from_config(cfg: Config) -> Channels:
    """The channels and delivery settings ``[notify]`` describes."""
    return build_channels(notify_settings(cfg))


__all__ = [
    "Channels",
    "DeliveryResult",
    "NotifySettings",
    "channels_from_config",
    "deliver_notifications",
    "notify_settings",
]
