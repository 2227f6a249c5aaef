"""Referral Factory fields → Intercom contact fields, by a campaign's mappings. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.domain.rf_user import RfUser

CUSTOM_PREFIX = "custom_attributes."


def rf_values(
    user: RfUser,
    *,
    campaign_name: str | None,
    referrer: RfUser | None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
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


def set_attribute(body: dict[str, Any], attribute: str, value: Any) -> None:
    """Put one Intercom attribute (`name`, `email`, `custom_attributes.x`) into a contact body."""
    if attribute.startswith(CUSTOM_PREFIX):
        body.setdefault("custom_attributes", {})[attribute.removeprefix(CUSTOM_PREFIX)] = value
    else:
        body[attribute] = value


def get_attribute(contact: Mapping[str, Any], attribute: str) -> Any:
    if attribute.startswith(CUSTOM_PREFIX):
        return (contact.get("custom_attributes") or {}).get(attribute.removeprefix(CUSTOM_PREFIX))
    return contact.get(attribute)


def contact_body(
    mapping: Mapping[str, str], values: Mapping[str, Any], *, skip_empty: bool = True
) -> dict[str, Any]:
    """The Intercom fields `mapping` (RF field → Intercom attribute) gives for `values`."""
    body: dict[str, Any] = {}
    for field, attribute in mapping.items():
        value = values.get(field)
        if value is None and skip_empty:
            continue
        set_attribute(body, attribute, value)
    return body


def merge_bodies(*bodies: Mapping[str, Any]) -> dict[str, Any]:
    """Later bodies win, custom attributes merged key by key."""
    merged: dict[str, Any] = {}
    for body in bodies:
        for key, value in body.items():
            if key == "custom_attributes":
                merged.setdefault("custom_attributes", {}).update(value)
            else:
                merged[key] = value
    return merged


def changed_fields(body: Mapping[str, Any], contact: Mapping[str, Any]) -> dict[str, Any]:
    """Only what `body` would change on `contact` (so unchanged contacts cost no write)."""
    changed: dict[str, Any] = {}
    for key, value in body.items():
        if key == "custom_attributes":
            current = contact.get("custom_attributes") or {}
            custom = {k: v for k, v in value.items() if current.get(k) != v}
            if custom:
                changed["custom_attributes"] = custom
        elif contact.get(key) != value:
            changed[key] = value
    return changed
