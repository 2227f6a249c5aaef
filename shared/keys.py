"""Every key of the main table and its indexes (`pk`/`sk`, `gsi1pk`/`gsi1sk`, `gsi2pk`/`gsi2sk`,
`gsi3pk`/`gsi3sk`), built here and nowhere else.

A deployed table holds these strings: a format changes here or not at all, and a migration then
keeps the old one beside it. docs/data-model.md says what each item is for; tests/unit/test_keys.py
pins every format and fails on a key built anywhere else. It imports nothing, so every layer that
stores something (the records, and the rate budgets' counters in the clients) builds its keys here.
"""

from __future__ import annotations

Key = tuple[str, str]

# -- accounts ------------------------------------------------------------------------------------


def account_pk(account_id: str) -> str:
    """The partition of everything an account owns (its record, connection, settings, marks, caches)."""
    return f"ACCOUNT#{account_id}"


def account_key(account_id: str) -> Key:
    return account_pk(account_id), "META"


def api_key_pk(key_hash: str) -> str:
    return f"APIKEY#{key_hash}"


def api_key_lookup_key(key_hash: str) -> Key:
    """The lookup from an account key's SHA-256 to its account."""
    return api_key_pk(key_hash), "APIKEY"


def oauth_state_key(nonce: str) -> Key:
    return f"OAUTHSTATE#{nonce}", "STATE"


# -- the Intercom connection ---------------------------------------------------------------------


# Each Intercom workspace an account connected has its own item; `begins_with(CONNECTIONS_PREFIX)` on
# the account's partition lists them, and finds the one item an account stored before it could
# connect several workspaces (`connection_key`), which the connections migrate on first read.
CONNECTIONS_PREFIX = "CONNECTION"


def connection_key(account_id: str) -> Key:
    """The account's one connection as stored before an account could connect several workspaces:
    read (and migrated to `workspace_connection_key`) only, never written."""
    return account_pk(account_id), CONNECTIONS_PREFIX


def workspace_connection_key(account_id: str, workspace_id: str) -> Key:
    """The account's connection of one Intercom workspace (its token, state, name and region)."""
    return account_pk(account_id), f"{CONNECTIONS_PREFIX}#{workspace_id}"


def owner_key(workspace_id: str) -> Key:
    """The routing from an Intercom workspace to the account it is connected to."""
    return f"WORKSPACE#{workspace_id}", "OWNER"


def cache_key(account_id: str, name: str, workspace_id: str) -> Key:
    """A cached list of a workspace's (`attributes`, `segments`), served by the account API."""
    return account_pk(account_id), f"CACHE#{name}#{workspace_id}"


# -- campaigns -----------------------------------------------------------------------------------

SETTINGS_PREFIX = "CAMPAIGN#"


def settings_key(account_id: str, campaign_id: str) -> Key:
    return account_pk(account_id), f"{SETTINGS_PREFIX}{campaign_id}"


def lock_key(account_id: str, campaign_id: str) -> Key:
    """The one-running-sync lock of a campaign (it starts like the settings: listing settings by
    `SETTINGS_PREFIX` finds locks too)."""
    return account_pk(account_id), f"CAMPAIGN#{campaign_id}#ACTIVESYNC"


def catch_up_mark_key(account_id: str, campaign_id: str) -> Key:
    """Where the campaign's last signup catch-up started."""
    return account_pk(account_id), f"CATCHUP#{campaign_id}"


def sweep_mark_key(account_id: str, campaign_id: str) -> Key:
    """Where the campaign's last finished qualification sweep started."""
    return account_pk(account_id), f"QUALSWEEP#{campaign_id}"


def history_mark_key(account_id: str, campaign_id: str) -> Key:
    """Whether the campaign's Referral Factory history has been read into its referrals (and its claim)."""
    return account_pk(account_id), f"RFHISTORY#{campaign_id}"


# -- referrals -----------------------------------------------------------------------------------


def referrals_pk(account_id: str) -> str:
    return f"REFERRALS#{account_id}"


def campaign_prefix(campaign_id: str) -> str:
    """The sort-key prefix of a campaign's referrals, on the table and on gsi2."""
    return f"{campaign_id}#"


def referral_key(account_id: str, campaign_id: str, rf_user_id: str) -> Key:
    return referrals_pk(account_id), f"{campaign_prefix(campaign_id)}{rf_user_id}"


def contact_index_key(workspace_id: str, contact_id: str) -> str:
    """gsi1pk: a referral by its Intercom contact."""
    return f"REFCONTACT#{workspace_id}#{contact_id}"


def contact_index_sort_key(account_id: str, campaign_id: str, rf_user_id: str) -> str:
    return f"{account_id}#{campaign_id}#{rf_user_id}"


def email_index_key(account_id: str, email: str) -> str:
    """gsi2pk: a referral by email (case and surrounding spaces ignored)."""
    return f"REFEMAIL#{account_id}#{email.strip().lower()}"


def email_index_sort_key(campaign_id: str, rf_user_id: str) -> str:
    return f"{campaign_prefix(campaign_id)}{rf_user_id}"


def counts_pending_key(account_id: str, campaign_id: str) -> str:
    """gsi3pk (sparse): a campaign's referrers whose counts are not yet in Intercom."""
    return f"COUNTSPENDING#{account_id}#{campaign_id}"


def counts_pending_sort_key(rf_user_id: str) -> str:
    return str(rf_user_id)


# -- companies -----------------------------------------------------------------------------------


def company_value_key(workspace_id: str, company_id: str, attribute: str) -> Key:
    """What the product has seen of one attribute of an Intercom company (company qualification)."""
    return f"COMPANY#{workspace_id}#{company_id}", f"VALUE#{attribute}"


# -- syncs ---------------------------------------------------------------------------------------

PARKED_PREFIX = "PARKED#"


def sync_pk(sync_id: str) -> str:
    return f"SYNC#{sync_id}"


def sync_key(sync_id: str) -> Key:
    return sync_pk(sync_id), "META"


def chunk_key(sync_id: str, chunk_id: str) -> Key:
    """The marker of a chunk whose counts were added (once)."""
    return sync_pk(sync_id), f"CHUNK#{chunk_id}"


def parked_key(sync_id: str, chunk_id: str) -> Key:
    """A chunk kept while the connection is revoked."""
    return sync_pk(sync_id), f"{PARKED_PREFIX}{chunk_id}"


def campaign_syncs_key(account_id: str, campaign_id: str) -> str:
    """gsi1pk: a campaign's syncs."""
    return f"CAMPAIGNSYNCS#{account_id}#{campaign_id}"


def campaign_syncs_sort_key(started_at: int, sync_id: str) -> str:
    """gsi1sk: newest first when read backwards."""
    return f"{started_at:012d}#{sync_id}"


# -- due work (the one schedule) -----------------------------------------------------------------

# gsi1pk of every due item: the scheduler reads this one partition up to `due_sort_key(now, "~")`.
DUE_PARTITION = "DUE"
_DUE_PREFIX = "DUE#"


def due_key(work_id: str) -> Key:
    return f"{_DUE_PREFIX}{work_id}", "DUE"


def due_work_id(pk: str) -> str:
    """The work id back from a due item's `pk`."""
    return pk.removeprefix(_DUE_PREFIX)


def due_sort_key(next_run_at: int, work_id: str) -> str:
    return f"{next_run_at:012d}#{work_id}"


def ongoing_sync_work_id(account_id: str, campaign_id: str) -> str:
    return f"sync:{account_id}:{campaign_id}"


def catch_up_work_id(account_id: str, campaign_id: str) -> str:
    return f"catchup:{account_id}:{campaign_id}"


def qualification_sweep_work_id(account_id: str, campaign_id: str) -> str:
    return f"qualsweep:{account_id}:{campaign_id}"


# -- rate budgets -------------------------------------------------------------------------------
# One budget's counters (shared/clients/rate_budget.py): a window per period and its learned state.
# No record's partition starts with `RATE#`.
BUDGET_STATE_SK = "STATE"
# A sliding budget's log of grants (one item per budget).
BUDGET_LOG_SK = "LOG"


def budget_pk(budget_key: str) -> str:
    return f"RATE#{budget_key}"


def budget_window_sk(start: float) -> str:
    return f"W#{start:.3f}"
