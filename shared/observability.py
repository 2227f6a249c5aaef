"""The one place that creates Powertools' Logger, Tracer and Metrics; everything imports them from here."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(log_uncaught_exceptions=True)
tracer = Tracer()
metrics = Metrics()
