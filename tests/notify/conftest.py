"""Fixtures of the notify tests; the servers themselves live in notify_servers.py (importable by name)."""

from notify_servers import (  # noqa: F401 - fixtures are found by name
    _robot_server,
    _smtp,
    mailbox,
    robots,
    world,
)
