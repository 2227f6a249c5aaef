"""Contact sync behind the queues.

The coordinator (SyncQueue) pages Intercom's search for the audience, one page per invocation: it
sends the page to the workers as PAGE_PARTS chunks (so even a one-page sync keeps several workers
busy), then moves its checkpoint past that page with a conditional write, then queues its own
continuation. A coordinator that dies anywhere in between is redelivered and resumes from the
checkpoint; a page sent twice is counted once (chunk markers).

Workers (SyncPagesQueue) link each contact to a Referral Factory user and write back only what
differs. A rate budget that runs out hands the rest of the chunk back with a delay, and a contact
that failed goes along with that rest for another attempt (a contact that keeps failing is recorded
in the sync's errors and sent to the DLQ). Each chunk starts a chain in which each link hands on at
most one rest, so each part of a page is finished exactly once, by the last link of its chain; the
rest is kept with the chunk's marker, so a chunk delivered again after it was counted hands on the
same rest. The sync completes once enumeration ended and every part of every page is finished.

Pacing is the shared rate budgets' (`shared.clients.rate_budget`): a budget wait of up to a second is slept,
a longer one (a spent Referral Factory minute) hands the rest back with an SQS delay, never billed
Lambda time. A worker also hands its rest back after a slice of work (`SLICE_S`, at most half the
time the invocation has left): no invocation nears the function's timeout however slow the services
are, and the pages in flight take turns on the workers, so the last pages of a sync are worked on by
every worker rather than by one each while the others idle.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shared import keys, messages
from shared.aws.store import Attr, ConditionFailed
from shared.clients.errors import ConnectionRevoked, Invalid, RateLimited, UpstreamError, refused_for_good
from shared.clients.http import RetryPolicy
from shared.domain.contact import Contact
from shared.domain.qualification import EXISTING_UPDATED
from shared.domain.rf_user import RfUser
from shared.domain.sync_plan import (
    INBOUND_DEFAULTS,
    ReturnWrite,
    audience_query,
    changed_since,
    inbound_fields,
    mapped_attributes,
    page_contact,
    return_write,
)
from shared.flows.counts import Counts
from shared.flows.history import History
from shared.observability import logger, metrics
from shared.records.campaigns import CampaignStore
from shared.records.connections import usable
from shared.records.due_work import DueItem, due_item
from shared.records.referrals import COUNTS, Referral, ReferralChanges, ReferralEvent, Referrals
from shared.records.syncs import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    FAILED,
    PAGE_PARTS,
    PAUSED,
    QUEUED,
    RUNNING,
    Rest,
    Sync,
    SyncError,
    Syncs,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from shared.domain.campaign_settings import CampaignSettings
    from shared.records.accounts import Account
    from shared.records.connections import Connection
    from shared.settings import ContactSyncSettings
    from shared.wiring import Services

# How often an ongoing sync's passes run (`interval_s`): the default, and the least a customer may set.
ONGOING_INTERVAL_S = 900
MIN_ONGOING_INTERVAL_S = 60
CONTACT_ATTEMPTS = 3
MAX_REQUEUES = 60
# A worker hands the rest of its chunk back after this much work (or half the time it has left).
SLICE_S = 20.0
# Budget waits up to a second are slept; a longer one hands the chunk back with that delay.
SYNC_POLICY = RetryPolicy(max_budget_wait_s=1.0)


class Sender(Protocol):
    """Where the engine's messages go: SQS (`shared.aws.queues`, which the handlers pass) in Lambda,
    a list in a unit test. `group` is the message group: the sync's account, so that SQS's fair queues
    interleave different accounts' work instead of serving one account's backlog first."""

    def send(
        self, queue_url: str, body: dict[str, Any], *, delay_seconds: int = 0, group: str | None = None
    ) -> object: ...

    def send_batch(
        self, queue_url: str, bodies: list[dict[str, Any]], *, group: str | None = None
    ) -> None: ...


@dataclass
class Engine:
    svc: Services
    settings: ContactSyncSettings
    sender: Sender
    # The invocation's `context.get_remaining_time_in_millis`: workers slice their work by it.
    remaining_ms: Callable[[], int] | None = None
    syncs: Syncs = field(init=False)
    campaigns: CampaignStore = field(init=False)

    def __post_init__(self) -> None:
        self.syncs = Syncs(self.svc.store)
        self.campaigns = CampaignStore(self.svc.store)

    def continue_sync(self, sync: Sync, delay_s: int = 0) -> None:
        self.sender.send(
            self.settings.sync_queue_url,
            messages.SyncPage(sync_id=sync.sync_id).body(),
            delay_seconds=delay_s,
            group=sync.account_id,
        )

    # -- starting -------------------------------------------------------------------------------
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
    ) -> Sync:
        sync = self.syncs.start(
            account_id,
            campaign_id,
            audience=audience,
            segment_id=segment_id,
            ongoing=ongoing,
            trigger=trigger,
            updated_since=updated_since,
            workspace_id=self.svc.connections().workspace_of(account_id, campaign_id),
        )
        if ongoing:
            self.schedule_ongoing(
                account_id, campaign_id, audience, segment_id, first_pass_at=sync.started_at
            )
        self.continue_sync(sync)
        return sync

    # -- the ongoing sync -----------------------------------------------------------------------
    def ongoing(self, account_id: str, campaign_id: str) -> DueItem | None:
        """The campaign's ongoing-sync schedule, None when it has none (turned off or never on)."""
        stored = self.svc.store.get(*keys.due_key(keys.ongoing_sync_work_id(account_id, campaign_id)))
        return DueItem.model_validate(stored) if stored else None

    def schedule_ongoing(
        self,
        account_id: str,
        campaign_id: str,
        audience: str,
        segment_id: str | None,
        *,
        first_pass_at: int,
        interval_s: int = ONGOING_INTERVAL_S,
    ) -> DueItem:
        """`POST /syncs` with `ongoing`: the sync that started at `first_pass_at` is the first pass, so
        the next one covers the contacts changed since then (and the schedule shows that start)."""
        message = messages.SyncScheduled(
            account_id=account_id,
            campaign_id=campaign_id,
            audience=audience,
            segment_id=segment_id,
            since=first_pass_at,
        )
        return self._put_ongoing(
            message, interval_s, next_run_at=first_pass_at + interval_s, last_run_at=first_pass_at
        )

    def turn_ongoing_on(
        self, account_id: str, campaign_id: str, audience: str, segment_id: str | None, interval_s: int
    ) -> DueItem:
        """The toggle (`PUT /syncs/ongoing`): no pass now. The same audience keeps its `since` (only the
        interval changes, counted from the last pass); a new one starts from the campaign's last
        completed sync of that audience, or covers the whole audience when there was none."""
        now = int(time.time())
        current = self.ongoing(account_id, campaign_id)
        last_run_at = current.last_run_at if current else None
        if current is not None:
            due = messages.SyncScheduled.model_validate(current.message)
            if (due.audience, due.segment_id) == (audience, segment_id):
                next_run_at = current.next_run_at
                if interval_s != current.interval_s:
                    ran = last_run_at if last_run_at is not None else current.next_run_at - current.interval_s
                    next_run_at = max(ran + interval_s, now)
                return self._put_ongoing(due, interval_s, next_run_at=next_run_at, last_run_at=last_run_at)
        last = self.syncs.last_completed(account_id, campaign_id, audience, segment_id)
        message = messages.SyncScheduled(
            account_id=account_id,
            campaign_id=campaign_id,
            audience=audience,
            segment_id=segment_id,
            since=last.started_at if last else None,
        )
        return self._put_ongoing(message, interval_s, next_run_at=now + interval_s, last_run_at=last_run_at)

    def _put_ongoing(
        self, message: messages.SyncScheduled, interval_s: int, *, next_run_at: int, last_run_at: int | None
    ) -> DueItem:
        item = due_item(
            keys.ongoing_sync_work_id(message.account_id, message.campaign_id),
            kind=messages.SYNC_SCHEDULED,
            queue=messages.SYNC_QUEUE,
            message=message.model_dump(),
            interval_s=interval_s,
            next_run_at=next_run_at,
            last_run_at=last_run_at,
        )
        self.svc.store.put(item.item())
        return item

    def scheduled_pass(self, message: messages.SyncScheduled) -> None:
        """An ongoing sync's pass: a new sync over contacts changed since the previous pass (`since`
        None: the whole audience). The stored schedule decides, not the message: it may have changed."""
        account_id, campaign_id = message.account_id, message.campaign_id
        work_key = keys.due_key(keys.ongoing_sync_work_id(account_id, campaign_id))
        stored = self.svc.store.get(*work_key)
        if stored is None:
            return  # turned off since
        due = messages.SyncScheduled.model_validate(DueItem.model_validate(stored).message)
        connection = self.svc.connections().for_campaign(account_id, campaign_id)
        if not usable(connection) or self.syncs.running_for(account_id, campaign_id):
            return  # the next pass picks these contacts up: `since` does not move
        started = int(time.time())
        self.start(
            account_id,
            campaign_id,
            audience=due.audience,
            segment_id=due.segment_id,
            ongoing=False,
            trigger="schedule",
            updated_since=due.since,
        )
        moved = due.model_copy(update={"since": started})
        with contextlib.suppress(ConditionFailed):  # the toggle changed the audience meanwhile: it wins
            self.svc.store.update(
                *work_key,
                {"message": moved.model_dump(exclude_unset=True)},
                condition=Attr("message").eq(stored["message"]),
            )
        self._refresh_counts(account_id, campaign_id)

    def _refresh_counts(self, account_id: str, campaign_id: str) -> None:
        """Referrers whose counts changed since they were last written get them written now."""
        referrals = Referrals(self.svc.store)
        counts = Counts(account_id, referrals, self.campaigns, self.svc.connections(), self.svc.intercom_for)
        for referrer in referrals.counts_pending(account_id, campaign_id):
            counts.write(referrer)

    def connection(self, sync: Sync) -> Connection | None:
        """The connection of the workspace the sync syncs."""
        connections = self.svc.connections()
        workspace_id = sync.workspace_id or connections.workspace_of(sync.account_id, sync.campaign_id)
        return connections.get(sync.account_id, workspace_id) if workspace_id else None

    # -- the coordinator ------------------------------------------------------------------------
    def coordinate(self, sync_id: str) -> None:
        sync = self.syncs.get(sync_id)
        if sync is None or sync.status not in (QUEUED, RUNNING):
            return
        connection = self.connection(sync)
        settings = self._settings(sync)
        if not usable(connection):
            self.syncs.set_status(sync, PAUSED)
        elif sync.enumerated:
            self.syncs.complete_if_done(sync_id)
        elif settings is None:
            self.syncs.fail(
                sync,
                SyncError(code="settings_missing", message="The campaign's Intercom settings were removed."),
            )
        else:
            if sync.next_page == 0:
                # Before the first page: the workers' write-back of counts needs the campaign's history.
                self._history(sync.account_id, sync.campaign_id)
            self._next_page(sync, connection, settings)

    def _history(self, account_id: str, campaign_id: str) -> None:
        account = self.svc.accounts.get(account_id)
        if account is None:
            return
        referrals = Referrals(self.svc.store)
        counts = Counts(account_id, referrals, self.campaigns, self.svc.connections(), self.svc.intercom_for)
        rf = self.svc.referral_factory_for(account, policy=SYNC_POLICY)
        History(account_id, self.svc.store, referrals, rf, counts).ensure(campaign_id)

    def _next_page(self, sync: Sync, connection: Connection, settings: CampaignSettings) -> None:
        sync_id = sync.sync_id
        page = sync.next_page
        query = audience_query(sync.audience, sync.segment_id, updated_since=sync.updated_since)
        from shared.clients.intercom import SEARCH_PAGE_SIZE  # with the client: the sync API calls out never

        try:
            result = self.svc.intercom_for(connection).search_page(
                query, starting_after=sync.cursor, per_page=SEARCH_PAGE_SIZE
            )
        except RateLimited as exc:
            self.continue_sync(sync, int((exc.retry_after or 1) + 1))
            return
        except ConnectionRevoked:
            self.svc.connections().revoked_by_intercom(sync.account_id, connection.workspace_id)
            self.syncs.set_status(sync, PAUSED)
            return
        attributes = mapped_attributes(settings.sync) if settings.sync else ()
        since = sync.updated_since
        contacts = [
            page_contact(c, attributes).model_dump(exclude_unset=True)
            for c in result.contacts
            if changed_since(c, since)
        ]
        # Always PAGE_PARTS chunks, some maybe empty: a page sent again after a crash has the same
        # chunk ids whatever it holds now, and the sync knows how many chunks to wait for.
        n = len(contacts)
        chunks = [
            messages.SyncChunk(
                sync_id=sync_id,
                chunk_id=f"{page}:{part}",
                page=page,
                contacts=contacts[part * n // PAGE_PARTS : (part + 1) * n // PAGE_PARTS],
            )
            for part in range(PAGE_PARTS)
        ]
        self.sender.send_batch(
            self.settings.sync_pages_queue_url, [chunk.body() for chunk in chunks], group=sync.account_id
        )
        if not self.syncs.checkpoint(sync, page, result.next_cursor, result.total_count):
            return  # another coordinator moved past this page; its continuation carries on
        if result.next_cursor:
            self.continue_sync(sync)
        else:
            self.syncs.complete_if_done(sync_id)

    def _settings(self, sync: Sync) -> CampaignSettings | None:
        settings = self.campaigns.settings(sync.account_id, sync.campaign_id)
        return settings if settings and settings.sync else None

    # -- workers --------------------------------------------------------------------------------
    def work(self, chunk: messages.SyncChunk) -> None:
        sync = self.syncs.get(chunk.sync_id)
        if sync is None or sync.status in (COMPLETED, FAILED, CANCELLED):
            return
        connection = self.connection(sync)
        settings = self._settings(sync)
        if sync.status == PAUSED or not usable(connection):
            self.syncs.park(sync.sync_id, chunk)
            self.syncs.set_status(sync, PAUSED)
            return
        if settings is None or settings.sync is None:
            self.syncs.record_chunk(
                sync.sync_id, chunk.chunk_id, {"skipped": len(chunk.contacts)}, part_finished=True, errors=[]
            )
            return
        account = self.svc.accounts.get(sync.account_id)
        worker = ChunkWorker(self, sync, account, connection, settings)
        worker.run(chunk)


class ChunkWorker:
    def __init__(
        self,
        engine: Engine,
        sync: Sync,
        account: Account,
        connection: Connection,
        settings: CampaignSettings,
    ) -> None:
        self.engine = engine
        self.sync = sync
        self.account = account
        self.connection = connection
        self.settings = settings
        self.referrals = Referrals(engine.svc.store)
        self.rf = engine.svc.referral_factory_for(account, policy=SYNC_POLICY)
        self.intercom = engine.svc.intercom_for(connection, policy=SYNC_POLICY)
        self.counts = {"processed": 0, "created": 0, "updated": 0, "skipped": 0, "failed": 0}
        self.errors: list[SyncError] = []
        self._campaign_name: str | None = None

    def _slice_ends_at(self) -> float:
        slice_s = SLICE_S
        if self.engine.remaining_ms is not None:
            slice_s = min(slice_s, self.engine.remaining_ms() / 1000 / 2)
        return time.monotonic() + slice_s

    def _already_counted(self, chunk: messages.SyncChunk) -> bool:
        marker = self.engine.syncs.chunk_marker(self.sync.sync_id, chunk.chunk_id)
        if marker is None:
            return False
        # Delivered again after it was counted: only the rest it handed on may not have gone out.
        if marker.rest is not None:
            self._send_rest(chunk, marker.rest)
        return True

    def run(self, chunk: messages.SyncChunk) -> None:
        syncs, sync_id = self.engine.syncs, self.sync.sync_id
        if self._already_counted(chunk):
            return
        contacts = chunk.contacts
        attempts = dict(chunk.attempts)
        retries: list[str] = []
        stop, delay_s = len(contacts), 0
        slice_ends_at = self._slice_ends_at()
        for index, sent in enumerate(contacts):
            if index and time.monotonic() >= slice_ends_at:
                stop = index
                break
            contact = Contact.model_validate(sent)
            try:
                self.link(contact)
            except RateLimited as exc:
                stop, delay_s = index, int((exc.retry_after or 1) + 1)
                break
            except ConnectionRevoked:
                self.engine.svc.connections().revoked_by_intercom(
                    self.sync.account_id, self.connection.workspace_id
                )
                parked = self._rest(chunk, index, retries, attempts, 0)
                if self._commit(chunk, parked):
                    syncs.park(sync_id, rest_message(chunk, parked))
                syncs.set_status(self.sync, PAUSED)
                return
            except (UpstreamError, ConditionFailed, ValueError, KeyError) as exc:
                if self._retry_later(chunk, index, exc, attempts):
                    retries.append(contact.id)
        self._finish(chunk, stop, retries, attempts, delay_s)

    def _finish(
        self, chunk: messages.SyncChunk, stop: int, retries: list[str], attempts: dict[str, int], delay_s: int
    ) -> None:
        """Count the chunk, then hand on its rest, if any; otherwise its page is finished."""
        if stop == len(chunk.contacts) and retries:
            delay_s = 2 * max(attempts[r] for r in retries)
        rest = None
        if stop < len(chunk.contacts) or retries:
            rest = self._rest(chunk, stop, retries, attempts, delay_s)
        if not self._commit(chunk, rest):
            return
        if rest is not None:
            self._send_rest(chunk, rest)
        else:
            self.engine.syncs.complete_if_done(self.sync.sync_id)

    def _rest(
        self, chunk: messages.SyncChunk, stop: int, retries: list[str], attempts: dict[str, int], delay_s: int
    ) -> Rest:
        """What a chunk hands on: the contacts from `stop` and those to retry, as a small record that
        is kept with the chunk's marker, so a redelivered chunk hands on exactly the same rest."""
        requeues = chunk.requeues + 1 if stop == 0 and not retries else 0
        if requeues > MAX_REQUEUES:
            raise RuntimeError(f"chunk {chunk.chunk_id} handed back {MAX_REQUEUES} times without progress")
        kept = {str(c["id"]) for c in chunk.contacts[stop:]} | set(retries)
        return Rest(
            from_=stop,
            retry=retries,
            attempts={k: v for k, v in attempts.items() if k in kept},
            delay_s=delay_s,
            requeues=requeues,
        )

    def _commit(self, chunk: messages.SyncChunk, rest: Rest | None) -> bool:
        """Count the chunk once; a chunk with a rest leaves its page open for that rest to finish."""
        counted = self.engine.syncs.record_chunk(
            self.sync.sync_id,
            chunk.chunk_id,
            self.counts,
            part_finished=rest is None,
            errors=self.errors,
            rest=rest,
        )
        if not counted:
            logger.info(
                "chunk already counted", extra={"sync_id": self.sync.sync_id, "chunk": chunk.chunk_id}
            )
        return counted

    def _send_rest(self, chunk: messages.SyncChunk, rest: Rest) -> None:
        self.engine.sender.send(
            self.engine.settings.sync_pages_queue_url,
            rest_message(chunk, rest).body(),
            delay_seconds=rest.delay_s,
            group=self.sync.account_id,
        )

    def _retry_later(
        self, chunk: messages.SyncChunk, index: int, exc: Exception, attempts: dict[str, int]
    ) -> bool:
        """True if the chunk's contact at `index` goes along with the chunk's rest for another attempt;
        otherwise it is recorded as failed: with the service's own code and message when the service
        refused it for good (a final answer the customer can act on, not sent to the DLQ), else sent
        to the DLQ too (as it came)."""
        contact = chunk.contacts[index]
        contact_id = str(contact["id"])
        if isinstance(exc, UpstreamError) and refused_for_good(exc):
            self._refused(contact_id, exc)
            return False
        attempt = attempts.get(contact_id, 0) + 1
        if attempt < CONTACT_ATTEMPTS and not isinstance(exc, Invalid):
            attempts[contact_id] = attempt
            return True
        code = getattr(exc, "code", None) or type(exc).__name__
        self.counts["failed"] += 1
        self.counts["processed"] += 1
        self.errors.append(SyncError(contact_id=contact.get("id"), code=str(code), message=str(exc)[:300]))
        dead = chunk.model_copy(
            update={"contacts": [contact], "error": {"code": str(code), "message": str(exc)[:300]}}
        )
        self.engine.sender.send(self.engine.settings.sync_pages_dlq_url, dead.body())
        metrics.add_metric(name="SyncContactFailed", unit="Count", value=1)
        return False

    def _refused(self, contact_id: str, refusal: UpstreamError) -> None:
        self.counts["failed"] += 1
        self.counts["processed"] += 1
        code = refusal.code or f"http_{refusal.status}"
        self.errors.append(SyncError(contact_id=contact_id, code=code, message=refusal.message[:300]))
        logger.warning(
            "a sync contact was refused",
            extra={
                "sync_id": self.sync.sync_id,
                "service": refusal.service,
                "status": refusal.status,
                "code": code,
            },
        )
        metrics.add_metric(name="SyncContactRefused", unit="Count", value=1)

    # -- one contact ----------------------------------------------------------------------------
    def link(self, contact: Contact) -> None:
        sync_settings = self.settings.sync
        assert sync_settings is not None
        campaign_id = self.sync.campaign_id
        account_id = self.account.account_id
        linked = [
            r
            for r in self.referrals.by_contact(self.connection.workspace_id, contact.id)
            if r.account_id == account_id and r.campaign_id == campaign_id
        ]
        sync_id = self.sync.sync_id
        if linked and linked[0].rf_url:
            record = linked[0]
            user = RfUser(
                id=int(record.rf_user_id),
                campaign_id=int(record.campaign_id),
                url=record.rf_url,
                code=record.rf_code,
                email=record.email,
                first_name=record.first_name,
            )
            # A retry after a crash counts what this sync already did, not what is left to do.
            created = record.created_by_sync == sync_id
            write = None
        elif linked:
            record, user = self._link_pushed(contact, linked[0])
            created, write = record.created_by_sync == sync_id, None
        else:
            fields = inbound_fields(contact, sync_settings.inbound_mapping)
            if not fields.email:
                self._no_email(contact, fields.email_attribute)
                return
            user, created = self.rf.create_user(
                int(campaign_id), fields.email, (fields.first_name or fields.email).strip()
            )
            created = created or self._made_by_this_sync(user)
            record, write = self._link_new(contact, user, created)
        if write is None:
            write = self._write(contact, user, record)
        if write.needed:
            self.intercom.update_contact(contact.id, write.body, email=contact.email)
            if record.written_by_sync != sync_id:
                self.referrals.update(record, {"written_by_sync": sync_id})
        updated = write.needed or record.written_by_sync == sync_id
        self._count(created=created, updated=updated, skipped=not created and not updated)

    def _link_pushed(self, contact: Contact, record: Referral) -> tuple[Referral, RfUser]:
        """A record a signup push linked to the contact keeps no referral link (the push found or made
        the contact; the user's own signup, or one this sync made whose webhook got there first): the
        user is read from Referral Factory, once, and its link kept with the record, so the contact's
        return attributes are written in full."""
        user = self.rf.get_user(int(record.rf_user_id))
        event = ReferralEvent(
            kind="linked", via="sync", details={"contact_id": contact.id, "sync_id": self.sync.sync_id}
        )
        changes: ReferralChanges = {"rf_url": user.url, "rf_code": user.code, "first_name": user.first_name}
        return self.referrals.update(record, changes, event), user

    def _made_by_this_sync(self, user: RfUser) -> bool:
        """Whether a user Referral Factory already had (its email taken) was made by this sync: by an
        attempt that died after Referral Factory made the user and before the link was recorded (a
        killed or timed-out worker), whose contact comes back in the redelivered chunk. Such a user
        signed up after the sync started."""
        from shared.clients.intercom import parse_timestamp  # loaded by the worker's first call out anyway

        signed_up_at = parse_timestamp(user.signed_up_at)
        return signed_up_at is not None and signed_up_at >= self.sync.started_at

    def _link_new(self, contact: Contact, user: RfUser, created: bool) -> tuple[Referral, ReturnWrite | None]:
        """The user's record linked to the contact: one write when the record is new, the usual case
        (it says already that this sync writes the contact back, when it must); a read and a write
        when it exists (a signup got there first), and then its counts decide the write-back."""
        account_id, campaign_id = self.account.account_id, self.sync.campaign_id
        sync_id, contact_id = self.sync.sync_id, contact.id
        event = ReferralEvent(
            kind="linked", via="sync", details={"contact_id": contact_id, "sync_id": sync_id}
        )
        link: ReferralChanges = {"rf_url": user.url, "rf_code": user.code, "first_name": user.first_name}
        write = self._write(contact, user, None)
        record = self.referrals.create_linked(
            account_id,
            campaign_id,
            user,
            workspace_id=self.connection.workspace_id,
            contact_id=contact_id,
            changes={
                **link,
                "intercom_status": EXISTING_UPDATED,
                "created_by_sync": sync_id if created else None,
                **({"written_by_sync": sync_id} if write.needed else {}),
            },
            event=event,
        )
        if record is not None:
            return record, write
        record = self.referrals.ensure(account_id, campaign_id, user)
        record = self.referrals.update(
            record,
            {
                **link,
                "intercom_contact_id": contact_id,
                "workspace_id": self.connection.workspace_id,
                "intercom_status": record.intercom_status if record.intercom_contact_id else EXISTING_UPDATED,
                "created_by_sync": sync_id if created else record.created_by_sync,
            },
            event,
        )
        return record, None

    def _write(self, contact: Contact, user: RfUser, record: Referral | None) -> ReturnWrite:
        """What the contact needs written back; a referral not yet recorded has no counts."""
        sync_settings = self.settings.sync
        assert sync_settings is not None
        counts = record.counts if record is not None else dict.fromkeys(COUNTS, 0)
        return return_write(
            contact,
            user,
            counts,
            sync_settings.return_mapping,
            campaign_name=self._name() if "campaign_name" in sync_settings.return_mapping else None,
        )

    def _name(self) -> str | None:
        if self._campaign_name is None:
            self._campaign_name = self.rf.get_campaign(self.sync.campaign_id).name
        return self._campaign_name

    def _no_email(self, contact: Contact, attribute: str) -> None:
        """A contact without the email the inbound mapping reads: one without any email (a visitor)
        is skipped, as ever; one without the attribute the customer mapped is named in the errors,
        since its Referral Factory user is missing for a reason the customer can fix."""
        if attribute == INBOUND_DEFAULTS["email"]:
            self._count(skipped=True)
            return
        self.counts["processed"] += 1
        self.counts["failed"] += 1
        message = f"The contact has no value in '{attribute}', which sync.inbound_mapping.email names."
        self.errors.append(SyncError(contact_id=contact.id, code="email_missing", message=message))

    def _count(self, *, created: bool = False, updated: bool = False, skipped: bool = False) -> None:
        self.counts["processed"] += 1
        self.counts["created"] += int(created)
        self.counts["updated"] += int(updated)
        self.counts["skipped"] += int(skipped)


def ongoing_view(due: DueItem | None) -> dict[str, Any]:
    """The ongoing sync as the API shows it: `last_pass_at` is when the last pass started (the sync
    `POST` started, then each time the schedule fired), `next_pass_at` when the next is due."""
    if due is None:
        return dict.fromkeys(ONGOING_FIELDS) | {"enabled": False}
    message = messages.SyncScheduled.model_validate(due.message)
    return {
        "enabled": True,
        "audience": message.audience,
        "segment_id": message.segment_id,
        "interval_s": due.interval_s,
        "last_pass_at": due.last_run_at,
        "next_pass_at": due.next_run_at,
    }


ONGOING_FIELDS = ("enabled", "audience", "segment_id", "interval_s", "last_pass_at", "next_pass_at")


def rest_message(chunk: messages.SyncChunk, rest: Rest) -> messages.SyncChunk:
    """The chunk message for what `chunk` handed on (`ChunkWorker._rest`)."""
    stop = rest.from_
    retry = set(rest.retry)
    contacts = chunk.contacts
    return messages.SyncChunk(
        sync_id=chunk.sync_id,
        chunk_id=f"{chunk.chunk_id}+{stop}",
        page=chunk.page,
        contacts=[*contacts[stop:], *(c for c in contacts[:stop] if str(c["id"]) in retry)],
        attempts=dict(rest.attempts),
        requeues=rest.requeues,
    )


# -- connection changes -------------------------------------------------------------------------
def on_connection(engine: Engine, message: dict[str, Any]) -> None:
    """A workspace's connection changed: the syncs of the campaigns that use it pause, resume or stop
    (an event from before several workspaces names none: then every campaign of the account)."""
    account_id = message["account_id"]
    campaigns = engine.campaigns
    kind = message["kind"]
    workspace_id = message.get("workspace_id")
    uses: dict[str, str | None] = (
        engine.svc.connections().campaign_workspaces(account_id)
        if workspace_id
        else dict.fromkeys(campaigns.configured(account_id))
    )
    for campaign_id, used in uses.items():
        if workspace_id and used != workspace_id:
            continue  # another workspace's campaign (its running sync cannot have moved: PUT says 409)
        sync_id = engine.syncs.running_for(account_id, campaign_id)
        sync = engine.syncs.get(sync_id) if sync_id else None
        if kind == messages.CONNECTION_DISCONNECTED:
            campaigns.turn_ongoing_sync_off(account_id, campaign_id)
            if sync:
                engine.syncs.set_status(sync, CANCELLED)
        elif kind == messages.CONNECTION_REVOKED and sync and sync.status in (QUEUED, RUNNING):
            engine.syncs.set_status(sync, PAUSED)
        elif kind == messages.CONNECTION_CONNECTED and sync and sync.status == PAUSED:
            resume(engine, sync)


def resume(engine: Engine, sync: Sync) -> None:
    """Connected again: the sync runs on from its checkpoint and parked pages go out again."""
    if not engine.syncs.set_status(sync, RUNNING, only_from=(PAUSED,)):
        return
    for chunk in engine.syncs.unpark(sync.sync_id):
        engine.sender.send(engine.settings.sync_pages_queue_url, chunk.body(), group=sync.account_id)
    engine.continue_sync(sync)
    logger.info("sync resumed", extra={"sync_id": sync.sync_id})


def handle_coordinator_record(record: SQSRecord, engine: Engine) -> None:
    message = json.loads(record.body)
    kind = message.get("kind")
    if kind == messages.SYNC_PAGE:
        engine.coordinate(messages.SyncPage.model_validate(message).sync_id)
    elif kind == messages.SYNC_SCHEDULED:
        engine.scheduled_pass(messages.SyncScheduled.model_validate(message))
    elif kind in (
        messages.CONNECTION_CONNECTED,
        messages.CONNECTION_REVOKED,
        messages.CONNECTION_DISCONNECTED,
    ):
        on_connection(engine, message)
    else:
        raise ValueError(f"the sync queue has no handler for {kind!r}")


def handle_worker_record(record: SQSRecord, engine: Engine) -> None:
    message = json.loads(record.body)
    if message.get("kind") != messages.SYNC_CHUNK:
        raise ValueError(f"the sync pages queue has no handler for {message.get('kind')!r}")
    engine.work(messages.SyncChunk.model_validate(message))


__all__ = ["ACTIVE", "Engine", "handle_coordinator_record", "handle_worker_record"]
