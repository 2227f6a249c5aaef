"""Referral Factory signups pushed to Intercom."""

from __future__ import annotations

from shared import settings
from shared.pending import not_implemented_consumer

# Issue #7 builds this consumer; until then every record stays queued (then in the DLQ).
SETTINGS = settings.load(settings.SignupProcessorSettings)
handler = not_implemented_consumer(issue=7)
