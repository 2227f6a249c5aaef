"""Schemathesis hooks for tests/e2e/test_fuzz_api.py (loaded through SCHEMATHESIS_HOOKS): every generated
request carries the key of an account created for it alone, so an operation that changes its account
(rotating the key, replacing the Referral Factory key, disconnecting) cannot spoil the others."""

from __future__ import annotations

import os

import httpx
import schemathesis

API = os.environ["FUZZ_API"]
ADMIN_TOKEN = os.environ["FUZZ_ADMIN_TOKEN"]


@schemathesis.auth(refresh_interval=None)
class FreshAccount:
    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        if case.operation.path == "/admin/accounts":
            return ADMIN_TOKEN
        body = {"name": "Fuzzed", "referral_factory_api_key": "rf-fuzz-key"}
        created = httpx.post(
            f"{API}/admin/accounts", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        created.raise_for_status()
        return str(created.json()["api_key"])

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
