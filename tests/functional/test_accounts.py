"""Creating accounts: the key shown once and stored hashed, the Referral Factory key KMS-encrypted."""

from __future__ import annotations

import json

import boto3
import pytest

from shared.aws.crypto import SecretBox
from shared.aws.store import Store
from shared.domain.errors import Unauthorized
from shared.records.accounts import WEBHOOK_HEADER_NAME, Accounts, hash_secret
from tests.factories import api_event, body_of
from tests.functional.conftest import ADMIN_TOKEN


@pytest.fixture
def created(call):
    body = {
        "name": "Acme",
        "referral_factory_api_key": "rf-secret-key-123",
        "referral_factory_api_base": "http://rf.local/api/v2",
    }
    event = api_event(
        "POST", "/admin/accounts", body=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    response = call("AccountApiFunction", event)
    assert response["statusCode"] == 201, response
    return body_of(response)


def test_create_returns_key_once_and_webhook_details(created):
    assert created["account_id"].startswith("acc_")
    assert created["api_key"].startswith("rfi_")
    webhook = created["referral_factory_webhook"]
    assert webhook["url"] == f"http://testserver/webhooks/referral-factory/{created['account_id']}"
    assert webhook["header_name"] == WEBHOOK_HEADER_NAME
    assert len(webhook["header_value"]) >= 32


def test_secrets_are_not_stored_in_plaintext(created, aws):
    table = boto3.resource("dynamodb").Table(aws.refs["MainTable"])
    items = table.scan()["Items"]
    dump = json.dumps(items, default=str)
    assert "rf-secret-key-123" not in dump
    assert created["api_key"] not in dump
    assert created["referral_factory_webhook"]["header_value"] not in dump
    assert hash_secret(created["api_key"]) in dump


def test_account_key_authenticates_and_rf_key_decrypts(created, aws):
    accounts = Accounts(Store(aws.refs["MainTable"]), SecretBox(aws.refs["DataKey"]))
    account = accounts.authenticate(f"Bearer {created['api_key']}")
    assert account.account_id == created["account_id"]
    assert accounts.referral_factory_credentials(account) == ("rf-secret-key-123", "http://rf.local/api/v2")
    assert accounts.webhook_secret_ok(
        created["account_id"], created["referral_factory_webhook"]["header_value"]
    )
    assert not accounts.webhook_secret_ok(created["account_id"], "guess")
    with pytest.raises(Unauthorized):
        accounts.authenticate("Bearer rfi_not-a-key")
    with pytest.raises(Unauthorized):
        accounts.authenticate(None)


def test_encrypted_secret_is_bound_to_its_account(aws):
    box = SecretBox(aws.refs["DataKey"])
    blob = box.encrypt("intercom-token", "acc_one")
    assert box.decrypt(blob, "acc_one") == "intercom-token"
    with pytest.raises(Exception, match=r"InvalidCiphertext|Invalid|tag"):
        box.decrypt(blob, "acc_two")
