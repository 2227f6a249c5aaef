"""An account's Intercom connections, one per workspace it connected: each one's state and token
(KMS-encrypted), the workspace → account routing that webhooks use, and which workspace each of the
account's campaigns uses. Every change of state is published as an event (`connection.connected`,
`connection.revoked`, `connection.disconnected`, each naming its workspace) for the capabilities that
act on it: syncs pause and resume, signups wait and are pushed.

An account stored before it could connect several workspaces has one item under the old key
(`keys.connection_key`); the first read of the account's connections moves it to its workspace's key,
after binding the account's campaigns to that workspace (docs/data-model.md, "Several workspaces").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from shared import keys, messages
from shared.aws.crypto import Sealed
from shared.aws.store import Attr, ConditionFailed
from shared.domain.errors import Conflict, FieldError, NotFound, ValidationFailed, field_error
from shared.records.campaigns import CampaignStore

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    """An account's connection of one Intercom workspace (`keys.workspace_connection_key`). Attributes
    it does not name (a deployed table may hold them) are kept."""

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


class WorkspaceView(TypedDict):
    """One entry of `GET /v1/intercom/connections`: a workspace the account connected, and the
    campaigns that use it."""

    workspace_id: str
    workspace_name: str | None
    region: str | None
    status: ConnectionStatus
    connected_at: int | None
    campaign_ids: list[str]


class WorkspaceConnectedElsewhere(Conflict):
    code = "workspace_connected_elsewhere"


class NotConnected(Conflict):
    """The caller asked for something that needs Intercom, and the account has no usable connection."""

    code = NOT_CONNECTED

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "Connect an Intercom workspace first (POST /v1/intercom/connect).")


class AccessRevoked(Conflict):
    """The account's Intercom token stopped working: only connecting again helps."""

    code = ACCESS_REVOKED

    def __init__(self) -> None:
        super().__init__("Intercom access was revoked; connect the workspace again.")


class SeveralWorkspaces(Conflict):
    """A single-connection route asked of an account with several workspaces: `details` name them."""

    code = "several_workspaces"

    def __init__(self, workspaces: Sequence[Connection]) -> None:
        super().__init__(
            f"This account has {len(workspaces)} Intercom workspaces; use GET /v1/intercom/connections "
            "and the routes that name a workspace.",
            details=[_named(c) for c in workspaces],
        )


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"

    def __init__(self, workspace_id: str) -> None:
        super().__init__(f"This account has no Intercom workspace {workspace_id}.")


def _named(connection: Connection) -> FieldError:
    name = f" ({connection.workspace_name})" if connection.workspace_name else ""
    return field_error("workspace_id", f"{connection.workspace_id}{name} is {connection.status}")


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


def workspace_view(connection: Connection, campaign_ids: list[str]) -> WorkspaceView:
    return {
        "workspace_id": connection.workspace_id,
        "workspace_name": connection.workspace_name,
        "region": connection.region,
        "status": connection.status,
        "connected_at": connection.connected_at,
        "campaign_ids": sorted(campaign_ids),
    }


def attached(connections: Sequence[Connection]) -> list[Connection]:
    """Those not disconnected: connected or revoked. Several of these make an account one with
    several workspaces (`SeveralWorkspaces`, `?workspace_id=` required)."""
    return [c for c in connections if c.status != DISCONNECTED]


def default_workspace(connections: Sequence[Connection]) -> str | None:
    """The workspace a campaign bound to none uses: the account's only one not disconnected, else its
    only one at all; None when that is not one workspace."""
    candidates = attached(connections) or list(connections)
    return candidates[0].workspace_id if len(candidates) == 1 else None


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

    # -- reading -----------------------------------------------------------------------------------
    def all(self, account_id: str) -> list[Connection]:
        """Every workspace the account connected, disconnected ones included, oldest first."""
        found: dict[str, Connection] = {}
        legacy: dict[str, Any] | None = None
        for item in self.store.query_all(keys.account_pk(account_id), sk_prefix=keys.CONNECTIONS_PREFIX):
            if (item["pk"], item["sk"]) == keys.connection_key(account_id):
                legacy = item
                continue
            connection = Connection.model_validate(item)
            found[connection.workspace_id] = connection
        if legacy is not None:
            migrated = self._migrate(account_id, legacy)
            found.setdefault(migrated.workspace_id, migrated)
        return sorted(found.values(), key=lambda c: (c.connected_at or 0, c.workspace_id))

    def get(self, account_id: str, workspace_id: str) -> Connection | None:
        item = self.store.get(*keys.workspace_connection_key(account_id, workspace_id))
        if item is not None:
            return Connection.model_validate(item)
        if self.store.get(*keys.connection_key(account_id)) is None:
            return None
        # Stored before several workspaces: `all` moves it to its workspace's key.
        return next((c for c in self.all(account_id) if c.workspace_id == workspace_id), None)

    def sole(self, account_id: str) -> Connection | None:
        """The account's one workspace not disconnected, for the routes that know only one; None when
        it has none; `SeveralWorkspaces` when it has more."""
        current = attached(self.all(account_id))
        if len(current) > 1:
            raise SeveralWorkspaces(current)
        return current[0] if current else None

    def chosen(self, account_id: str, workspace_id: str | None) -> Connection:
        """The workspace a request names (`?workspace_id=`, a campaign's settings), or the account's
        only one when it names none: `WorkspaceNotFound` for one the account does not have (or has
        disconnected), 422 naming `workspace_id` when it has several and named none, `NotConnected`
        when it has none."""
        current = attached(self.all(account_id))
        if workspace_id is not None:
            named = next((c for c in current if c.workspace_id == workspace_id), None)
            if named is None:
                raise WorkspaceNotFound(workspace_id)
            return named
        if len(current) > 1:
            names = ", ".join(c.workspace_id for c in current)
            raise ValidationFailed(
                "Name the Intercom workspace: this account has several.",
                details=[
                    field_error("workspace_id", f"required: the account has several workspaces ({names})")
                ],
            )
        if not current:
            raise NotConnected
        return current[0]

    def account_for_workspace(self, workspace_id: str) -> str | None:
        owner = self.store.get(*keys.owner_key(workspace_id), consistent=False)
        return owner["account_id"] if owner else None

    # -- which workspace a campaign uses -------------------------------------------------------------
    def campaign_workspaces(self, account_id: str) -> dict[str, str | None]:
        """Each configured campaign of the account and the workspace it uses (`workspace_of`)."""
        bindings = CampaignStore(self.store).bindings(account_id)
        if all(bindings.values()):
            return bindings
        fallback = default_workspace(self.all(account_id))
        return {campaign_id: bound or fallback for campaign_id, bound in bindings.items()}

    def workspace_of(self, account_id: str, campaign_id: str) -> str | None:
        """The workspace the campaign uses: the one it is bound to, or, for settings saved before
        campaigns were bound (or none saved), the account's only workspace (`default_workspace`)."""
        config = CampaignStore(self.store).get(account_id, campaign_id)
        if config is not None and config.workspace_id:
            return config.workspace_id
        return default_workspace(self.all(account_id))

    def for_campaign(self, account_id: str, campaign_id: str) -> Connection | None:
        """The connection of the workspace the campaign uses, None when it uses none the account has."""
        workspace_id = self.workspace_of(account_id, campaign_id)
        return self.get(account_id, workspace_id) if workspace_id else None

    # -- changing ------------------------------------------------------------------------------------
    def connect(self, account_id: str, workspace: WorkspaceInfo, token: str) -> Connection:
        """Store a working connection of the workspace: added beside the account's others, or, for one
        it has already, its new token (the event resumes what waited for it)."""
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
        self._bind_unbound_campaigns(account_id)
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
        pk, sk = keys.workspace_connection_key(account_id, workspace.id)
        # A new connection replaces the workspace's old item whole: what was read of it is not kept.
        self.store.put({"pk": pk, "sk": sk, **connection.model_dump(exclude_unset=True)})
        self.publish(messages.ConnectionConnected(account_id=account_id, workspace_id=workspace.id, at=now))
        return connection

    def mark_revoked(self, account_id: str, workspace_id: str, reason: str) -> bool:
        """The workspace's token stopped working (uninstall, or any 401 on a token that worked). True
        if this call changed the state, so exactly one caller publishes the event."""
        if self.get(account_id, workspace_id) is None:  # (and an old item is moved first)
            return False
        try:
            self.store.update(
                *keys.workspace_connection_key(account_id, workspace_id),
                {"status": REVOKED, "revoked_at": int(self.clock()), "revoked_reason": reason},
                condition=Attr("status").eq(CONNECTED),
            )
        except ConditionFailed:
            return False
        self.publish(
            messages.ConnectionRevoked(
                account_id=account_id, reason=reason, at=int(self.clock()), workspace_id=workspace_id
            )
        )
        return True

    def revoked_by_intercom(self, account_id: str, workspace_id: str) -> bool:
        """Intercom answered 401 on the workspace's token: `mark_revoked` with the one reason for it."""
        return self.mark_revoked(account_id, workspace_id, REFUSED_BY_INTERCOM)

    def disconnect(self, account_id: str, workspace_id: str) -> Connection | None:
        """Forget the workspace's token and routing; what was synced stays in both systems, and the
        campaigns bound to it stay bound (nothing of theirs goes to another workspace unasked)."""
        previous = self.get(account_id, workspace_id)
        if previous is None or previous.status == DISCONNECTED:
            return previous
        self._bind_unbound_campaigns(account_id)
        self.store.update(
            *keys.workspace_connection_key(account_id, workspace_id),
            {"status": DISCONNECTED, "disconnected_at": int(self.clock())},
            remove=("token",),
        )
        self._release(workspace_id, account_id)
        self.publish(
            messages.ConnectionDisconnected(
                account_id=account_id, at=int(self.clock()), workspace_id=workspace_id
            )
        )
        return previous

    # -- before several workspaces ---------------------------------------------------------------------
    def _bind_unbound_campaigns(self, account_id: str) -> None:
        """Before the account's workspaces change, a campaign bound to none (saved before campaigns
        were bound) is bound to the workspace it uses now, so the change never moves it elsewhere."""
        campaigns = CampaignStore(self.store)
        if all(campaigns.bindings(account_id).values()):
            return
        current = default_workspace(self.all(account_id))
        if current is not None:
            campaigns.bind_unbound(account_id, current)

    def _migrate(self, account_id: str, legacy: dict[str, Any]) -> Connection:
        """Move an account's one connection stored before several workspaces to its workspace's key,
        its campaigns bound to that workspace first. Idempotent: a crash anywhere leaves the old item
        for the next read to finish moving, and concurrent readers move it once."""
        connection = Connection.model_validate(legacy)
        CampaignStore(self.store).bind_unbound(account_id, connection.workspace_id)
        pk, sk = keys.workspace_connection_key(account_id, connection.workspace_id)
        try:
            self.store.transact(
                [
                    {"put": {**legacy, "pk": pk, "sk": sk}, "if_absent": True},
                    {"delete": keys.connection_key(account_id)},
                ]
            )
        except ConditionFailed:
            # Moved by another reader (or the workspace connected again since): the new item stands.
            self.store.delete(*keys.connection_key(account_id))
            moved = self.store.get(pk, sk)
            return Connection.model_validate(moved) if moved else connection
        return connection

    def _release(self, workspace_id: str, account_id: str) -> None:
        # Another account may own it by now: then it is not ours to release.
        with contextlib.suppress(ConditionFailed):
            self.store.delete_if(*keys.owner_key(workspace_id), condition=Attr("account_id").eq(account_id))
