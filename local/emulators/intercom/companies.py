"""Companies (contract §3, [v2]): a workspace's companies, the contacts attached to them, and the
shapes Intercom gives a company over REST (2.16 `company`) and in its notifications.

The notification shapes are in this one module because Intercom documents neither: `company.updated`
carries the company, `company.contact.attached` an item holding both the company and the contact
(the topic list names its object "Company, Contact"). The field names follow a payload a published
integration recorded from a real workspace (ISO-8601 times, `tag_ids`, a null `plan`); nothing here
is confirmed by Intercom's reference.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.emulators.intercom.errors import ApiError, invalid
from local.emulators.intercom.state import NOT_FOUND_COMPANY, Workspace, object_id

# What a person can change on a company in Intercom's UI through `PATCH /_emulator/companies/{id}`.
PERSON_EDITABLE = ("name", "monthly_spend", "custom_attributes", "plan", "size", "website", "industry")
# Intercom "will truncate floats" of `monthly_spend`, and holds at most 2**31 - 1 (2.16 file).
MAX_MONTHLY_SPEND = 2**31 - 1
_TIMESTAMPS = ("created_at", "updated_at", "remote_created_at", "last_request_at")


@dataclass
class Company:
    id: str
    company_id: str
    created_at: int
    updated_at: int
    name: str | None = None
    remote_created_at: int | None = None
    monthly_spend: int = 0
    # (id, name) of the company's plan: Intercom makes a plan object of the name it is sent.
    plan: tuple[str, str] | None = None
    size: int | None = None
    website: str | None = None
    industry: str | None = None
    custom_attributes: dict[str, Any] = field(default_factory=dict)
    session_count: int = 0
    last_request_at: int | None = None
    # The contacts attached, in the order they were (an ordered set).
    contact_ids: dict[str, None] = field(default_factory=dict)

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.monthly_spend,
            self.plan[1] if self.plan else None,
            self.size,
            self.website,
            self.industry,
            tuple(sorted(self.custom_attributes.items())),
        )


def render_company(company: Company, app_id: str) -> dict[str, Any]:
    """The company object as `GET /companies/{id}` returns it in 2.16. Fields the company has no value
    for are left out, as Intercom's examples do (the file types them as non-null)."""
    out: dict[str, Any] = {
        "type": "company",
        "company_id": company.company_id,
        "id": company.id,
        "app_id": app_id,
    }
    if company.name is not None:
        out["name"] = company.name
    if company.remote_created_at is not None:
        out["remote_created_at"] = company.remote_created_at
    out.update(created_at=company.created_at, updated_at=company.updated_at)
    if company.last_request_at is not None:
        out["last_request_at"] = company.last_request_at
    for name in ("size", "website", "industry"):
        if getattr(company, name) is not None:
            out[name] = getattr(company, name)
    out.update(
        monthly_spend=company.monthly_spend,
        session_count=company.session_count,
        user_count=len(company.contact_ids),
        tags={"type": "tag.list", "tags": []},
        segments={"type": "segment.list", "segments": []},
        plan=_plan(company) or {},
        custom_attributes=dict(company.custom_attributes),
    )
    return out


def _plan(company: Company) -> dict[str, str] | None:
    return {"type": "plan", "id": company.plan[0], "name": company.plan[1]} if company.plan else None


def _iso(value: int | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


def webhook_company(company: Company, app_id: str, *, iso_times: bool) -> dict[str, Any]:
    """A company as a notification carries it (unverified upstream: see the module's docstring)."""
    item: dict[str, Any] = {
        "type": "company",
        "id": company.id,
        "name": company.name,
        "app_id": app_id,
        "plan": _plan(company),
        "company_id": company.company_id,
        "remote_created_at": company.remote_created_at,
        "created_at": company.created_at,
        "updated_at": company.updated_at,
        "last_request_at": company.last_request_at,
        "size": company.size,
        "website": company.website,
        "industry": company.industry,
        "monthly_spend": company.monthly_spend,
        "session_count": company.session_count,
        "user_count": len(company.contact_ids),
        "custom_attributes": dict(company.custom_attributes),
        "tag_ids": [],
    }
    if iso_times:
        for name in _TIMESTAMPS:
            item[name] = _iso(item[name])
    return item


def attached_item(company: dict[str, Any], contact: dict[str, Any]) -> dict[str, Any]:
    """`company.contact.attached`'s `data.item` (unverified upstream: see the module's docstring)."""
    return {"company": company, "contact": contact}


# -- writes -------------------------------------------------------------------------------------------
def _typed(body: Mapping[str, Any], key: str, kinds: tuple[type, ...], label: str) -> Any:
    value = body[key]
    if value is None:
        return None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise invalid(f"{key} must be {label}", key)
    return value


def company_changes(ws: Workspace, body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a company write sets, validated before anything is applied."""
    changes: dict[str, Any] = {}
    for key in ("name", "website", "industry", "plan"):
        if key in body:
            changes[key] = _typed(body, key, (str,), "a string")
    for key in ("size", "remote_created_at"):
        if key in body:
            changes[key] = _typed(body, key, (int,), "an integer")
    if "monthly_spend" in body:
        spend = _typed(body, "monthly_spend", (int, float), "a number")
        changes["monthly_spend"] = min(int(spend or 0), MAX_MONTHLY_SPEND)
    if "custom_attributes" in body:
        changes["custom_attributes"] = ws.validate_custom_attributes(body["custom_attributes"], "company")
    return changes


def apply_changes(company: Company, changes: Mapping[str, Any]) -> bool:
    """Apply validated changes; whether anything a person would see changed."""
    before = company.snapshot()
    for key, value in changes.items():
        if key == "custom_attributes":
            company.custom_attributes = {**company.custom_attributes, **value}
        elif key == "plan":
            keep = company.plan[0] if company.plan and company.plan[1] == value else object_id()
            company.plan = (keep, value) if value else None
        else:
            setattr(company, key, value)
    return company.snapshot() != before


def new_company(ws: Workspace, company_id: Any, changes: Mapping[str, Any]) -> Company:
    if not isinstance(company_id, str | int) or isinstance(company_id, bool) or company_id == "":
        raise ApiError(400, "parameter_invalid", "company_id is required to create a company", "company_id")
    now = int(time.time())
    company = Company(id=object_id(), company_id=str(company_id), created_at=now, updated_at=now)
    apply_changes(company, changes)
    ws.companies[company.id] = company
    ws.company_by_company_id[company.company_id] = company.id
    return company


def company_in(ws: Workspace, company_id: str) -> Company:
    company = ws.companies.get(company_id)
    if company is None:
        raise ApiError(404, *NOT_FOUND_COMPANY)
    return company
