"""What the product has seen of Intercom companies, for company qualification: per workspace, company
and attribute, the value last observed (normalised), the company's `updated_at` then, and the changes
observed since that no one has acted on yet.

A company qualifies its contacts' referrals only by a change the product saw (contract §1): the first
observation of a company only records its value. A change is appended to `pending` in the same
conditional write that records the new value, and taken off only once the referrals it concerns have
been handled (`settle`), so a worker that dies in between leaves the change for the next observation of
the company (a repeat of the notification, the next notification, the sweep) to act on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from shared import keys
from shared.aws.store import Attr, ConditionFailed

if TYPE_CHECKING:
    from shared.aws.store import Store

# Concurrent observers of one company retry their conditional write this often before giving up.
MAX_WRITE_ATTEMPTS = 8


class CompanyChange(BaseModel):
    """One observed change of a company's attribute: from `before` to `after`, at the company's
    `updated_at` (None when the observation carried none)."""

    before: str | None
    after: str | None
    at: int | None = None


class CompanyValue(BaseModel):
    model_config = ConfigDict(extra="allow")

    workspace_id: str
    company_id: str
    attribute: str
    # Normalised (`shared.domain.qualification.normalise`); None: the company had no value.
    value: str | None
    updated_at: int | None = None
    first_seen_at: int
    # Every write moves `version` (the observers' optimistic lock); `changes` counts the changes ever
    # appended, so settling is refused only by a new change, not by a newer `updated_at`.
    version: int = 1
    changes: int = 0
    pending: list[CompanyChange] = Field(default_factory=list)

    @property
    def key(self) -> keys.Key:
        return keys.company_value_key(self.workspace_id, self.company_id, self.attribute)

    def item(self) -> dict[str, object]:
        pk, sk = self.key
        return {"pk": pk, "sk": sk, **self.model_dump()}


@dataclass(frozen=True)
class Observation:
    """What observing a company's attribute found: its first sight (nothing to act on), an
    observation older than one already recorded (`stale`), or the record as it is now."""

    record: CompanyValue
    first: bool = False
    stale: bool = False


class CompanyValues:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def get(self, workspace_id: str, company_id: str, attribute: str) -> CompanyValue | None:
        item = self.store.get(*keys.company_value_key(workspace_id, company_id, attribute))
        return CompanyValue.model_validate(item) if item else None

    def observe(
        self, workspace_id: str, company_id: str, attribute: str, value: str | None, updated_at: int | None
    ) -> Observation:
        """Record the company's (normalised) value as observed with its `updated_at`: a change from
        the recorded value is appended to `pending`; an observation older than the recorded one
        changes nothing."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.get(workspace_id, company_id, attribute)
            if current is None:
                first = self._first_sight(workspace_id, company_id, attribute, value, updated_at)
                if first is None:
                    continue  # another observer saw it first: observe against that
                return Observation(first, first=True)
            if updated_at is not None and current.updated_at is not None and updated_at < current.updated_at:
                # Shuffled delivery: this describes the company before what was recorded.
                return Observation(current, stale=True)
            changes: dict[str, object] = {}
            if value != current.value:
                change = CompanyChange(before=current.value, after=value, at=updated_at)
                changes = {
                    "value": value,
                    "pending": [*current.pending, change],
                    "changes": current.changes + 1,
                }
            if updated_at is not None and updated_at != current.updated_at:
                # Kept even when the value did not change, so a late, older observation is known as such.
                changes["updated_at"] = updated_at
            if not changes:
                return Observation(current)
            updated = current.model_copy(update={**changes, "version": current.version + 1})
            try:
                self.store.put(updated.item(), condition=Attr("version").eq(current.version))
            except ConditionFailed:
                continue
            return Observation(updated)
        raise ConditionFailed(f"company {company_id} kept changing under {MAX_WRITE_ATTEMPTS} observers")

    def baseline(
        self, workspace_id: str, company_id: str, attribute: str, value: str | None, updated_at: int | None
    ) -> bool:
        """Record the value only if the company was never seen (True then): a contact linked by a push
        shows its companies as they are, which must not count as a change."""
        return self._first_sight(workspace_id, company_id, attribute, value, updated_at) is not None

    def _first_sight(
        self, workspace_id: str, company_id: str, attribute: str, value: str | None, updated_at: int | None
    ) -> CompanyValue | None:
        """The company's value recorded as first seen now, or None when it was seen already."""
        first = CompanyValue(
            workspace_id=workspace_id,
            company_id=company_id,
            attribute=attribute,
            value=value,
            updated_at=updated_at,
            first_seen_at=int(self.clock()),
        )
        try:
            self.store.put(first.item(), if_absent=True)
        except ConditionFailed:
            return None
        return first

    def settle(self, record: CompanyValue) -> None:
        """The changes `record` holds were acted on: take them off, unless another change came since
        (its observer then acts on them all, these included, which repeats nothing). `version` is left
        alone: an observer that read the changes before this write puts them back with its own, and
        they are acted on once more, at no cost but the look."""
        if not record.pending:
            return
        with contextlib.suppress(ConditionFailed):
            self.store.update(*record.key, {"pending": []}, condition=Attr("changes").eq(record.changes))
