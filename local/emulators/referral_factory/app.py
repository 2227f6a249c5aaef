"""The Referral Factory emulator: API v2's user and campaign paths plus the `/_emulator/` control surface.

Real paths (all under `/api/v2`, `Authorization: Bearer <api_key>`, 600 calls a minute per key):

- `GET /users?campaign_id=&page=&per_page=`: newest first; `per_page` defaults to 25 and is capped at
  250; Laravel's paginator envelope `{"data", "links", "meta": {"current_page", "from", "last_page",
  "path", "per_page", "to", "total"}}`. Without `campaign_id`, every user of the account.
- `POST /users`: `{"campaign_id", "first_name", "email", "meta"?, "ip"?, "referrer"?: {"field":
  "id"|"code"|"email", "value"}}` → 201. With a referrer (same campaign) the user is a
  `person_invited` with `source: "Referred"`, else a `person_referring` with `source: "Api"`.
- `POST /users/search`, paged like the list (`page`/`per_page` in the body or the query). Two body
  forms, combinable: flat equality keys, any of `id`, `campaign_id`, `referrer_id`, `code`, `email`,
  `first_name`, `type`, `source`, `qualified` (bool), `ip` (a list value means "any of"), e.g.
  `{"campaign_id": 7, "email": "a@b.c"}`; and the filter form public v2 clients send,
  `{"filters": {"operator": "AND"|"OR", "value": [{"field", "operator": "="|"!="|"in"|"not in"|"like",
  "value"}]}}`. Flat keys are always ANDed with the filter group.
- `GET /users/{identifier}`: a numeric id, an email (`?campaign_id=` picks the campaign; without it
  the newest user with that email), or a code.
- `PUT /users/{id}` (`first_name`, `email`, `meta`, `unsubscribed`), `DELETE /users/{id}`.
- `PUT /users/qualification`: the user by `id`, or `code`, or `email` + `campaign_id`;
  `qualified: true|false`; `amount`, the sale value, optional. Qualification is once per user: a
  repeated qualify answers 200 and changes nothing (`qualified_at` and `amount` stay from the first);
  `qualified: false` reverts to pending, after which a qualify counts as a new first one.
- `GET /campaigns` (paged), `GET /campaigns/{id}` (id or code).

Single resources are Laravel's `{"data": {...}}`, with the same fields mirrored at the top level:
public material disagrees on which shape v2 answers with (reference §2 reads v1's fields at the top
level; a public v2 client reads `data`), and a superset serves a client written to either.

Errors are `{"message"}` (422 adds `"errors": {field: [messages]}`); unknown key → 401
`Unauthenticated.`; past the limit → 429 `Too Many Attempts.` with `Retry-After`, `X-RateLimit-*`.
The limit is counted per key in one of three ways, `rate_limit_window` `clock` (the default),
`first_hit` or `sliding` (`limits.py`), over `rate_limit_window_s` seconds (60 unless a test shortens
it); `GET /_emulator/stats` adds `peak_calls_in_any_window`, the most calls one key made within any
window's length, whatever the mode.

Outbound webhooks (`user.join`, `user.qualified`, and `reward.issued` to the referrer when a person
they invited first qualifies) are POSTed as JSON `{"event", "campaign": {"id", "name"}, "user"}` with
the account's configured headers; `reward.issued` also carries the qualifying `referral`.

`POST /_emulator/reset` forgets accounts, users, stats and rate-limit windows and restores the config
`create_app` was given; ids keep counting up so an id from before a reset never names a new user.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from local.emulators.common import (
    DEFAULT_FAULTS,
    FaultsAndStatsMiddleware,
    Stats,
    WebhookSender,
    json_body,
    json_response,
    merge_config,
)
from local.emulators.referral_factory.limits import WINDOW_MODES, RateLimiter
from local.emulators.referral_factory.store import (
    REFERRER_FIELDS,
    SEARCH_FIELDS,
    SEARCH_OPERATORS,
    WEBHOOK_EVENTS,
    Account,
    ApiError,
    Campaign,
    Condition,
    Store,
    User,
    WebhookConfig,
    as_int,
    is_email,
    not_found,
    validation_error,
)

API = "/api/v2"
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 250
RATE_WINDOW_S = 60

DEFAULT_CONFIG: dict[str, Any] = {
    "rate_limit_per_minute": 600,
    # How the minute is counted (`limits.py`); Referral Factory does not say.
    "rate_limit_window": "clock",
    # The minute's length: the one knob that shortens it (tests); the contract's 60 s by default.
    "rate_limit_window_s": RATE_WINDOW_S,
    "faults": dict(DEFAULT_FAULTS),
    "webhook_retry_delay_s": 5.0,
    "public_base_url": "https://referral-factory.com",
}

ApiHandler = Callable[[Request, Account, dict[str, Any]], Response]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rate_limit_errors(patch: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    if "rate_limit_per_minute" in patch:
        limit = patch["rate_limit_per_minute"]
        if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0):
            errors["rate_limit_per_minute"] = ["Must be a non-negative integer or null."]
    if "rate_limit_window" in patch and patch["rate_limit_window"] not in WINDOW_MODES:
        errors["rate_limit_window"] = [f"Must be one of {', '.join(WINDOW_MODES)}."]
    if "rate_limit_window_s" in patch:
        length = patch["rate_limit_window_s"]
        if not _number(length) or not 0 < length <= 3600:
            errors["rate_limit_window_s"] = ["Must be a number of seconds above 0, at most 3600."]


def config_errors(patch: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    _rate_limit_errors(patch, errors)
    faults = patch.get("faults")
    if faults is not None:
        if not isinstance(faults, dict):
            errors["faults"] = ["Must be an object."]
        else:
            for key, value in faults.items():
                if key not in DEFAULT_FAULTS:
                    errors[f"faults.{key}"] = [f"Unknown fault; known: {', '.join(DEFAULT_FAULTS)}."]
                elif not _number(value) or value < 0 or (key != "latency_ms" and value > 1):
                    errors[f"faults.{key}"] = ["Must be a rate between 0 and 1 (latency_ms: ms >= 0)."]
    delay = patch.get("webhook_retry_delay_s", 0)
    if not _number(delay) or delay < 0:
        errors["webhook_retry_delay_s"] = ["Must be a number of seconds >= 0."]
    if "public_base_url" in patch and not isinstance(patch["public_base_url"], str):
        errors["public_base_url"] = ["Must be a string."]
    return errors


def _single(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**extra, **data, "data": data}


def _page_params(source: Mapping[str, Any]) -> tuple[int, int]:
    page = as_int(source.get("page")) or 1
    per_page = as_int(source.get("per_page")) or DEFAULT_PER_PAGE
    return max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)


def paginate(
    request: Request,
    ids: Sequence[int],
    page: int,
    per_page: int,
    render: Callable[[int], dict[str, Any]],
    *,
    newest_first: bool = True,
) -> dict[str, Any]:
    """Laravel's length-aware page over ids kept in creation order; only the page is rendered."""
    total = len(ids)
    last_page = max(1, math.ceil(total / per_page))
    skip = (page - 1) * per_page
    if newest_first:
        end = total - skip
        chunk = list(reversed(ids[max(0, end - per_page) : end])) if end > 0 else []
    else:
        chunk = list(ids[skip : skip + per_page])
    data = [render(i) for i in chunk]
    path = str(request.url.replace(query=""))

    def link(n: int) -> str:
        return f"{path}?page={n}&per_page={per_page}"

    return {
        "data": data,
        "links": {
            "first": link(1),
            "last": link(last_page),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last_page else None,
        },
        "meta": {
            "current_page": page,
            "from": skip + 1 if data else None,
            "last_page": last_page,
            "path": path,
            "per_page": per_page,
            "to": skip + len(data) if data else None,
            "total": total,
        },
    }


def _search_conditions(body: Mapping[str, Any]) -> tuple[list[Condition], list[Condition]]:
    """(conditions that must all hold, conditions of which one must hold) from a search body."""
    errors: dict[str, list[str]] = {}
    required: list[Condition] = []
    for name in SEARCH_FIELDS:
        if name in body:
            value = body[name]
            required.append(Condition(name, "in" if isinstance(value, list) else "=", value))
    any_of: list[Condition] = []
    filters = body.get("filters")
    if filters is not None:
        group = filters if isinstance(filters, dict) else {"value": filters}
        items = group.get("value")
        join = str(group.get("operator") or "AND").upper()
        if join not in ("AND", "OR"):
            errors["filters.operator"] = ["The selected filters.operator is invalid."]
        if not isinstance(items, list):
            errors["filters.value"] = ["The filters.value field must be an array."]
            items = []
        parsed: list[Condition] = []
        for i, raw in enumerate(items):
            item = raw if isinstance(raw, dict) else {}
            field, op = item.get("field"), str(item.get("operator") or "=").lower()
            if field not in SEARCH_FIELDS:
                errors[f"filters.value.{i}.field"] = [f"The selected filters.value.{i}.field is invalid."]
            elif op not in SEARCH_OPERATORS:
                errors[f"filters.value.{i}.operator"] = [
                    f"The selected filters.value.{i}.operator is invalid."
                ]
            else:
                parsed.append(Condition(str(field), op, item.get("value")))
        if join == "OR":
            any_of = parsed
        else:
            required.extend(parsed)
    if errors:
        raise validation_error(errors)
    return required, any_of


def _qualified_flag(body: Mapping[str, Any], errors: dict[str, list[str]]) -> bool:
    """Laravel's `boolean` rule: true, false, 1, 0, "1", "0" (and "true"/"false" from forms)."""
    value = body.get("qualified")
    if value in (True, 1, "1", "true"):
        return True
    if value in (False, 0, "0", "false"):
        return False
    if value is None:
        errors["qualified"] = ["The qualified field is required."]
    else:
        errors["qualified"] = ["The qualified field must be true or false."]
    return False


def _amount(body: Mapping[str, Any], errors: dict[str, list[str]]) -> float | int | None:
    """The sale value: a number >= 0 (a numeric string is read as one), or absent."""
    value = body.get("amount")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
            errors["amount"] = ["The amount field must be a number."]
    if value is None:
        return None
    if not _number(value) or value < 0:
        errors["amount"] = ["The amount field must be a number greater than or equal to 0."]
        return None
    return float(value) if isinstance(value, float) else int(value)


def _required_text(body: Mapping[str, Any], key: str, label: str, errors: dict[str, list[str]]) -> None:
    value = body.get(key)
    if value is None or value == "":
        errors[key] = [f"The {label} field is required."]
    elif not isinstance(value, str):
        errors[key] = [f"The {label} field must be a string."]
    elif key == "email" and not is_email(value):
        errors[key] = [f"The {label} field must be a valid email address."]


class ReferralFactoryEmulator:
    """State, config and the handlers behind every route; reachable as `app.state.emulator`."""

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        patch = dict(config or {})
        errors = config_errors(patch)
        if errors:
            raise ValueError(f"invalid Referral Factory emulator config: {errors}")
        self.initial_config = merge_config(DEFAULT_CONFIG, patch)
        self.config = dict(self.initial_config)
        # Handlers run on uvicorn's loop; the lock is for callers in other threads (local stack, benches).
        self.lock = threading.RLock()
        self.stats = Stats()
        self.clock = clock
        self.limiter = RateLimiter(clock=clock)
        self._configure_limiter()
        self.store = Store(lambda: str(self.config["public_base_url"]).rstrip("/"))
        self.webhooks = WebhookSender(
            lambda: self.stats,
            lambda: self.config["faults"],
            retry_delay_s=float(self.config["webhook_retry_delay_s"]),
        )

    def close(self) -> None:
        self.webhooks.close()

    # --- plumbing -----------------------------------------------------------------------------------

    def api(
        self, handler: ApiHandler, *, with_body: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wraps a real-path handler in auth, the per-key rate limit and the error envelope."""

        async def endpoint(request: Request) -> Response:
            body: dict[str, Any] = {}
            if with_body:
                parsed = await json_body(request)
                body = parsed if isinstance(parsed, dict) else {}
            auth = request.headers.get("authorization", "")
            scheme, _, key = auth.partition(" ")
            account = self.store.accounts.get(key.strip()) if scheme.lower() == "bearer" else None
            if account is None:
                return json_response({"message": "Unauthenticated."}, 401)
            limit = self.config["rate_limit_per_minute"]
            verdict = self.limiter.hit(account.api_key, limit)
            headers: dict[str, str] = {}
            if limit is not None:
                headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(verdict.remaining)}
            if not verdict.allowed:
                self.stats.count_429()
                # Whole seconds, rounded up: a caller that waits as told is not refused again.
                wait = math.ceil(verdict.reset_at - self.clock())
                headers["Retry-After"] = str(max(1, wait))
                headers["X-RateLimit-Reset"] = str(math.ceil(verdict.reset_at))
                return json_response({"message": "Too Many Attempts."}, 429, headers)
            try:
                with self.lock:
                    response = handler(request, account, body)
            except ApiError as error:
                response = json_response(error.body(), error.status)
            response.headers.update(headers)
            return response

        return endpoint

    def control(
        self, handler: Callable[[Request, dict[str, Any]], Response], *, with_body: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body: dict[str, Any] = {}
            if with_body:
                parsed = await json_body(request)
                body = parsed if isinstance(parsed, dict) else {}
            try:
                with self.lock:
                    return handler(request, body)
            except ApiError as error:
                return json_response(error.body(), error.status)

        return endpoint

    def emit(self, account: Account, event: str, user: User, **extra: Any) -> None:
        hook = account.webhook
        if hook is None or not hook.url or event not in hook.events:
            return
        payload = {"event": event, "campaign": user.campaign.summary(), "user": user.as_dict(), **extra}
        headers = {**hook.headers, "Content-Type": "application/json"}
        self.webhooks.send(hook.url, json.dumps(payload).encode(), headers)

    def _campaign_param(self, account: Account, value: Any) -> Campaign | None:
        if value is None or value == "":
            return None
        campaign = self.store.campaign_of(account, value)
        if campaign is None:
            raise validation_error({"campaign_id": ["The selected campaign id is invalid."]})
        return campaign

    def _referrer(self, campaign: Campaign | None, spec: Any, errors: dict[str, list[str]]) -> User | None:
        """The `referrer: {field, value}` of `POST /users`, which must be in the new user's campaign."""
        if spec is None:
            return None
        if not isinstance(spec, dict):
            errors["referrer"] = ["The referrer field must be an array."]
            return None
        field, value = spec.get("field"), spec.get("value")
        if field not in REFERRER_FIELDS:
            errors["referrer.field"] = ["The selected referrer.field is invalid."]
        elif value is None or value == "":
            errors["referrer.value"] = ["The referrer.value field is required."]
        elif campaign is not None:
            referrer = self._find_referrer(campaign, field, value)
            if referrer is not None and referrer.campaign is campaign:
                return referrer
            errors["referrer"] = ["The selected referrer is invalid."]
        return None

    def _find_referrer(self, campaign: Campaign, field: str, value: Any) -> User | None:
        if field == "id":
            return self.store.user_of(campaign.account, as_int(value))
        if field == "code":
            return self.store.by_code(campaign.account, str(value))
        return self.store.by_email(campaign, str(value))

    # --- real paths -----------------------------------------------------------------------------------

    def list_users(self, request: Request, account: Account, _: dict[str, Any]) -> Response:
        params = request.query_params
        campaign = self._campaign_param(account, params.get("campaign_id"))
        ids = campaign.user_ids if campaign else account.user_ids
        page, per_page = _page_params(params)
        users = self.store.users
        return json_response(paginate(request, ids, page, per_page, lambda i: users[i].as_dict()))

    def create_user(self, request: Request, account: Account, body: dict[str, Any]) -> Response:
        errors: dict[str, list[str]] = {}
        campaign: Campaign | None = None
        if body.get("campaign_id") in (None, ""):
            errors["campaign_id"] = ["The campaign id field is required."]
        else:
            campaign = self.store.campaign_of(account, body["campaign_id"])
            if campaign is None:
                errors["campaign_id"] = ["The selected campaign id is invalid."]
        _required_text(body, "first_name", "first name", errors)
        _required_text(body, "email", "email", errors)
        if campaign is not None and "email" not in errors and self.store.by_email(campaign, body["email"]):
            errors["email"] = ["The email has already been taken."]
        meta = body.get("meta")
        if meta is not None and not isinstance(meta, list):
            errors["meta"] = ["The meta field must be an array."]
        referrer = self._referrer(campaign, body.get("referrer"), errors)
        if errors or campaign is None:
            raise validation_error(errors)
        ip = body.get("ip") if isinstance(body.get("ip"), str) else None
        user = self.store.create_user(
            campaign,
            first_name=body["first_name"],
            email=body["email"],
            source="Referred" if referrer else "Api",
            referrer=referrer,
            ip=ip or (request.client.host if request.client else None),
            meta=meta,
        )
        self.emit(account, "user.join", user)
        return json_response(_single(user.as_dict()), 201)

    def search_users(self, request: Request, account: Account, body: dict[str, Any]) -> Response:
        required, any_of = _search_conditions(body)
        for cond in required:
            if cond.field == "campaign_id" and cond.operator == "=":
                self._campaign_param(account, cond.value)
        ids = self.store.search(account, required, any_of)
        page, per_page = _page_params({**request.query_params, **body})
        users = self.store.users
        return json_response(paginate(request, ids, page, per_page, lambda i: users[i].as_dict()))

    def get_user(self, request: Request, account: Account, _: dict[str, Any]) -> Response:
        campaign = self._campaign_param(account, request.query_params.get("campaign_id"))
        user = self.store.find(account, request.path_params["identifier"], campaign)
        if user is None:
            raise not_found("User")
        return json_response(_single(user.as_dict()))

    def user_by_id(self, request: Request, account: Account, body: dict[str, Any]) -> Response:
        user = self.store.user_of(account, as_int(request.path_params["id"]))
        if user is None:
            raise not_found("User")
        if request.method == "DELETE":
            self.store.delete_user(user)
            return json_response({"message": "User deleted successfully."})
        errors: dict[str, list[str]] = {}
        for key, label in (("first_name", "first name"), ("email", "email")):
            if key in body:
                _required_text(body, key, label, errors)
        if "meta" in body and not isinstance(body["meta"], list | type(None)):
            errors["meta"] = ["The meta field must be an array."]
        if errors:
            raise validation_error(errors)
        self.store.update_user(user, body)
        return json_response(_single(user.as_dict()))

    def qualification(self, request: Request, account: Account, body: dict[str, Any]) -> Response:
        errors: dict[str, list[str]] = {}
        qualified = _qualified_flag(body, errors)
        amount = _amount(body, errors)
        user = self._user_to_qualify(account, body, errors)
        if errors:
            raise validation_error(errors)
        if user is None:
            raise not_found("User")
        if qualified:
            user.qualify_calls += 1
            if self.store.qualify(user, amount):
                self.emit(account, "user.qualified", user)
                referrer = self.store.referrer_of(user)
                if referrer is not None:
                    self.emit(account, "reward.issued", referrer, referral=user.as_dict())
            message = "User qualified successfully."
        else:
            self.store.unqualify(user)
            message = "User unqualified successfully."
        return json_response(_single(user.as_dict(), message=message))

    def _user_to_qualify(
        self, account: Account, body: Mapping[str, Any], errors: dict[str, list[str]]
    ) -> User | None:
        if body.get("id") is not None:
            return self.store.user_of(account, as_int(body["id"]))
        if body.get("code"):
            return self.store.by_code(account, str(body["code"]))
        if body.get("email"):
            if body.get("campaign_id") in (None, ""):
                errors["campaign_id"] = ["The campaign id field is required when email is present."]
                return None
            campaign = self.store.campaign_of(account, body["campaign_id"])
            if campaign is None:
                errors["campaign_id"] = ["The selected campaign id is invalid."]
                return None
            return self.store.by_email(campaign, str(body["email"]))
        errors["id"] = ["The id field is required when none of code / email are present."]
        return None

    def list_campaigns(self, request: Request, account: Account, _: dict[str, Any]) -> Response:
        page, per_page = _page_params(request.query_params)
        campaigns = self.store.campaigns
        return json_response(
            paginate(
                request,
                account.campaign_ids,
                page,
                per_page,
                lambda i: campaigns[i].as_dict(),
                newest_first=False,
            )
        )

    def get_campaign(self, request: Request, account: Account, _: dict[str, Any]) -> Response:
        campaign = self.store.campaign_of(account, request.path_params["id"])
        if campaign is None:
            raise not_found("Campaign")
        return json_response(_single(campaign.as_dict()))

    # --- control surface ------------------------------------------------------------------------------

    def reset(self, _: Request, __: dict[str, Any]) -> Response:
        self.store.clear()
        self.stats = Stats()
        self.limiter.reset()
        self.config = dict(self.initial_config)
        self.webhooks.retry_delay_s = float(self.config["webhook_retry_delay_s"])
        self._configure_limiter()
        return json_response({"status": "reset"})

    def config_endpoint(self, request: Request, body: dict[str, Any]) -> Response:
        if request.method == "PUT":
            errors = config_errors(body)
            if errors:
                raise validation_error(errors)
            self.config = merge_config(self.config, body)
            self.webhooks.retry_delay_s = float(self.config["webhook_retry_delay_s"])
            self._configure_limiter()
        return json_response(self.config)

    def _configure_limiter(self) -> None:
        self.limiter.configure(self.config["rate_limit_window"], float(self.config["rate_limit_window_s"]))

    def create_account(self, _: Request, body: dict[str, Any]) -> Response:
        api_key, campaigns = body.get("api_key"), body.get("campaigns", [])
        errors: dict[str, list[str]] = {}
        if not isinstance(api_key, str) or not api_key.strip():
            errors["api_key"] = ["The api_key field is required."]
        if not isinstance(campaigns, list) or not all(isinstance(c, dict) for c in campaigns):
            errors["campaigns"] = ["The campaigns field must be a list of {id, name} objects."]
        if errors:
            raise validation_error(errors)
        account = self.store.upsert_account(str(api_key).strip(), campaigns)
        return json_response(self._account_view(account), 201)

    def _account_view(self, account: Account) -> dict[str, Any]:
        return {
            "api_key": account.api_key,
            "campaigns": [self.store.campaigns[c].as_dict() for c in account.campaign_ids],
            "webhook": account.webhook.as_dict() if account.webhook else None,
        }

    def webhooks_endpoint(self, request: Request, body: dict[str, Any]) -> Response:
        account = self.store.account(request.path_params["api_key"])
        if request.method == "PUT":
            url, headers = body.get("url"), body.get("headers") or {}
            events = body.get("events", list(WEBHOOK_EVENTS))
            errors: dict[str, list[str]] = {}
            if url is not None and not isinstance(url, str):
                errors["url"] = ["The url field must be a string."]
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                errors["headers"] = ["The headers field must be an object of strings."]
            if not isinstance(events, list) or any(e not in WEBHOOK_EVENTS for e in events):
                errors["events"] = [f"Events must be among {', '.join(WEBHOOK_EVENTS)}."]
            if errors:
                raise validation_error(errors)
            account.webhook = WebhookConfig(url=url, headers=dict(headers), events=list(events))
        return json_response(account.webhook.as_dict() if account.webhook else None)

    def rotate_key(self, request: Request, body: dict[str, Any]) -> Response:
        new_key = body.get("api_key") or f"rf_{self.store.new_token()}"
        account = self.store.rotate_key(request.path_params["api_key"], str(new_key))
        return json_response({"api_key": account.api_key})

    def signup(self, request: Request, body: dict[str, Any]) -> Response:
        """Someone joins through the campaign page: no API call, no rate limit, a `user.join` webhook."""
        account = self.store.account(str(body.get("api_key") or ""))
        errors: dict[str, list[str]] = {}
        campaign = self.store.campaign_of(account, body.get("campaign_id"))
        if campaign is None:
            errors["campaign_id"] = ["The selected campaign id is invalid."]
        _required_text(body, "first_name", "first name", errors)
        _required_text(body, "email", "email", errors)
        if campaign is not None and "email" not in errors and self.store.by_email(campaign, body["email"]):
            errors["email"] = ["The email has already been taken."]
        referrer: User | None = None
        code = body.get("referrer_code")
        if code:
            referrer = self.store.by_code(account, str(code))
            if referrer is None or referrer.campaign is not campaign:
                errors["referrer_code"] = ["The selected referrer code is invalid."]
        if errors or campaign is None:
            raise validation_error(errors)
        user = self.store.create_user(
            campaign,
            first_name=body["first_name"],
            email=body["email"],
            source="Referred" if referrer else "Direct",
            referrer=referrer,
            ip=body.get("ip") if isinstance(body.get("ip"), str) else "203.0.113.10",
            meta=body.get("meta") if isinstance(body.get("meta"), list) else None,
        )
        self.emit(account, "user.join", user)
        return json_response(_single(user.as_dict()), 201)

    def account_users(self, request: Request, _: dict[str, Any]) -> Response:
        """Every user of the account, oldest first; `?campaign_id=` and `?email=` narrow it and
        `?sharing=true` adds each user's `sharing` object."""
        account = self.store.account(request.path_params["api_key"])
        params = request.query_params
        filters = [Condition(k, "=", params[k]) for k in ("campaign_id", "email") if params.get(k)]
        ids = self.store.search(account, filters) if filters else account.user_ids
        sharing = params.get("sharing") in ("1", "true")
        users = self.store.users
        return json_response({"data": [users[i].control_dict(sharing=sharing) for i in ids]})

    def stats_endpoint(self, _: Request, __: dict[str, Any]) -> Response:
        # Beyond the contract's keys: the most calls one key made in any closed window (`limits.py`).
        return json_response({**self.stats.snapshot(), "peak_calls_in_any_window": self.limiter.peak})


def _fault_body(status: int, _code: str, message: str) -> Response:
    text = {429: "Too Many Attempts.", 500: "Server Error"}.get(status, message)
    return JSONResponse({"message": text}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    route = request.url.path.lstrip("/")
    if exc.status_code == 404:
        message = f"The route {route} could not be found."
    elif exc.status_code == 405:
        # Starlette names only the first route on the path; Laravel lists every method it serves.
        methods: set[str] = set()
        for candidate in request.app.routes:
            if candidate.matches(request.scope)[0] != Match.NONE:
                methods.update(getattr(candidate, "methods", None) or ())
        allowed = ", ".join(sorted(methods))
        message = (
            f"The {request.method} method is not supported for route {route}. Supported methods: {allowed}."
        )
    else:
        message = str(exc.detail)
    return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(_: Request, __: Exception) -> Response:
    return JSONResponse({"message": "Server Error"}, status_code=500)


def create_app(config: dict[str, Any] | None = None, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The emulator as an ASGI app; `config` takes the keys of `GET /_emulator/config`; `clock` is
    what the rate limit counts time with (a test may drive it)."""
    emu = ReferralFactoryEmulator(config, clock=clock)
    api, control = emu.api, emu.control
    routes = [
        Route(f"{API}/users", api(emu.list_users), methods=["GET"]),
        Route(f"{API}/users", api(emu.create_user, with_body=True), methods=["POST"]),
        Route(f"{API}/users/search", api(emu.search_users, with_body=True), methods=["POST"]),
        Route(f"{API}/users/qualification", api(emu.qualification, with_body=True), methods=["PUT"]),
        Route(f"{API}/users/{{identifier}}", api(emu.get_user), methods=["GET"]),
        Route(f"{API}/users/{{id}}", api(emu.user_by_id, with_body=True), methods=["PUT", "DELETE"]),
        Route(f"{API}/campaigns", api(emu.list_campaigns), methods=["GET"]),
        Route(f"{API}/campaigns/{{id}}", api(emu.get_campaign), methods=["GET"]),
        Route("/_emulator/reset", control(emu.reset), methods=["POST"]),
        Route("/_emulator/config", control(emu.config_endpoint, with_body=True), methods=["GET", "PUT"]),
        Route("/_emulator/accounts", control(emu.create_account, with_body=True), methods=["POST"]),
        Route(
            "/_emulator/accounts/{api_key}/webhooks",
            control(emu.webhooks_endpoint, with_body=True),
            methods=["GET", "PUT"],
        ),
        Route(
            "/_emulator/accounts/{api_key}/rotate", control(emu.rotate_key, with_body=True), methods=["POST"]
        ),
        Route("/_emulator/accounts/{api_key}/users", control(emu.account_users), methods=["GET"]),
        Route("/_emulator/signups", control(emu.signup, with_body=True), methods=["POST"]),
        Route("/_emulator/stats", control(emu.stats_endpoint), methods=["GET"]),
    ]
    app: Starlette
    middleware = [
        Middleware(
            FaultsAndStatsMiddleware,
            stats=lambda: emu.stats,
            faults=lambda: emu.config["faults"],
            error_body=_fault_body,
            routes_app=lambda: app,
        )
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.emulator = emu
    return app
