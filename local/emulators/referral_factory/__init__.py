"""Referral Factory emulator: API v2 users, qualification, campaigns and outbound webhooks."""

from __future__ import annotations

from local.emulators.referral_factory.app import ReferralFactoryEmulator, create_app

__all__ = ["ReferralFactoryEmulator", "create_app"]
