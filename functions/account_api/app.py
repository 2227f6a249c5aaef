"""Account API: operator routes and, as their issues land, the account's Intercom and campaign settings."""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from shared import settings
from shared.api.resolver import ProductResolver
from shared.api.routes import account, operator, referrals
from shared.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = settings.load(settings.AccountApiSettings)

app = ProductResolver()
app.include_router(operator.router)
app.include_router(account.router)
app.include_router(referrals.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


lifecycle.init_done()
