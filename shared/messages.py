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


class _Message(BaseModel):
    """A queue message. It travels as exactly the JSON it had before it was a model (messages in
    flight during a deploy are read by the other version): `body()` gives the keys it was built or
    received with, in the order its fields are declared (each model declares `kind` where its
    producers put it), its kind always, and keeps keys it does not name (the hand-back's `requeues`)."""

    # Built on first use, not at import: the webhook receivers import this module on their cold start.
    model_config = ConfigDict(extra="allow", defer_build=True)

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.add("kind")

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# -- the signup queue -------------------------------------------------------------------------------
# A Referral Factory webhook (user.join, user.qualified, reward.issued), or a signup to push again.
RF_WEBHOOK: Final = "rf.webhook"
# Scheduled: list a campaign's recent users and push any signup the webhooks missed.
CATCH_UP: Final = "signup.catch_up"

# -- the Intercom events queue ----------------------------------------------------------------------
INTERCOM_NOTIFICATION: Final = "intercom.notification"
INTERCOM_UNINSTALL: Final = "intercom.uninstall"
# Scheduled: search Intercom for qualifying contacts the notifications missed.
QUALIFICATION_SWEEP: Final = "qualification.sweep"

RfEvent = Literal["user.join", "user.qualified", "reward.issued"]


class RfWebhook(_Message):
    """A Referral Factory event: from the webhook receiver (`shared/api/routes/rf_webhooks.py`
    `message_for`), or a signup pushed again (`via` "reconnect", "catch_up" or "retry": no email, no
    `received_at`). It names the user by id, or by email with the campaign."""

    kind: Literal["rf.webhook"] = RF_WEBHOOK
    account_id: str
    event: RfEvent
    rf_user_id: str | None = None
    email: str | None = None
    campaign_id: str | None = None
    via: str | None = None
    received_at: int | None = None


class CatchUp(_Message):
    """A campaign's scheduled catch-up, as due work fires it (`CampaignStore.put_settings` records it)."""

    account_id: str
    campaign_id: str
    kind: Literal["signup.catch_up"] = CATCH_UP
    scheduled_at: int | None = None


class IntercomNotification(_Message):
    """A topic notification for a contact (or a company), routed to its account by the receiver
    (`shared/api/routes/intercom_webhooks.py`)."""

    kind: Literal["intercom.notification"] = INTERCOM_NOTIFICATION
    account_id: str
    app_id: str
    notification_id: str
    topic: str
    # The contact as Intercom sent it, without the sub-lists nothing reads (`Contact` reads it); for
    # `company.*` topics the company, and for `company.contact.attached` both (`company`, `contact`).
    item: dict[str, Any]
    # Its attributes were left out (too big for SQS): the contact is read back from Intercom.
    trimmed: bool = False
    created_at: int | None = None
    received_at: float | None = None


class IntercomUninstall(_Message):
    """Intercom's notice that a workspace uninstalled the app (confirmed behind the queue)."""

    kind: Literal["intercom.uninstall"] = INTERCOM_UNINSTALL
    app_id: str
    received_at: int | None = None


class QualificationSweep(_Message):
    """A campaign's scheduled qualification sweep as due work fires it, or the rest of one that did
    not finish (`shared/flows/sweep.py`): then with where it stopped."""

    account_id: str
    campaign_id: str
    kind: Literal["qualification.sweep"] = QUALIFICATION_SWEEP
    scheduled_at: int | None = None
    # A continuation's: when the sweep began, what it searched from, the plan and page it is at.
    sweep_started_at: int | None = None
    since: int | None = None
    plan: int = 0
    cursor: str | None = None


# -- the sync queues --------------------------------------------------------------------------------
SYNC_PAGE = "sync.page"  # the coordinator's next search page
SYNC_SCHEDULED = "sync.scheduled"  # an ongoing sync's pass, from due work
SYNC_CHUNK = "sync.chunk"  # a part of a page, for the workers (the sync pages queue)


class _SyncMessage(_Message):
    """A sync queue's message."""

    kind: str


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

    model_config = ConfigDict(extra="allow", defer_build=True)

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


class _Event(BaseModel):
    # Built on first use, as the queue messages are (`_Message`).
    model_config = ConfigDict(defer_build=True)


class ConnectionConnected(_Event):
    kind: Literal["connection.connected"] = CONNECTION_CONNECTED
    account_id: str
    workspace_id: str
    at: int


class ConnectionRevoked(_Event):
    kind: Literal["connection.revoked"] = CONNECTION_REVOKED
    account_id: str
    reason: str
    at: int
    # The workspace whose token stopped working; absent in an event published before an account could
    # connect several workspaces (then it concerns the account's only one).
    workspace_id: str | None = None


class ConnectionDisconnected(_Event):
    kind: Literal["connection.disconnected"] = CONNECTION_DISCONNECTED
    account_id: str
    at: int
    # The workspace disconnected; absent as in `ConnectionRevoked`.
    workspace_id: str | None = None


# A connection event as published (`model_dump()` is the message body, fields in this order).
ConnectionEvent = ConnectionConnected | ConnectionRevoked | ConnectionDisconnected


class Deferred(Exception):
    """Not now: hand the message back to the queue for `delay_s` seconds (never sleep in Lambda)."""

    def __init__(self, reason: str, delay_s: int) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
