"""The one rule for whether a stored connection can call Intercom."""

from __future__ import annotations

import pytest

from shared.records.connections import CONNECTED, DISCONNECTED, REVOKED, usable


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (None, False),
        ({}, False),
        ({"status": REVOKED, "workspace_id": "w1"}, False),
        ({"status": DISCONNECTED}, False),
        ({"status": CONNECTED, "workspace_id": "w1"}, True),
    ],
)
def test_only_a_connected_connection_is_usable(connection, expected):
    assert usable(connection) is expected
