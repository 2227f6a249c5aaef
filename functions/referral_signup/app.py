"""Receiver for Referral Factory's outbound webhooks: verify the secret, enqueue, answer fast."""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from shared import settings
from shared.api.resolver import ProductResolver
from shared.api.routes import rf_webhooks
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = settings.load(settings.SignupReceiverSettings)

app = ProductResolver()
app.include_router(rf_webhooks.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


lifecycle.init_done()
