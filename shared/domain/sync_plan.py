"""Contact sync planning: pure functions from settings and contacts to queries and writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.domain.contact import Contact
from shared.domain.field_mapping import (
    changed_fields,
    contact_body,
    get_attribute,
    rf_values,
    split_attribute,
)

if TYPE_CHECKING:
    from shared.domain.campaign_settings import SyncSettings
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


def mapped_attributes(settings: SyncSettings) -> tuple[str, ...]:
    """Every attribute a sync's worker reads of a contact: the return mapping's (to see what is
    already written), then the inbound mapping's (to create the Referral Factory user), each once."""
    return tuple(dict.fromkeys((*settings.return_mapping.values(), *settings.inbound_mapping.values())))


def page_contact(contact: Contact, attributes: tuple[str, ...]) -> Contact:
    """What a worker needs of a contact: enough to map it and to see what is already written. Every
    attribute is kept where Intercom keeps it: `custom_attributes.x` and `location.city` nested."""
    custom = contact.custom_attributes or {}
    kept = {}
    for attribute in attributes:
        top, inner = split_attribute(attribute)
        if top == "custom_attributes" and inner is not None:
            kept[inner] = custom.get(inner)
    slim = {k: contact.get(k) for k in PAGE_CONTACT_KEYS}
    slim["custom_attributes"] = {k: v for k, v in kept.items() if v is not None}
    for attribute in attributes:
        top, inner = split_attribute(attribute)
        if inner is None:
            slim[top] = contact.get(top)
        elif top != "custom_attributes":
            nested = slim.setdefault(top, {})
            value = get_attribute(contact, attribute)
            if isinstance(nested, dict) and value is not None:
                nested[inner] = value
    # Values of a contact already read: nothing to validate again.
    return Contact.model_construct(**slim)


# What a sync reads for a Referral Factory field the inbound mapping does not map.
INBOUND_DEFAULTS = {"email": "email", "first_name": "name"}


@dataclass(frozen=True)
class InboundFields:
    """What a sync sends Referral Factory to create a contact's user: its create call takes a first
    name and an email (and a referrer, which a sync never knows); the other Referral Factory fields
    are its own (link, code, counts, source, signup date), so an inbound mapping of them reads nothing."""

    email: str | None
    first_name: str | None
    # The attribute the email was read from: a contact without it is named in the sync's errors.
    email_attribute: str = "email"


def inbound_fields(contact: Contact, inbound_mapping: Mapping[str, str]) -> InboundFields:
    """Referral Factory fields read from exactly the attributes the inbound mapping names (RF field →
    Intercom attribute; `email` and `name` when it names none). Intercom's `name` is a full name and
    Referral Factory's field a first name, so `name` gives its first word; an empty first name falls
    back to the first word of the contact's name (Referral Factory requires one; the caller then
    uses the email). An empty email stays empty: no other attribute stands in for it."""
    email_attribute = inbound_mapping.get("email", INBOUND_DEFAULTS["email"])
    name_attribute = inbound_mapping.get("first_name", INBOUND_DEFAULTS["first_name"])
    first_name = _text(get_attribute(contact, name_attribute))
    if name_attribute == "name" or not first_name:
        first_name = _first_word(first_name if name_attribute == "name" else contact.name)
    return InboundFields(
        email=_text(get_attribute(contact, email_attribute)),
        first_name=first_name,
        email_attribute=email_attribute,
    )


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _first_word(name: str | None) -> str | None:
    words = (name or "").split()
    return words[0] if words else None


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
