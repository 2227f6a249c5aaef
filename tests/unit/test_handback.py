"""The consumers' one loop: a message goes to the handler of its kind, or back to its queue with a
delay when the work cannot happen now, or stays failed (and so reaches the DLQ)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, cast

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from shared import messages
from shared.clients.errors import RateLimited, Transient
from shared.consumers import handback
from shared.consumers.handback import MAX_REQUEUES, UnknownMessage, dispatch, handler

if TYPE_CHECKING:
    from shared.wiring import Services


class Work(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: Literal["work"]
    n: int = 0


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], int]]:
    sent: list[tuple[str, dict[str, Any], int]] = []

    def send(url: str, body: dict[str, Any], *, delay_seconds: int = 0) -> str:
        sent.append((url, body, delay_seconds))
        return "id"

    monkeypatch.setattr(handback.queues, "send", send)
    return sent


SVC = cast("Services", object())


def _run(body: dict[str, Any], run: Any, **kwargs: Any) -> Any:
    return dispatch(
        json.dumps(body),
        {"work": handler(Work, lambda message, _svc, _settings: run(message))},
        SVC,
        None,
        queue="test",
        queue_url="https://sqs/test",
        **kwargs,
    )


def test_the_handler_of_the_kind_gets_the_message_read_as_its_model(sent: list[Any]) -> None:
    assert _run({"kind": "work", "n": 1}, lambda m: m.n + 1) == 2
    assert sent == []


def test_the_handler_gets_the_services_and_settings(sent: list[Any]) -> None:
    seen: list[Any] = []
    table = {"work": handler(Work, lambda m, svc, settings: seen.append((m.n, svc, settings)))}
    dispatch('{"kind":"work","n":3}', table, SVC, "settings", queue="test", queue_url="https://sqs/test")
    assert seen == [(3, SVC, "settings")]


def test_a_message_its_model_cannot_read_is_never_acknowledged(sent: list[Any]) -> None:
    with pytest.raises(ValidationError):
        _run({"kind": "work", "n": "many"}, lambda m: None)
    assert sent == []


def test_an_unknown_kind_is_never_acknowledged_and_says_which_queue(sent: list[Any]) -> None:
    with pytest.raises(UnknownMessage, match="the test queue has no handler for 'other'"):
        _run({"kind": "other"}, lambda m: None)
    with pytest.raises(UnknownMessage):
        _run({"no": "kind"}, lambda m: None)
    assert sent == []


def test_an_ignored_kind_is_acknowledged_without_running_anything(sent: list[Any]) -> None:
    def fail(_message: Work) -> None:
        raise AssertionError("ran")

    assert _run({"kind": "noise"}, fail, ignored=("noise",)) is None


@pytest.mark.parametrize(
    ("later", "delay"),
    [
        (messages.Deferred("held", 30), 30),
        (RateLimited("spent", retry_after=7.5), 8),
        (Transient("503"), handback.TRANSIENT_RETRY_S),
    ],
)
def test_work_that_cannot_happen_now_goes_back_with_a_delay(
    sent: list[Any], later: Exception, delay: int
) -> None:
    def run(_message: Work) -> None:
        raise later

    assert _run({"kind": "work", "requeues": 2}, run) == handback.HANDED_BACK
    assert sent == [("https://sqs/test", {"kind": "work", "requeues": 3}, delay)]


def test_a_message_goes_back_as_it_came_with_its_requeues_counted(sent: list[Any]) -> None:
    def run(_message: Work) -> None:
        raise messages.Deferred("held", 30)

    came = {"z": 1, "kind": "work", "unnamed": {"a": [1]}}
    _run(came, run)
    _url, body, _delay = sent[0]
    assert json.dumps(body) == json.dumps({**came, "requeues": 1})


def test_after_max_requeues_the_message_fails_so_it_reaches_the_dlq(sent: list[Any]) -> None:
    def run(_message: Work) -> None:
        raise messages.Deferred("held", 30)

    with pytest.raises(messages.Deferred):
        _run({"kind": "work", "requeues": MAX_REQUEUES}, run)
    assert sent == []


def test_other_failures_are_not_handed_back(sent: list[Any]) -> None:
    def run(_message: Work) -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        _run({"kind": "work"}, run)
    assert sent == []
