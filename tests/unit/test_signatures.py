from __future__ import annotations

import hashlib
import hmac

from shared.domain.signatures import valid_body_signature, valid_hub_signature

BODY = b'{"app_id":"abc123"}'


def test_hub_signature_is_sha1_hex_with_prefix():
    good = "sha1=" + hmac.new(b"secret", BODY, hashlib.sha1).hexdigest()
    assert valid_hub_signature(BODY, good, "secret")
    assert valid_hub_signature(BODY, good.upper().replace("SHA1=", "sha1="), "secret")
    assert not valid_hub_signature(BODY, good, "other")
    assert not valid_hub_signature(BODY + b" ", good, "secret")
    assert not valid_hub_signature(BODY, None, "secret")
    assert not valid_hub_signature(BODY, good, "")


def test_body_signature_is_sha256_hex_without_prefix():
    good = hmac.new(b"secret", BODY, hashlib.sha256).hexdigest()
    assert valid_body_signature(BODY, good, "secret")
    assert not valid_body_signature(BODY, "sha256=" + good, "secret")
    assert not valid_body_signature(BODY, good, "other")


def test_a_signature_with_non_ascii_characters_is_invalid_not_an_error():
    from shared.domain.signatures import same_secret, valid_body_signature, valid_hub_signature

    assert not valid_hub_signature(b"{}", "sha1=é", "secret")
    assert not valid_body_signature(b"{}", "☃" * 64, "secret")
    assert not same_secret("tök", "tok")
    assert same_secret("tök", "tök")
