"""The sync engine without AWS: its records and its queues are fakes (the engine takes a sender)."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

from shared import messages
from shared.flows.sync import Engine, on_connection, ongoing_view, rest_message
from shared.records.due_work import DueItem
from shared.records.syncs import PAUSED, RUNNING, Rest, Sync

QUEUES = SimpleNamespace(sync_queue_url="sync-url", sync_pages_queue_url="pages-url")
PAGE_CHUNK = {
    "kind": "sync.chunk",
    "sync_id": "sync_1",
    "chunk_id": "0:1",
    "page": 0,
    "contacts": [{"id": "c1", "email": None, "custom_attributes": {}}, {"id": "c2", "email": "b@x.io"}],
}
HANDED_ON = {
    "kind": "sync.chunk",
    "sync_id": "sync_1",
    "chunk_id": "0:2+2",
    "page": 0,
    "contacts": [{"id": "c4"}, {"id": "c3"}],
    "attempts": {"c3": 1},
    "requeues": 0,
}


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, int]] = []
        self.groups: list[str | None] = []

    def send(self, queue_url: str, body: dict, *, delay_seconds: int = 0, group: str | None = None) -> str:
        self.sent.append((queue_url, body, delay_seconds))
        self.groups.append(group)
        return "message-id"

    def send_batch(self, queue_url: str, bodies: list[dict], *, group: str | None = None) -> None:
        self.sent.extend((queue_url, body, 0) for body in bodies)
        self.groups.extend(group for _ in bodies)


class FakeSyncs:
    """One sync, its lock and its parked chunks, as `Syncs` keeps them."""

    def __init__(self, sync: Sync, parked: list[dict]) -> None:
        self.sync = sync
        self.parked = [messages.SyncChunk.model_validate(body) for body in parked]

    def running_for(self, account_id: str, campaign_id: str) -> str | None:
        mine = (account_id, campaign_id) == (self.sync.account_id, self.sync.campaign_id)
        return self.sync.sync_id if mine else None

    def get(self, sync_id: str) -> Sync | None:
        return self.sync if sync_id == self.sync.sync_id else None

    def set_status(self, sync: Sync, status: str, *, only_from: tuple[str, ...] = ()) -> bool:
        if self.sync.status not in only_from:
            return False
        self.sync = self.sync.model_copy(update={"status": status})
        return True

    def unpark(self, sync_id: str) -> list[messages.SyncChunk]:
        parked, self.parked = self.parked, []
        return parked


class FakeCampaigns:
    def configured(self, account_id: str) -> set[str]:
        return {"42"}


def engine_with(syncs: FakeSyncs, sender: FakeSender) -> Engine:
    engine = Engine(SimpleNamespace(store=None), QUEUES, sender)  # type: ignore[arg-type]
    engine.syncs = syncs  # type: ignore[assignment]
    engine.campaigns = FakeCampaigns()  # type: ignore[assignment]
    return engine


def paused_sync() -> Sync:
    return Sync(
        sync_id="sync_1",
        account_id="acc_1",
        campaign_id="42",
        audience="users",
        trigger="manual",
        started_at=1_700_000_000,
        status=PAUSED,
    )


def test_reconnecting_sends_the_parked_chunks_as_they_were_then_runs_the_sync_on():
    syncs, sender = FakeSyncs(paused_sync(), [PAGE_CHUNK, HANDED_ON]), FakeSender()
    on_connection(engine_with(syncs, sender), {"kind": messages.CONNECTION_CONNECTED, "account_id": "acc_1"})
    assert syncs.sync.status == RUNNING
    # Byte for byte what was parked: a page's chunk carries no attempts, a handed-on one does.
    assert [(url, json.dumps(body), delay) for url, body, delay in sender.sent] == [
        ("pages-url", json.dumps(PAGE_CHUNK), 0),
        ("pages-url", json.dumps(HANDED_ON), 0),
        ("sync-url", json.dumps({"kind": "sync.page", "sync_id": "sync_1"}), 0),
    ]
    # Each in its account's message group: SQS's fair queues interleave accounts by it.
    assert sender.groups == ["acc_1"] * 3
    assert syncs.parked == []


def test_a_sync_another_process_resumed_first_is_not_sent_twice():
    running = paused_sync().model_copy(update={"status": RUNNING})
    syncs, sender = FakeSyncs(running, [PAGE_CHUNK]), FakeSender()
    on_connection(engine_with(syncs, sender), {"kind": messages.CONNECTION_CONNECTED, "account_id": "acc_1"})
    assert sender.sent == []
    assert len(syncs.parked) == 1


def test_a_chunks_rest_is_the_contacts_from_where_it_stopped_then_those_to_retry():
    chunk = messages.SyncChunk.model_validate(
        {**PAGE_CHUNK, "chunk_id": "0:2", "contacts": [{"id": "c2"}, {"id": "c3"}, {"id": "c4"}]}
    )
    rest = Rest.model_validate(
        {"from": 2, "retry": ["c3"], "attempts": {"c3": 1}, "delay_s": 2, "requeues": 0}
    )
    assert json.dumps(rest_message(chunk, rest).body()) == json.dumps(HANDED_ON)


def test_an_ongoing_schedule_stored_before_the_toggle_shows_as_on_with_its_interval():
    """A due item written before `PUT .../syncs/ongoing` existed (as DynamoDB returns it: numbers as
    Decimal, no `last_run_at` until the scheduler fired it) reads as the toggle's view."""
    stored = {
        "pk": "DUE#sync:acc_1:42",
        "sk": "DUE",
        "kind": "sync.scheduled",
        "queue": "sync",
        "message": {"account_id": "acc_1", "campaign_id": "42", "audience": "leads", "since": Decimal(1000)},
        "interval_s": Decimal(900),
        "next_run_at": Decimal(1900),
        "gsi1pk": "DUE",
        "gsi1sk": "000000001900#sync:acc_1:42",
    }
    assert ongoing_view(DueItem.model_validate(stored)) == {
        "enabled": True,
        "audience": "leads",
        "segment_id": None,
        "interval_s": 900,
        "last_pass_at": None,
        "next_pass_at": 1900,
    }
    assert ongoing_view(None) == {
        "enabled": False,
        "audience": None,
        "segment_id": None,
        "interval_s": None,
        "last_pass_at": None,
        "next_pass_at": None,
    }
