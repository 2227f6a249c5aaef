"""template.yaml as data: the one description of functions, routes, queues, tables and schedules
that the local stack, the template checks and the tests all read (never copied literals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

_SHORT_FORMS = {
    "Ref": "Ref",
    "Condition": "Condition",
}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, ...)."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _SHORT_FORMS.get(tag_suffix, f"Fn::{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_text(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError("template is not a mapping")
    return data


@cache
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return load_text(path.read_text())


@dataclass(frozen=True)
class Route:
    path: str  # API Gateway form: /v1/syncs/{sync_id}
    method: str  # ANY or a verb
    function: str
    iam_auth: bool


@dataclass(frozen=True)
class QueueConsumer:
    queue: str
    batch_size: int
    batching_window_s: int
    report_failures: bool
    max_concurrency: int | None


@dataclass
class Function:
    name: str
    code_uri: str
    handler: str
    timeout: int
    environment: dict[str, Any]
    routes: list[Route] = field(default_factory=list)
    consumers: list[QueueConsumer] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return ROOT / self.code_uri / f"{module}.py"


@dataclass(frozen=True)
class Queue:
    name: str
    visibility_timeout: int
    dlq: str | None
    max_receive_count: int | None


def _ref_name(value: Any) -> str:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    raise ValueError(f"expected a Ref or GetAtt, got {value!r}")


def functions(template: dict[str, Any] | None = None) -> dict[str, Function]:
    template = template or load()
    defaults = template.get("Globals", {}).get("Function", {})
    default_env = defaults.get("Environment", {}).get("Variables", {})
    found: dict[str, Function] = {}
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        env = {**default_env, **props.get("Environment", {}).get("Variables", {})}
        fn = Function(
            name=name,
            code_uri=props["CodeUri"],
            handler=props["Handler"],
            timeout=int(props.get("Timeout", defaults.get("Timeout", 3))),
            environment=env,
        )
        for event in props.get("Events", {}).values():
            ep = event.get("Properties", {})
            if event["Type"] == "Api":
                auth = (ep.get("Auth") or {}).get("Authorizer") == "AWS_IAM"
                fn.routes.append(Route(ep["Path"], ep["Method"].upper(), name, auth))
            elif event["Type"] == "SQS":
                fn.consumers.append(
                    QueueConsumer(
                        queue=_ref_name(ep["Queue"]),
                        batch_size=int(ep.get("BatchSize", 10)),
                        batching_window_s=int(ep.get("MaximumBatchingWindowInSeconds", 0)),
                        report_failures="ReportBatchItemFailures" in (ep.get("FunctionResponseTypes") or []),
                        max_concurrency=(ep.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                    )
                )
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                fn.schedules.append(str(ep.get("Schedule") or ep.get("ScheduleExpression")))
        found[name] = fn
    return found


def queues(template: dict[str, Any] | None = None) -> dict[str, Queue]:
    template = template or load()
    found: dict[str, Queue] = {}
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::SQS::Queue":
            continue
        props = res.get("Properties") or {}
        redrive = props.get("RedrivePolicy") or {}
        found[name] = Queue(
            name=name,
            visibility_timeout=int(props.get("VisibilityTimeout", 30)),
            dlq=_ref_name(redrive["deadLetterTargetArn"]) if redrive else None,
            max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
        )
    return found


def tables(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each DynamoDB table's properties, as CreateTable would take them."""
    template = template or load()
    return {
        name: res["Properties"]
        for name, res in template["Resources"].items()
        if res.get("Type") == "AWS::DynamoDB::Table"
    }


def rate_seconds(expression: str) -> int:
    """`rate(1 minute)` → 60."""
    inner = expression.strip().removeprefix("rate(").removesuffix(")")
    amount, unit = inner.split()
    scale = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
    return int(amount) * scale[unit]
