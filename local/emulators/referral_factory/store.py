"""The Referral Factory emulator's state: accounts, campaigns and users, indexed so that every API
call touches only the users it answers about, even with 100,000 users in one campaign."""

from __future__ import annotations

import random
import re
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any
from urllib.parse import quote

USER_SOURCES = ("Direct", "Referred", "Api", "Added", "Zapier", "Widget", "Popup", "Embed", "Test")
PERSON_REFERRING = "person_referring"
PERSON_INVITED = "person_invited"
WEBHOOK_EVENTS = ("user.join", "user.qualified", "reward.issued")
REFERRER_FIELDS = ("id", "code", "email")

_CODE_ALPHABET = string.ascii_letters + string.digits
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_SOCIALS = (
    "sms",
    "lineme",
    "email",
    "wechat",
    "twitter",
    "facebook",
    "linkedin",
    "telegram",
    "whatsapp",
    "messenger",
)


_second_cache: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """Laravel's default JSON date format (Referral Factory runs on Laravel), microseconds included."""
    global _second_cache  # noqa: PLW0603 - strftime per user was a third of creating one
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache = (second, prefix)
    return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


def is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value))


def as_int(value: Any) -> int | None:
    """An id as sent in JSON or a query string; bools are not ids."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class ApiError(Exception):
    """An answer in Referral Factory's error envelope: `{"message"}`, plus `errors` for a 422."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        if self.errors is None:
            return {"message": self.message}
        return {"message": self.message, "errors": self.errors}


def validation_error(errors: dict[str, list[str]]) -> ApiError:
    """Laravel's 422: the first message, "(and N more errors)", and every field listed."""
    messages = [m for ms in errors.values() for m in ms]
    message = messages[0] if messages else "The given data was invalid."
    if len(messages) > 1:
        rest = len(messages) - 1
        message += f" (and {rest} more error{'s' if rest > 1 else ''})"
    return ApiError(422, message, errors)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found.")


@dataclass(slots=True)
class WebhookConfig:
    url: str | None
    headers: dict[str, str]
    events: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "headers": dict(self.headers), "events": list(self.events)}


@dataclass(slots=True)
class Account:
    api_key: str
    campaign_ids: list[int] = field(default_factory=list)
    # Creation order; newest-first pages are slices from the end.
    user_ids: list[int] = field(default_factory=list)
    webhook: WebhookConfig | None = None


@dataclass(slots=True)
class Campaign:
    id: int
    account: Account
    name: str
    code: str
    url: str
    created_at: str
    extra: dict[str, Any]
    user_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "code": self.code,
            "url": self.url,
            "lang": "en",
            "status": "launched",
            "live": True,
            "reach": "0",
            "starts_at": None,
            "ends_at": None,
            "created_at": self.created_at,
            "users_count": len(self.user_ids),
            "fields": {
                PERSON_REFERRING: [
                    {"name": "first_name", "label": "First Name", "type": "text", "required": True},
                    {"name": "email", "label": "Email", "type": "email", "required": True},
                ],
                PERSON_INVITED: [
                    {"name": "first_name", "label": "First Name", "type": "text", "required": True},
                    {"name": "email", "label": "Email", "type": "email", "required": True},
                ],
            },
        }
        data.update(self.extra)
        return data

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(slots=True)
class User:
    id: int
    campaign: Campaign
    referrer_id: int | None
    code: str
    url: str
    first_name: str
    email: str
    source: str
    type: str
    ip: str | None
    signed_up_at: str
    meta: list[Any]
    qualified_at: str | None = None
    unsubscribed_at: str | None = None
    amount: float | int | None = None
    qualify_calls: int = 0
    referrals_count: int = 0
    converted_referrals_count: int = 0
    # Ids of the people this user invited, in creation order (None until the first one).
    invited_ids: list[int] | None = None

    def as_dict(self, *, sharing: bool = True) -> dict[str, Any]:
        """Every field of the official user structure (reference §3), plus the v1 referral counts."""
        data: dict[str, Any] = {
            "id": self.id,
            "campaign_id": self.campaign.id,
            "referrer_id": self.referrer_id,
            "code": self.code,
            "url": self.url,
            "first_name": self.first_name,
            "email": self.email,
            "reach": "0",
            "source": self.source,
            "type": self.type,
            "ip": self.ip,
            "signed_up_at": self.signed_up_at,
            "qualified_at": self.qualified_at,
            "unsubscribed_at": self.unsubscribed_at,
            "meta": list(self.meta),
            "referrals_count": self.referrals_count,
            "converted_referrals_count": self.converted_referrals_count,
        }
        if sharing:
            data["sharing"] = _sharing(self.url, self.campaign.name)
        return data

    def control_dict(self, *, sharing: bool = False) -> dict[str, Any]:
        """The control surface's view: what the product did to this user, `sharing` on request only
        (it is derived from `url` and is three quarters of a user's bytes)."""
        data = self.as_dict(sharing=sharing)
        data["amount"] = self.amount
        data["qualify_calls"] = self.qualify_calls
        return data


def _sharing(url: str, campaign_name: str) -> dict[str, Any]:
    # Built on demand rather than stored: ten links a user would cost more memory than the user.
    subject = f"Join me on {campaign_name}"
    text = f"{subject}: {url}"
    u, t, s = quote(url, safe=""), quote(text, safe=""), quote(subject, safe="")
    links = {
        "sms": f"sms:?&body={t}",
        "lineme": f"https://social-plugins.line.me/lineit/share?url={u}",
        "email": f"mailto:?subject={s}&body={t}",
        "wechat": f"weixin://dl/share?url={u}",
        "twitter": f"https://twitter.com/intent/tweet?text={t}",
        "facebook": f"https://www.facebook.com/sharer/sharer.php?u={u}",
        "linkedin": f"https://www.linkedin.com/sharing/share-offsite/?url={u}",
        "telegram": f"https://t.me/share/url?url={u}&text={s}",
        "whatsapp": f"https://wa.me/?text={t}",
        "messenger": f"fb-messenger://share/?link={u}",
    }
    return {
        "socials": [{"social": name, "url": links[name]} for name in _SOCIALS],
        "subject": subject,
        "text": text,
    }


# --- search -----------------------------------------------------------------------------------------

SEARCH_FIELDS = (
    "id",
    "campaign_id",
    "referrer_id",
    "code",
    "email",
    "first_name",
    "type",
    "source",
    "qualified",
    "ip",
)
SEARCH_OPERATORS = ("=", "!=", "in", "not in", "like")
_INT_FIELDS = ("id", "campaign_id", "referrer_id")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    operator: str
    value: Any


# Each returns the value in the form `_normalise` gives a search value, so a scan over 100,000 users
# does one cheap call per user and condition.
_GETTERS: dict[str, Callable[[User], Any]] = {
    "campaign_id": lambda u: u.campaign.id,
    "qualified": lambda u: u.qualified_at is not None,
    "email": lambda u: u.email.lower(),
}


def _getter(name: str) -> Callable[[User], Any]:
    return _GETTERS.get(name) or attrgetter(name)


def _normalise(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _INT_FIELDS:
        number = as_int(value)
        return number if number is not None else value
    if name == "qualified":
        return value in (True, 1, "1", "true", "True")
    if name == "email" and isinstance(value, str):
        return value.lower()
    return value


def _like(pattern: str) -> re.Pattern[str]:
    parts = (re.escape(p) for p in pattern.split("%"))
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _predicate(cond: Condition) -> Callable[[User], bool]:
    get, op = _getter(cond.field), cond.operator
    if op == "like":
        regex = _like(str(cond.value))
        return lambda u: regex.match(str(get(u) or "")) is not None
    if op in ("in", "not in"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        wanted = {_normalise(cond.field, v) for v in values}
        negate = op == "not in"
        return lambda u: (get(u) in wanted) != negate
    target = _normalise(cond.field, cond.value)
    if op == "=":
        return lambda u: get(u) == target
    return lambda u: get(u) != target


# --- the store --------------------------------------------------------------------------------------


class Store:
    """Accounts, campaigns and users with the indexes the API needs.

    Ids count up across the emulator's whole life, resets included, so an id the product stored
    before a reset can never name a different user afterwards.
    """

    def __init__(self, public_base_url: Callable[[], str], rng: random.Random | None = None) -> None:
        self._public_base_url = public_base_url
        self._rng = rng or random.Random()
        self._next_user_id = 1
        self._next_campaign_id = 1
        self.clear()

    def clear(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.users: dict[int, User] = {}
        self._by_campaign_email: dict[tuple[int, str], int] = {}
        self._by_code: dict[str, int] = {}
        self._campaign_codes: set[str] = set()

    # accounts and campaigns -------------------------------------------------------------------------

    def upsert_account(self, api_key: str, campaigns: Iterable[Mapping[str, Any]]) -> Account:
        """Adds the account, or adds campaigns to it; a campaign id another account owns is a 409."""
        specs = list(campaigns)
        account = self.accounts.get(api_key)
        for spec in specs:
            cid = as_int(spec.get("id"))
            existing = self.campaigns.get(cid) if cid is not None else None
            if existing is not None and existing.account is not account:
                raise ApiError(409, f"Campaign {cid} belongs to another account.")
        if account is None:
            account = Account(api_key=api_key)
            self.accounts[api_key] = account
        for spec in specs:
            self._upsert_campaign(account, spec)
        return account

    def _upsert_campaign(self, account: Account, spec: Mapping[str, Any]) -> Campaign:
        cid = as_int(spec.get("id"))
        extra = {k: v for k, v in spec.items() if k not in ("id", "name", "code", "url")}
        if cid is not None and cid in self.campaigns:
            campaign = self.campaigns[cid]
            if "name" in spec:
                campaign.name = str(spec["name"])
            campaign.extra.update(extra)
            return campaign
        if cid is None:
            cid = self._next_campaign_id
        self._next_campaign_id = max(self._next_campaign_id, cid + 1)
        code = str(spec.get("code") or self._new_code(self._campaign_codes, length=6))
        self._campaign_codes.add(code)
        campaign = Campaign(
            id=cid,
            account=account,
            name=str(spec.get("name") or f"Campaign {cid}"),
            code=code,
            url=str(spec.get("url") or f"{self._public_base_url()}/{code}"),
            created_at=now_iso(),
            extra=extra,
        )
        self.campaigns[cid] = campaign
        account.campaign_ids.append(cid)
        return campaign

    def rotate_key(self, old_key: str, new_key: str) -> Account:
        """Regenerating the token deactivates the old one (reference §1)."""
        account = self.account(old_key)
        if new_key in self.accounts:
            raise ApiError(409, "That API key is already in use.")
        del self.accounts[old_key]
        account.api_key = new_key
        self.accounts[new_key] = account
        return account

    def account(self, api_key: str) -> Account:
        account = self.accounts.get(api_key)
        if account is None:
            raise not_found("Account")
        return account

    def campaign_of(self, account: Account, identifier: Any) -> Campaign | None:
        """The account's campaign by id (or code); another account's campaign is as good as absent."""
        cid = as_int(identifier)
        campaign = self.campaigns.get(cid) if cid is not None else None
        if campaign is None and isinstance(identifier, str):
            campaign = next(
                (self.campaigns[c] for c in account.campaign_ids if self.campaigns[c].code == identifier),
                None,
            )
        if campaign is None or campaign.account is not account:
            return None
        return campaign

    # users: reads -----------------------------------------------------------------------------------

    def user_of(self, account: Account, user_id: int | None) -> User | None:
        user = self.users.get(user_id) if user_id is not None else None
        if user is None or user.campaign.account is not account:
            return None
        return user

    def by_code(self, account: Account, code: str) -> User | None:
        return self.user_of(account, self._by_code.get(code))

    def by_email(self, campaign: Campaign, email: str) -> User | None:
        return self.users.get(self._by_campaign_email.get((campaign.id, email.lower()), -1))

    def by_email_any_campaign(self, account: Account, email: str) -> User | None:
        """The newest of the account's users with this email; campaigns are few, users many."""
        found = [self.by_email(self.campaigns[c], email) for c in account.campaign_ids]
        users = [u for u in found if u is not None]
        return max(users, key=lambda u: u.id) if users else None

    def find(self, account: Account, identifier: str, campaign: Campaign | None = None) -> User | None:
        """`GET /users/{identifier}`: a numeric id, an email, or a code."""
        if "@" in identifier:
            if campaign is not None:
                return self.by_email(campaign, identifier)
            return self.by_email_any_campaign(account, identifier)
        user = None
        number = as_int(identifier)
        if number is not None:
            user = self.user_of(account, number)
        if user is None:
            user = self.by_code(account, identifier)
        if user is not None and campaign is not None and user.campaign is not campaign:
            return None
        return user

    def search(
        self, account: Account, required: Sequence[Condition], any_of: Sequence[Condition] = ()
    ) -> list[int]:
        """Ids, in creation order, of users matching every `required` condition and, when `any_of` is
        not empty, at least one of those; candidates come from the narrowest index `required` allows."""
        candidates, consumed = self._narrowest(account, required)
        checks = [_predicate(c) for c in required if c is not consumed]
        if any_of:
            some = [_predicate(c) for c in any_of]
            checks.append(lambda u: any(p(u) for p in some))
        if not checks:
            return list(candidates)
        check = checks[0] if len(checks) == 1 else (lambda u: all(p(u) for p in checks))
        users = self.users
        return [uid for uid in candidates if check(users[uid])]

    def _narrowest(
        self, account: Account, conditions: Sequence[Condition]
    ) -> tuple[Sequence[int], Condition | None]:
        """The smallest indexed candidate list and the condition it satisfies exactly (no need to
        check that one again per user)."""
        best: Sequence[int] = account.user_ids
        consumed: Condition | None = None
        for cond in conditions:
            found = self._indexed(account, cond) if cond.operator == "=" else None
            if found is not None and len(found) <= len(best):
                best, consumed = found, cond
        return best, consumed

    def _indexed(self, account: Account, cond: Condition) -> Sequence[int] | None:
        if cond.field == "id":
            user = self.user_of(account, as_int(cond.value))
            return [user.id] if user else []
        if cond.field == "code" and isinstance(cond.value, str):
            user = self.by_code(account, cond.value)
            return [user.id] if user else []
        if cond.field == "referrer_id" and cond.value is not None:
            referrer = self.user_of(account, as_int(cond.value))
            return (referrer.invited_ids or []) if referrer else []
        if cond.field == "campaign_id":
            campaign = self.campaign_of(account, cond.value)
            return campaign.user_ids if campaign else []
        if cond.field == "email" and isinstance(cond.value, str):
            # One email may be in several campaigns: take them all, in creation order.
            return sorted(
                u.id
                for c in account.campaign_ids
                if (u := self.by_email(self.campaigns[c], cond.value)) is not None
            )
        return None

    # users: writes ----------------------------------------------------------------------------------

    def create_user(
        self,
        campaign: Campaign,
        *,
        first_name: str,
        email: str,
        source: str,
        referrer: User | None = None,
        ip: str | None = None,
        meta: list[Any] | None = None,
    ) -> User:
        key = (campaign.id, email.lower())
        if key in self._by_campaign_email:
            raise validation_error({"email": ["The email has already been taken."]})
        code = self._new_code(self._by_code)
        user = User(
            id=self._next_user_id,
            campaign=campaign,
            referrer_id=referrer.id if referrer else None,
            code=code,
            url=f"{self._public_base_url()}/{campaign.code}?code={code}",
            first_name=first_name,
            email=email,
            source=source,
            type=PERSON_INVITED if referrer else PERSON_REFERRING,
            ip=ip,
            signed_up_at=now_iso(),
            meta=list(meta or []),
        )
        self._next_user_id += 1
        self.users[user.id] = user
        self._by_campaign_email[key] = user.id
        self._by_code[code] = user.id
        campaign.user_ids.append(user.id)
        campaign.account.user_ids.append(user.id)
        if referrer is not None:
            if referrer.invited_ids is None:
                referrer.invited_ids = []
            referrer.invited_ids.append(user.id)
            referrer.referrals_count += 1
        return user

    def update_user(self, user: User, changes: Mapping[str, Any]) -> User:
        if "email" in changes:
            email = str(changes["email"])
            old_key = (user.campaign.id, user.email.lower())
            new_key = (user.campaign.id, email.lower())
            if new_key != old_key:
                if new_key in self._by_campaign_email:
                    raise validation_error({"email": ["The email has already been taken."]})
                del self._by_campaign_email[old_key]
                self._by_campaign_email[new_key] = user.id
            user.email = email
        if "first_name" in changes:
            user.first_name = str(changes["first_name"])
        if "meta" in changes:
            user.meta = list(changes["meta"] or [])
        if "unsubscribed" in changes:
            user.unsubscribed_at = now_iso() if changes["unsubscribed"] else None
        return user

    def delete_user(self, user: User) -> None:
        # O(users) list removals: deletes are rare and the lists stay compact for paging.
        del self.users[user.id]
        del self._by_campaign_email[(user.campaign.id, user.email.lower())]
        del self._by_code[user.code]
        user.campaign.user_ids.remove(user.id)
        user.campaign.account.user_ids.remove(user.id)
        referrer = self.users.get(user.referrer_id) if user.referrer_id is not None else None
        if referrer is not None and referrer.invited_ids is not None:
            referrer.invited_ids.remove(user.id)
            referrer.referrals_count -= 1
            if user.qualified_at is not None:
                referrer.converted_referrals_count -= 1

    def qualify(self, user: User, amount: float | int | None) -> bool:
        """Qualifies a pending user; a qualified one stays exactly as its first qualification left it.

        Returns whether anything changed.
        """
        if user.qualified_at is not None:
            return False
        user.qualified_at = now_iso()
        user.amount = amount
        referrer = self.referrer_of(user)
        if referrer is not None:
            referrer.converted_referrals_count += 1
        return True

    def unqualify(self, user: User) -> bool:
        """Back to Pending, as for a refund (reference §4)."""
        if user.qualified_at is None:
            return False
        user.qualified_at = None
        user.amount = None
        referrer = self.referrer_of(user)
        if referrer is not None:
            referrer.converted_referrals_count -= 1
        return True

    def referrer_of(self, user: User) -> User | None:
        return self.users.get(user.referrer_id) if user.referrer_id is not None else None

    def new_token(self) -> str:
        return "".join(self._rng.choices(_CODE_ALPHABET, k=32))

    def _new_code(self, taken: Mapping[str, Any] | set[str], length: int = 8) -> str:
        while True:
            code = "".join(self._rng.choices(_CODE_ALPHABET, k=length))
            # All-digit codes would read as user ids in `GET /users/{identifier}`.
            if not code.isdigit() and code not in taken:
                return code
