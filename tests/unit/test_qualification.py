"""The contract's qualification rule and the sale value's parsing, as plain values."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain import qualification as q

QUALIFYING = ["paid", "active"]


def decide(**overrides: Any) -> q.Decision:
    facts: dict[str, Any] = {
        "status": "pending",
        "can_qualify": True,
        "intercom_status": "created",
        "qualifying_values": QUALIFYING,
        "initial_value": "trial",
        "value": "paid",
        "seen_value": None,
        **overrides,
    }
    return q.decide(**facts)


def test_a_created_contact_qualifies_on_any_qualifying_value_after_creation():
    assert decide(value="paid") == q.Decision(True, q.QUALIFY_AFTER_CREATION)
    assert decide(value="active", initial_value=None) == q.Decision(True, q.QUALIFY_AFTER_CREATION)


@pytest.mark.parametrize("value", ["trial", "churned", None, "", "unpaid", "pa id", {"not": "a value"}])
def test_other_values_do_not_qualify_a_created_contact(value):
    assert decide(value=value) == q.Decision(False, q.NOT_QUALIFYING)


def test_the_echo_of_our_own_creation_never_qualifies_even_with_a_qualifying_initial_value():
    assert decide(initial_value="active", value="active") == q.Decision(False, q.INITIAL_VALUE)


def test_once_per_referral_ever():
    assert decide(status="qualified") == q.Decision(False, q.ALREADY_QUALIFIED)


@pytest.mark.parametrize(
    ("can_qualify", "intercom_status"),
    [(False, "created"), (False, "existing_skipped"), (True, "existing_skipped"), (True, "not_pushed")],
)
def test_referrals_that_cannot_qualify_never_do(can_qualify, intercom_status):
    decision = decide(can_qualify=can_qualify, intercom_status=intercom_status)
    assert decision == q.Decision(False, q.CANNOT_QUALIFY)


def test_an_existing_contact_qualifies_only_on_a_change_from_a_non_qualifying_value_seen_first():
    existing = {"intercom_status": "existing_updated"}
    assert decide(**existing, seen_value="churned", value="paid") == q.Decision(True, q.QUALIFY_CHANGED)
    # An empty attribute is a non-qualifying value too.
    assert decide(**existing, seen_value=None, value="active").qualify is True
    assert decide(**existing, seen_value="paid", value="paid") == q.Decision(False, q.NO_CHANGE_SEEN)
    assert decide(**existing, seen_value="paid", value="active").qualify is False


def test_a_non_qualifying_value_on_an_existing_contact_is_remembered_as_seen():
    existing = {"intercom_status": "existing_updated"}
    churned = decide(**existing, seen_value="paid", value="churned")
    assert churned == q.Decision(False, q.NOT_QUALIFYING, remember_seen=True)
    # Then a change back to a qualifying value counts.
    assert decide(**existing, seen_value="churned", value="paid").qualify is True
    assert decide(**existing, seen_value="churned", value="churned").remember_seen is False


def test_an_observation_older_than_what_was_seen_is_stale():
    existing = {"intercom_status": "existing_updated", "seen_value": "trial"}
    assert decide(**existing, observed_at=1000, seen_at=2000) == q.Decision(False, q.STALE)
    # Within the clocks' tolerance it still counts.
    assert decide(**existing, observed_at=1999, seen_at=2000).qualify is True
    assert decide(**existing, observed_at=None, seen_at=2000).qualify is True


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        (" Paid ", "paid"),
        ("PAID", "paid"),
        ("  Paid \t  Monthly\n", "paid monthly"),
        ("1.0", "1"),
        (1, "1"),
        (1.0, "1"),
        ("01.50", "1.5"),
        (1.5, "1.5"),
        (" 42 ", "42"),
        ("-0.0", "0"),
        (".5", "0.5"),
        (0.1, "0.1"),
        (True, "true"),
        ("TRUE", "true"),
        ("1e3", "1e3"),
        ("v1.0", "v1.0"),
        ("", None),
        (" \t ", None),
        (None, None),
        (["paid"], None),
    ],
)
def test_one_normal_form_for_every_comparison(value, normalised):
    assert q.normalise(value) == normalised
    # A value stored normalised compares the same when read back.
    assert q.normalise(normalised) == normalised


@pytest.mark.parametrize(
    ("value", "qualifying"), [(" Paid ", "paid"), ("paid", "PAID"), ("1.0", "1"), (1, "1.00")]
)
def test_the_contracts_value_rules_qualify_a_created_contact(value, qualifying):
    assert decide(value=value, qualifying_values=[qualifying]) == q.Decision(True, q.QUALIFY_AFTER_CREATION)


def test_an_existing_contact_changes_only_when_the_normal_form_changes():
    existing = {"intercom_status": "existing_updated"}
    # "Trial" after "trial" is no change to remember; "Paid" after "trial" is the change that counts.
    assert decide(**existing, seen_value="trial", value=" Trial ") == q.Decision(False, q.NOT_QUALIFYING)
    assert decide(**existing, seen_value="Paid", value="paid") == q.Decision(False, q.NO_CHANGE_SEEN)
    assert decide(**existing, seen_value="trial", value=" PAID") == q.Decision(True, q.QUALIFY_CHANGED)


def test_the_echo_of_a_differently_spelled_initial_value_never_qualifies():
    assert decide(initial_value="Active ", value="active") == q.Decision(False, q.INITIAL_VALUE)


def test_notifications_are_looked_at_for_any_spelling_of_a_qualifying_value():
    watch = q.Watch("custom_attributes.customer_status", ("paid",), every_change=False)
    assert q.worth_a_look({"custom_attributes.customer_status": " PAID"}, [watch])
    assert not q.worth_a_look({"custom_attributes.customer_status": "unpaid"}, [watch])


def test_values_are_compared_as_the_settings_name_them():
    assert q.is_qualifying(" paid", QUALIFYING)
    assert q.is_qualifying(3.0, ["3"])
    assert q.is_qualifying(True, ["true"])
    assert not q.is_qualifying(["paid"], QUALIFYING)
    assert q.normalise("  ") is None


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        (120, 120.0),
        (99.5, 99.5),
        ("250", 250.0),
        (" 1,250.00 ", 1250.0),
        ("1.250,50", 1250.5),
        ("12,5", 12.5),
        ("$ 40", 40.0),
        ("EUR 99.90", 99.9),
        ("75 USD", 75.0),
        ("0", 0.0),
    ],
)
def test_sale_values_arrive_as_numbers_or_strings(raw, amount):
    assert q.parse_sale_value(raw) == q.SaleValue(amount, None)


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (None, "missing"),
        ("   ", "missing"),
        ("soon", "unparsable"),
        ("nan", "unparsable"),
        (float("inf"), "unparsable"),
        (True, "unparsable"),
        ({"amount": 3}, "unparsable"),
        (-5, "negative"),
        ("-12.5", "negative"),
    ],
)
def test_a_missing_or_unreadable_sale_value_says_why(raw, note):
    parsed = q.parse_sale_value(raw)
    assert parsed.amount is None
    assert parsed.note is not None and parsed.note.startswith(note)


def test_only_a_contact_with_a_qualifying_value_is_worth_looking_up():
    watches = [q.Watch("custom_attributes.customer_status", ("paid", "active"), every_change=False)]
    assert q.worth_a_look({"custom_attributes.customer_status": "paid"}, watches)
    assert not q.worth_a_look({"custom_attributes.customer_status": "trial"}, watches)
    assert not q.worth_a_look({}, watches)
    assert not q.worth_a_look({"custom_attributes.customer_status": "paid"}, [])
    # A campaign that marks existing contacts must see their non-qualifying values too.
    following = [*watches, q.Watch("custom_attributes.tier", ("gold",), every_change=True)]
    assert q.worth_a_look({"custom_attributes.customer_status": "trial"}, following)


def test_the_sweep_searches_for_every_spelling_in_one_query():
    from shared.domain.campaign_settings import Qualification
    from shared.flows.sweep import MAX_GROUP_FILTERS, search_query

    q = Qualification(
        attribute="custom_attributes.status", qualifying_values=[" Paid ", "active plan", "1.0"]
    )
    query = search_query(q, since=1000)
    assert query == {
        "operator": "AND",
        "value": [
            {
                "operator": "OR",
                "value": [
                    {
                        "field": "custom_attributes.status",
                        "operator": "IN",
                        "value": [" Paid ", "1.0", "Paid", "active plan"],
                    },
                    # Intercom's contains ignores case: the longest word of each normal form.
                    {"field": "custom_attributes.status", "operator": "~", "value": "1"},
                    {"field": "custom_attributes.status", "operator": "~", "value": "active"},
                    {"field": "custom_attributes.status", "operator": "~", "value": "paid"},
                ],
            },
            {"field": "updated_at", "operator": ">", "value": 1000},
        ],
    }
    # More values than one search group holds: every recent contact, decided by the rule.
    many = Qualification(attribute="x", qualifying_values=[f"v{i}" for i in range(MAX_GROUP_FILTERS)])
    assert search_query(many, since=5) == {"field": "updated_at", "operator": ">", "value": 5}


def test_without_a_case_blind_contains_the_sweep_reads_every_recent_contact(monkeypatch):
    from shared.domain.campaign_settings import Qualification
    from shared.flows import sweep

    monkeypatch.setattr(sweep, "CONTAINS_IGNORES_CASE", False)
    q = Qualification(attribute="custom_attributes.status", qualifying_values=["paid"])
    assert sweep.search_query(q, since=7) == {"field": "updated_at", "operator": ">", "value": 7}


# -- [v2] company qualification and sale values ----------------------------------------------------
def decide_company(**overrides: Any) -> q.Decision:
    facts: dict[str, Any] = {
        "status": "pending",
        "can_qualify": True,
        "intercom_status": "existing_updated",
        "qualifying_values": QUALIFYING,
        "before": "trial",
        "after": "paid",
        "changed_at": 1_700_000_100,
        "linked_at": 1_700_000_000,
        **overrides,
    }
    return q.decide_company(**facts)


@pytest.mark.parametrize("intercom_status", ["created", "existing_updated"])
def test_a_company_changing_to_a_qualifying_value_qualifies_created_and_linked_contacts(intercom_status):
    assert decide_company(intercom_status=intercom_status) == q.Decision(True, q.QUALIFY_COMPANY_CHANGED)
    assert decide_company(before=None, after=" ACTIVE ").qualify


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"status": "qualified"}, q.ALREADY_QUALIFIED),
        ({"can_qualify": False}, q.CANNOT_QUALIFY),
        ({"intercom_status": "existing_skipped"}, q.CANNOT_QUALIFY),
        ({"after": "churned"}, q.NOT_QUALIFYING),
        ({"before": "Paid", "after": "active"}, q.NO_CHANGE_SEEN),
        # The company was a customer before the contact was linked: the referral never saw it change.
        ({"changed_at": 1_699_999_000}, q.COMPANY_CHANGED_BEFORE_LINK),
    ],
)
def test_what_a_company_change_does_not_qualify(overrides, reason):
    assert decide_company(**overrides) == q.Decision(False, reason)


def test_a_change_at_an_unknown_time_or_within_the_clocks_tolerance_counts():
    assert decide_company(changed_at=None).qualify
    assert decide_company(linked_at=None).qualify
    assert decide_company(changed_at=1_700_000_000 - q.CLOCK_TOLERANCE_S).qualify


def test_only_a_change_from_non_qualifying_to_qualifying_is_a_qualifying_change():
    assert q.qualifying_change("trial", "paid", QUALIFYING)
    assert q.qualifying_change(None, "1.0", ["1"])
    assert not q.qualifying_change("paid", "active", QUALIFYING)
    assert not q.qualifying_change("trial", "churned", QUALIFYING)


def test_the_sale_value_is_the_most_recently_updated_company_with_a_value():
    valued = [("a", 100, 1_700_000_000), ("b", None, 1_800_000_000), ("c", "1,250.50", 1_750_000_000)]
    assert q.sale_value_from_companies(valued, "monthly_spend") == q.SaleValue(1250.5, None, "c")
    # 0 is a value; a blank is not; ties keep the contact's own order.
    assert q.sale_value_from_companies([("a", 0, 5), ("b", " ", 9)], "x") == q.SaleValue(0.0, None, "a")
    assert q.sale_value_from_companies([("a", 1, 5), ("b", 2, 5)], "x").company_id == "a"


def test_no_company_value_qualifies_without_an_amount_and_says_why():
    assert q.sale_value_from_companies([], "custom_attributes.arr") == q.SaleValue(
        None, "the contact belongs to no company"
    )
    none = q.sale_value_from_companies([("a", None, 1), ("b", "", 2)], "custom_attributes.arr")
    assert (
        none.amount is None
        and none.note == "none of the contact's 2 companies has a value for custom_attributes.arr"
    )
    unreadable = q.sale_value_from_companies([("a", "lots", 1)], "custom_attributes.arr")
    assert unreadable.amount is None and unreadable.company_id == "a" and "unparsable" in str(unreadable.note)
