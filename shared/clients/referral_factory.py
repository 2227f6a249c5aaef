"""The Referral Factory API v2 client: users (list by campaign, create with referrer attribution, get,
search, update), qualification and campaigns (reference: referral-factory-api.md §2-§4).

Calls go through `shared.clients.http` and the API key's shared rate budget: Referral Factory blocks an
IP that keeps exceeding 600 calls a minute (§1), so the budget is spent before each request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from shared.clients.errors import UpstreamError
from shared.clients.http import DEFAULT_POLICY, Budget, HttpClient, RetryPolicy, error_for
from shared.domain.rf_user import RfUser
from shared.settings import DEFAULT_REFERRAL_FACTORY_API_BASE

if TYPE_CHECKING:
    import httpx

SERVICE = "referral_factory"
# The field of `PUT /users/qualification` that carries the sale value for commission rewards.
# Referral Factory documents no name for it (reference §4, §6 "Track Your Sale Value"); this is the
# one place that names it.
SALE_VALUE_FIELD = "amount"
MAX_PER_PAGE = 250

ReferrerField = Literal["id", "code", "email"]


@dataclass(frozen=True)
class Referrer:
    """Who referred a new user: attribution happens only when the user is created (§2)."""

    field: ReferrerField
    value: str | int


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Campaign(BaseModel):
    """A campaign as `GET /campaigns` and `GET /campaigns/{id}` answer it (reference §2, §3)."""

    # Fields the product does not read (`code`, `url`, `lang`, `fields`, ...) are kept as they came.
    model_config = ConfigDict(extra="allow")

    # As Referral Factory sends it (an integer), passed on unchanged: the account API answers it.
    # None only for an answer that is not a campaign at all (`_single` of an unexpected body).
    id: int | str | None = None
    name: str | None = None
    # launched / draft / paused
    status: str | None = None


class Qualified(BaseModel):
    """The answer to `PUT /users/qualification`: the user, of which the product reads the time."""

    model_config = ConfigDict(extra="allow")

    qualified_at: str | int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    last_page: int

    @property
    def has_more(self) -> bool:
        return self.page < self.last_page


def _message(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Referral Factory's `{"message", "errors"?: {field: [messages]}}`, tolerant of anything else."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}", {}
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}", {}
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    return str(body.get("message") or f"HTTP {response.status_code}"), errors or {}


def _single(body: Any, model: type[M]) -> M:
    """The resource `body` answers, read as `model` (an answer that is not an object reads as `{}`)."""
    # Public material disagrees on whether v2 wraps single resources in `data` (emulator docstring).
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return model.model_validate(body["data"])
    return model.model_validate(body if isinstance(body, dict) else {})


def _page(body: Any, page: int, model: type[M]) -> Page[M]:
    meta = body.get("meta") or {} if isinstance(body, dict) else {}
    data = body.get("data") if isinstance(body, dict) else None
    current = int(meta.get("current_page") or page)
    return Page(
        items=[model.model_validate(item) for item in data or []],
        page=current,
        last_page=int(meta.get("last_page") or current),
    )


def _email_taken(errors: Mapping[str, list[str]]) -> bool:
    return any("taken" in str(m).lower() or "exist" in str(m).lower() for m in errors.get("email") or [])


class ReferralFactoryClient:
    """One account's API key, its configured base URL and its key's budget."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_REFERRAL_FACTORY_API_BASE,
        budget: Budget | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.http = HttpClient(
            base_url,
            service=SERVICE,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            budget=budget,
            policy=policy,
            client=client,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:  # never the key
        return f"ReferralFactoryClient({self.http.base_url!r})"

    def _error(self, response: httpx.Response) -> UpstreamError:
        message, errors = _message(response)
        error = error_for(response, service=SERVICE, message=message, now=self._clock())
        error.fields = errors
        return error

    def _send(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        return self.http.request(method, path, json=json, params=params)

    def _call(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        response = self._send(method, path, json=json, params=params)
        if not response.is_success:
            raise self._error(response)
        return response.json()

    # -- users --------------------------------------------------------------------------------
    def list_users(self, campaign_id: int, *, page: int = 1, per_page: int = MAX_PER_PAGE) -> Page[RfUser]:
        params = {"campaign_id": campaign_id, "page": page, "per_page": min(per_page, MAX_PER_PAGE)}
        return _page(self._call("GET", "/users", params=params), page, RfUser)

    def create_user(
        self,
        campaign_id: int,
        email: str,
        first_name: str,
        *,
        referrer: Referrer | None = None,
        meta: list[dict[str, Any]] | None = None,
    ) -> tuple[RfUser, bool]:
        """The campaign's user with this email, and whether it was created now: a 422 for an email
        already in the campaign resolves to the user who has it."""
        body: dict[str, Any] = {"campaign_id": campaign_id, "email": email, "first_name": first_name}
        if referrer is not None:
            body["referrer"] = {"field": referrer.field, "value": referrer.value}
        if meta:
            body["meta"] = meta
        response = self._send("POST", "/users", json=body)
        if response.is_success:
            return _single(response.json(), RfUser), True
        error = self._error(response)
        if response.status_code == 422 and _email_taken(error.fields):
            return self.get_user(email, campaign_id=campaign_id), False
        raise error

    def get_user(self, identifier: str | int, *, campaign_id: int | None = None) -> RfUser:
        """A user by id, code or email (an email is per campaign, so give `campaign_id` with one)."""
        params = {"campaign_id": campaign_id} if campaign_id is not None else None
        body = self._call("GET", f"/users/{quote(str(identifier), safe='@')}", params=params)
        return _single(body, RfUser)

    def qualify(
        self,
        *,
        user_id: int | None = None,
        code: str | None = None,
        email: str | None = None,
        campaign_id: int | None = None,
        qualified: bool = True,
        sale_value: float | None = None,
    ) -> Qualified:
        """Mark a referral qualified (or back to pending), by id, code, or email + campaign (§4).
        Referral Factory qualifies a user once; repeating it is harmless."""
        body: dict[str, Any] = {"qualified": qualified}
        if user_id is not None:
            body["id"] = user_id
        elif code is not None:
            body["code"] = code
        elif email is not None and campaign_id is not None:
            body["email"], body["campaign_id"] = email, campaign_id
        else:
            raise ValueError("qualify needs user_id, code, or email with campaign_id")
        if sale_value is not None:
            body[SALE_VALUE_FIELD] = sale_value
        return _single(self._call("PUT", "/users/qualification", json=body), Qualified)

    # -- campaigns ----------------------------------------------------------------------------
    def list_campaigns(self) -> list[Campaign]:
        campaigns: list[Campaign] = []
        page = 1
        while True:
            body = self._call("GET", "/campaigns", params={"page": page, "per_page": MAX_PER_PAGE})
            result = _page(body, page, Campaign)
            campaigns.extend(result.items)
            if not result.has_more or not result.items:
                return campaigns
            page += 1

    def get_campaign(self, campaign_id: int | str) -> Campaign:
        return _single(self._call("GET", f"/campaigns/{quote(str(campaign_id), safe='')}"), Campaign)
