"""A campaign's Intercom settings: their shape, and their validation against the live attribute list.

Pure domain: takes the settings and Intercom's data attributes as plain values and returns every
problem at once, each with its field path (`person_invited.mapping.email`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from shared.domain.errors import FieldError, field_error
from shared.domain.qualification import is_qualifying, normalise

# Referral Factory fields a mapping may name (the contract's list).
RF_FIELDS = (
    "first_name",
    "email",
    "referral_link",
    "referral_code",
    "campaign_name",
    "source",
    "signed_up_at",
    "referrals_count",
    "converted_referrals_count",
    "referrer_first_name",
    "referrer_email",
    "referrer_referral_link",
)

# The Intercom data type a custom attribute gets when setup creates it for a field.
FIELD_DATA_TYPES: dict[str, str] = {
    "first_name": "string",
    "email": "string",
    "referral_link": "string",
    "referral_code": "string",
    "campaign_name": "string",
    "source": "string",
    "signed_up_at": "string",
    "referrals_count": "integer",
    "converted_referrals_count": "integer",
    "referrer_first_name": "string",
    "referrer_email": "string",
    "referrer_referral_link": "string",
}
SALE_VALUE_DATA_TYPE = "float"
QUALIFIABLE_TYPES = ("string", "options")
# The Intercom object whose attribute qualification and commission read (contract §1, [v2]): the
# referred contact, or the companies it belongs to.
CONTACT: Final = "contact"
COMPANY: Final = "company"
ObjectKind = Literal["contact", "company"]
# A value `defaults` may give an attribute.
DefaultValue = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Qualification(_Model):
    object: ObjectKind = CONTACT
    attribute: str = Field(min_length=1)
    initial_value: str | None = None
    qualifying_values: list[str] = Field(min_length=1)


class SyncSettings(_Model):
    inbound_mapping: dict[str, str] = Field(default_factory=dict)
    return_mapping: dict[str, str] = Field(default_factory=dict)


class PersonSettings(_Model):
    action: Literal["none", "create_lead", "create_user"] = "none"
    mapping: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, DefaultValue] = Field(default_factory=dict)
    referrer_mapping: dict[str, str] = Field(default_factory=dict)
    qualification: Qualification | None = None
    duplicates: Literal["skip", "update"] = "skip"


class Commission(_Model):
    object: ObjectKind = CONTACT
    sale_value_attribute: str = Field(min_length=1)


class CampaignSettings(_Model):
    # The Intercom workspace the campaign uses (contract §1, [v2]): optional while the account has one.
    workspace_id: str | None = Field(default=None, min_length=1, max_length=200)
    sync: SyncSettings | None = None
    person_invited: PersonSettings | None = None
    person_referring: PersonSettings | None = None
    commission: Commission | None = None


REQUIRED_KEYS = {
    "sync.return_mapping": ("referral_link",),
    "person_invited.mapping": ("first_name", "email"),
    "person_referring.mapping": ("referrer_first_name", "referrer_email"),
}


def _mappings(settings: CampaignSettings) -> list[tuple[str, dict[str, str], bool]]:
    """(path, mapping, written_by_us) for every mapping the settings hold."""
    found: list[tuple[str, dict[str, str], bool]] = []
    if settings.sync:
        found.append(("sync.inbound_mapping", settings.sync.inbound_mapping, False))
        found.append(("sync.return_mapping", settings.sync.return_mapping, True))
    for name in ("person_invited", "person_referring"):
        person: PersonSettings | None = getattr(settings, name)
        if person:
            found.append((f"{name}.mapping", person.mapping, True))
            found.append((f"{name}.referrer_mapping", person.referrer_mapping, True))
    return found


def named_attributes(settings: CampaignSettings, model: ObjectKind = CONTACT) -> dict[str, str]:
    """Every Intercom attribute of `model` (contact or company) the settings name, with the data type
    setup would create it with."""
    if model == COMPANY:
        return _named_company_attributes(settings)
    named: dict[str, str] = {}
    for _, mapping, _written in _mappings(settings):
        for field, attribute in mapping.items():
            named.setdefault(attribute, FIELD_DATA_TYPES.get(field, "string"))
    for name in ("person_invited", "person_referring"):
        person: PersonSettings | None = getattr(settings, name)
        if person is None:
            continue
        for attribute, value in person.defaults.items():
            inferred = (
                "boolean" if isinstance(value, bool) else "integer" if isinstance(value, int) else "string"
            )
            named.setdefault(attribute, "float" if isinstance(value, float) else inferred)
        if person.qualification and person.qualification.object == CONTACT:
            named.setdefault(person.qualification.attribute, "string")
    if settings.commission and settings.commission.object == CONTACT:
        named.setdefault(settings.commission.sale_value_attribute, SALE_VALUE_DATA_TYPE)
    return named


def _named_company_attributes(settings: CampaignSettings) -> dict[str, str]:
    named: dict[str, str] = {}
    for name in ("person_invited", "person_referring"):
        person: PersonSettings | None = getattr(settings, name)
        if person and person.qualification and person.qualification.object == COMPANY:
            named.setdefault(person.qualification.attribute, "string")
    if settings.commission and settings.commission.object == COMPANY:
        named.setdefault(settings.commission.sale_value_attribute, SALE_VALUE_DATA_TYPE)
    return named


def names_company_attributes(settings: CampaignSettings) -> bool:
    """Whether qualification or commission reads a company attribute (its list is then needed too)."""
    return bool(_named_company_attributes(settings))


class Attribute(TypedDict):
    """An Intercom data attribute as the product lists it (`GET /v1/intercom/attributes`) and checks
    settings against."""

    name: str | None
    full_name: str | None
    label: str | None
    description: str | None
    data_type: str | None
    options: list[str]
    custom: bool
    api_writable: bool


class _Validator:
    def __init__(self, attributes: Sequence[Attribute], company_attributes: Sequence[Attribute]) -> None:
        self.by_name = {a["full_name"]: a for a in attributes}
        self.company_by_name = {a["full_name"]: a for a in company_attributes}
        self.problems: list[FieldError] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(field_error(field, message))

    def attribute(self, field: str, name: str, *, writable: bool, model: str = CONTACT) -> Attribute | None:
        found = (self.company_by_name if model == COMPANY else self.by_name).get(name)
        if found is None:
            kind = "company attribute" if model == COMPANY else "attribute"
            self.problem(field, f"Intercom has no {kind} '{name}' (create it, or run setup).")
        elif writable and not found.get("api_writable", False):
            self.problem(field, f"Intercom attribute '{name}' cannot be written through the API.")
        return found

    def mapping(self, path: str, mapping: dict[str, str], *, written: bool) -> None:
        for field, name in mapping.items():
            if field not in RF_FIELDS:
                self.problem(f"{path}.{field}", f"'{field}' is not a Referral Factory field.")
            else:
                self.attribute(f"{path}.{field}", name, writable=written)
        for required in REQUIRED_KEYS.get(path, ()):
            if required not in mapping:
                self.problem(f"{path}.{required}", f"must map '{required}'.")

    def qualification(self, path: str, q: Qualification) -> None:
        if q.object == COMPANY and q.initial_value is not None:
            self.problem(
                f"{path}.initial_value",
                "a company qualification takes no initial value: the product creates no companies.",
            )
        writable = q.object == CONTACT and q.initial_value is not None
        found = self.attribute(f"{path}.attribute", q.attribute, writable=writable, model=q.object)
        if found is None:
            return
        if found.get("data_type") not in QUALIFIABLE_TYPES:
            self.problem(
                f"{path}.attribute",
                f"'{q.attribute}' is a {found.get('data_type')} attribute; use a text or list attribute.",
            )
            return
        options = _options(found)
        for i, value in enumerate(q.qualifying_values):
            if options and normalise(value) not in options:
                self.problem(f"{path}.qualifying_values.{i}", f"'{value}' is not an option of the list.")
        initial = q.initial_value if q.object == CONTACT else None
        if initial is not None and options and normalise(initial) not in options:
            self.problem(f"{path}.initial_value", f"'{initial}' is not an option of the list.")

    def initial_value(self, path: str, q: Qualification) -> None:
        """A contact created holding a qualifying value could never change to one: refused whether or
        not the attribute exists."""
        if q.object != CONTACT:
            return  # refused whatever it is (`qualification`)
        if q.initial_value is not None and is_qualifying(q.initial_value, q.qualifying_values):
            self.problem(
                f"{path}.initial_value",
                f"'{q.initial_value}' is a qualifying value: a contact created with it could never qualify.",
            )

    def default(self, field: str, name: str, value: DefaultValue) -> None:
        """A default must fit its attribute's data type, or every push that writes it fails."""
        found = self.by_name.get(name)
        if found is None:
            return
        data_type = found.get("data_type")
        if data_type == "options":
            options = _options(found)
            if options and normalise(value) not in options:
                self.problem(field, f"{value!r} is not an option of the list '{name}'.")
            return
        fits = _FITS.get(data_type or "")
        if fits is not None and not fits(value):
            self.problem(field, f"{value!r} does not fit '{name}', a {data_type} attribute.")


def _is_integer(value: DefaultValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Whether a default fits an attribute of each Intercom data type (reference §5.1, §5.2): a boolean
# is not a number, an integer is a float, a date is a UNIX timestamp.
_FITS: dict[str, Callable[[DefaultValue], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "float": lambda v: _is_integer(v) or isinstance(v, float),
    "boolean": lambda v: isinstance(v, bool),
    "date": _is_integer,
    "datetime": _is_integer,
}


def _options(attribute: Attribute) -> set[str | None]:
    """A list attribute's options, normalised as values are compared (empty for other attributes)."""
    return {normalise(o) for o in attribute.get("options") or []}


def validate(
    settings: CampaignSettings,
    attributes: Sequence[Attribute],
    company_attributes: Sequence[Attribute] = (),
) -> list[FieldError]:
    """Every problem with `settings` given Intercom's contact attributes and company attributes
    (`full_name`, `data_type`, `api_writable`, `options`), each with its field path."""
    check = _Validator(attributes, company_attributes)
    for path, mapping, written in _mappings(settings):
        check.mapping(path, mapping, written=written)
    for name in ("person_invited", "person_referring"):
        person: PersonSettings | None = getattr(settings, name)
        if person is None:
            continue
        for attribute, value in person.defaults.items():
            check.attribute(f"{name}.defaults.{attribute}", attribute, writable=True)
            check.default(f"{name}.defaults.{attribute}", attribute, value)
        if person.qualification:
            check.qualification(f"{name}.qualification", person.qualification)
            check.initial_value(f"{name}.qualification", person.qualification)
    if settings.commission:
        check.attribute(
            "commission.sale_value_attribute",
            settings.commission.sale_value_attribute,
            writable=False,
            model=settings.commission.object,
        )
    return check.problems
