"""The one place that creates Powertools' Logger, Metrics and Tracer; everything imports them from here.

The tracer is built on first use: creating it imports the X-Ray SDK, which the webhook receivers must
not pay at cold start (they answer within 500 ms and do not trace). It records a subsegment for every
AWS call (botocore, patched when the tracer is built) and every call to Intercom and Referral Factory
(httpx, patched by `shared.clients.http` when it first calls out): Powertools' default, patching
every library X-Ray supports, would import httpx at init in functions whose first request never
calls out (docs/cold-starts.md).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    tracer: Tracer

logger = Logger(log_uncaught_exceptions=True)
metrics = Metrics()
# Most invocations (a page, a status read) publish no metric, which is expected, not news: Powertools'
# documented way to keep this warning out of every such invocation's log.
warnings.filterwarnings("ignore", "No application metrics to publish*")

_tracer: Any = None
# The libraries whose calls X-Ray records, patched when the tracer is built (see `trace_calls_through`).
_traced: list[str] = ["botocore"]


def trace_calls_through(module: str) -> None:
    """Record the calls made through `module` (a library X-Ray patches) in the trace: at once if the
    tracer is built, else when it is. Call before the library's first client is made."""
    if module in _traced:
        return
    _traced.append(module)
    if _tracer is not None:
        _tracer.patch([module])


def __getattr__(name: str) -> Any:
    global _tracer  # noqa: PLW0603 - a module-level singleton, built once
    if name == "tracer":
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer(patch_modules=list(_traced))
        return _tracer
    raise AttributeError(name)
