"""An account's Intercom connection: its state, its token (KMS-encrypted), and the workspace → account
routing that webhooks use. Every change of state is published as an event (`connection.connected`,
`connection.revoked`, `connection.disconnected`) for the capabilities that act on it: syncs pause and
resume, signups wait and are pushed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from shared import keys, messages
from shared.aws.crypto import Sealed
from shared.aws.store import Attr, ConditionFailed
from shared.domain.errors import Conflict

if TYPE_CHECKING:
    from shared.aws.crypto import SecretBox
    from shared.aws.store import Store

ConnectionStatus = Literal["connected", "revoked", "disconnected"]
CONNECTED: Final = "connected"
REVOKED: Final = "revoked"
DISCONNECTED: Final = "disconnected"
# What work that needs Intercom reports when the connection is not usable, or when Intercom refused
# its token (and the API's 409 codes for them).
NOT_CONNECTED, ACCESS_REVOKED = "not_connected", "connection_revoked"
# Why a connection was revoked (`revoked_reason`).
REFUSED_BY_INTERCOM, UNINSTALLED = "401 from Intercom", "uninstalled"

Publish = Callable[[messages.ConnectionEvent], None]


class Connection(BaseModel):
    """An account's Intercom connection (`keys.connection_key`). Attributes it does not name (a deployed
    table may hold them) are kept."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    status: ConnectionStatus
    workspace_id: str
    workspace_name: str | None = None
    region: str | None = None
    connected_at: int | None = None
    revoked_at: int | None = None
    revoked_reason: str | None = None
    disconnected_at: int | None = None
    # KMS-encrypted, the account id as context; removed on disconnect.
    token: Sealed | None = Field(default=None, repr=False)


class ConnectionView(TypedDict):
    """`GET /v1/intercom/connection`: never the token."""

    status: ConnectionStatus
    workspace_id: str | None
    workspace_name: str | None
    region: str | None
    connected_at: int | None


class WorkspaceConnectedElsewhere(Conflict):
    code = "workspace_connected_elsewhere"


class NotConnected(Conflict):
    """The caller asked for something that needs Intercom, and the account has no usable connection."""

    code = NOT_CONNECTED

    def __init__(self) -> None:
        super().__init__("Connect an Intercom workspace first (POST /v1/intercom/connect).")


class AccessRevoked(Conflict):
    """The account's Intercom token stopped working: only connecting again helps."""

    code = ACCESS_REVOKED

    def __init__(self) -> None:
        super().__init__("Intercom access was revoked; connect the workspace again.")


@dataclass(frozen=True)
class WorkspaceInfo:
    id: str
    name: str | None
    region: str


def usable(connection: Connection | None) -> TypeGuard[Connection]:
    """Whether a stored connection can call Intercom now: there is one, and it is connected (neither
    revoked nor disconnected). The one place this rule is written."""
    return connection is not None and connection.status == CONNECTED


def public_view(connection: Connection | None) -> ConnectionView:
    if connection is None or connection.status == DISCONNECTED:
        return {
            "status": DISCONNECTED,
            "workspace_id": None,
            "workspace_name": None,
            "region": None,
            "connected_at": None,
        }
    return {
        "status": connection.status,
        "workspace_id": connection.workspace_id,
        "workspace_name": connection.workspace_name,
        "region": connection.region,
        "connected_at": connection.connected_at,
    }


class Connections:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        publish: Publish,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.box = box
        self.publish = publish
        self.clock = clock

    def get(self, account_id: str) -> Connection | None:
        item = self.store.get(*keys.connection_key(account_id))
        return None if item is None else Connection.model_validate(item)

    def account_for_workspace(self, workspace_id: str) -> str | None:
        owner = self.store.get(*keys.owner_key(workspace_id), consistent=False)
        return owner["account_id"] if owner else None

    def connect(self, account_id: str, workspace: WorkspaceInfo, token: str) -> Connection:
        """Store a working connection, replacing any earlier one of this account."""
        owner_pk, owner_sk = keys.owner_key(workspace.id)
        try:
            # A workspace routes to one account: claim it unless another account holds it.
            self.store.put(
                {"pk": owner_pk, "sk": owner_sk, "account_id": account_id, "workspace_id": workspace.id},
                condition=Attr("pk").not_exists() | Attr("account_id").eq(account_id),
            )
        except ConditionFailed as exc:
            raise WorkspaceConnectedElsewhere(
                "This Intercom workspace is already connected to another account; disconnect it there first."
            ) from exc
        previous = self.get(account_id)
        if previous and previous.workspace_id != workspace.id:
            self._release(previous.workspace_id, account_id)
        now = int(self.clock())
        connection = Connection(
            account_id=account_id,
            status=CONNECTED,
            workspace_id=workspace.id,
            workspace_name=workspace.name,
            region=workspace.region,
            connected_at=now,
            token=self.box.encrypt(token, account_id),
        )
        pk, sk = keys.connection_key(account_id)
        # A new connection replaces the old item whole: what was read of it before is not kept.
        self.store.put({"pk": pk, "sk": sk, **connection.model_dump(exclude_unset=True)})
        self.publish(messages.ConnectionConnected(account_id=account_id, workspace_id=workspace.id, at=now))
        return connection

    def mark_revoked(self, account_id: str, reason: str) -> bool:
        """The token stopped working (uninstall, or any 401 on a token that worked). True if this
        call changed the state, so exactly one caller publishes the event."""
        try:
            self.store.update(
                *keys.connection_key(account_id),
                {"status": REVOKED, "revoked_at": int(self.clock()), "revoked_reason": reason},
                condition=Attr("status").eq(CONNECTED),
            )
        except ConditionFailed:
            return False
        self.publish(messages.ConnectionRevoked(account_id=account_id, reason=reason, at=int(self.clock())))
        return True

    def revoked_by_intercom(self, account_id: str) -> bool:
        """Intercom answered 401 on the stored token: `mark_revoked` with the one reason for it."""
        return self.mark_revoked(account_id, REFUSED_BY_INTERCOM)

    def disconnect(self, account_id: str) -> Connection | None:
        """Forget the token and the workspace routing; what was synced stays in both systems."""
        previous = self.get(account_id)
        if previous is None or previous.status == DISCONNECTED:
            return previous
        self.store.update(
            *keys.connection_key(account_id),
            {"status": DISCONNECTED, "disconnected_at": int(self.clock())},
            remove=("token",),
        )
        self._release(previous.workspace_id, account_id)
        self.publish(messages.ConnectionDisconnected(account_id=account_id, at=int(self.clock())))
        return previous

    def _release(self, workspace_id: str, account_id: str) -> None:
        # Another account may own it by now: then it is not ours to release.
        with contextlib.suppress(ConditionFailed):
            self.store.delete_if(*keys.owner_key(workspace_id), condition=Attr("account_id").eq(account_id))
