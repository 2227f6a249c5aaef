"""An Intercom contact as the product reads it (reference §3, "The contact object"), and the body the
product writes to one.

The Intercom client returns contacts; the flows, the field mapping and the sync plan read them. It sits
in the domain because the clients, the domain and the flows all take it, and the clients may not
import the records.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

# A custom attribute's value, or a standard attribute the product writes (Intercom's data types:
# string, integer, float, boolean, and dates as UNIX seconds).
Scalar = str | int | float | bool | None
# What the product sends to create or update a contact: standard attributes at the top, custom ones
# under `custom_attributes` (shared.domain.field_mapping builds it in the mappings' order).
ContactBody = dict[str, Scalar | dict[str, Scalar]]


class FieldQuery(TypedDict):
    """One condition of a contact search (reference §3.5): `{"field": "role", "operator": "=", ...}`."""

    field: str
    operator: str
    value: Scalar | list[str]


class CompoundQuery(TypedDict):
    """Conditions joined: `{"operator": "AND", "value": [...]}`."""

    operator: Literal["AND", "OR"]
    value: list[SearchQuery]


# A contact search's `query`, as `POST /contacts/search` takes it.
SearchQuery = FieldQuery | CompoundQuery
# Intercom sends UNIX seconds over REST and ISO-8601 in some webhooks (`parse_timestamp` reads both).
Timestamp = int | float | str | None


class ContactRef(BaseModel):
    """Another contact as a notification names it (`merged_from`)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    id: str | None = None


class Contact(BaseModel):
    # Everything else a contact carries (`location`, `companies`, `social_profiles`, `phone`, ...) is
    # kept as it came, readable by `get`. The declared fields are the ones the product reads, in the
    # order `shared.domain.sync_plan.page_contact` writes them: a sync chunk's contacts serialise (set
    # fields in declaration order, then the others as they came) to exactly the JSON they had as
    # dicts. A standard attribute a return mapping may name (`phone`, `signed_up_at`) must therefore
    # stay undeclared, or its place in the chunk would move. Built on first use: the functions that
    # import it answer most first requests without reading a contact (docs/cold-starts.md).
    model_config = ConfigDict(extra="allow", defer_build=True)

    id: str
    role: str | None = None
    email: str | None = None
    name: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None
    custom_attributes: dict[str, Scalar] | None = None
    # Customers' own user ids: the product never writes them (shared.clients.intercom).
    external_id: str | None = None
    # A `contact.merged` notification's item: the contact merged into this one.
    merged_from: ContactRef | None = None

    def get(self, attribute: str) -> Any:
        """A top-level attribute by its Intercom name, declared or not; None when the contact has none.
        No copy of the contact is made (a sync reads every contact of a workspace)."""
        if attribute in _FIELDS:
            return getattr(self, attribute)
        extra = self.__pydantic_extra__
        return extra.get(attribute) if extra else None


_FIELDS = frozenset(Contact.model_fields)
