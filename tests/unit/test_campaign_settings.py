"""Campaign settings are checked against Intercom's live attributes, every problem at once."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from local.demo import DEMO_SETTINGS
from shared.domain.campaign_settings import CampaignSettings, named_attributes, validate

# The contract's example settings (interfaces.md §1), as the demo saves them.
CONTRACT_EXAMPLE = DEMO_SETTINGS


def attr(full_name: str, data_type: str = "string", *, writable: bool = True, options=None) -> dict:
    return {
        "full_name": full_name,
        "data_type": data_type,
        "api_writable": writable,
        "options": options or [],
        "custom": full_name.startswith("custom_attributes."),
    }


LIVE = [
    attr("name"),
    attr("email"),
    attr("custom_attributes.referral_link"),
    attr("custom_attributes.referrals_count", "integer"),
    attr("custom_attributes.converted_referrals", "integer"),
    attr("custom_attributes.referral_campaign"),
    attr("custom_attributes.referral_source"),
    attr("custom_attributes.plan"),
    attr("custom_attributes.referrer_name"),
    attr("custom_attributes.referrer_email"),
    attr("custom_attributes.customer_status"),
    attr("custom_attributes.deal_value", "float"),
]


def test_the_contracts_example_is_valid():
    settings = CampaignSettings.model_validate(CONTRACT_EXAMPLE)
    assert validate(settings, LIVE) == []
    assert settings.model_dump(exclude_none=True)["person_invited"]["duplicates"] == "skip"


def test_every_mistake_is_reported_with_its_path():
    bad = copy.deepcopy(CONTRACT_EXAMPLE)
    del bad["sync"]["return_mapping"]["referral_link"]
    del bad["person_invited"]["mapping"]["email"]
    bad["person_invited"]["mapping"]["favourite_colour"] = "custom_attributes.colour"
    bad["person_referring"]["mapping"]["referral_link"] = "custom_attributes.missing"
    bad["person_invited"]["qualification"]["attribute"] = "custom_attributes.deal_value"
    live = [a for a in LIVE if a["full_name"] != "custom_attributes.plan"] + [attr("role", writable=False)]
    bad["person_invited"]["referrer_mapping"]["referrer_email"] = "role"
    problems = validate(CampaignSettings.model_validate(bad), live)
    assert {p["field"] for p in problems} == {
        "sync.return_mapping.referral_link",
        "person_invited.mapping.email",
        "person_invited.mapping.favourite_colour",
        "person_referring.mapping.referral_link",
        "person_invited.qualification.attribute",
        "person_invited.referrer_mapping.referrer_email",
        "person_invited.defaults.custom_attributes.plan",
    }
    assert all(p["message"] for p in problems)


def test_list_attributes_qualify_only_with_their_options():
    settings = CampaignSettings.model_validate(
        {
            "person_invited": {
                "mapping": {"first_name": "name", "email": "email"},
                "qualification": {
                    "attribute": "custom_attributes.stage",
                    "qualifying_values": ["won", "gone"],
                },
            }
        }
    )
    live = [attr("name"), attr("email"), attr("custom_attributes.stage", "options", options=["open", "won"])]
    assert validate(settings, live) == [
        {
            "field": "person_invited.qualification.qualifying_values.1",
            "message": "'gone' is not an option of the list.",
        }
    ]


@pytest.mark.parametrize(
    "patch",
    [
        {"person_invited": {"action": "create_contact"}},
        {"person_invited": {"duplicates": "merge"}},
        {"person_invited": {"qualification": {"attribute": "x", "qualifying_values": []}}},
        {"surprise": True},
    ],
)
def test_shape_errors_are_refused(patch):
    with pytest.raises(ValidationError):
        CampaignSettings.model_validate(patch)


def test_setup_infers_types_from_the_fields():
    named = named_attributes(CampaignSettings.model_validate(CONTRACT_EXAMPLE))
    assert named["custom_attributes.referral_link"] == "string"
    assert named["custom_attributes.referrals_count"] == "integer"
    assert named["custom_attributes.deal_value"] == "float"
    assert named["custom_attributes.customer_status"] == "string"
    assert named["custom_attributes.plan"] == "string"
    assert named["email"] == "string"


def _invited(qualification: dict | None = None, defaults: dict | None = None) -> CampaignSettings:
    person: dict = {"mapping": {"first_name": "name", "email": "email"}, "defaults": defaults or {}}
    if qualification is not None:
        person["qualification"] = qualification
    return CampaignSettings.model_validate({"person_invited": person})


STAGE = attr("custom_attributes.stage", "options", options=["Open", "Won", "Lost"])


def test_list_options_compare_as_values_do():
    settings = _invited(
        {
            "attribute": "custom_attributes.stage",
            "initial_value": " open",
            "qualifying_values": ["WON", "won "],
        }
    )
    assert validate(settings, [*LIVE, STAGE]) == []


def test_the_initial_value_of_a_list_is_one_of_its_options():
    settings = _invited(
        {"attribute": "custom_attributes.stage", "initial_value": "pending", "qualifying_values": ["won"]}
    )
    problems = validate(settings, [*LIVE, STAGE])
    assert [p["field"] for p in problems] == ["person_invited.qualification.initial_value"]
    assert "'pending' is not an option" in problems[0]["message"]


@pytest.mark.parametrize(
    ("attribute", "initial_value", "qualifying_values"),
    [
        ("custom_attributes.customer_status", "paid", ["paid", "active"]),
        ("custom_attributes.customer_status", " Active ", ["paid", "active"]),
        ("custom_attributes.customer_status", "1.0", ["1"]),
        ("custom_attributes.stage", "won", ["Won"]),
        # Refused even when the attribute is missing: that is a second problem, not a reason to skip.
        ("custom_attributes.nowhere", "paid", ["paid"]),
    ],
)
def test_no_initial_value_is_itself_a_qualifying_value(attribute, initial_value, qualifying_values):
    settings = _invited(
        {"attribute": attribute, "initial_value": initial_value, "qualifying_values": qualifying_values}
    )
    problems = validate(settings, [*LIVE, STAGE])
    initial = [p for p in problems if p["field"] == "person_invited.qualification.initial_value"]
    assert len(initial) == 1
    assert "qualifying value" in initial[0]["message"]


def test_the_contracts_example_refuses_a_qualifying_initial_value():
    bad = copy.deepcopy(CONTRACT_EXAMPLE)
    bad["person_invited"]["qualification"]["initial_value"] = "Paid"
    problems = validate(CampaignSettings.model_validate(bad), LIVE)
    assert [p["field"] for p in problems] == ["person_invited.qualification.initial_value"]


TYPED = [
    attr("custom_attributes.seats", "integer"),
    attr("custom_attributes.mrr", "float"),
    attr("custom_attributes.vip", "boolean"),
    attr("custom_attributes.trial_ends", "date"),
    attr("custom_attributes.tier", "options", options=["Gold", "Silver"]),
    attr("custom_attributes.plan"),
]


@pytest.mark.parametrize(
    "defaults",
    [
        {"custom_attributes.seats": 3},
        {"custom_attributes.mrr": 9.5},
        {"custom_attributes.mrr": 10},
        {"custom_attributes.vip": False},
        {"custom_attributes.trial_ends": 1767225600},
        {"custom_attributes.tier": " gold"},
        {"custom_attributes.plan": "trial"},
    ],
)
def test_defaults_that_fit_their_attribute(defaults):
    assert validate(_invited(defaults=defaults), [*LIVE, *TYPED]) == []


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("custom_attributes.seats", True),
        ("custom_attributes.seats", 2.5),
        ("custom_attributes.seats", "3"),
        ("custom_attributes.mrr", False),
        ("custom_attributes.mrr", "9.5"),
        ("custom_attributes.vip", 1),
        ("custom_attributes.vip", "true"),
        ("custom_attributes.trial_ends", "tomorrow"),
        ("custom_attributes.tier", "bronze"),
        ("custom_attributes.plan", 7),
        ("custom_attributes.plan", True),
    ],
)
def test_a_default_of_the_wrong_type_names_its_attribute(attribute, value):
    problems = validate(_invited(defaults={attribute: value}), [*LIVE, *TYPED])
    assert [p["field"] for p in problems] == [f"person_invited.defaults.{attribute}"]
    assert problems[0]["message"]


def test_every_value_problem_is_reported_at_once():
    settings = CampaignSettings.model_validate(
        {
            "person_invited": {
                "mapping": {"first_name": "name", "email": "email"},
                "defaults": {"custom_attributes.seats": "many", "custom_attributes.plan": 1},
                "qualification": {
                    "attribute": "custom_attributes.stage",
                    "initial_value": "Won",
                    "qualifying_values": ["won", "draw"],
                },
            },
            "person_referring": {
                "mapping": {"referrer_first_name": "name", "referrer_email": "email"},
                "defaults": {"custom_attributes.vip": "yes"},
            },
        }
    )
    problems = validate(settings, [*LIVE, *TYPED, STAGE])
    assert sorted(p["field"] for p in problems) == [
        "person_invited.defaults.custom_attributes.plan",
        "person_invited.defaults.custom_attributes.seats",
        "person_invited.qualification.initial_value",
        "person_invited.qualification.qualifying_values.1",
        "person_referring.defaults.custom_attributes.vip",
    ]


# -- [v2] the company object ------------------------------------------------------------------------
COMPANY_LIVE = [
    attr("name"),
    attr("monthly_spend", "float"),
    attr("plan.name", writable=False),
    attr("user_count", "integer", writable=False),
    attr("custom_attributes.customer_status"),
    attr("custom_attributes.arr", "float"),
    attr("custom_attributes.stage", "options", options=["Open", "Won"]),
]


def _company_settings(qualification: dict, commission: dict | None = None) -> CampaignSettings:
    settings = copy.deepcopy(CONTRACT_EXAMPLE)
    settings["person_invited"]["qualification"] = {"object": "company", **qualification}
    settings["commission"] = commission
    return CampaignSettings.model_validate(settings)


def test_qualification_and_commission_read_the_contact_unless_told():
    settings = CampaignSettings.model_validate(CONTRACT_EXAMPLE)
    assert settings.person_invited and settings.person_invited.qualification
    assert settings.person_invited.qualification.object == "contact"
    assert settings.commission and settings.commission.object == "contact"
    with pytest.raises(ValidationError):
        CampaignSettings.model_validate({"commission": {"object": "deal", "sale_value_attribute": "x"}})


def test_company_attributes_are_checked_against_the_company_list():
    settings = _company_settings(
        {"attribute": "plan.name", "qualifying_values": ["Pro"]},
        {"object": "company", "sale_value_attribute": "monthly_spend"},
    )
    assert validate(settings, LIVE, COMPANY_LIVE) == []
    # A contact attribute of the same name is no company attribute, and the other way round.
    settings = _company_settings(
        {"attribute": "custom_attributes.referral_link", "qualifying_values": ["x"]},
        {"object": "company", "sale_value_attribute": "custom_attributes.deal_value"},
    )
    problems = validate(settings, LIVE, COMPANY_LIVE)
    assert {p["field"] for p in problems} == {
        "person_invited.qualification.attribute",
        "commission.sale_value_attribute",
    }
    assert all("company attribute" in p["message"] for p in problems)
    contact_commission = copy.deepcopy(CONTRACT_EXAMPLE)
    contact_commission["commission"] = {"sale_value_attribute": "monthly_spend"}
    [problem] = validate(CampaignSettings.model_validate(contact_commission), LIVE, COMPANY_LIVE)
    assert problem["field"] == "commission.sale_value_attribute"


def test_a_company_qualification_takes_text_or_list_attributes_and_their_options():
    assert (
        validate(
            _company_settings({"attribute": "custom_attributes.stage", "qualifying_values": ["won"]}),
            LIVE,
            COMPANY_LIVE,
        )
        == []
    )
    problems = validate(
        _company_settings({"attribute": "custom_attributes.arr", "qualifying_values": ["1"]}),
        LIVE,
        COMPANY_LIVE,
    )
    assert [p["field"] for p in problems] == ["person_invited.qualification.attribute"]
    problems = validate(
        _company_settings({"attribute": "custom_attributes.stage", "qualifying_values": ["gone"]}),
        LIVE,
        COMPANY_LIVE,
    )
    assert [p["field"] for p in problems] == ["person_invited.qualification.qualifying_values.0"]


@pytest.mark.parametrize("initial_value", ["trial", "paid"])
def test_a_company_qualification_refuses_an_initial_value(initial_value):
    settings = _company_settings(
        {
            "attribute": "custom_attributes.customer_status",
            "initial_value": initial_value,
            "qualifying_values": ["paid"],
        }
    )
    problems = validate(settings, LIVE, COMPANY_LIVE)
    assert [p["field"] for p in problems] == ["person_invited.qualification.initial_value"]
    assert "creates no companies" in problems[0]["message"]


def test_setup_creates_each_attribute_in_its_own_model():
    settings = _company_settings(
        {"attribute": "custom_attributes.account_stage", "qualifying_values": ["customer"]},
        {"object": "company", "sale_value_attribute": "custom_attributes.arr"},
    )
    contact_named = named_attributes(settings)
    company_named = named_attributes(settings, "company")
    assert company_named == {"custom_attributes.account_stage": "string", "custom_attributes.arr": "float"}
    assert not set(company_named) & set(contact_named)
    assert "custom_attributes.referral_link" in contact_named
    assert named_attributes(CampaignSettings.model_validate(CONTRACT_EXAMPLE), "company") == {}
