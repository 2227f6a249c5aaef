"""Ids already seen (Intercom notification ids), in the idempotency table: a conditional put that
expires through the table's TTL. Kept out of the main table, which holds the domain: these are
many, short-lived, and only ever read by their own key."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.aws import boto
from shared.aws.store import ConditionFailed, conditional


class SeenIds:
    def __init__(self, table_name: str, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self.prefix = prefix
        self.clock = clock

    def first_sight(self, seen_id: str, ttl_s: int) -> bool:
        """Record `seen_id`; False when it was recorded before (and has not expired)."""
        now = int(self.clock())
        try:
            conditional(
                boto.table(self.table_name).put_item,
                Item={"id": f"{self.prefix}#{seen_id}", "expiration": now + ttl_s},
                # TTL deletes lazily: an expired record counts as absent.
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ConditionFailed:
            return False
        return True

    def forget(self, seen_id: str) -> None:
        boto.table(self.table_name).delete_item(Key={"id": f"{self.prefix}#{seen_id}"})
