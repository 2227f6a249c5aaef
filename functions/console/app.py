"""The console (contract §4): its page and static assets, from this function's own `static/` folder.

The console reads and writes nothing itself: in the browser it calls the public `/v1` API with the
account key, so this function has no access to the table, the queues or any secret.
"""

from __future__ import annotations

from shared import lifecycle

lifecycle.init_begins()  # ended by lifecycle.init_done() at the end of this module

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from shared import settings
from shared.api.resolver import ProductResolver
from shared.api.routes import console
from shared.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SETTINGS = settings.load(settings.ConsoleSettings)
STATIC = Path(__file__).resolve().parent / "static"

app = ProductResolver()
app.include_router(console.router_for(STATIC))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


lifecycle.init_done()
