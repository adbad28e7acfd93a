"""The console's only seam to ``events``: nothing else in ``tui`` imports the event store.

Screens and widgets import what they need from here (and the plain values of
:mod:`tui.rows`); a test checks that no other ``tui`` module imports ``events``.
"""

from events.domain import short_id
from tui.data.console import Clock, ConsoleData, ConsoleError
from tui.data.views import summarize_diff

__all__ = ["Clock", "ConsoleData", "ConsoleError", "short_id", "summarize_diff"]
