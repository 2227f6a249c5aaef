"""The whole product on one machine, as it runs in Lambda, everything read from template.yaml:
the embedded AWS with every resource the template declares, both emulators wired to the product,
warm function instances, the API Gateway adapter, the SQS pollers and the schedules."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx

from local import template as tmpl
from local.apigw import GatewayResponses, RestApiAdapter, Router, TokenBucket
from local.controls import LocalControls
from local.emulators.server import serve_in_thread
from local.lambda_runtime import REGION, FunctionError, FunctionPool, FunctionSpec
from local.provision import Provisioned, parameter_defaults, provision, resolve_environment
from local.scheduler import Schedule, Scheduler
from local.services import Service, ServiceError, port_is_free
from local.sqs_poller import SqsPoller, SqsSource

if TYPE_CHECKING:
    from local.emulators.server import RunningServer

log = logging.getLogger("local.stack")

HOST = "127.0.0.1"
# Fake, and never a real account's: every client in the stack and its instances talks to moto.
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "aws_session_token": "local"}
DEFAULT_CONSUMER_CONCURRENCY = 2


class StackError(Exception):
    pass


@dataclass
class StackOptions:
    api_port: int = 3000
    intercom_port: int = 3001
    rf_port: int = 3002
    aws_port: int = 3003
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    schedule_interval_s: float = 60.0
    template_path: Path = tmpl.TEMPLATE
    stack_name: str = "local"
    # Most instances one API function may run at once (Lambda scales further; a laptop should not).
    api_concurrency: int = 4
    # Start every consumer's instances before the ready line instead of at their first batch.
    warm_consumers: bool = True
    # The functions' own output (their JSON logs) goes to this file; None: to the stack's stderr.
    function_log_path: Path | None = None

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def intercom_url(self) -> str:
        return f"http://{HOST}:{self.intercom_port}"

    @property
    def rf_url(self) -> str:
        return f"http://{HOST}:{self.rf_port}"

    @property
    def aws_url(self) -> str:
        return f"http://{HOST}:{self.aws_port}"


class AwsSession:
    """A boto3 session bound to the embedded AWS (what `provision` and the pollers are given)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session(region_name=REGION, **CREDENTIALS)

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.endpoint_url)


def intercom_app(options: StackOptions) -> dict[str, Any]:
    """The Intercom emulator's OAuth app, pointing at the product as a registered app would."""
    api = options.api_url
    return {
        "client_id": "rf-intercom-local",
        "client_secret": secrets.token_hex(16),
        "redirect_uris": [f"{api}/oauth/intercom/callback"],
        "webhook_url": f"{api}/webhooks/intercom",
        "uninstall_url": f"{api}/webhooks/intercom/uninstall",
    }


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.template = tmpl.load(options.template_path.resolve())
        self.functions = tmpl.functions(self.template)
        self.services: dict[str, Service] = {}
        self.provisioned = Provisioned()
        self.pools: dict[str, FunctionPool] = {}
        self.pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self.api: RunningServer | None = None
        self.intercom_app = intercom_app(options)
        self.aws = AwsSession(options.aws_url)
        self._stopped = threading.Event()

    # -- start ---------------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        started = time.perf_counter()
        o = self.options
        ports = {
            "api": o.api_port,
            "intercom": o.intercom_port,
            "referral_factory": o.rf_port,
            "aws": o.aws_port,
        }
        busy = [f"{name} ({port})" for name, port in ports.items() if not port_is_free(port)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}")
        try:
            self._start_services()
            self._provision()
            self._start_functions()
            self._start_api()
            self._start_event_sources()
            self._check_answers()
        except (ServiceError, OSError, httpx.HTTPError) as exc:
            raise StackError(str(exc)) from exc
        log.info("stack ready in %.1f s", time.perf_counter() - started)
        return self.ready_info()

    def ready_info(self) -> dict[str, str]:
        o = self.options
        info = {
            "event": "ready",
            "api": o.api_url,
            "intercom": o.intercom_url,
            "referral_factory": o.rf_url,
            "aws": o.aws_url,
            "admin_token": o.admin_token,
        }
        if o.function_log_path is not None:
            info["logs"] = str(o.function_log_path)
        return info

    def _start_services(self) -> None:
        o = self.options
        self.services = {
            "aws": Service.spawn("aws", o.aws_port),
            "intercom": Service.spawn("intercom", o.intercom_port, self.intercom_app),
            "referral_factory": Service.spawn("referral_factory", o.rf_port),
        }
        for service in self.services.values():
            service.wait_ready()
            log.info("%s listening on %s", service.kind, service.url)

    def _provision(self) -> None:
        self.provisioned = provision(self.aws, stack=self.options.stack_name, template=self.template)
        app_secret = json.dumps(
            {"client_id": self.intercom_app["client_id"], "client_secret": self.intercom_app["client_secret"]}
        )
        secretsmanager = self.aws.client("secretsmanager")
        for name, resource in self.template["Resources"].items():
            if resource.get("Type") == "AWS::SecretsManager::Secret":
                secretsmanager.put_secret_value(SecretId=self.provisioned.refs[name], SecretString=app_secret)
        kinds: dict[str, int] = {}
        for resource in self.template["Resources"].values():
            if resource["Type"] in (
                "AWS::DynamoDB::Table",
                "AWS::SQS::Queue",
                "AWS::KMS::Key",
                "AWS::SecretsManager::Secret",
            ):
                kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
        log.info(
            "provisioned from %s: %s",
            self.options.template_path.name,
            ", ".join(f"{n} {t.rsplit('::', 1)[1]}" for t, n in kinds.items()),
        )

    def function_environment(self, fn: tmpl.Function) -> dict[str, str]:
        o = self.options
        overrides = {
            "ADMIN_AUTH": "token",
            "ADMIN_TOKEN": o.admin_token,
            "PUBLIC_BASE_URL": o.api_url,
            "INTERCOM_API_BASE": o.intercom_url,
            "INTERCOM_OAUTH_BASE": o.intercom_url,
            "DEFAULT_REFERRAL_FACTORY_API_BASE": f"{o.rf_url}/api/v2",
        }
        env = resolve_environment(fn, self.provisioned, parameter_defaults(self.template), overrides)
        env.update(
            {
                "AWS_ENDPOINT_URL": o.aws_url,
                "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
                "AWS_SESSION_TOKEN": CREDENTIALS["aws_session_token"],
                # No X-Ray daemon here: the tracer would only log that it cannot send.
                "POWERTOOLS_TRACE_DISABLED": "1",
            }
        )
        return env

    def _concurrency(self, fn: tmpl.Function) -> int:
        consumers = sum(c.max_concurrency or DEFAULT_CONSUMER_CONCURRENCY for c in fn.consumers)
        api = self.options.api_concurrency if fn.routes else 0
        return max(1, consumers + api + (1 if fn.schedules else 0))

    def _start_functions(self) -> None:
        template_dir = self.options.template_path.resolve().parent
        for name, fn in self.functions.items():
            spec = FunctionSpec(
                name=name,
                handler=fn.handler,
                code_dir=str((template_dir / fn.code_uri).resolve()),
                environment=self.function_environment(fn),
                timeout_s=float(fn.timeout),
                memory_mb=int(self.template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)),
                # The layer: `shared` and the pinned dependencies, as /opt/python is in Lambda.
                extra_path=(str(tmpl.ROOT),),
                log_path=str(self.options.function_log_path) if self.options.function_log_path else None,
            )
            self.pools[name] = FunctionPool(spec, self._concurrency(fn))
        warm: list[tuple[FunctionPool, int]] = []
        for name, fn in self.functions.items():
            count = 1 if fn.routes else 0
            if self.options.warm_consumers:
                count += sum(c.max_concurrency or DEFAULT_CONSUMER_CONCURRENCY for c in fn.consumers)
            if count:
                warm.append((self.pools[name], count))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(warm) or 1, thread_name_prefix="warm") as pool:
            list(pool.map(lambda item: self._warm(*item), warm))
        log.info(
            "%d functions, %d instances warm in %.1f s",
            len(self.pools),
            sum(len(p.pids()) for p in self.pools.values()),
            time.perf_counter() - started,
        )

    @staticmethod
    def _warm(pool: FunctionPool, count: int) -> None:
        try:
            pool.warm(count)
        except FunctionError as exc:
            # As in Lambda, a function whose init fails fails its invocations (502 behind the API,
            # retried batches behind a queue); the rest of the stack still serves.
            log.error("%s could not start: %s: %s", pool.spec.name, exc.error_type, exc.message)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self.pools[function].invoke(event)

    def _start_api(self) -> None:
        adapter = RestApiAdapter(
            Router.from_functions(self.functions),
            self.invoke,
            GatewayResponses.from_template(self.template),
            TokenBucket.from_template(self.template),
            controls=LocalControls(self.pools),
        )
        self.api = serve_in_thread(adapter, self.options.api_port, HOST)
        log.info("api listening on %s (%d routes)", self.options.api_url, len(adapter.router.routes))

    def _start_event_sources(self) -> None:
        queues = tmpl.queues(self.template)
        schedules: list[Schedule] = []
        for name, fn in self.functions.items():
            for consumer in fn.consumers:
                source = SqsSource(
                    function=name,
                    queue_url=self.provisioned.refs[consumer.queue],
                    queue_arn=self.provisioned.arns[consumer.queue],
                    batch_size=consumer.batch_size,
                    batching_window_s=consumer.batching_window_s,
                    report_failures=consumer.report_failures,
                    concurrency=consumer.max_concurrency or DEFAULT_CONSUMER_CONCURRENCY,
                )
                pool = self.pools[name]
                poller = SqsPoller(source, pool.invoke, lambda: self.aws.client("sqs"))
                poller.start()
                self.pollers.append(poller)
                queue = queues[consumer.queue]
                log.info(
                    "%s <- %s: batch %d, window %ss, %d consumers, visibility %ds, DLQ after %s receives",
                    name,
                    consumer.queue,
                    source.batch_size,
                    source.batching_window_s,
                    source.concurrency,
                    queue.visibility_timeout,
                    queue.max_receive_count,
                )
            schedules.extend(
                Schedule(name, f"{self.options.stack_name}-{name}-{i}", expr)
                for i, expr in enumerate(fn.schedules)
            )
        self.scheduler = Scheduler(schedules, self.invoke, self.options.schedule_interval_s)
        self.scheduler.start()
        for schedule in schedules:
            log.info(
                "%s fires every %ss here (%s in AWS)",
                schedule.function,
                self.options.schedule_interval_s,
                schedule.expression,
            )

    def _check_answers(self) -> None:
        """The ready line promises that everything answers: ask each part once."""
        o = self.options
        with httpx.Client(timeout=10) as client:
            for url in (f"{o.intercom_url}/_emulator/config", f"{o.rf_url}/_emulator/config"):
                client.get(url).raise_for_status()
            if any(r.path == "/health" for fn in self.functions.values() for r in fn.routes):
                response = client.get(f"{o.api_url}/health")
                if response.status_code != 200:
                    raise StackError(f"GET /health answered {response.status_code}: {response.text}")

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice and after a failed start."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        started = time.perf_counter()
        if self.scheduler:
            self.scheduler.stop()
        for poller in self.pollers:
            poller.stop()
        # Instances first: a request or batch still running is cut off, as when Lambda goes away.
        # Everything stops side by side; one after another, the joins would add up to seconds.
        with ThreadPoolExecutor(max_workers=max(1, len(self.pools)), thread_name_prefix="stop") as pool:
            list(pool.map(FunctionPool.close, self.pools.values()))
        if self.api:
            self.api.stop()
        for poller in self.pollers:
            poller.join()
        services = list(self.services.values())
        with ThreadPoolExecutor(max_workers=max(1, len(services)), thread_name_prefix="stop") as pool:
            list(pool.map(Service.stop, services))
        log.info("stack stopped in %.1f s", time.perf_counter() - started)
