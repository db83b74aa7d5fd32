"""Automation on segments: sequences and enrolments, message events, daily segment actions, views, and playbooks.

Services take a ``Session`` and never commit; the scheduler's jobs (``connector.scheduling.automation``) and the
API (``connector.api.automation``) are the entry points. ``install()`` must run when an entry point starts (the app
factory, the CLI, the scheduler): it registers automation's segment usage finders and
its HQ sync item kinds (playbooks, views).
"""

from connector.automation.hq import register_item_kinds
from connector.automation.usages import register_usage_finders


def install() -> None:
    """Wire automation into the services it extends (idempotent)."""
    register_usage_finders()
    register_item_kinds()


__all__ = ["install"]
