"""A Referral Factory user as the product reads it (reference §3, "The user object").

The Referral Factory client returns it; the referral records are created from it and the field
mapping reads it. It sits in the domain because both the clients and the records take it, and neither
may import the other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RfUser(BaseModel):
    # Fields the product does not read (`reach`, `ip`, `meta`, `sharing`, ...) are kept as they came.
    # Built when a user is first read, as Intercom's contacts (docs/cold-starts.md).
    model_config = ConfigDict(extra="allow", defer_build=True)

    id: int
    campaign_id: int
    # The friend who referred this user (a Person Invited); None for a Person Referring.
    referrer_id: int | None = None
    email: str | None = None
    first_name: str | None = None
    # The user's referral code and link.
    code: str | None = None
    url: str | None = None
    source: str | None = None
    type: str | None = None
    # Dates as Referral Factory sends them: written to Intercom as they are.
    signed_up_at: str | int | None = None
    qualified_at: str | int | None = None
