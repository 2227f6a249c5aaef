"""Contact sync planning: pure functions from settings and contacts to queries and writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.domain.field_mapping import changed_fields, contact_body, get_attribute, rf_values

if TYPE_CHECKING:
    from shared.domain.rf_user import RfUser

# Intercom's search matches dates by calendar day in the workspace's timezone (reference §3.5): an
# ongoing pass asks for a day more than it needs and filters on its side.
DAY_S = 86_400
# Clock skew between Intercom and us that an ongoing pass tolerates when filtering.
SKEW_S = 300


def audience_query(
    audience: str, segment_id: str | None = None, *, updated_since: int | None = None
) -> dict[str, Any]:
    """Intercom's search query for an audience, optionally only contacts changed since a time."""
    if audience == "leads":
        base: dict[str, Any] = {"field": "role", "operator": "=", "value": "lead"}
    elif audience == "users":
        base = {"field": "role", "operator": "=", "value": "user"}
    elif audience == "segment":
        if not segment_id:
            raise ValueError("a segment audience needs a segment_id")
        base = {"field": "segment_id", "operator": "=", "value": segment_id}
    elif audience == "all":
        base = {"field": "role", "operator": "IN", "value": ["user", "lead"]}
    else:
        raise ValueError(f"unknown audience {audience!r}")
    if updated_since is None:
        return base
    # `>` matches from the next calendar day: step back a day and filter exactly in `changed_since`.
    return {
        "operator": "AND",
        "value": [base, {"field": "updated_at", "operator": ">", "value": updated_since - DAY_S}],
    }


def changed_since(contact: Mapping[str, Any], since: int | None) -> bool:
    if since is None:
        return True
    return int(contact.get("updated_at") or contact.get("created_at") or 0) >= since - SKEW_S


def page_contact(contact: Mapping[str, Any], attributes: tuple[str, ...]) -> dict[str, Any]:
    """What a worker needs of a contact: enough to map it and to see what is already written."""
    custom = contact.get("custom_attributes") or {}
    kept = {
        a.removeprefix("custom_attributes."): custom.get(a.removeprefix("custom_attributes."))
        for a in attributes
        if a.startswith("custom_attributes.")
    }
    slim = {k: contact.get(k) for k in ("id", "role", "email", "name", "created_at", "updated_at")}
    slim["custom_attributes"] = {k: v for k, v in kept.items() if v is not None}
    for attribute in attributes:
        if not attribute.startswith("custom_attributes."):
            slim[attribute] = contact.get(attribute)
    return slim


def inbound_fields(contact: Mapping[str, Any], inbound_mapping: Mapping[str, str]) -> dict[str, Any]:
    """Referral Factory fields read from an Intercom contact (RF field → Intercom attribute)."""
    values = {field: get_attribute(contact, attribute) for field, attribute in inbound_mapping.items()}
    if not values.get("email"):
        values["email"] = contact.get("email")
    if not values.get("first_name"):
        name = str(contact.get("name") or "").strip()
        values["first_name"] = name.split(" ")[0] if name else None
    return values


@dataclass(frozen=True)
class ReturnWrite:
    body: dict[str, Any]

    @property
    def needed(self) -> bool:
        return bool(self.body)


def return_write(
    contact: Mapping[str, Any],
    rf_user: RfUser,
    counts: Mapping[str, int],
    return_mapping: Mapping[str, str],
    *,
    campaign_name: str | None = None,
) -> ReturnWrite:
    """Only what differs between what the contact shows and what it should show."""
    values = rf_values(rf_user, campaign_name=campaign_name, referrer=None, counts=counts)
    wanted = contact_body(return_mapping, values)
    return ReturnWrite(changed_fields(wanted, contact))
