"""An API function that answers with the proxy event it was given, or fails as asked."""

from __future__ import annotations

import base64
import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["resource"] == "/crash":
        if event["httpMethod"] == "POST":
            return {"statusCode": "not a status"}
        raise RuntimeError("crashed on purpose")
    if (event.get("queryStringParameters") or {}).get("binary"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(
            {
                "event": event,
                "pid": os.getpid(),
                "function_name": context.function_name,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "environ": {
                    k: os.environ.get(k)
                    for k in (
                        "AWS_LAMBDA_FUNCTION_NAME",
                        "LEDGER_TABLE",
                        "AWS_ENDPOINT_URL",
                        "STACK_TEST_LEAK",
                    )
                },
            }
        ),
    }
