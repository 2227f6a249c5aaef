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
