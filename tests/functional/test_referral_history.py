"""A referral's history keeps every writer's event: two workers that read the same version and each
append one (a signup's `user.qualified` and a webhook's qualification, a merge and a removal) both
land, because the event is appended in the write itself, not to the list as it was read."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from shared.referrals import PENDING, QUALIFIED, Referrals
from shared.store import Store

if TYPE_CHECKING:
    from local.provision import Provisioned


def _referrals(aws: Provisioned) -> Referrals:
    return Referrals(Store(aws.refs["MainTable"]))


def _invited(referrals: Referrals) -> dict[str, object]:
    user = {"id": 7, "email": f"{uuid.uuid4().hex[:8]}@example.com", "referrer_id": 3}
    return referrals.ensure(f"acct_{uuid.uuid4().hex[:8]}", "1", user)


def test_two_writers_from_one_read_both_keep_their_event(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)

    referrals.update(stale, {"note": "first"}, {"kind": "contact_archived", "via": "webhook"})
    after = referrals.update(stale, {}, {"kind": "contact_deleted", "via": "webhook"})

    assert [e["kind"] for e in after["events"]] == ["contact_archived", "contact_deleted"]
    assert after["note"] == "first"


def test_marking_qualified_from_a_stale_read_keeps_the_other_event(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)
    referrals.update(stale, {}, {"kind": "linked", "via": "signup"})

    marked = referrals.mark_qualified(stale, {"sale_value": 49.0}, {"kind": "qualified", "via": "webhook"})

    assert marked is not None
    assert marked["status"] == QUALIFIED
    assert marked["sale_value"] == 49.0
    assert [e["kind"] for e in marked["events"]] == ["linked", "qualified"]


def test_a_referral_is_marked_qualified_once(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)
    assert stale["status"] == PENDING

    first = referrals.mark_qualified(stale, {}, {"kind": "qualified", "via": "webhook"})
    second = referrals.mark_qualified(stale, {}, {"kind": "qualified", "via": "sweep"})

    assert first is not None
    assert second is None
    current = referrals.get(str(stale["account_id"]), "1", "7")
    assert current is not None
    assert [e["via"] for e in current["events"] if e["kind"] == "qualified"] == ["webhook"]
