"""Acting on Intercom's uninstall notice: only a token that now fails proves it.

A notice can be forged, late (the workspace reinstalled since) or an echo of our own disconnect,
so the workspace's connection becomes `revoked` only when `GET /me` on its stored token answers 401
(the account's other workspaces are not touched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.clients.errors import ConnectionRevoked
from shared.records.connections import NOT_CONNECTED, REVOKED, UNINSTALLED, usable

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.clients.intercom import IntercomClient
    from shared.records.connections import Connection, Connections

# What a notice did: ignored (an unknown workspace, NOT_CONNECTED, a token that still works), or REVOKED.
IGNORED_UNKNOWN, IGNORED_STILL_WORKS = "unknown_workspace", "token_still_works"


def handle_uninstall(
    app_id: str, connections: Connections, intercom_for: Callable[[Connection], IntercomClient]
) -> str:
    """What the notice did; transient Intercom errors propagate so the message is retried."""
    account_id = connections.account_for_workspace(app_id)
    if account_id is None:
        return IGNORED_UNKNOWN
    connection = connections.get(account_id, app_id)
    if not usable(connection):
        return NOT_CONNECTED
    try:
        intercom_for(connection).me()
    except ConnectionRevoked:
        connections.mark_revoked(account_id, app_id, UNINSTALLED)
        return REVOKED
    return IGNORED_STILL_WORKS
