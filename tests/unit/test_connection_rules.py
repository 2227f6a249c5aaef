"""The one rule for whether a stored connection can call Intercom."""

from __future__ import annotations

import pytest

from shared.records.connections import CONNECTED, DISCONNECTED, REVOKED, Connection, usable


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
