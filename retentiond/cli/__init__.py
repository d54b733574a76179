"""The ``retentiond`` command: thin commands that parse, call a service and print."""
