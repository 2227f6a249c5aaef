"""What travels on the queues: every message kind, every logical queue name, the connection events,
and `Deferred`, a handler's way of saying "not now" (the consumers' hand-back loop catches it).

Producers and consumers both import from here, so a kind is spelled once. A logical queue name is
what due work records (`shared/records/due_work.py`) and what each function's settings map to a URL.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# -- logical queues ---------------------------------------------------------------------------------
SIGNUP_QUEUE = "signup"
SYNC_QUEUE = "sync"
SYNC_PAGES_QUEUE = "sync_pages"
INTERCOM_EVENTS_QUEUE = "intercom_events"

# -- the signup queue -------------------------------------------------------------------------------
# A Referral Factory webhook (user.join, user.qualified, reward.issued), or a signup to push again.
RF_WEBHOOK = "rf.webhook"
# Scheduled: list a campaign's recent users and push any signup the webhooks missed.
CATCH_UP = "signup.catch_up"

# -- the Intercom events queue ----------------------------------------------------------------------
INTERCOM_NOTIFICATION = "intercom.notification"
INTERCOM_UNINSTALL = "intercom.uninstall"
# Scheduled: search Intercom for qualifying contacts the notifications missed.
QUALIFICATION_SWEEP = "qualification.sweep"

# -- the sync queues --------------------------------------------------------------------------------
SYNC_PAGE = "sync.page"  # the coordinator's next search page
SYNC_SCHEDULED = "sync.scheduled"  # an ongoing sync's pass, from due work
SYNC_CHUNK = "sync.chunk"  # a part of a page, for the workers (the sync pages queue)


class _SyncMessage(BaseModel):
    """A sync queue's message. It travels as exactly the JSON it had before it was a model (messages
    in flight during a deploy are read by the other version): `body()` gives the keys it was built or
    received with, its kind always, and keeps keys it does not name."""

    model_config = ConfigDict(extra="allow")

    kind: str

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.add("kind")

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class SyncPage(_SyncMessage):
    """The coordinator's continuation: page the sync's search on from its checkpoint."""

    kind: str = SYNC_PAGE
    sync_id: str


class SyncChunk(_SyncMessage):
    """A part of a search page for the workers, or the rest a worker handed on (`attempts` and
    `requeues` only then: a page's chunks are sent without them)."""

    kind: str = SYNC_CHUNK
    sync_id: str
    chunk_id: str
    page: int | None = None
    # Slim Intercom contacts (`shared.domain.sync_plan.page_contact`): whatever attributes are mapped.
    contacts: list[dict[str, Any]]
    # Failed attempts so far, by contact id.
    attempts: dict[str, int] = Field(default_factory=dict)
    # How often the chain was handed back without progress.
    requeues: int = 0


class SyncScheduled(BaseModel):
    """An ongoing sync's due message (due work adds `kind` and `scheduled_at` when it fires): a pass
    over the contacts changed since the previous one started."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    campaign_id: str
    audience: str
    segment_id: str | None = None
    since: int | None = None


# -- connection events ------------------------------------------------------------------------------
CONNECTION_CONNECTED: Final = "connection.connected"
CONNECTION_REVOKED: Final = "connection.revoked"
CONNECTION_DISCONNECTED: Final = "connection.disconnected"
CONNECTION_EVENTS = (CONNECTION_CONNECTED, CONNECTION_REVOKED, CONNECTION_DISCONNECTED)
# Every change of a connection goes to each of these: syncs pause and resume, signups wait and are pushed.
CONNECTION_EVENT_QUEUES = (SIGNUP_QUEUE, SYNC_QUEUE)


class ConnectionConnected(BaseModel):
    kind: Literal["connection.connected"] = CONNECTION_CONNECTED
    account_id: str
    workspace_id: str
    at: int


class ConnectionRevoked(BaseModel):
    kind: Literal["connection.revoked"] = CONNECTION_REVOKED
    account_id: str
    reason: str
    at: int


class ConnectionDisconnected(BaseModel):
    kind: Literal["connection.disconnected"] = CONNECTION_DISCONNECTED
    account_id: str
    at: int


# A connection event as published (`model_dump()` is the message body, fields in this order).
ConnectionEvent = ConnectionConnected | ConnectionRevoked | ConnectionDisconnected


class Deferred(Exception):
    """Not now: hand the message back to the queue for `delay_s` seconds (never sleep in Lambda)."""

    def __init__(self, reason: str, delay_s: int) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
