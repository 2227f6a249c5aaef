"""An Intercom company as the product reads it (2.16 `company`; a notification's item).

The client returns companies; the qualification flows read them. Like `Contact`, it sits in the
domain because the clients, the domain and the flows all take it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.domain.contact import Scalar, Timestamp


class Company(BaseModel):
    # Everything else a company carries (`monthly_spend`, `plan`, `size`, `website`, ...) is kept as it
    # came, readable by `get`: a qualification or commission may name any of its attributes. Built on
    # first use, as `Contact`.
    model_config = ConfigDict(extra="allow", defer_build=True)

    id: str
    company_id: str | None = None
    name: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None
    custom_attributes: dict[str, Scalar] | None = None

    def get(self, attribute: str) -> Any:
        """A top-level attribute by its Intercom name, declared or not; None when the company has none."""
        if attribute in _FIELDS:
            return getattr(self, attribute)
        extra = self.__pydantic_extra__
        return extra.get(attribute) if extra else None


_FIELDS = frozenset(Company.model_fields)
