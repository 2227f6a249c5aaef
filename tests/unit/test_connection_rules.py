"""The rules of stored connections: which can call Intercom, which workspace a campaign bound to none
uses, and when an account has several workspaces."""

from __future__ import annotations

import pytest

from shared.records.connections import (
    CONNECTED,
    DISCONNECTED,
    REVOKED,
    Connection,
    SeveralWorkspaces,
    attached,
    default_workspace,
    usable,
)


def _connection(status: str) -> Connection:
    return Connection.model_validate({"account_id": "acc_1", "status": status, "workspace_id": "w1"})


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (None, False),
        (_connection(REVOKED), False),
        (_connection(DISCONNECTED), False),
        (_connection(CONNECTED), True),
    ],
)
def test_only_a_connected_connection_is_usable(connection, expected):
    assert usable(connection) is expected


def _in(workspace_id: str, status: str, name: str | None = None) -> Connection:
    return Connection.model_validate(
        {"account_id": "acc_1", "status": status, "workspace_id": workspace_id, "workspace_name": name}
    )


@pytest.mark.parametrize(
    ("connections", "expected"),
    [
        ([], None),
        ([_in("w1", CONNECTED)], "w1"),
        ([_in("w1", REVOKED)], "w1"),  # revoked is still the account's workspace
        ([_in("w1", DISCONNECTED)], "w1"),  # its only one at all
        ([_in("w1", DISCONNECTED), _in("w2", CONNECTED)], "w2"),
        ([_in("w1", CONNECTED), _in("w2", REVOKED)], None),  # several: a campaign must say which
        ([_in("w1", DISCONNECTED), _in("w2", DISCONNECTED)], None),
    ],
)
def test_a_campaign_bound_to_no_workspace_uses_the_accounts_only_one(connections, expected):
    assert default_workspace(connections) == expected


def test_several_workspaces_counts_those_not_disconnected_and_names_each():
    connections = [_in("w1", CONNECTED, "Alpha"), _in("w2", DISCONNECTED), _in("w3", REVOKED)]
    assert [c.workspace_id for c in attached(connections)] == ["w1", "w3"]
    error = SeveralWorkspaces(attached(connections))
    assert (error.status, error.code) == (409, "several_workspaces")
    assert error.details == [
        {"field": "workspace_id", "message": "w1 (Alpha) is connected"},
        {"field": "workspace_id", "message": "w3 is revoked"},
    ]
