"""Mapped attributes read and written where Intercom keeps them: standard, nested and custom."""

from __future__ import annotations

from shared.domain.campaign_settings import SyncSettings
from shared.domain.contact import Contact
from shared.domain.field_mapping import (
    changed_fields,
    contact_body,
    drop_attribute,
    get_attribute,
    merge_bodies,
    set_attribute,
)
from shared.domain.sync_plan import inbound_fields, mapped_attributes, page_contact


def contact(**fields: object) -> Contact:
    return Contact.model_validate(
        {
            "id": "c1",
            "role": "user",
            "email": "ada@home.example",
            "name": "Ada  King Lovelace",
            "phone": "+44 20 7946 0000",
            "location": {"type": "location", "city": "London", "country": "United Kingdom"},
            "custom_attributes": {"work_email": "ada@engines.example", "nickname": "Countess"},
            **fields,
        }
    )


def test_get_reads_standard_nested_and_custom_attributes():
    ada = contact()
    assert get_attribute(ada, "phone") == "+44 20 7946 0000"
    assert get_attribute(ada, "location.city") == "London"
    assert get_attribute(ada, "location.region") is None
    assert get_attribute(ada, "custom_attributes.work_email") == "ada@engines.example"
    assert get_attribute(contact(location=None), "location.city") is None


def test_set_writes_nested_attributes_nested_and_bodies_merge_them():
    body = contact_body(
        {"source": "location.city", "referral_link": "custom_attributes.link", "first_name": "name"},
        {"source": "Paris", "referral_link": "https://r.example/x", "first_name": "Ada"},
    )
    assert body == {
        "location": {"city": "Paris"},
        "custom_attributes": {"link": "https://r.example/x"},
        "name": "Ada",
    }
    set_attribute(body, "location.country", "France")
    assert body["location"] == {"city": "Paris", "country": "France"}
    merged = merge_bodies({"location": {"region": "IDF"}}, body)
    assert merged["location"] == {"region": "IDF", "city": "Paris", "country": "France"}
    drop_attribute(body, "location.city")
    drop_attribute(body, "location.country")
    assert "location" not in body


def test_only_changed_nested_values_are_written():
    body = {
        "location": {"city": "London", "country": "France"},
        "custom_attributes": {"nickname": "Countess"},
    }
    assert changed_fields(body, contact()) == {"location": {"country": "France"}}


def test_the_page_contact_keeps_every_mapped_attribute_where_intercom_keeps_it():
    settings = SyncSettings(
        inbound_mapping={"email": "custom_attributes.work_email", "first_name": "location.city"},
        return_mapping={"referral_link": "custom_attributes.link", "source": "phone"},
    )
    attributes = mapped_attributes(settings)
    assert attributes == ("custom_attributes.link", "phone", "custom_attributes.work_email", "location.city")
    slim = page_contact(contact(), attributes)
    sent = Contact.model_validate(slim.model_dump(exclude_unset=True))
    assert sent.custom_attributes == {"work_email": "ada@engines.example"}
    assert get_attribute(sent, "location.city") == "London"
    assert get_attribute(sent, "phone") == "+44 20 7946 0000"


def test_the_default_mappings_page_contact_is_unchanged():
    settings = SyncSettings(
        inbound_mapping={"first_name": "name", "email": "email"},
        return_mapping={"referral_link": "custom_attributes.link"},
    )
    # The chunk's JSON is what it was when only the return mapping was kept.
    before = page_contact(contact(), ("custom_attributes.link",)).model_dump_json(exclude_unset=True)
    after = page_contact(contact(), mapped_attributes(settings)).model_dump_json(exclude_unset=True)
    assert after == before


def test_inbound_reads_exactly_the_mapped_attribute():
    ada = contact()
    mapped = inbound_fields(ada, {"email": "custom_attributes.work_email", "first_name": "name"})
    assert (mapped.email, mapped.first_name) == ("ada@engines.example", "Ada")
    custom = inbound_fields(ada, {"email": "email", "first_name": "custom_attributes.nickname"})
    assert (custom.email, custom.first_name) == ("ada@home.example", "Countess")
    nested = inbound_fields(ada, {"first_name": "location.city"})
    assert (nested.email, nested.first_name) == ("ada@home.example", "London")


def test_an_empty_mapped_email_stays_empty_and_names_its_attribute():
    bare = contact(custom_attributes={})
    fields = inbound_fields(bare, {"email": "custom_attributes.work_email"})
    assert fields.email is None
    assert fields.email_attribute == "custom_attributes.work_email"
    # An empty mapped first name still gives Referral Factory one: the first word of the name.
    assert inbound_fields(bare, {"first_name": "custom_attributes.nickname"}).first_name == "Ada"


def test_a_companys_attributes_are_read_as_intercom_nests_them():
    from shared.domain.company import Company

    company = Company.model_validate(
        {
            "type": "company",
            "id": "6762f0761bb69f9f2193bae2",
            "company_id": "acme",
            "name": "Acme",
            "monthly_spend": 155,
            "plan": {"type": "plan", "id": "9", "name": "Pro"},
            "custom_attributes": {"account_stage": "customer"},
        }
    )
    assert get_attribute(company, "monthly_spend") == 155
    assert get_attribute(company, "plan.name") == "Pro"
    assert get_attribute(company, "name") == "Acme"
    assert get_attribute(company, "custom_attributes.account_stage") == "customer"
    assert get_attribute(company, "size") is None and get_attribute(company, "custom_attributes.arr") is None
    # A notification's company may carry no plan at all.
    assert get_attribute(Company(id="x", plan=None), "plan.name") is None
