"""Referral Factory fields → Intercom contact fields, by a campaign's mappings. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.domain.contact import Contact, ContactBody, Scalar
    from shared.domain.rf_user import RfUser

CUSTOM_PREFIX = "custom_attributes."


def rf_values(
    user: RfUser,
    *,
    campaign_name: str | None,
    referrer: RfUser | None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Scalar]:
    """The contract's Referral Factory fields for a user. For a Person Referring the referrer is the
    person themself; for a Person Invited, the friend who referred them."""
    referrer = referrer if referrer is not None else user
    counts = counts or {}
    return {
        "first_name": user.first_name,
        "email": user.email,
        "referral_link": user.url,
        "referral_code": user.code,
        "campaign_name": campaign_name,
        "source": user.source,
        "signed_up_at": user.signed_up_at,
        "referrals_count": counts.get("referrals_count", 0),
        "converted_referrals_count": counts.get("converted_referrals_count", 0),
        "referrer_first_name": referrer.first_name,
        "referrer_email": referrer.email,
        "referrer_referral_link": referrer.url,
    }


def custom_part(body: ContactBody) -> dict[str, Scalar]:
    """A body's `custom_attributes`, added empty when it has none."""
    custom = body.get("custom_attributes")
    if not isinstance(custom, dict):
        custom = body["custom_attributes"] = {}
    return custom


def set_attribute(body: ContactBody, attribute: str, value: Scalar) -> None:
    """Put one Intercom attribute (`name`, `email`, `custom_attributes.x`) into a contact body."""
    if attribute.startswith(CUSTOM_PREFIX):
        custom_part(body)[attribute.removeprefix(CUSTOM_PREFIX)] = value
    else:
        body[attribute] = value


def get_attribute(contact: Contact, attribute: str) -> Any:
    """One attribute of a contact: `custom_attributes.x`, or any top-level one (`email`, `location`)."""
    if attribute.startswith(CUSTOM_PREFIX):
        return (contact.custom_attributes or {}).get(attribute.removeprefix(CUSTOM_PREFIX))
    return contact.get(attribute)


def contact_body(
    mapping: Mapping[str, str], values: Mapping[str, Scalar], *, skip_empty: bool = True
) -> ContactBody:
    """The Intercom fields `mapping` (RF field → Intercom attribute) gives for `values`."""
    body: ContactBody = {}
    for field, attribute in mapping.items():
        value = values.get(field)
        if value is None and skip_empty:
            continue
        set_attribute(body, attribute, value)
    return body


def merge_bodies(*bodies: ContactBody) -> ContactBody:
    """Later bodies win, custom attributes merged key by key."""
    merged: ContactBody = {}
    for body in bodies:
        for key, value in body.items():
            if key == "custom_attributes" and isinstance(value, dict):
                custom_part(merged).update(value)
            else:
                merged[key] = value
    return merged


def changed_fields(body: ContactBody, contact: Contact) -> ContactBody:
    """Only what `body` would change on `contact` (so unchanged contacts cost no write)."""
    changed: ContactBody = {}
    for key, value in body.items():
        if key == "custom_attributes" and isinstance(value, dict):
            current = contact.custom_attributes or {}
            custom = {k: v for k, v in value.items() if current.get(k) != v}
            if custom:
                changed["custom_attributes"] = custom
        elif contact.get(key) != value:
            changed[key] = value
    return changed
