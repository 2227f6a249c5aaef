"""Contact sync planning: pure functions from settings and contacts to queries and writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.domain.contact import Contact
from shared.domain.field_mapping import CUSTOM_PREFIX, changed_fields, contact_body, get_attribute, rf_values

if TYPE_CHECKING:
    from shared.domain.contact import ContactBody, FieldQuery, SearchQuery
    from shared.domain.rf_user import RfUser

# Intercom's search matches dates by calendar day in the workspace's timezone (reference §3.5): an
# ongoing pass asks for a day more than it needs and filters on its side.
DAY_S = 86_400
# Clock skew between Intercom and us that an ongoing pass tolerates when filtering.
SKEW_S = 300


def audience_query(
    audience: str, segment_id: str | None = None, *, updated_since: int | None = None
) -> SearchQuery:
    """Intercom's search query for an audience, optionally only contacts changed since a time."""
    if audience == "leads":
        base: FieldQuery = {"field": "role", "operator": "=", "value": "lead"}
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


def changed_since(contact: Contact, since: int | None) -> bool:
    if since is None:
        return True
    return int(contact.updated_at or contact.created_at or 0) >= since - SKEW_S


# What a worker keeps of every contact, before the mapped attributes.
PAGE_CONTACT_KEYS = ("id", "role", "email", "name", "created_at", "updated_at")


def page_contact(contact: Contact, attributes: tuple[str, ...]) -> Contact:
    """What a worker needs of a contact: enough to map it and to see what is already written."""
    custom = contact.custom_attributes or {}
    kept = {
        a.removeprefix(CUSTOM_PREFIX): custom.get(a.removeprefix(CUSTOM_PREFIX))
        for a in attributes
        if a.startswith(CUSTOM_PREFIX)
    }
    slim = {k: contact.get(k) for k in PAGE_CONTACT_KEYS}
    slim["custom_attributes"] = {k: v for k, v in kept.items() if v is not None}
    for attribute in attributes:
        if not attribute.startswith(CUSTOM_PREFIX):
            slim[attribute] = contact.get(attribute)
    # Values of a contact already read: nothing to validate again.
    return Contact.model_construct(**slim)


@dataclass(frozen=True)
class InboundFields:
    """What a sync needs of a contact to find or create its Referral Factory user."""

    email: str | None
    first_name: str | None


def inbound_fields(contact: Contact, inbound_mapping: Mapping[str, str]) -> InboundFields:
    """Referral Factory fields read from an Intercom contact (RF field → Intercom attribute): the mapped
    email, else the contact's; the mapped first name, else the first word of the contact's name."""
    email = get_attribute(contact, inbound_mapping["email"]) if "email" in inbound_mapping else None
    if not email:
        email = contact.email
    first_name = (
        get_attribute(contact, inbound_mapping["first_name"]) if "first_name" in inbound_mapping else None
    )
    if not first_name:
        name = str(contact.name or "").strip()
        first_name = name.split(" ")[0] if name else None
    return InboundFields(
        email=str(email) if email else None, first_name=str(first_name) if first_name else None
    )


@dataclass(frozen=True)
class ReturnWrite:
    body: ContactBody

    @property
    def needed(self) -> bool:
        return bool(self.body)


def return_write(
    contact: Contact,
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
