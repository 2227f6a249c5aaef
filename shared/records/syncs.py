"""Sync records: state, counters, the coordinator's checkpoint, the one-running-sync lock, and pages
parked while the connection is revoked (docs/data-model.md)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.aws.store import Attr, ConditionFailed
from shared.domain.errors import Conflict
from shared.messages import SyncChunk

if TYPE_CHECKING:
    from shared.aws.store import Store

QUEUED, RUNNING, COMPLETED, FAILED, PAUSED, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "paused",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING, PAUSED)
COUNTERS = ("processed", "created", "updated", "skipped", "failed")
# The chunks each search page is sent to the workers in.
PAGE_PARTS = 3
MAX_ERRORS_KEPT = 100

PUBLIC_FIELDS = (
    "sync_id",
    "campaign_id",
    "audience",
    "segment_id",
    "ongoing",
    "trigger",
    "status",
    "total",
    *COUNTERS,
    "started_at",
    "finished_at",
    "errors",
)


class SyncError(BaseModel):
    """A contact that failed for good (or, `contact_id` None, the sync itself)."""

    model_config = ConfigDict(extra="allow")

    contact_id: str | None = None
    code: str
    message: str


class Sync(BaseModel):
    """A sync's record: what it covers, where it stands, its counters and the coordinator's checkpoint.
    Its keys (`pk`/`sk`, `gsi1pk`/`gsi1sk`) are built in shared/keys.py and kept as extras."""

    model_config = ConfigDict(extra="allow")

    sync_id: str
    account_id: str
    campaign_id: str
    # The Intercom workspace it syncs (its campaign's when it started; absent on syncs started before
    # an account could connect several workspaces: then the campaign's).
    workspace_id: str | None = None
    audience: str
    segment_id: str | None = None
    ongoing: bool = False
    trigger: str
    status: str = QUEUED
    # Contacts the search matched (its first page says).
    total: int = 0
    processed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    started_at: int
    finished_at: int | None = None
    errors: list[SyncError] = Field(default_factory=list)
    # An ongoing pass covers only contacts changed since then.
    updated_since: int | None = None
    # The coordinator's checkpoint: the search cursor and the page it starts.
    cursor: str | None = None
    next_page: int = 0
    # Parts of pages finished; the sync completes at `pages_total * PAGE_PARTS` once `enumerated`.
    parts_done: int = 0
    enumerated: bool = False
    # Written when enumeration ends, absent before.
    pages_total: int | None = None


def public_view(sync: Sync) -> dict[str, Any]:
    """The sync as the API shows it."""
    view = sync.model_dump(include=set(PUBLIC_FIELDS))
    return {field: view[field] for field in PUBLIC_FIELDS}


class Rest(BaseModel):
    """What a chunk handed on, kept with its marker: the contacts from `from` and those to retry."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    from_: int = Field(alias="from")
    retry: list[str] = Field(default_factory=list)
    attempts: dict[str, int] = Field(default_factory=dict)
    delay_s: int = 0
    requeues: int = 0


class ChunkMarker(BaseModel):
    """A chunk whose counts were added (once), and the rest it handed on, if any."""

    model_config = ConfigDict(extra="allow")

    expires_at: int
    rest: Rest | None = None


class SyncInProgress(Conflict):
    code = "sync_in_progress"


class Syncs:
    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, ids: Callable[[], str] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids or (lambda: "sync_" + secrets.token_hex(8))

    def get(self, sync_id: str) -> Sync | None:
        item = self.store.get(*keys.sync_key(sync_id))
        return Sync.model_validate(item) if item else None

    def start(
        self,
        account_id: str,
        campaign_id: str,
        *,
        audience: str,
        segment_id: str | None,
        ongoing: bool,
        trigger: str,
        updated_since: int | None = None,
        workspace_id: str | None = None,
    ) -> Sync:
        """A new queued sync holding the campaign's lock (one running sync per campaign)."""
        sync_id = self.ids()
        now = int(self.clock())
        pk, sk = keys.lock_key(account_id, campaign_id)
        sync_pk, sync_sk = keys.sync_key(sync_id)
        sync = Sync(
            sync_id=sync_id,
            account_id=account_id,
            campaign_id=campaign_id,
            workspace_id=workspace_id,
            audience=audience,
            segment_id=segment_id,
            ongoing=ongoing,
            trigger=trigger,
            started_at=now,
            updated_since=updated_since,
        )
        item = {
            "pk": sync_pk,
            "sk": sync_sk,
            **sync.model_dump(exclude={"pages_total"}),
            "gsi1pk": keys.campaign_syncs_key(account_id, campaign_id),
            "gsi1sk": keys.campaign_syncs_sort_key(now, sync_id),
        }
        lock = {"pk": pk, "sk": sk, "sync_id": sync_id, "account_id": account_id, "campaign_id": campaign_id}
        try:
            self.store.transact([{"put": lock, "if_absent": True}, {"put": item, "if_absent": True}])
        except ConditionFailed as exc:
            held = self.store.get(pk, sk)
            raise SyncInProgress(
                f"Sync {held['sync_id'] if held else '?'} is still running for this campaign; "
                "wait for it or cancel it."
            ) from exc
        return Sync.model_validate(item)

    def running_for(self, account_id: str, campaign_id: str) -> str | None:
        lock = self.store.get(*keys.lock_key(account_id, campaign_id))
        return lock["sync_id"] if lock else None

    def set_status(self, sync: Sync, status: str, *, only_from: tuple[str, ...] = ACTIVE) -> bool:
        changes: dict[str, str | int] = {"status": status}
        if status in (COMPLETED, FAILED, CANCELLED):
            changes["finished_at"] = int(self.clock())
        try:
            self.store.update(
                *keys.sync_key(sync.sync_id), changes, condition=Attr("status").is_in(list(only_from))
            )
        except ConditionFailed:
            return False
        if status in (COMPLETED, FAILED, CANCELLED):
            self._release(sync)
        return True

    def fail(self, sync: Sync, error: SyncError) -> None:
        """Record why the sync cannot go on, then fail it."""
        errors = [*sync.errors, error]
        self.store.update(*keys.sync_key(sync.sync_id), {"errors": [e.model_dump() for e in errors]})
        self.set_status(sync, FAILED)

    def _release(self, sync: Sync) -> None:
        pk, sk = keys.lock_key(sync.account_id, sync.campaign_id)
        with contextlib.suppress(ConditionFailed):  # else the lock belongs to a newer sync
            self.store.delete_if(pk, sk, condition=Attr("sync_id").eq(sync.sync_id))

    def checkpoint(self, sync: Sync, page: int, cursor: str | None, total: int | None) -> bool:
        """Move the coordinator past `page`: only once, whoever else tries the same page loses."""
        changes: dict[str, int | str | bool | None] = {
            "next_page": page + 1,
            "cursor": cursor,
            "status": RUNNING,
        }
        if total is not None and page == 0:
            changes["total"] = total
        if cursor is None:
            changes["enumerated"] = True
            changes["pages_total"] = page + 1
        try:
            self.store.update(
                *keys.sync_key(sync.sync_id),
                changes,
                condition=Attr("next_page").eq(page) & Attr("status").is_in([QUEUED, RUNNING]),
            )
        except ConditionFailed:
            return False
        return True

    def record_chunk(
        self,
        sync_id: str,
        chunk_id: str,
        counts: Mapping[str, int],
        *,
        part_finished: bool,
        errors: list[SyncError],
        rest: Rest | None = None,
    ) -> bool:
        """Count a chunk of a page exactly once (a marker and the counters in one transaction); the
        marker keeps what the chunk handed on (`rest`)."""
        adds = {k: v for k, v in counts.items() if v}
        if part_finished:
            adds["parts_done"] = 1
        marker_pk, marker_sk = keys.chunk_key(sync_id, chunk_id)
        marker = ChunkMarker(expires_at=int(self.clock()) + 14 * 86_400, rest=rest)
        item = {"pk": marker_pk, "sk": marker_sk, **marker.model_dump(by_alias=True, exclude_none=True)}
        ops: list[dict[str, object]] = [{"put": item, "if_absent": True}]
        if adds:
            ops.append({"update": keys.sync_key(sync_id), "add": adds})
        try:
            self.store.transact(ops)
        except ConditionFailed:
            return False
        if errors:
            current = self.get(sync_id)
            kept = [*(current.errors if current else []), *errors][:MAX_ERRORS_KEPT]
            self.store.update(*keys.sync_key(sync_id), {"errors": [e.model_dump() for e in kept]})
        return True

    def chunk_marker(self, sync_id: str, chunk_id: str) -> ChunkMarker | None:
        """The marker of a chunk already counted, or None."""
        item = self.store.get(*keys.chunk_key(sync_id, chunk_id))
        return ChunkMarker.model_validate(item) if item else None

    def complete_if_done(self, sync_id: str) -> bool:
        """Completed once enumeration ended and every part of every page was counted (coordinator or
        last worker)."""
        sync = self.get(sync_id)
        if not sync or not sync.enumerated or sync.status != RUNNING:
            return False
        if sync.parts_done < (sync.pages_total or 0) * PAGE_PARTS:
            return False
        return self.set_status(sync, COMPLETED, only_from=(RUNNING,))

    def park(self, sync_id: str, chunk: SyncChunk) -> None:
        """Keep a page chunk while the connection is revoked; reconnecting sends it again."""
        pk, sk = keys.parked_key(sync_id, chunk.chunk_id)
        self.store.put({"pk": pk, "sk": sk, "chunk": chunk.body()})

    def unpark(self, sync_id: str) -> list[SyncChunk]:
        parked = list(self.store.query_all(keys.sync_pk(sync_id), sk_prefix=keys.PARKED_PREFIX))
        for item in parked:
            self.store.delete(item["pk"], item["sk"])
        return [SyncChunk.model_validate(item["chunk"]) for item in parked]

    def last_completed(
        self, account_id: str, campaign_id: str, audience: str, segment_id: str | None
    ) -> Sync | None:
        """The campaign's newest completed sync of this audience (and segment), manual or scheduled."""
        start: dict[str, Any] | None = None
        while True:
            found, start = self.for_campaign(account_id, campaign_id, limit=100, start_key=start)
            for sync in found:
                if (sync.status, sync.audience, sync.segment_id) == (COMPLETED, audience, segment_id):
                    return sync
            if not start:
                return None

    def for_campaign(
        self, account_id: str, campaign_id: str, *, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[Sync], dict[str, Any] | None]:
        items, last = self.store.query(
            keys.campaign_syncs_key(account_id, campaign_id),
            index="gsi1",
            limit=limit,
            start_key=start_key,
            newest_first=True,
        )
        return [Sync.model_validate(item) for item in items], last
