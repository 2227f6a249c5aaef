"""The contract's qualification rule and the sale value's parsing: plain values in, plain values out.

A referral qualifies when its contact's qualification attribute is observed to change to one of the
qualifying values: for a contact the product created, any qualifying value after creation counts; for
an existing contact marked by `update`, only a change from a non-qualifying value the product saw
first. Once per referral, ever (contract §1, "Qualification").

[v2] With `object: company`, the attribute is a company's, and a referral qualifies when a company
its contact belongs to is seen changing from a non-qualifying value to a qualifying one; a company
first seen with a qualifying value never counts (contract §1). The sale value may be read from the
contact's companies too: the most recently updated one that has a value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# `intercom_status` values that can lead to a qualification (the others: shared/records/referrals.py).
CREATED, EXISTING_UPDATED = "created", "existing_updated"
# A referral's `status`: pending until qualified, once.
PENDING, QUALIFIED = "pending", "qualified"

# Why a decision went the way it did: metric names and history details.
QUALIFY_AFTER_CREATION = "qualifying_value_after_creation"
QUALIFY_CHANGED = "changed_from_non_qualifying"
ALREADY_QUALIFIED = "already_qualified"
CANNOT_QUALIFY = "cannot_qualify"
NOT_QUALIFYING = "not_qualifying"
INITIAL_VALUE = "initial_value_written_by_the_product"
NO_CHANGE_SEEN = "qualifying_when_first_seen"
STALE = "older_than_what_was_seen"
# Company qualification (`object: company`).
QUALIFY_COMPANY_CHANGED = "company_changed_from_non_qualifying"
COMPANY_CHANGED_BEFORE_LINK = "company_changed_before_the_contact_was_linked"
# A contact's own change, for a referral that qualifies by its companies: not a reason to qualify.
QUALIFIES_BY_COMPANY = "qualifies_by_its_companies"

# Two clocks (Intercom's `updated_at`, ours when we pushed) agree to about this many seconds.
CLOCK_TOLERANCE_S = 2


@dataclass(frozen=True)
class Decision:
    qualify: bool
    reason: str
    # For an existing contact: a non-qualifying value observed now, to remember as the one seen, so a
    # later change from it to a qualifying value counts.
    remember_seen: bool = False


_SPACES = re.compile(r"\s+")
_DECIMAL = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")


def _canonical_number(number: Decimal) -> str:
    if not number.is_finite():
        return str(number).casefold()
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def normalise(value: Any) -> str | None:
    """The one form every comparison of attribute values uses (contract §1, "Value rules"): text
    trimmed, inner spaces collapsed, case folded (`" Paid "` is `"paid"`); numbers, and text that
    is a plain decimal number, as the number (`"1.0"`, `1` and `1.00` are `"1"`); booleans as
    `"true"`/`"false"`. Nothing comparable (missing, blank, a list or an object) is None.

    The result is a fixed point (`normalise(normalise(v)) == normalise(v)`), so a value stored
    normalised compares the same when read back."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # repr: the float's shortest spelling (0.1, not its binary expansion).
        return _canonical_number(Decimal(repr(value)))
    text = _SPACES.sub(" ", str(value)).strip().casefold()
    if not text:
        return None
    if _DECIMAL.match(text):
        return _canonical_number(Decimal(text))
    return text


def is_qualifying(value: Any, qualifying_values: Sequence[Any]) -> bool:
    text = normalise(value)
    return text is not None and text in {normalise(v) for v in qualifying_values}


def decide(
    *,
    status: str | None,
    can_qualify: bool,
    intercom_status: str | None,
    qualifying_values: Sequence[str],
    initial_value: str | None,
    value: Any,
    seen_value: Any,
    observed_at: int | None = None,
    seen_at: int | None = None,
) -> Decision:
    """Whether observing `value` on the referral's contact qualifies the referral.

    `seen_value` is the value the product saw when it marked an existing contact (and any non-qualifying
    value observed since); `observed_at` and `seen_at` order the observations (UNIX seconds)."""
    if status != PENDING:
        return Decision(False, ALREADY_QUALIFIED)
    if not can_qualify or intercom_status not in (CREATED, EXISTING_UPDATED):
        return Decision(False, CANNOT_QUALIFY)
    if observed_at is not None and seen_at is not None and observed_at < seen_at - CLOCK_TOLERANCE_S:
        # Shuffled delivery: this describes the contact before what the product already saw.
        return Decision(False, STALE)
    if intercom_status == CREATED:
        return _created(qualifying_values, initial_value, value)
    return _existing(qualifying_values, value, seen_value)


def _created(qualifying_values: Sequence[str], initial_value: str | None, value: Any) -> Decision:
    """A contact the product created: any qualifying value after creation counts."""
    if not is_qualifying(value, qualifying_values):
        return Decision(False, NOT_QUALIFYING)
    if initial_value is not None and normalise(value) == normalise(initial_value):
        # The product's own creation echoing back, with a (misconfigured) qualifying initial value.
        return Decision(False, INITIAL_VALUE)
    return Decision(True, QUALIFY_AFTER_CREATION)


def _existing(qualifying_values: Sequence[str], value: Any, seen_value: Any) -> Decision:
    """An existing contact marked by `update`: only a change from a non-qualifying value seen first."""
    if not is_qualifying(value, qualifying_values):
        return Decision(False, NOT_QUALIFYING, remember_seen=normalise(value) != normalise(seen_value))
    if is_qualifying(seen_value, qualifying_values):
        return Decision(False, NO_CHANGE_SEEN)
    return Decision(True, QUALIFY_CHANGED)


@dataclass(frozen=True)
class SaleValue:
    amount: float | None
    # Why there is no amount (missing, unparsable, negative); None when there is one.
    note: str | None
    # The company the value was read from, for a commission on a company attribute.
    company_id: str | None = None


MISSING = "missing"
_CURRENCY = re.compile(r"^(?:[A-Za-z]{3}|[$€£¥₹])?\s*(.*?)\s*(?:[A-Za-z]{3}|[$€£¥₹])?$")
_GROUPED = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _number_from_text(text: str) -> float | None:
    match = _CURRENCY.match(text.strip())
    body = (match.group(1) if match else text).replace(" ", "").replace("\u00a0", "")
    if not body:
        return None
    if "," in body and "." in body:
        # The later separator is the decimal one: 1,234.50 or 1.234,50.
        if body.rfind(",") > body.rfind("."):
            body = body.replace(".", "").replace(",", ".")
        else:
            body = body.replace(",", "")
    elif _GROUPED.match(body):
        body = body.replace(",", "")
    else:
        body = body.replace(",", ".")
    try:
        return float(body)
    except ValueError:
        return None


def parse_sale_value(raw: Any) -> SaleValue:
    """The commission attribute's value as an amount: Intercom holds it as a number or as text
    ("1,250.00", "EUR 99"). Missing or unreadable gives no amount and says why."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return SaleValue(None, MISSING)
    if isinstance(raw, bool):
        return SaleValue(None, f"unparsable: {raw!r} is not an amount")
    if isinstance(raw, int | float):
        amount: float | None = float(raw)
    elif isinstance(raw, str):
        amount = _number_from_text(raw)
    else:
        amount = None
    if amount is None or not math.isfinite(amount):
        return SaleValue(None, f"unparsable: {str(raw)[:40]!r} is not an amount")
    if amount < 0:
        return SaleValue(None, f"negative: {amount:g}")
    return SaleValue(amount, None)


def sale_value_from_companies(valued: Sequence[tuple[str, Any, int | None]], attribute: str) -> SaleValue:
    """The sale value from the contact's companies, given as (company id, its value of the commission
    attribute, its `updated_at`): the most recently updated company that has a value (contract §1).
    Ties keep the first given (the contact's own order of its companies); 0 is a value, an empty one
    is not. None has one: no amount, and why."""
    best: tuple[str, Any, int] | None = None
    for company_id, value, updated_at in valued:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if best is None or (updated_at or 0) > best[2]:
            best = (company_id, value, updated_at or 0)
    if best is None:
        if not valued:
            return SaleValue(None, "the contact belongs to no company")
        return SaleValue(None, f"none of the contact's {len(valued)} companies has a value for {attribute}")
    parsed = parse_sale_value(best[1])
    note = f"{parsed.note} (company {best[0]})" if parsed.note else None
    return SaleValue(parsed.amount, note, best[0])


def qualifying_change(before: Any, after: Any, qualifying_values: Sequence[Any]) -> bool:
    """Whether a company's attribute changing from `before` to `after` is a qualifying change."""
    return is_qualifying(after, qualifying_values) and not is_qualifying(before, qualifying_values)


def decide_company(
    *,
    status: str | None,
    can_qualify: bool,
    intercom_status: str | None,
    qualifying_values: Sequence[str],
    before: Any,
    after: Any,
    changed_at: int | None,
    linked_at: int | None,
) -> Decision:
    """Whether a company of the referral's contact, seen changing from `before` to `after` (at the
    company's `updated_at` `changed_at`), qualifies the referral, linked to its contact at `linked_at`.

    The product creates no companies, so a created contact and an existing one are alike: only a
    change counts. A change that happened before the contact was linked is one the referral never saw:
    its first sight of the company was the qualifying value."""
    if status != PENDING:
        return Decision(False, ALREADY_QUALIFIED)
    if not can_qualify or intercom_status not in (CREATED, EXISTING_UPDATED):
        return Decision(False, CANNOT_QUALIFY)
    if not is_qualifying(after, qualifying_values):
        return Decision(False, NOT_QUALIFYING)
    if is_qualifying(before, qualifying_values):
        return Decision(False, NO_CHANGE_SEEN)
    if changed_at is not None and linked_at is not None and changed_at < linked_at - CLOCK_TOLERANCE_S:
        return Decision(False, COMPANY_CHANGED_BEFORE_LINK)
    return Decision(True, QUALIFY_COMPANY_CHANGED)


@dataclass(frozen=True)
class CompanyWatch:
    """One campaign's company qualification (for one kind of referral) as company observations see it."""

    campaign_id: str
    person: str
    attribute: str
    qualifying_values: tuple[str, ...]


@dataclass(frozen=True)
class Watch:
    """One campaign's qualification as the notifications see it."""

    attribute: str
    qualifying_values: tuple[str, ...]
    # An existing contact marked by `update` needs its non-qualifying values seen too.
    every_change: bool


def worth_a_look(values: dict[str, Any], watches: Sequence[Watch]) -> bool:
    """Whether a contact whose attributes are `values` (attribute → value) can matter to any referral:
    it holds a qualifying value of some campaign, or some campaign follows every change."""
    return any(w.every_change or is_qualifying(values.get(w.attribute), w.qualifying_values) for w in watches)
