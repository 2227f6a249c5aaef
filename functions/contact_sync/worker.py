"""Sync workers: one page of contacts each."""

from __future__ import annotations

from shared import settings
from shared.pending import not_implemented_consumer

# Issue #8 builds this consumer; until then every record stays queued (then in the DLQ).
SETTINGS = settings.load(settings.ContactSyncSettings)
handler = not_implemented_consumer(issue=8)
