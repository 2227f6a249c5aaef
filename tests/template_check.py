"""Template checks that bite: translate SAM offline, cfn-lint the CloudFormation it becomes, then
hold the house rules (queues, DLQs, alarms, least privilege, routing, log retention).

Plain cfn-lint on a SAM template misses bad Refs inside policies and Globals, so the translation
comes first. Run: `python -m tests.template_check template.yaml` (exit 1 on any problem).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from local import template as tmpl

SAFETY_FACTOR = 6  # SQS VisibilityTimeout >= 6 x the consumer's timeout (AWS's guidance)
REGION = "us-east-1"
PARAMETERS: dict[str, object] = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "rf-intercom",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/rf-intercom/1",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}


class _NoManagedPolicies:
    """The template names no managed policies by name; SAM adds its own by ARN."""

    def load(self) -> dict[str, str]:
        return {}


def _as_packaged(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` would hand CloudFormation: local code paths become S3 locations."""
    packaged = copy.deepcopy(template)
    for name, res in packaged["Resources"].items():
        props = res.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://artifacts-bucket/{name}.zip"
    return packaged


def translate(template: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    # The translator builds ARNs for the session's region even offline.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    params = {**PARAMETERS, "IntercomClientId": "id", "IntercomClientSecret": "secret"}
    return transform(_as_packaged(template), params, _NoManagedPolicies())


def cfn_lint(cloudformation: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint

    matches = lint(json.dumps(cloudformation), regions=["us-east-1"])
    # cfn-lint lists every valid name in some messages; the start and the path say enough.
    return [f"cfn-lint {m.rule.id}: {m.message[:200]} ({'/'.join(map(str, m.path or []))})" for m in matches]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else [a for a in actions if isinstance(a, str)]


def wildcard_actions(cloudformation: dict[str, Any]) -> list[str]:
    """IAM policies of the deployed roles must name each action (resource wildcards are fine)."""
    problems = []
    for name, res in cloudformation["Resources"].items():
        props = res.get("Properties") or {}
        documents = []
        if res["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        for doc in documents:
            for statement in doc.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                for action in _actions(statement):
                    if "*" in action:
                        problems.append(f"{name}: wildcard action {action!r} (name each action)")
    return problems


def queue_rules(template: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    queues = tmpl.queues(template)
    dlqs = {q.dlq for q in queues.values() if q.dlq}
    consumers = [(fn, c) for fn in tmpl.functions(template).values() for c in fn.consumers]
    consumed = {c.queue for _, c in consumers}
    for fn, c in consumers:
        queue = queues.get(c.queue)
        if queue is None:
            problems.append(f"{fn.name}: consumes {c.queue}, which is not a queue in the template")
            continue
        if not c.report_failures:
            problems.append(f"{fn.name}: SQS event needs FunctionResponseTypes [ReportBatchItemFailures]")
        if queue.visibility_timeout < SAFETY_FACTOR * fn.timeout:
            problems.append(
                f"{c.queue}: VisibilityTimeout {queue.visibility_timeout} < {SAFETY_FACTOR} x "
                f"{fn.name} Timeout {fn.timeout}"
            )
    for name, queue in queues.items():
        if name in dlqs:
            continue
        if queue.dlq is None or not queue.max_receive_count:
            problems.append(f"{name}: needs a RedrivePolicy with a DLQ and maxReceiveCount")
        if name not in consumed:
            problems.append(f"{name}: no function consumes it")
    alarmed = set()
    for res in template["Resources"].values():
        if res.get("Type") == "AWS::CloudWatch::Alarm":
            for dim in res["Properties"].get("Dimensions", []):
                value = dim.get("Value")
                if isinstance(value, dict) and "Fn::GetAtt" in value:
                    alarmed.add(value["Fn::GetAtt"][0])
    problems += [f"{dlq}: a DLQ needs a CloudWatch alarm" for dlq in sorted(dlqs - alarmed)]
    return problems


def function_rules(template: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    log_groups = set()
    for res in template["Resources"].values():
        if res.get("Type") == "AWS::Logs::LogGroup":
            name = res["Properties"].get("LogGroupName")
            if isinstance(name, dict) and "Fn::Sub" in name and res["Properties"].get("RetentionInDays"):
                log_groups.add(str(name["Fn::Sub"]).removeprefix("/aws/lambda/${").rstrip("}"))
    for fn in tmpl.functions(template).values():
        if fn.name not in log_groups:
            problems.append(f"{fn.name}: needs a log group with RetentionInDays")
        problems += [
            f"{fn.name}: route {r.path} must take every method (Method: ANY) and answer 405 itself"
            for r in fn.routes
            if r.method != "ANY"
        ]
    return problems


# Every function and the layer run on Graviton; the layer's wheels are built for it (Makefile).
ARCHITECTURE = "arm64"


def architecture_rules(cloudformation: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, res in cloudformation["Resources"].items():
        kind, props = res.get("Type"), res.get("Properties", {})
        if kind == "AWS::Lambda::Function" and props.get("Architectures") != [ARCHITECTURE]:
            found = props.get("Architectures")
            problems.append(f"{name}: Architectures must be [{ARCHITECTURE}], not {found}")
        layer = kind == "AWS::Lambda::LayerVersion"
        if layer and props.get("CompatibleArchitectures") != [ARCHITECTURE]:
            problems.append(f"{name}: CompatibleArchitectures must be [{ARCHITECTURE}]")
    return problems


def snapstart_rules(cloudformation: dict[str, Any]) -> list[str]:
    """A SnapStart function is restored only as a published version: what invokes it (API Gateway's
    permissions, event source mappings) must name its alias (SAM's AutoPublishAlias), not the
    function, whose $LATEST is never snapshotted (docs/cold-starts.md)."""
    resources = cloudformation["Resources"]
    snapstart = {
        name
        for name, res in resources.items()
        if res.get("Type") == "AWS::Lambda::Function"
        and (res.get("Properties", {}).get("SnapStart") or {}).get("ApplyOn") == "PublishedVersions"
    }
    problems = []
    for name, res in resources.items():
        if res.get("Type") in ("AWS::Lambda::Permission", "AWS::Lambda::EventSourceMapping"):
            target = res.get("Properties", {}).get("FunctionName")
            if isinstance(target, dict) and target.get("Ref") in snapstart:
                problems.append(f"{name}: invokes {target['Ref']}'s $LATEST, never restored from a snapshot")
    return problems


def layer_build_rules(template: dict[str, Any]) -> list[str]:
    return [
        f"{name}: Metadata.BuildArchitecture must be {ARCHITECTURE}"
        for name, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::LayerVersion"
        and res.get("Metadata", {}).get("BuildArchitecture") != ARCHITECTURE
    ]


def check(template: dict[str, Any]) -> list[str]:
    """Every problem found in a SAM template (as loaded by `local.template`)."""
    try:
        cloudformation = translate(template)
    except Exception as exc:  # the translator reports template errors as exceptions
        return [f"SAM translation failed: {exc}"]
    return (
        cfn_lint(cloudformation)
        + wildcard_actions(cloudformation)
        + queue_rules(template)
        + function_rules(template)
        + architecture_rules(cloudformation)
        + snapstart_rules(cloudformation)
        + layer_build_rules(template)
    )


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else tmpl.TEMPLATE
    problems = check(tmpl.load_text(path.read_text()))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(json.dumps({"template": str(path), "problems": len(problems)}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
