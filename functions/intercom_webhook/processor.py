"""Intercom notifications: qualification and connection changes."""

from __future__ import annotations

from shared import settings
from shared.pending import not_implemented_consumer

# Issue #9 builds this consumer; until then every record stays queued (then in the DLQ).
SETTINGS = settings.load(settings.IntercomEventsSettings)
handler = not_implemented_consumer(issue=9)
