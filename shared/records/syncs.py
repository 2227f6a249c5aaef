"""Sync records: state, counters, the coordinator's checkpoint, the one-running-sync lock, and pages
parked while the connection is revoked (docs/data-model.md)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.aws.store import Attr, ConditionFailed
from shared.domain.errors import Conflict
from shared.records import keys

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


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    view = {field: item.get(field) for field in PUBLIC_FIELDS}
    view["errors"] = list(item.get("errors") or [])
    for counter in COUNTERS:
        view[counter] = int(item.get(counter) or 0)
    view["total"] = int(item.get("total") or 0)
    return view


class SyncInProgress(Conflict):
    code = "sync_in_progress"


class Syncs:
    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, ids: Callable[[], str] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids or (lambda: "sync_" + secrets.token_hex(8))

    def get(self, sync_id: str) -> dict[str, Any] | None:
        return self.store.get(*keys.sync_key(sync_id))

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
    ) -> dict[str, Any]:
        """A new queued sync holding the campaign's lock (one running sync per campaign)."""
        sync_id = self.ids()
        now = int(self.clock())
        pk, sk = keys.lock_key(account_id, campaign_id)
        sync_pk, sync_sk = keys.sync_key(sync_id)
        item: dict[str, Any] = {
            "pk": sync_pk,
            "sk": sync_sk,
            "sync_id": sync_id,
            "account_id": account_id,
            "campaign_id": campaign_id,
            "audience": audience,
            "segment_id": segment_id,
            "ongoing": ongoing,
            "trigger": trigger,
            "status": QUEUED,
            "total": 0,
            **dict.fromkeys(COUNTERS, 0),
            "started_at": now,
            "finished_at": None,
            "errors": [],
            "updated_since": updated_since,
            "cursor": None,
            "next_page": 0,
            "parts_done": 0,
            "enumerated": False,
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
        return item

    def running_for(self, account_id: str, campaign_id: str) -> str | None:
        lock = self.store.get(*keys.lock_key(account_id, campaign_id))
        return lock["sync_id"] if lock else None

    def set_status(self, sync: dict[str, Any], status: str, *, only_from: tuple[str, ...] = ACTIVE) -> bool:
        changes: dict[str, Any] = {"status": status}
        if status in (COMPLETED, FAILED, CANCELLED):
            changes["finished_at"] = int(self.clock())
        try:
            self.store.update(
                *keys.sync_key(sync["sync_id"]), changes, condition=Attr("status").is_in(list(only_from))
            )
        except ConditionFailed:
            return False
        if status in (COMPLETED, FAILED, CANCELLED):
            self._release(sync)
        return True

    def _release(self, sync: dict[str, Any]) -> None:
        pk, sk = keys.lock_key(sync["account_id"], sync["campaign_id"])
        with contextlib.suppress(ConditionFailed):  # else the lock belongs to a newer sync
            self.store.delete_if(pk, sk, condition=Attr("sync_id").eq(sync["sync_id"]))

    def checkpoint(self, sync: dict[str, Any], page: int, cursor: str | None, total: int | None) -> bool:
        """Move the coordinator past `page`: only once, whoever else tries the same page loses."""
        changes: dict[str, Any] = {"next_page": page + 1, "cursor": cursor, "status": RUNNING}
        if total is not None and page == 0:
            changes["total"] = total
        if cursor is None:
            changes["enumerated"] = True
            changes["pages_total"] = page + 1
        try:
            self.store.update(
                *keys.sync_key(sync["sync_id"]),
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
        counts: dict[str, int],
        *,
        part_finished: bool,
        errors: list[dict[str, Any]],
        rest: dict[str, Any] | None = None,
    ) -> bool:
        """Count a chunk of a page exactly once (a marker and the counters in one transaction); the
        marker keeps what the chunk handed on (`rest`)."""
        adds = {k: v for k, v in counts.items() if v}
        if part_finished:
            adds["parts_done"] = 1
        marker_pk, marker_sk = keys.chunk_key(sync_id, chunk_id)
        marker: dict[str, Any] = {
            "pk": marker_pk,
            "sk": marker_sk,
            "expires_at": int(self.clock()) + 14 * 86_400,
        }
        if rest is not None:
            marker["rest"] = rest
        ops: list[dict[str, Any]] = [{"put": marker, "if_absent": True}]
        if adds:
            ops.append({"update": keys.sync_key(sync_id), "add": adds})
        try:
            self.store.transact(ops)
        except ConditionFailed:
            return False
        if errors:
            current = self.get(sync_id) or {}
            kept = [*(current.get("errors") or []), *errors][:MAX_ERRORS_KEPT]
            self.store.update(*keys.sync_key(sync_id), {"errors": kept})
        return True

    def chunk_marker(self, sync_id: str, chunk_id: str) -> dict[str, Any] | None:
        """The marker of a chunk already counted, or None."""
        return self.store.get(*keys.chunk_key(sync_id, chunk_id))

    def complete_if_done(self, sync_id: str) -> bool:
        """Completed once enumeration ended and every part of every page was counted (coordinator or
        last worker)."""
        sync = self.get(sync_id)
        if not sync or not sync.get("enumerated") or sync.get("status") != RUNNING:
            return False
        if int(sync.get("parts_done") or 0) < int(sync.get("pages_total") or 0) * PAGE_PARTS:
            return False
        return self.set_status(sync, COMPLETED, only_from=(RUNNING,))

    def park(self, sync_id: str, chunk: dict[str, Any]) -> None:
        """Keep a page chunk while the connection is revoked; reconnecting sends it again."""
        pk, sk = keys.parked_key(sync_id, chunk["chunk_id"])
        self.store.put({"pk": pk, "sk": sk, "chunk": chunk})

    def unpark(self, sync_id: str) -> list[dict[str, Any]]:
        parked = list(self.store.query_all(keys.sync_pk(sync_id), sk_prefix=keys.PARKED_PREFIX))
        for item in parked:
            self.store.delete(item["pk"], item["sk"])
        return [item["chunk"] for item in parked]

    def for_campaign(
        self, account_id: str, campaign_id: str, *, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return self.store.query(
            keys.campaign_syncs_key(account_id, campaign_id),
            index="gsi1",
            limit=limit,
            start_key=start_key,
            newest_first=True,
        )
