"""Counts with history: a referrer who brought friends before the product was connected shows them in
Intercom on its first write, and webhooks then keep the counts current without counting anyone twice."""

from __future__ import annotations

import random
import uuid

import httpx
import pytest

from shared.aws.store import Store
from shared.clients.referral_factory import ReferralFactoryClient
from shared.domain.rf_user import RfUser
from shared.flows.counts import Counts
from shared.flows.history import History
from shared.records.campaigns import CampaignStore
from shared.records.referrals import Referrals
from tests.functional.oauth_flow import connect
from tests.functional.signup_flow import configure, contacts, deliver, drain, empty_queue, join
from tests.functional.sync_flow import empty, pump, start, status


@pytest.fixture(autouse=True)
def _own_queues(aws):
    empty_queue(aws.refs["SignupQueue"])
    empty(aws)


@pytest.fixture
def history(new_account, workspace, emulators, call):
    """A Referral Factory campaign where Hana brought three friends (Fay qualified) before the product
    account existed, and then the account, connected to a new workspace."""
    rf_key = "rf-" + uuid.uuid4().hex
    campaign = random.randint(10**6, 10**9)
    created = httpx.post(
        f"{emulators.referral_factory}/_emulator/accounts",
        json={"api_key": rf_key, "campaigns": [{"id": campaign, "name": f"Campaign {campaign}"}]},
    )
    assert created.status_code == 201, created.text
    setup = {"rf_key": rf_key, "campaigns": [str(campaign)]}
    hana = join(emulators, setup, "Hana", "hana@example.com")
    friends = [
        join(emulators, setup, name, f"{name.lower()}@example.com", referrer_code=hana["code"])
        for name in ("Fay", "Gus", "Ida")
    ]
    qualified = httpx.put(
        f"{emulators.referral_factory}/api/v2/users/qualification",
        headers={"Authorization": f"Bearer {rf_key}"},
        json={"id": friends[0]["id"], "qualified": True},
    )
    assert qualified.status_code == 200, qualified.text
    account = new_account(rf_key=rf_key, rf_base=f"{emulators.referral_factory}/api/v2")
    ws = workspace()
    connect(call, account, ws)
    return {**setup, "account": account, "workspace": ws, "hana": hana, "friends": friends}


def counts_of(emulators, setup, email):
    [contact] = [c for c in contacts(emulators, setup["workspace"]) if c.get("email") == email]
    custom = contact.get("custom_attributes") or {}
    return custom.get("referrals_count"), custom.get("converted_referrals")


def test_a_sync_writes_the_referrers_history_on_its_first_write(call, lambda_module, aws, emulators, history):
    setup = history
    configure(call, setup)
    httpx.post(
        f"{emulators.intercom}/_emulator/workspaces/{setup['workspace']}/contacts",
        json={"contacts": [{"role": "user", "email": "hana@example.com", "name": "Hana"}]},
    )
    sync_id = start(call, setup, {"audience": "all"})
    pump(lambda_module, aws)
    assert status(call, setup, sync_id)["status"] == "completed"
    assert counts_of(emulators, setup, "hana@example.com") == (3, 1)


def test_a_push_writes_history_first_and_webhooks_count_only_new_friends(
    call, lambda_module, aws, emulators, history
):
    setup = history
    configure(call, setup)
    deliver(call, setup, setup["hana"])
    drain(lambda_module, aws)
    assert counts_of(emulators, setup, "hana@example.com") == (3, 1)  # its first write

    newcomer = join(emulators, setup, "Max", "max@example.com", referrer_code=setup["hana"]["code"])
    deliver(call, setup, newcomer)
    drain(lambda_module, aws)
    assert counts_of(emulators, setup, "hana@example.com") == (4, 1)

    fay = setup["friends"][0]
    deliver(call, setup, fay)  # known from history: pushed now, but counted already
    deliver(call, setup, {**fay, "qualified_at": "now"}, event="user.qualified")
    drain(lambda_module, aws)
    assert counts_of(emulators, setup, "hana@example.com") == (4, 1)
    assert counts_of(emulators, setup, "fay@example.com") == (None, None)  # a friend, pushed as a lead


class _NoConnection:
    def for_campaign(self, _account_id, _campaign_id):
        return None


def test_the_history_pass_is_idempotent_and_skips_friends_webhooks_counted(aws, emulators, history):
    setup = history
    account_id, campaign = setup["account"]["account_id"], setup["campaigns"][0]
    store = Store(aws.refs["MainTable"])
    referrals = Referrals(store)
    rf = ReferralFactoryClient(setup["rf_key"], base_url=f"{emulators.referral_factory}/api/v2")
    counts = Counts(account_id, referrals, CampaignStore(store), _NoConnection(), lambda _c: None)
    pass_ = History(account_id, store, referrals, rf, counts)
    # A webhook got to Gus first and counted him.
    gus = RfUser.model_validate(setup["friends"][1])
    hana = referrals.ensure(account_id, campaign, RfUser.model_validate(setup["hana"]))
    assert referrals.count_for_referrer(referrals.ensure(account_id, campaign, gus), hana, converted=False)

    first = pass_.run(campaign)
    second = pass_.run(campaign)

    assert (first.users, first.counted, first.converted) == (4, 2, 1)
    assert (second.created, second.counted, second.converted) == (0, 0, 0)
    after = referrals.get(account_id, campaign, str(setup["hana"]["id"]))
    assert after is not None
    assert after.counts == {"referrals_count": 3, "converted_referrals_count": 1}
