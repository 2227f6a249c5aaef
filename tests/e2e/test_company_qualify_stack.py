"""Company qualification through the running stack: the demo's campaign is set to qualify friends by
their company's account stage and to read the sale value from the company. A friend's lead is attached
to a company that is a prospect, then a person makes the company a customer in the Intercom emulator;
both signed notifications reach the product's receiver over HTTP, the poller feeds the processor, and
Referral Factory's user is qualified once with the company's value."""

from __future__ import annotations

import copy
import io
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.demo import DEMO_SETTINGS, Demo, ready_for_signups
from tests.e2e.conftest import RunningStack, queue_drained
from tests.e2e.test_qualify_stack import contact, handled, join, rf_user, wait_for

STAGE, ARR = "account_stage", "arr"
SETTINGS: dict[str, Any] = copy.deepcopy(DEMO_SETTINGS)
SETTINGS["person_invited"]["qualification"] = {
    "object": "company",
    "attribute": f"custom_attributes.{STAGE}",
    "qualifying_values": ["customer"],
}
SETTINGS["commission"] = {"object": "company", "sale_value_attribute": f"custom_attributes.{ARR}"}


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)
        # Before any notification of this account is processed, so no warm worker holds the old settings.
        path = f"{prepared.api}/v1/campaigns/{prepared.state['campaign_id']}/intercom"
        created = http.post(f"{path}/setup", json=SETTINGS, headers=prepared.account())
        assert created.status_code == 200, created.text
        assert {f"custom_attributes.{STAGE}", f"custom_attributes.{ARR}"} <= set(created.json()["created"])
        saved = http.put(path, json=SETTINGS, headers=prepared.account())
        assert saved.status_code == 200, saved.text
        yield prepared


def test_a_company_becoming_a_customer_qualifies_its_contacts_referral_once(
    demo: Demo, product_stack: RunningStack
) -> None:
    name = f"globex-{secrets.token_hex(3)}"
    company = demo.http.post(
        f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/companies",
        json={"company_id": name, "name": "Globex", "custom_attributes": {STAGE: "prospect", ARR: 950.0}},
    )
    assert company.status_code == 200, company.text
    company_id = company.json()["id"]
    referrer = join(demo, "Gina")
    friend = join(demo, "Gil", referrer["code"])
    lead = wait_for(lambda: contact(demo, friend["email"]), "the friend's lead in Intercom")

    attached = demo.http.post(
        f"{demo.intercom}/_emulator/contacts/{lead['id']}/companies", json={"id": company_id}
    )
    assert attached.status_code == 200, attached.text
    # The product must have seen the prospect before the change, or the change is its first sight.
    wait_for(
        lambda: handled(product_stack, "company.contact.attached", "company_first_seen"),
        "the attachment handled",
    )
    edited = demo.http.patch(
        f"{demo.intercom}/_emulator/companies/{company_id}", json={"custom_attributes": {STAGE: "customer"}}
    )
    assert edited.status_code == 200, edited.text
    user = wait_for(
        lambda: (u := rf_user(demo, friend["id"])) and u["qualified_at"] and u, "the qualification"
    )
    assert user["amount"] == 950.0

    # A later edit of the company (still a customer) qualifies nothing again.
    demo.http.patch(
        f"{demo.intercom}/_emulator/companies/{company_id}", json={"custom_attributes": {ARR: 1.0}}
    )
    wait_for(
        lambda: handled(product_stack, "company.updated", "no_qualifying_change"), "the later edit handled"
    )
    wait_for(lambda: queue_drained(product_stack, "IntercomEventsQueue"), "the events queue drained")
    assert rf_user(demo, friend["id"])["qualify_calls"] == 1
    response = demo.http.get(
        f"{demo.api}/v1/referrals", params={"email": friend["email"]}, headers=demo.account()
    )
    [view] = response.json()["data"]
    assert view["status"] == "qualified" and view["sale_value"] == 950.0
    [event] = [e for e in view["events"] if e["kind"] == "qualified"]
    assert event["via"] == "webhook" and event["details"]["company_id"] == company_id
    assert event["details"]["sale_value_company_id"] == company_id
