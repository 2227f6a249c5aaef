"""Concurrent writers of one referral: its history keeps every writer's event (a signup's
`user.qualified` and a webhook's qualification, a merge and a removal, each appended in the write
itself, not to the list as it was read), and a referrer's counts in Intercom end at the latest value
whichever writer's PUT lands last."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from shared.aws.store import Store
from shared.domain.campaign_settings import CampaignSettings
from shared.domain.qualification import PENDING, QUALIFIED
from shared.domain.rf_user import RfUser
from shared.flows.counts import Counts
from shared.records.connections import CONNECTED, Connection
from shared.records.referrals import Referral, ReferralEvent, Referrals
from tests.unit.test_campaign_settings import CONTRACT_EXAMPLE

if TYPE_CHECKING:
    from local.provision import Provisioned


def _referrals(aws: Provisioned) -> Referrals:
    return Referrals(Store(aws.refs["MainTable"]))


def _invited(referrals: Referrals) -> Referral:
    user = RfUser(id=7, campaign_id=1, email=f"{uuid.uuid4().hex[:8]}@example.com", referrer_id=3)
    return referrals.ensure(f"acct_{uuid.uuid4().hex[:8]}", "1", user)


def test_two_writers_from_one_read_both_keep_their_event(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)

    referrals.update(stale, {"note": "first"}, ReferralEvent(kind="contact_archived", via="webhook"))
    after = referrals.update(stale, {}, ReferralEvent(kind="contact_deleted", via="webhook"))

    assert [e.kind for e in after.events] == ["contact_archived", "contact_deleted"]
    assert after.note == "first"


def test_marking_qualified_from_a_stale_read_keeps_the_other_event(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)
    referrals.update(stale, {}, ReferralEvent(kind="linked", via="signup"))

    marked = referrals.mark_qualified(
        stale, {"sale_value": 49.0}, ReferralEvent(kind="qualified", via="webhook")
    )

    assert marked is not None
    assert marked.status == QUALIFIED
    assert marked.sale_value == 49.0
    assert [e.kind for e in marked.events] == ["linked", "qualified"]


def test_a_referral_is_marked_qualified_once(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    stale = _invited(referrals)
    assert stale.status == PENDING

    first = referrals.mark_qualified(stale, {}, ReferralEvent(kind="qualified", via="webhook"))
    second = referrals.mark_qualified(stale, {}, ReferralEvent(kind="qualified", via="sweep"))

    assert first is not None
    assert second is None
    current = referrals.get(stale.account_id, "1", "7")
    assert current is not None
    assert [e.via for e in current.events if e.kind == "qualified"] == ["webhook"]


class _Settings:
    def settings(self, _account_id: str, _campaign_id: str) -> CampaignSettings:
        return CampaignSettings.model_validate(CONTRACT_EXAMPLE)


@dataclass
class _Connection:
    status: str = CONNECTED

    def for_campaign(self, account_id: str, _campaign_id: str) -> Connection:
        return Connection.model_validate(
            {"account_id": account_id, "status": self.status, "workspace_id": "w1"}
        )


@dataclass
class _Intercom:
    puts: list[dict[str, Any]] = field(default_factory=list)

    def update_contact(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.puts.append(body)
        return {"id": contact_id}


def _referrer_with_friends(referrals: Referrals, friends: int) -> Referral:
    account_id = f"acct_{uuid.uuid4().hex[:8]}"
    referrer = referrals.ensure(account_id, "1", RfUser(id=3, campaign_id=1, email="rita@example.com"))
    referrer = referrals.update(referrer, {"intercom_contact_id": "c-rita", "workspace_id": "w1"})
    for friend_id in range(7, 7 + friends):
        friend_user = RfUser(id=friend_id, campaign_id=1, email=f"f{friend_id}@example.com", referrer_id=3)
        friend = referrals.ensure(account_id, "1", friend_user)
        referrals.count_for_referrer(friend, referrer, converted=False)
    return referrer


def _counts(referrals: Referrals, account_id: str, intercom: _Intercom, connection: _Connection) -> Counts:
    return Counts(
        account_id,
        referrals,
        campaigns=cast("Any", _Settings()),
        connections=cast("Any", connection),
        intercom_for=lambda _connection: cast("Any", intercom),
    )


def _pending(referrals: Referrals, account_id: str) -> list[str]:
    return [r.rf_user_id for r in referrals.counts_pending(account_id, "1")]


def test_a_count_written_from_a_stale_read_is_corrected_by_its_writer(aws: Provisioned) -> None:
    """Writer A counted the second friend and wrote 2; writer B read the referrer before that, and
    its PUT of 1 lands after A's. B sees the count moved on and writes 2 again."""
    referrals = _referrals(aws)
    referrer = _referrer_with_friends(referrals, 2)
    account_id = referrer.account_id
    stale = referrer.model_copy(update={"referrals_count": 1})  # as B read it between the two counts
    intercom = _Intercom()
    counts = _counts(referrals, account_id, intercom, _Connection())

    assert counts.write(stale) is True

    written = [body["custom_attributes"]["referrals_count"] for body in intercom.puts]
    assert written == [1, 2]  # the stale PUT, then the correction: the last PUT holds the count
    current = referrals.get(account_id, "1", "3")
    assert current is not None
    assert current.written_counts == {
        "custom_attributes.referrals_count": 2,
        "custom_attributes.converted_referrals": 0,
    }
    assert counts.write(current) is False  # nothing left to write


def test_referrers_are_pending_from_their_count_until_it_is_in_intercom(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    referrer = _referrer_with_friends(referrals, 1)
    account_id = referrer.account_id
    assert _pending(referrals, account_id) == ["3"]
    intercom, connection = _Intercom(), _Connection(status="revoked")
    counts = _counts(referrals, account_id, intercom, connection)

    [current] = referrals.counts_pending(account_id, "1")
    assert counts.write(current) is False  # not connected: nothing written, still pending
    assert intercom.puts == []
    assert _pending(referrals, account_id) == ["3"]

    connection.status = CONNECTED
    [current] = referrals.counts_pending(account_id, "1")  # what an ongoing pass does
    assert counts.write(current) is True
    assert intercom.puts[-1]["custom_attributes"]["referrals_count"] == 1
    assert _pending(referrals, account_id) == []

    friend = referrals.ensure(
        account_id, "1", RfUser(id=99, campaign_id=1, email="late@example.com", referrer_id=3)
    )
    referrals.count_for_referrer(friend, current, converted=False)
    assert _pending(referrals, account_id) == ["3"]  # a new count makes it pending again


def test_a_referrer_counted_again_meanwhile_stays_pending(aws: Provisioned) -> None:
    referrals = _referrals(aws)
    referrer = _referrer_with_friends(referrals, 1)
    account_id = referrer.account_id
    read = referrals.get(account_id, "1", "3")
    assert read is not None
    friend = referrals.ensure(
        account_id, "1", RfUser(id=50, campaign_id=1, email="b@example.com", referrer_id=3)
    )
    referrals.count_for_referrer(friend, read, converted=False)

    referrals.counts_settled(read)  # read at 1, the count is 2 now: its writer has work to do

    assert _pending(referrals, account_id) == ["3"]
