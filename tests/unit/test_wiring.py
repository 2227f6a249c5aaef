"""Services: every connection change reaches every queue that acts on it, whichever function makes it."""

from __future__ import annotations

from typing import Any

import pytest

from shared import messages, settings
from shared.wiring import Services


def _every_secrets_settings() -> list[type[settings.SecretsSettings]]:
    found: list[type[settings.SecretsSettings]] = []
    todo: list[type[settings.SecretsSettings]] = [settings.SecretsSettings]
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return found


@pytest.mark.parametrize("model", _every_secrets_settings(), ids=lambda m: m.__name__)
def test_connection_events_go_to_every_connection_event_queue(model, monkeypatch):
    env = {f.alias: f"url-of-{f.alias}" for f in model.model_fields.values() if f.alias}
    env["ADMIN_AUTH"] = "token"
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr("shared.wiring.queues.send", lambda url, body: sent.append((url, body)))
    event = {
        "kind": messages.CONNECTION_REVOKED,
        "account_id": "acc_1",
        "reason": "uninstalled",
        "at": 1,
        "workspace_id": "w1",
    }

    Services(model.model_validate(env)).connections().publish(
        messages.ConnectionRevoked.model_validate(event)
    )

    queue_urls = {
        messages.SIGNUP_QUEUE: "url-of-SIGNUP_QUEUE_URL",
        messages.SYNC_QUEUE: "url-of-SYNC_QUEUE_URL",
    }
    assert sent == [(queue_urls[q], event) for q in messages.CONNECTION_EVENT_QUEUES]
