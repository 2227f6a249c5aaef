"""The product's template with short timeouts, for tests that must wait out a visibility timeout.

`short_template` reads template.yaml, lowers the `Timeout` of the functions named and sets the
`VisibilityTimeout` of each queue they consume to exactly SAFETY_FACTOR x that timeout (the house
rule tests/template_check.py holds the product to; the variant must satisfy it too, and the
generator refuses one that does not). Everything else is the product's: the same functions, code,
queues, tables, batch sizes and concurrency.

The variant is written beside a `functions` link to the repository's, so each `CodeUri` resolves as
it does next to template.yaml (`local.stack` resolves code relative to the template's folder).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import yaml

from local import template as tmpl
from tests.template_check import SAFETY_FACTOR, queue_rules

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


class ShortTemplateError(ValueError):
    pass


def shortened(template: Mapping[str, Any], timeouts: Mapping[str, int]) -> dict[str, Any]:
    """A copy of `template` (as `local.template` loads it) with each function of `timeouts` given that
    timeout and each queue it consumes a visibility timeout of exactly SAFETY_FACTOR x it."""
    short = copy.deepcopy(dict(template))
    resources = short["Resources"]
    functions = tmpl.functions(short)
    visibility: dict[str, int] = {}
    for name, timeout in timeouts.items():
        if name not in functions:
            raise ShortTemplateError(f"{name} is not a function of the template")
        resources[name]["Properties"]["Timeout"] = timeout
        for consumer in functions[name].consumers:
            wanted = SAFETY_FACTOR * timeout
            if visibility.setdefault(consumer.queue, wanted) != wanted:
                raise ShortTemplateError(f"{consumer.queue} has consumers with different timeouts")
    for queue, seconds in visibility.items():
        resources[queue]["Properties"]["VisibilityTimeout"] = seconds
    problems = queue_rules(short)
    if problems:
        raise ShortTemplateError("; ".join(problems))
    return short


def write_short_template(directory: Path, timeouts: Mapping[str, int]) -> Path:
    """`shortened(template.yaml)` written to `directory`/template.yaml, beside a link to the code."""
    short = shortened(tmpl.load(tmpl.TEMPLATE), timeouts)
    link = directory / "functions"
    if not link.exists():
        link.symlink_to(tmpl.ROOT / "functions", target_is_directory=True)
    path = directory / "template.yaml"
    # Intrinsics stay in their long form (`{"Ref": ...}`), which `local.template` reads as well.
    path.write_text(yaml.safe_dump(short, sort_keys=False))
    return path
