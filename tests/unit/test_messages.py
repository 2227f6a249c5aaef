"""The signup and Intercom events queues' messages as models: each reads what its producers send and
serialises to exactly that JSON, so messages in flight during a deploy are read by either version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import messages
from shared.api.routes.rf_webhooks import message_for, parse_body


def _same_json(model: messages._Message, sent: dict[str, Any]) -> None:
    assert json.dumps(model.body()) == json.dumps(sent)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"event":"user.join","user":{"id":17,"email":"a@b.c","campaign_id":4}}', "application/json"),
        (b'{"event":"user.qualified","data":{"email":"a@b.c"},"campaign":{"id":4}}', "application/json"),
        (b"event=reward.issued&id=9&email=", "application/x-www-form-urlencoded"),
    ],
)
def test_the_receivers_referral_factory_message_reads_back_as_it_was_sent(
    body: bytes, content_type: str
) -> None:
    sent = json.loads(json.dumps(message_for("acc", parse_body(body, content_type))))
    _same_json(messages.RfWebhook.model_validate(sent), sent)


def test_a_signup_pushed_again_is_the_message_it_was_as_a_dict() -> None:
    built = messages.RfWebhook(
        account_id="acc", event="user.join", rf_user_id="17", campaign_id="4", via="reconnect"
    )
    _same_json(
        built,
        {
            "kind": messages.RF_WEBHOOK,
            "account_id": "acc",
            "event": "user.join",
            "rf_user_id": "17",
            "campaign_id": "4",
            "via": "reconnect",
        },
    )


def test_the_receivers_intercom_messages_read_back_as_they_were_sent() -> None:
    notification = {
        "kind": messages.INTERCOM_NOTIFICATION,
        "account_id": "acc",
        "app_id": "app",
        "notification_id": "notif_1",
        "topic": "contact.user.updated",
        "item": {"type": "contact", "id": "c1", "custom_attributes": {"plan": "pro", "n": 1.5}},
        "trimmed": False,
        "created_at": 1700000000,
        "received_at": 1700000001.25,
    }
    _same_json(messages.IntercomNotification.model_validate(notification), notification)
    uninstall = {"kind": messages.INTERCOM_UNINSTALL, "app_id": "app", "received_at": 1700000000}
    _same_json(messages.IntercomUninstall.model_validate(uninstall), uninstall)


@pytest.mark.parametrize("model", [messages.CatchUp, messages.QualificationSweep])
def test_due_work_messages_read_back_as_fired(model: type[messages._Message]) -> None:
    # As fire_due sends them: the recorded message, then its kind and the time it fired.
    kind = messages.CATCH_UP if model is messages.CatchUp else messages.QUALIFICATION_SWEEP
    fired = {"account_id": "acc", "campaign_id": "4", "kind": kind, "scheduled_at": 1700000000}
    _same_json(model.model_validate(fired), fired)


def test_a_sweeps_continuation_carries_what_the_message_had() -> None:
    came = {
        "account_id": "acc",
        "campaign_id": "4",
        "kind": messages.QUALIFICATION_SWEEP,
        "scheduled_at": 1700000000,
    }
    rest = {"sweep_started_at": 1700000000, "since": 1699900000, "plan": 1, "cursor": "abc"}
    continuation = messages.QualificationSweep.model_validate(came).model_copy(update=rest)
    _same_json(continuation, {**came, **rest})
    # And the continuation of a continuation, with the keys where they were.
    again = messages.QualificationSweep.model_validate(continuation.body()).model_copy(
        update={"plan": 2, "cursor": None}
    )
    _same_json(again, {**came, **rest, "plan": 2, "cursor": None})


def test_the_hand_backs_requeues_survive_the_model() -> None:
    came = {"account_id": "acc", "campaign_id": "4", "kind": messages.CATCH_UP, "requeues": 3}
    read = messages.CatchUp.model_validate(came)
    assert read.body() == came
    handed_on = messages.QualificationSweep.model_validate(
        {**came, "kind": messages.QUALIFICATION_SWEEP}
    ).model_copy(update={"plan": 1})
    assert handed_on.body()["requeues"] == 3
