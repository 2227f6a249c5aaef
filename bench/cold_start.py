"""Cold-start import cost of each handler module, as a ratio to `import boto3` measured in the same run.

Each sample is a fresh interpreter with Lambda's path (the function's CodeUri and the repository
root standing in for the layer), the function's template environment and the variables the Lambda
runtime itself sets (`LAMBDA_TASK_ROOT`, `AWS_EXECUTION_ENV`, ...): without them the X-Ray SDK
believes it runs on a server and builds two botocore clients for centralised sampling, and
Powertools' Tracer disables itself and patches nothing, neither of which a Lambda cold start does.
The virtualenv also holds the development tools, which the layer does not (Makefile
`build-SharedLayer`: pyproject's dependencies and theirs): a sample cannot import those, as on
Lambda, where httpx finds no `click`/`rich` for its command line and X-Ray no `requests` to patch.

Each handler has a goal by what waits on it (issue 18): the webhook receivers answer Intercom and
Referral Factory within their timeouts (1.5 x), every other function behind API Gateway has a person
waiting (2.0 x), queue consumers and the schedule have nobody waiting (2.5 x).
Goals are judged on the clock. Each handler's CPU time is reported beside it: on this shared machine
the clock also counts waiting for a core while other work runs (an execution environment on Lambda
shares its CPU with nobody), so a miss on the clock that the CPU ratio does not show is load: rerun.
Run: `python -m bench.cold_start [--runs 7]`; docs/cold-starts.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata

from packaging.requirements import Requirement

from local import template as tmpl
from local.provision import Provisioned, parameter_defaults, resolve_environment

RECEIVERS = {"IntercomWebhookFunction", "ReferralSignupFunction"}
GOALS = {"receiver": 1.5, "api": 2.0, "consumer": 2.5, "scheduled": 2.5}
RECEIVER_GOAL = GOALS["receiver"]

PROBE = """
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
NOT_IN_LAYER = frozenset(sys.argv[4].split(","))

class NotInLayer:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in NOT_IN_LAYER:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the layer)", name=name)

sys.meta_path.insert(0, NotInLayer)
start = time.perf_counter()
cpu = time.process_time()
__import__(sys.argv[3])
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def _top_level(dist: metadata.Distribution) -> set[str]:
    listed = dist.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names = set()
    for path in dist.files or ():
        first = path.parts[0]
        if (
            len(path.parts) > 1
            and not first.endswith((".dist-info", ".data"))
            and first not in ("..", "__pycache__")
        ):
            names.add(first)
        elif len(path.parts) == 1 and first.endswith(".py"):
            names.add(first.removesuffix(".py"))
    return names


@cache
def not_in_layer() -> frozenset[str]:
    """Top-level modules of the installed distributions the layer does not carry: everything outside
    pyproject's dependencies and, with their extras, theirs."""
    project = tomllib.loads((tmpl.ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(r) for r in project["dependencies"]]
    carried: dict[str, set[str]] = {}
    while pending:
        req = pending.pop()
        name = req.name.lower().replace("_", "-")
        if name in carried and req.extras <= carried[name]:
            continue
        carried.setdefault(name, set()).update(req.extras)
        for spec in metadata.distribution(name).requires or ():
            dep = Requirement(spec)
            extras = carried[name] | {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dep)
    installed: set[str] = set()
    layer: set[str] = set()
    for dist in metadata.distributions():
        names = _top_level(dist)
        installed |= names
        if dist.metadata["Name"].lower().replace("_", "-") in carried:
            layer |= names
    return frozenset(installed - layer - set(sys.stdlib_module_names) - {"shared"})


def kind(fn: tmpl.Function) -> str:
    """What waits on the function's cold start: see the module's docstring."""
    if fn.name in RECEIVERS:
        return "receiver"
    if fn.routes:
        return "api"
    if fn.consumers:
        return "consumer"
    return "scheduled"


def _runtime_environment(fn: tmpl.Function) -> dict[str, str]:
    """What the Lambda runtime sets for every function (the subset that code reads at import)."""
    defaults = tmpl.load().get("Globals", {}).get("Function", {})
    props = tmpl.load()["Resources"][fn.name]["Properties"]
    runtime = str(props.get("Runtime", defaults.get("Runtime", "python3.12")))
    env = {
        "LAMBDA_TASK_ROOT": str(tmpl.ROOT / fn.code_uri),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", defaults.get("MemorySize", 128))),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "_HANDLER": fn.handler,
    }
    if props.get("Tracing", defaults.get("Tracing")) == "Active":
        env["AWS_XRAY_CONTEXT_MISSING"] = "LOG_ERROR"
        env["AWS_XRAY_DAEMON_ADDRESS"] = "169.254.79.129:2000"
    return env


def _environment(fn: tmpl.Function) -> dict[str, str]:
    refs = {name: f"local-{name}" for name in tmpl.load()["Resources"]}
    fake = Provisioned(refs=refs, arns={n: f"arn:aws:::{n}" for n in refs})
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        **_runtime_environment(fn),
        **resolve_environment(fn, fake, parameter_defaults()),
    }


def _sample(code_uri: str, module: str, env: dict[str, str]) -> tuple[float, float]:
    """Seconds the import took: on the clock, and on this process's CPU."""
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            PROBE,
            code_uri,
            str(tmpl.ROOT),
            module,
            ",".join(sorted(not_in_layer())),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall, cpu = result.stdout.split()
    return float(wall), float(cpu)


def measure(runs: int) -> dict[str, object]:
    functions = tmpl.functions()
    baseline_env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in functions}
    boto3_samples: list[tuple[float, float]] = []
    # Interleave the baseline with the handlers so machine noise hits both alike.
    for _ in range(runs):
        boto3_samples.append(_sample(str(tmpl.ROOT), "boto3", baseline_env))
        for name, fn in functions.items():
            module = fn.handler.rpartition(".")[0]
            samples[name].append(_sample(str(tmpl.ROOT / fn.code_uri), module, _environment(fn)))
    boto3_ms = statistics.median(w for w, _ in boto3_samples) * 1000
    boto3_cpu_ms = statistics.median(c for _, c in boto3_samples) * 1000
    handlers = {}
    for name, values in samples.items():
        ms = statistics.median(w for w, _ in values) * 1000
        cpu_ms = statistics.median(c for _, c in values) * 1000
        fn = functions[name]
        goal = GOALS[kind(fn)]
        handlers[name] = {
            "module": f"{fn.code_uri}{fn.handler.rpartition('.')[0]}.py",
            "kind": kind(fn),
            "import_ms": round(ms, 1),
            "ratio_to_boto3": round(ms / boto3_ms, 2),
            "goal": goal,
            "meets_goal": ms / boto3_ms <= goal,
            "import_cpu_ms": round(cpu_ms, 1),
            "cpu_ratio_to_boto3": round(cpu_ms / boto3_cpu_ms, 2),
        }
    return {
        "runs": runs,
        "boto3_import_ms": round(boto3_ms, 1),
        "boto3_import_cpu_ms": round(boto3_cpu_ms, 1),
        "goals": {
            "ratio_to_boto3": GOALS,
            "all_met": all(h["meets_goal"] for h in handlers.values()),
            "missed": [name for name, h in handlers.items() if not h["meets_goal"]],
        },
        "handlers": handlers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure(args.runs), indent=2))


if __name__ == "__main__":
    main()
