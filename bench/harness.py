"""What the benchmarks share: percentiles, a webhook receiver measured in process against moto, the
local stack started on free ports (`python -m local up` in a child process), the emulators' counters,
and one JSON document on stdout."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local import template as tmpl
from local.services import free_ports

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import httpx

    from local.demo import Demo
    from local.provision import Provisioned

# moto in this process: credentials that can never reach a real account.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
}
STACK_READY_TIMEOUT_S = 90.0
# Calls to the receiver before any is timed (imports, first clients, caches).
WARM_UP = 20
# moto's SendMessage slows as a queue grows (a real queue does not): drained every this many calls.
DRAIN_EVERY = 20


def percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def ms(values: list[float], *pcts: int) -> dict[str, float]:
    """Percentiles of durations in seconds, in milliseconds."""
    return {f"p{p}": round(percentile(values, p) * 1000, 2) for p in pcts}


# -- a receiver in process -------------------------------------------------------------------------
def rest_event(
    function: str,
    route: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    path_params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The REST proxy event the local API Gateway builds for a POST to `path` (routed by `route`)."""
    from starlette.requests import Request

    from local.apigw import ApiRoute, build_event

    headers = {"host": "127.0.0.1:3000", "content-type": "application/json", **headers}
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "scheme": "http",
        "server": ("127.0.0.1", 3000),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
    }
    api_route = ApiRoute.of(route, "ANY", function)
    return build_event(Request(scope), body, api_route, path_params or {}, str(uuid.uuid4()))


def drain(sqs: Any, queue_url: str) -> None:
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


@dataclass
class InProcess:
    """A function's handler loaded as Lambda would, against moto, with a no-op handler wearing the same
    Powertools decorators as the yardstick."""

    function: str
    provisioned: Provisioned
    handler: Callable[[dict[str, Any], Any], Any]
    noop: Callable[[dict[str, Any], Any], Any]
    sqs: Any
    answers: dict[str, int] = field(default_factory=dict)

    def context(self) -> Any:
        from local.lambda_runtime import LambdaContext

        return LambdaContext(
            function_name=self.function,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.function}",
            memory_limit_in_mb=512,
            aws_request_id=str(uuid.uuid4()),
            deadline_ms=int(time.time() * 1000) + 5000,
        )

    def timed(self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> float:
        """Seconds `handler` took for `event`; counts the `status` of each answer in `answers`."""
        ctx = self.context()
        started = time.perf_counter()
        result = handler(event, ctx)
        elapsed = time.perf_counter() - started
        if result["statusCode"] != 200:
            raise RuntimeError(f"the handler answered {result}")
        status = json.loads(result.get("body") or "{}").get("status")
        if status:
            self.answers[status] = self.answers.get(status, 0) + 1
        return elapsed


@contextlib.contextmanager
def in_process(function: str) -> Iterator[InProcess]:
    """`function` (a template logical id) with its environment resolved against a provisioned moto."""
    os.environ.update(FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from local.provision import parameter_defaults, provision, resolve_environment

    with mock_aws():
        import boto3

        provisioned = provision(boto3.session.Session(), stack="bench")
        fn = tmpl.functions()[function]
        os.environ.update(resolve_environment(fn, provisioned, parameter_defaults()))
        package = fn.code_uri.strip("/").replace("/", ".")
        handler = importlib.import_module(f"{package}.{fn.handler.rpartition('.')[0]}").handler
        from aws_lambda_powertools.logging import correlation_paths

        from shared.aws import boto
        from shared.observability import logger, metrics

        boto.reset()

        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
        @metrics.log_metrics
        def noop(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

        yield InProcess(function, provisioned, handler, noop, boto3.client("sqs"))


# -- the stack -------------------------------------------------------------------------------------
@contextlib.contextmanager
def running_stack(log_path: Path, env: dict[str, str], *args: str) -> Iterator[dict[str, str]]:
    """`python -m local up` on free ports (and `args`) until the block ends; yields its ready line
    with its pid."""
    api, intercom, rf, aws = free_ports(4)
    command = [sys.executable, "-m", "local", "up", "--api-port", str(api), "--intercom-port", str(intercom)]
    # --verbose: the functions' logs (their EMF metrics too) stay in the one log the bench reads.
    command += ["--rf-port", str(rf), "--aws-port", str(aws), "--verbose", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=tmpl.ROOT, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STACK_READY_TIMEOUT_S)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"the stack did not start; its log: {log_path}")
        yield {**json.loads(line), "pid": str(process.pid)}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stack_aws(info: dict[str, str]) -> dict[str, str]:
    """boto3 client arguments for the running stack's embedded AWS."""
    return {
        "endpoint_url": info["aws"],
        "region_name": "us-east-1",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }


def process_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of `root` and every live process under it, by pid, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                parents[int(entry.name)] = int(fields[1])
                times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, pending = {root}, [root]
    while pending:
        parent = pending.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                pending.append(child)
    return {pid: times[pid] for pid in tree if pid in times}


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by `root` and every live process under it."""
    return sum(process_cpu(root).values())


def queue_settled(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return all(
        attributes[k] == "0" for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


def lift_limits(http: httpx.Client, demo: Demo, aws: dict[str, str], product_rf_limit: int) -> None:
    """The Referral Factory emulator's limit off; the account's own budget for its key raised too."""
    http.put(f"{demo.rf}/_emulator/config", json={"rate_limit_per_minute": None}).raise_for_status()
    if product_rf_limit:
        import boto3

        from shared import keys

        # The product spends its own budget per key before each call (Referral Factory's documented
        # 600 a minute); an account's record may say otherwise, and nothing else can.
        pk, sk = keys.account_key(demo.state["account_id"])
        boto3.client("dynamodb", **aws).update_item(
            TableName="local-MainTable",
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET rf_rate_limit_per_minute = :limit",
            ExpressionAttributeValues={":limit": {"N": str(product_rf_limit)}},
        )


def emulator_stats(http: httpx.Client, demo: Demo) -> dict[str, dict[str, Any]]:
    """Both emulators' counters (`/_emulator/stats`): calls by route, 429s."""
    return {
        name: http.get(f"{base}/_emulator/stats").json()
        for name, base in (("rf", demo.rf), ("ic", demo.intercom))
    }


# -- output ----------------------------------------------------------------------------------------
def print_json(measure: Callable[[], dict[str, Any]]) -> int:
    """Run `measure` and print its result as the one JSON document on stdout. Handlers log and print
    their metrics to stdout, as Lambda wants, so stdout is theirs (/dev/null) until the end."""
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        result = measure()
    except Exception:
        # Powertools' logger takes over uncaught exceptions and would log this one to stdout.
        traceback.print_exc()
        return 1
    out.write(json.dumps(result, indent=2) + "\n")
    out.flush()
    return 0
