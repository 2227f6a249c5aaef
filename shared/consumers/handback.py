"""Dispatching a queue message by its kind, and handing it back with a delay: the one loop both queue
consumers run their handlers in.

Work that cannot happen now (`Deferred`: another worker holds it, a search not yet trustworthy; a rate
budget spent; Referral Factory or Intercom failing through the client's own retries) goes back to its
queue with a delay instead of sleeping in a billed Lambda or waiting out the visibility timeout. A
message handed back MAX_REQUEUES times is failed instead, so it ends in the DLQ (visible, redrivable).

(The sync workers hand back the rest of a chunk, counted by progress, not by message: shared/flows/sync.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from shared import messages
from shared.aws import queues
from shared.clients.errors import RateLimited, Transient
from shared.observability import logger

if TYPE_CHECKING:
    from shared.wiring import Services

# A message handed back this many times goes to the DLQ (visible, redrivable) instead.
MAX_REQUEUES = 40
# Referral Factory or Intercom kept failing through the client's own retries: try again this much later.
TRANSIENT_RETRY_S = 5
HANDED_BACK = "handed_back"

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class Handler(Generic[M, S, R]):
    """What a queue does with one kind: the model its messages are read as, and the function that
    takes the message with the services and the consumer's settings."""

    model: type[M]
    run: Callable[[M, Services, S], R]


def handler(model: type[M], run: Callable[[M, Services, S], R]) -> Handler[Any, S, R]:
    """A queue's handler of one kind; mypy checks `run` takes `model` here, where a table of
    handlers of different models (`Handler[Any, ...]`) no longer could."""
    return Handler(model, run)


class UnknownMessage(Exception):
    """A kind the queue has no handler for: never acknowledged, so it stays visible (and then in the DLQ)."""


def delay_for(later: Exception) -> int:
    """How long to wait before trying the message again (seconds)."""
    if isinstance(later, messages.Deferred):
        return later.delay_s
    if isinstance(later, RateLimited):
        return int((later.retry_after or 1) + 1)
    return TRANSIENT_RETRY_S


def run_or_hand_back(message: dict[str, Any], queue_url: str, handle: Callable[[], R]) -> R | str:
    """`handle()`'s result, or HANDED_BACK when the work cannot happen now and `message` went back to
    `queue_url` with a delay (raises instead after MAX_REQUEUES)."""
    try:
        return handle()
    except (messages.Deferred, RateLimited, Transient) as later:
        delay = delay_for(later)
        requeues = int(message.get("requeues") or 0)
        if requeues >= MAX_REQUEUES:
            raise
        queues.send(queue_url, {**message, "requeues": requeues + 1}, delay_seconds=max(1, delay))
        logger.info(
            "handed back to the queue",
            extra={"kind": message.get("kind"), "delay_s": delay, "reason": str(later)},
        )
        return HANDED_BACK


def dispatch(
    body: str,
    handlers: Mapping[str, Handler[Any, S, R]],
    svc: Services,
    settings: S,
    *,
    queue: str,
    queue_url: str,
    ignored: Collection[str] = (),
) -> R | str | None:
    """Run the handler of the message's kind on the message read as its model, handing the message
    back to `queue_url` when it cannot happen now; None for a kind the queue ignores. A kind with no
    handler raises UnknownMessage, and a message its model cannot read raises ValidationError: never
    acknowledged, either stays visible (and then in the DLQ)."""
    # Handed back as it came (key order, keys no model names, `requeues`), not as its model dumps it.
    message: dict[str, Any] = json.loads(body)
    kind = message.get("kind")
    if kind in ignored:
        return None
    handler = handlers.get(kind) if isinstance(kind, str) else None
    if handler is None:
        raise UnknownMessage(f"the {queue} queue has no handler for {kind!r}")
    typed = handler.model.model_validate(message)
    return run_or_hand_back(message, queue_url, lambda: handler.run(typed, svc, settings))
