"""Create, in any AWS endpoint (moto in process or moto server), every resource template.yaml
declares that the functions use at run time, and resolve each function's environment to them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from local import template as tmpl


@dataclass
class Provisioned:
    """Physical ids by logical id: table names, queue URLs and ARNs, the key id, the secret ARN."""

    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    queue_names: dict[str, str] = field(default_factory=dict)


def _table_request(name: str, props: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return request


def provision(session: Any, stack: str = "local", template: dict[str, Any] | None = None) -> Provisioned:
    template = template or tmpl.load()
    out = Provisioned()
    resources = template["Resources"]
    kms = session.client("kms")
    for name, res in resources.items():
        if res["Type"] == "AWS::KMS::Key":
            key = kms.create_key(Description=f"{stack} {name}")["KeyMetadata"]
            out.refs[name], out.arns[name] = key["KeyId"], key["Arn"]
    dynamodb = session.client("dynamodb")
    for name, props in tmpl.tables(template).items():
        table = f"{stack}-{name}"
        dynamodb.create_table(**_table_request(table, props))
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
        out.refs[name] = table
    sqs = session.client("sqs")
    queues = tmpl.queues(template)
    # DLQs first: a queue's redrive policy names its DLQ's ARN.
    for queue in sorted(queues.values(), key=lambda q: q.dlq is not None):
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout)}
        if queue.dlq:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": out.arns[queue.dlq], "maxReceiveCount": queue.max_receive_count}
            )
        queue_name = f"{stack}-{queue.name}"
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        out.refs[queue.name], out.arns[queue.name], out.queue_names[queue.name] = url, arn, queue_name
    secrets = session.client("secretsmanager")
    for name, res in resources.items():
        if res["Type"] == "AWS::SecretsManager::Secret":
            arn = secrets.create_secret(Name=f"{stack}-{name}", SecretString="{}")["ARN"]
            out.refs[name] = out.arns[name] = arn
    return out


def parameter_defaults(template: dict[str, Any] | None = None) -> dict[str, str]:
    template = template or tmpl.load()
    return {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}


def resolve_environment(
    fn: tmpl.Function,
    provisioned: Provisioned,
    parameters: dict[str, str],
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """The function's environment as Lambda would see it, with Refs resolved to local resources."""
    env: dict[str, str] = {}
    for key, value in fn.environment.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            resolved = provisioned.refs.get(ref, parameters.get(ref))
            if resolved is None:
                raise KeyError(
                    f"{fn.name}: {key} refers to {ref}, which is neither a resource nor a parameter"
                )
            env[key] = resolved
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            env[key] = provisioned.arns[value["Fn::GetAtt"][0]]
        else:
            env[key] = str(value)
    env.update({k: v for k, v in (overrides or {}).items() if k in env})
    return env
