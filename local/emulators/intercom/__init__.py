"""An Intercom emulator: OAuth, contacts, search, segments, data attributes, signed notifications,
rate limits and faults, faithful to `shared/reference/intercom-api.md`."""

from __future__ import annotations

from local.emulators.intercom.app import create_app
from local.emulators.intercom.core import DEFAULT_CONFIG, IntercomEmulator

__all__ = ["DEFAULT_CONFIG", "IntercomEmulator", "create_app"]
