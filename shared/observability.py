"""The one place that creates Powertools' Logger, Metrics and Tracer; everything imports them from here.

The tracer is built on first use: creating it imports the X-Ray SDK (about 200 ms), which the
webhook receivers must not pay at cold start (they answer within 500 ms and do not trace).
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


def __getattr__(name: str) -> Any:
    global _tracer  # noqa: PLW0603 - a module-level singleton, built once
    if name == "tracer":
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer()
        return _tracer
    raise AttributeError(name)
