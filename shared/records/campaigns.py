"""Per-campaign records: the campaign's Intercom settings, the workspace it is bound to, and its
ongoing-sync schedule entry."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from shared import keys, messages
from shared.aws.store import Attr, ConditionFailed
from shared.records.due_work import due_item

if TYPE_CHECKING:
    from shared.aws.store import Store
    from shared.domain.campaign_settings import CampaignSettings

# Referral Factory documents no webhook retries: this often, each configured campaign's recent users
# are listed and any signup the webhooks missed is pushed.
CATCH_UP_INTERVAL_S = 600


# Intercom delivers a notification at most twice and drops some: this often, each campaign with a
# qualification searches Intercom for qualifying contacts the webhooks missed (shared/flows/sweep.py).
QUALIFICATION_SWEEP_INTERVAL_S = 300


class CampaignConfig(BaseModel):
    """A campaign's Intercom settings as saved (`PUT /v1/campaigns/{id}/intercom` validated them; the
    rules read them as `CampaignSettings`). Its keys are built in shared/keys.py."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    campaign_id: str
    # The body that was saved, kept as it came (without its `workspace_id`): the API returns it unchanged.
    settings: dict[str, Any]
    updated_at: int
    # The Intercom workspace the campaign's signups, syncs, qualification and commission use. None for
    # settings saved before an account could connect several workspaces and not bound since
    # (`shared.records.connections.Connections.workspace_of` says which one they use).
    workspace_id: str | None = None


def has_qualification(settings: dict[str, Any]) -> bool:
    people = ("person_invited", "person_referring")
    return any((settings.get(person) or {}).get("qualification") for person in people)


class CampaignStore:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def get(self, account_id: str, campaign_id: str) -> CampaignConfig | None:
        item = self.store.get(*keys.settings_key(account_id, campaign_id))
        return CampaignConfig.model_validate(item) if item else None

    def get_settings(self, account_id: str, campaign_id: str) -> dict[str, Any] | None:
        config = self.get(account_id, campaign_id)
        return config.settings if config else None

    def settings(self, account_id: str, campaign_id: str) -> CampaignSettings | None:
        """The campaign's settings as the rules read them; None when it has none. (Stored settings were
        validated when saved: `PUT /v1/campaigns/{id}/intercom` answers a bad body with its 422.)"""
        raw = self.get_settings(account_id, campaign_id)
        # Read here only: the sync API's status reads load no settings rules (docs/cold-starts.md).
        from shared.domain.campaign_settings import CampaignSettings

        return CampaignSettings.model_validate(raw) if raw else None

    def put_settings(
        self, account_id: str, campaign_id: str, settings: dict[str, Any], workspace_id: str
    ) -> None:
        """Save the settings, the campaign bound to `workspace_id` (`settings` without its own)."""
        pk, sk = keys.settings_key(account_id, campaign_id)
        config = CampaignConfig(
            account_id=account_id,
            campaign_id=campaign_id,
            settings={k: v for k, v in settings.items() if k != "workspace_id"},
            updated_at=int(self.clock()),
            workspace_id=workspace_id,
        )
        self.store.put({"pk": pk, "sk": sk, **config.model_dump()})
        work_id = keys.catch_up_work_id(account_id, campaign_id)
        message = {"account_id": account_id, "campaign_id": campaign_id}
        item = due_item(
            work_id,
            kind=messages.CATCH_UP,
            queue=messages.SIGNUP_QUEUE,
            message=message,
            interval_s=CATCH_UP_INTERVAL_S,
            next_run_at=int(self.clock()) + CATCH_UP_INTERVAL_S,
        )
        with contextlib.suppress(ConditionFailed):  # already scheduled: keep its rhythm
            self.store.put(item.item(), if_absent=True)
        self._schedule_qualification_sweep(account_id, campaign_id, settings)

    def ensure_qualification_sweep(self, account_id: str, campaign_id: str) -> None:
        """Schedule the campaign's sweep if its settings qualify and it has none (settings saved before
        sweeps existed); an existing one keeps its rhythm. The campaign's catch-up calls this."""
        settings = self.get_settings(account_id, campaign_id)
        if settings is not None:
            self._schedule_qualification_sweep(account_id, campaign_id, settings)

    def _schedule_qualification_sweep(
        self, account_id: str, campaign_id: str, settings: dict[str, Any]
    ) -> None:
        work_id = keys.qualification_sweep_work_id(account_id, campaign_id)
        if not has_qualification(settings):
            self.store.delete(*keys.due_key(work_id))
            return
        item = due_item(
            work_id,
            kind=messages.QUALIFICATION_SWEEP,
            queue=messages.INTERCOM_EVENTS_QUEUE,
            message={"account_id": account_id, "campaign_id": campaign_id},
            interval_s=QUALIFICATION_SWEEP_INTERVAL_S,
            next_run_at=int(self.clock()) + QUALIFICATION_SWEEP_INTERVAL_S,
        )
        with contextlib.suppress(ConditionFailed):  # already scheduled: keep its rhythm
            self.store.put(item.item(), if_absent=True)

    def delete_settings(self, account_id: str, campaign_id: str) -> bool:
        """Remove the settings and turn the campaign's ongoing sync off; True if there were settings."""
        old = self.store.delete(*keys.settings_key(account_id, campaign_id))
        self.turn_ongoing_sync_off(account_id, campaign_id)
        self.store.delete(*keys.due_key(keys.catch_up_work_id(account_id, campaign_id)))
        self.store.delete(*keys.due_key(keys.qualification_sweep_work_id(account_id, campaign_id)))
        return old is not None

    def turn_ongoing_sync_off(self, account_id: str, campaign_id: str) -> None:
        self.store.delete(*keys.due_key(keys.ongoing_sync_work_id(account_id, campaign_id)))

    def has_ongoing_sync(self, account_id: str, campaign_id: str) -> bool:
        return self.store.get(*keys.due_key(keys.ongoing_sync_work_id(account_id, campaign_id))) is not None

    def configured(self, account_id: str) -> set[str]:
        """Ids of the account's campaigns that have Intercom settings."""
        return set(self.bindings(account_id))

    def bindings(self, account_id: str) -> dict[str, str | None]:
        """The account's campaigns that have Intercom settings, each with the workspace it is bound to
        (None: saved before campaigns were bound, and not bound since)."""
        return {
            item["campaign_id"]: item.get("workspace_id")
            for item in self.store.query_all(keys.account_pk(account_id), sk_prefix=keys.SETTINGS_PREFIX)
            if "settings" in item
        }

    def bind_unbound(self, account_id: str, workspace_id: str) -> list[str]:
        """Bind every campaign of the account that is bound to no workspace yet to `workspace_id` (the
        one-off migration of settings saved before an account could connect several workspaces; a
        campaign bound meanwhile keeps its workspace). Returns the campaigns it bound."""
        bound = []
        for campaign_id, current in sorted(self.bindings(account_id).items()):
            if current is not None:
                continue
            with contextlib.suppress(ConditionFailed):
                self.store.update(
                    *keys.settings_key(account_id, campaign_id),
                    {"workspace_id": workspace_id},
                    condition=Attr("workspace_id").not_exists(),
                )
                bound.append(campaign_id)
        return bound
