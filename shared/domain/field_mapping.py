"""Referral Factory fields → Intercom contact fields, by a campaign's mappings. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.domain.company import Company
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
    return _part(body, "custom_attributes")


def _part(body: ContactBody, key: str) -> dict[str, Scalar]:
    """A body's nested object `key` (`custom_attributes`, `location`), added empty when it has none."""
    part = body.get(key)
    if not isinstance(part, dict):
        part = body[key] = {}
    return part


def split_attribute(attribute: str) -> tuple[str, str | None]:
    """An attribute's top-level key and, for a nested one, its key inside it: `custom_attributes.x`
    is (`custom_attributes`, `x`), `location.city` is (`location`, `city`), `email` is (`email`, None).
    A custom attribute's own name is taken whole, whatever it holds."""
    if attribute.startswith(CUSTOM_PREFIX):
        return "custom_attributes", attribute.removeprefix(CUSTOM_PREFIX)
    top, dot, inner = attribute.partition(".")
    return (top, inner) if dot else (attribute, None)


def set_attribute(body: ContactBody, attribute: str, value: Scalar) -> None:
    """Put one Intercom attribute into a contact body where Intercom keeps it: `name` at the top,
    `custom_attributes.x` and nested standard ones (`location.city`) inside their object."""
    top, inner = split_attribute(attribute)
    if inner is None:
        body[top] = value
    else:
        _part(body, top)[inner] = value


def drop_attribute(body: ContactBody, attribute: str) -> None:
    """Take one attribute out of a contact body, and its object when that is left empty."""
    top, inner = split_attribute(attribute)
    part = body.get(top)
    if inner is None:
        body.pop(top, None)
    elif isinstance(part, dict):
        part.pop(inner, None)
        if not part:
            body.pop(top)


def get_attribute(contact: Contact | Company, attribute: str) -> Any:
    """One attribute of a contact (or a company) as Intercom nests it: `custom_attributes.x`,
    `location.city` (`plan.name`), or a top-level one (`email`, `monthly_spend`); None when it has none."""
    top, inner = split_attribute(attribute)
    if top == "custom_attributes" and inner is not None:
        return (contact.custom_attributes or {}).get(inner)
    value = contact.get(top)
    if inner is None:
        return value
    return value.get(inner) if isinstance(value, Mapping) else None


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
    """Later bodies win, nested objects (custom attributes, `location`) merged key by key."""
    merged: ContactBody = {}
    for body in bodies:
        for key, value in body.items():
            if isinstance(value, dict):
                _part(merged, key).update(value)
            else:
                merged[key] = value
    return merged


def changed_fields(body: ContactBody, contact: Contact) -> ContactBody:
    """Only what `body` would change on `contact` (so unchanged contacts cost no write)."""
    changed: ContactBody = {}
    for key, value in body.items():
        if isinstance(value, dict):
            current = contact.custom_attributes if key == "custom_attributes" else contact.get(key)
            current = current if isinstance(current, Mapping) else {}
            nested = {k: v for k, v in value.items() if current.get(k) != v}
            if nested:
                changed[key] = nested
        elif contact.get(key) != value:
            changed[key] = value
    return changed
