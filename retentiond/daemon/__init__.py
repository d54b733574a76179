"""The long-running service (``retentiond run``); see ``docs/daemon.md``."""
