"""OAuth states are signed, single-use, bound to their account and return URL, and expire."""

from __future__ import annotations

import pytest

from shared.aws.store import Store
from shared.records.oauth_states import InvalidState, OAuthStates


@pytest.fixture
def clock():
    now = [1_800_000_000.0]
    return now


@pytest.fixture
def states(aws, clock):
    return OAuthStates(Store(aws.refs["MainTable"]), b"signing-key", clock=lambda: clock[0])


def test_a_state_is_consumed_once(states):
    state = states.issue("acc_1", "https://app.example.com/done")
    claim = states.consume(state)
    assert (claim.account_id, claim.return_url) == ("acc_1", "https://app.example.com/done")
    with pytest.raises(InvalidState, match="already used"):
        states.consume(state)


@pytest.mark.parametrize(
    "mangle",
    [lambda s: s + "0", lambda s: "x" + s, lambda s: s.split(".")[0], lambda s: "", lambda s: s[:-1] + "é"],
)
def test_tampered_states_are_refused_before_any_read(states, mangle):
    state = states.issue("acc_1", None)
    with pytest.raises(InvalidState, match="not issued by us"):
        states.consume(mangle(state))
    assert states.consume(state).return_url is None


def test_a_state_from_another_key_is_refused(aws, states):
    other = OAuthStates(Store(aws.refs["MainTable"]), b"another-key")
    with pytest.raises(InvalidState):
        states.consume(other.issue("acc_1", None))


def test_an_expired_state_is_refused(states, clock):
    state = states.issue("acc_1", None)
    clock[0] += 601
    with pytest.raises(InvalidState, match="expired"):
        states.consume(state)
