"""Wiring: the adapters and services a function needs, built once per process from its settings.

Nothing here runs at import; each factory is cached so a warm Lambda reuses its clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from shared import caches, messages
from shared.aws import boto, queues
from shared.aws.app_secret import AppCredentials, app_credentials
from shared.aws.crypto import SecretBox
from shared.aws.store import Store
from shared.clients.http import DEFAULT_POLICY, RetryPolicy
from shared.records.accounts import Account, Accounts
from shared.records.connections import Connection, Connections

if TYPE_CHECKING:
    from shared.clients.intercom import IntercomClient
    from shared.clients.referral_factory import ReferralFactoryClient
    from shared.settings import SecretsSettings


@dataclass(frozen=True)
class Services:
    settings: SecretsSettings

    @property
    def store(self) -> Store:
        return Store(self.settings.table_name)

    @property
    def box(self) -> SecretBox:
        return SecretBox(self.settings.kms_key_id)

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.store, self.box)

    def connections(self) -> Connections:
        """Connections whose every change of state is published to each queue that acts on it
        (`messages.CONNECTION_EVENT_QUEUES`), whoever makes the change."""
        urls = tuple(self._queue_url(queue) for queue in messages.CONNECTION_EVENT_QUEUES)

        def publish(event: messages.ConnectionEvent) -> None:
            body = event.model_dump()
            for url in urls:
                queues.send(url, body)

        return Connections(self.store, self.box, publish)

    def _queue_url(self, queue: str) -> str:
        """The URL of a logical queue (`shared.messages`) in this function's settings."""
        urls = {
            messages.SIGNUP_QUEUE: self.settings.signup_queue_url,
            messages.SYNC_QUEUE: self.settings.sync_queue_url,
        }
        return urls[queue]

    def app(self) -> AppCredentials:
        return app_credentials(self.settings.intercom_app_secret_arn)

    def intercom_for(self, connection: Connection, *, policy: RetryPolicy = DEFAULT_POLICY) -> IntercomClient:
        """A client for a stored connection: its token, its region's base, its workspace's budget."""
        if connection.token is None:
            raise ValueError(f"the connection of {connection.account_id} is {connection.status}: no token")
        # The clients load with the first call out: most first requests of the API functions make none.
        from shared.clients.intercom import IntercomClient, api_base_for_region, regional_api_bases
        from shared.clients.rate_budget import intercom_budget

        token = self.box.decrypt(connection.token, connection.account_id)
        bases = regional_api_bases(self.settings.intercom_api_base)
        return IntercomClient(
            token,
            base_url=api_base_for_region(connection.region, bases),
            budget=intercom_budget(self.settings.table_name, connection.workspace_id),
            policy=policy,
        )

    def referral_factory_for(
        self, account: Account, *, policy: RetryPolicy = DEFAULT_POLICY
    ) -> ReferralFactoryClient:
        from shared.clients.rate_budget import referral_factory_budget
        from shared.clients.referral_factory import ReferralFactoryClient

        api_key, api_base = self.accounts.referral_factory_credentials(account)
        return ReferralFactoryClient(
            api_key,
            base_url=api_base,
            budget=referral_factory_budget(
                self.settings.table_name, api_key, per_minute=account.rf_rate_limit_per_minute
            ),
            policy=policy,
        )


@caches.resettable
@cache
def services(settings: SecretsSettings) -> Services:
    return Services(settings)


def reset() -> None:
    services.cache_clear()
    boto.reset()
