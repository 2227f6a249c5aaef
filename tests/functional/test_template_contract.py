"""template.yaml and the code agree: each handler imports as Lambda would load it, each function's
environment is exactly its settings model, and the template checks catch what they claim to."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local import template as tmpl
from local.provision import Provisioned, parameter_defaults, resolve_environment
from tests import short_template, template_check

ROOT = tmpl.ROOT
FUNCTIONS = tmpl.functions()

# Run in a fresh interpreter with only Lambda's path: the function's CodeUri and the layer's
# python/ directory (here: the `shared` package copied as the layer build copies it) plus the
# installed dependencies. The editable install's finder is removed so `shared` must come from the layer.
PROBE = """
import importlib, importlib.util, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                    and "editable" not in getattr(f, "__module__", "")]
sys.path[:0] = [sys.argv[1], sys.argv[2]]
module = importlib.import_module(sys.argv[3])
handler = getattr(module, sys.argv[4])
settings = getattr(module, "SETTINGS")
print(json.dumps({
    "callable": callable(handler),
    "shared_from": importlib.import_module("shared").__file__,
    "leaks": [m for m in ("functions", "local", "tests", "bench") if importlib.util.find_spec(m)],
    "settings_fields": sorted(f.alias or n for n, f in type(settings).model_fields.items()),
}))
"""


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = tmp_path_factory.mktemp("layer") / "python"
    shutil.copytree(ROOT / "shared", python / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    return python


def _fake_environment(fn: tmpl.Function) -> dict[str, str]:
    refs = {name: f"local-{name}" for name in tmpl.load()["Resources"]}
    fake = Provisioned(refs=refs, arns={n: f"arn:aws:::{n}" for n in refs})
    return resolve_environment(fn, fake, parameter_defaults())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handler_imports_with_only_lambdas_path_and_env_matches_settings(name, layer, tmp_path):
    fn = FUNCTIONS[name]
    module, _, attribute = fn.handler.rpartition(".")
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        **_fake_environment(fn),
    }
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(ROOT / fn.code_uri), str(layer), module, attribute],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["callable"]
    assert probe["shared_from"].startswith(str(layer))
    assert probe["leaks"] == []
    assert probe["settings_fields"] == sorted(fn.environment), "template env and settings model differ"


def test_the_template_passes_its_checks():
    assert template_check.check(tmpl.load()) == []


def test_checks_catch_a_bad_ref_in_a_policy():
    template = copy.deepcopy(tmpl.load())
    policies = template["Resources"]["ReferralSignupFunction"]["Properties"]["Policies"]
    policies[0] = {"DynamoDBReadPolicy": {"TableName": {"Ref": "NoSuchTable"}}}
    problems = template_check.check(template)
    assert any("NoSuchTable" in p for p in problems), problems


def test_checks_catch_a_bad_ref_in_globals():
    template = copy.deepcopy(tmpl.load())
    template["Globals"]["Function"]["Environment"]["Variables"]["TABLE_NAME"] = {"Ref": "Missing"}
    assert any("Missing" in p for p in template_check.check(template))


def test_checks_catch_a_visibility_timeout_below_six_times_the_timeout():
    template = copy.deepcopy(tmpl.load())
    template["Resources"]["SignupQueue"]["Properties"]["VisibilityTimeout"] = 100
    problems = template_check.check(template)
    assert any("SignupQueue: VisibilityTimeout 100" in p for p in problems), problems


def test_checks_catch_a_wildcard_action():
    template = copy.deepcopy(tmpl.load())
    template["Resources"]["SchedulerFunction"]["Properties"]["Policies"].append(
        {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    )
    problems = template_check.check(template)
    assert any("wildcard action 'dynamodb:*'" in p for p in problems), problems


def test_checks_catch_a_bad_runtime_in_globals():
    template = copy.deepcopy(tmpl.load())
    template["Globals"]["Function"]["Runtime"] = "python3.99"
    assert any("E3030" in p for p in template_check.check(template))


def test_checks_catch_a_queue_without_dlq_and_a_consumer_without_partial_failures():
    template = copy.deepcopy(tmpl.load())
    del template["Resources"]["SyncQueue"]["Properties"]["RedrivePolicy"]
    del template["Resources"]["SyncCoordinatorFunction"]["Properties"]["Events"]["Work"]["Properties"][
        "FunctionResponseTypes"
    ]
    problems = template_check.check(template)
    assert any("SyncQueue: needs a RedrivePolicy" in p for p in problems)
    assert any("ReportBatchItemFailures" in p for p in problems)


def test_checks_catch_a_route_that_does_not_take_every_method():
    template = copy.deepcopy(tmpl.load())
    template["Resources"]["AccountApiFunction"]["Properties"]["Events"]["Health"]["Properties"]["Method"] = (
        "get"
    )
    assert any("Method: ANY" in p for p in template_check.check(template))


def test_checks_catch_a_function_on_x86():
    template = copy.deepcopy(tmpl.load())
    template["Resources"]["SchedulerFunction"]["Properties"]["Architectures"] = ["x86_64"]
    problems = template_check.check(template)
    assert any("SchedulerFunction: Architectures must be [arm64]" in p for p in problems), problems


def test_checks_catch_a_layer_built_for_x86():
    template = copy.deepcopy(tmpl.load())
    template["Resources"]["SharedLayer"]["Metadata"]["BuildArchitecture"] = "x86_64"
    template["Resources"]["SharedLayer"]["Properties"]["CompatibleArchitectures"] = ["x86_64"]
    problems = template_check.check(template)
    assert "SharedLayer: Metadata.BuildArchitecture must be arm64" in problems, problems
    assert any("CompatibleArchitectures must be [arm64]" in p for p in problems), problems


def test_the_layer_build_downloads_aarch64_wheels_only():
    """`sam build` runs the Makefile's build-SharedLayer: its pip install names the aarch64 platform and
    refuses source builds, so nothing compiled for this x86 machine can slip into the layer."""
    recipe = (ROOT / "Makefile").read_text().split("build-SharedLayer:", 2)[-1]
    assert "--platform manylinux2014_aarch64" in recipe
    assert "--only-binary=:all:" in recipe
    assert "x86_64" not in recipe


# -- the short-timeout variant the kill tests run (tests/short_template.py) ---------------------------

SHORT = {"SignupProcessorFunction": 5, "IntercomEventsFunction": 4, "SyncWorkerFunction": 5}


def test_the_short_variant_lowers_only_the_named_timeouts_and_their_queues_visibility():
    product = tmpl.load()
    short = short_template.shortened(product, SHORT)
    functions, queues = tmpl.functions(short), tmpl.queues(short)
    consumed = {c.queue: name for name, fn in functions.items() for c in fn.consumers}
    for name, fn in functions.items():
        assert fn.timeout == SHORT.get(name, tmpl.functions(product)[name].timeout)
    for name, queue in queues.items():
        if consumed.get(name) in SHORT:
            assert queue.visibility_timeout == template_check.SAFETY_FACTOR * SHORT[consumed[name]]
        else:
            assert queue == tmpl.queues(product)[name]
    # Nothing else moved, and the variant is a template the checks pass (AWS's rule included).
    assert _without_timeouts(short) == _without_timeouts(product)
    assert template_check.check(short) == []


def _without_timeouts(template: dict) -> dict:
    stripped = copy.deepcopy(template)
    for resource in stripped["Resources"].values():
        resource.get("Properties", {}).pop("Timeout", None)
        resource.get("Properties", {}).pop("VisibilityTimeout", None)
    return stripped


def test_the_short_variant_refuses_a_function_the_template_lacks():
    with pytest.raises(short_template.ShortTemplateError, match="NoSuchFunction"):
        short_template.shortened(tmpl.load(), {"NoSuchFunction": 5})


def test_the_written_short_variant_runs_the_products_code(tmp_path):
    path = short_template.write_short_template(tmp_path, SHORT)
    written = tmpl.load_text(path.read_text())
    assert written == short_template.shortened(tmpl.load(), SHORT)
    # Each CodeUri resolves, beside the variant, to the product's own code (as local.stack resolves it).
    for fn in tmpl.functions(written).values():
        assert (path.parent / fn.code_uri).resolve() == (ROOT / fn.code_uri).resolve()
        assert (path.parent / fn.code_uri / f"{fn.handler.rpartition('.')[0]}.py").is_file()


def test_checks_catch_a_snapstart_function_invoked_without_its_alias():
    template = copy.deepcopy(tmpl.load())
    del template["Resources"]["AccountApiFunction"]["Properties"]["AutoPublishAlias"]
    problems = template_check.check(template)
    assert any("AccountApiFunction's $LATEST" in p for p in problems), problems
