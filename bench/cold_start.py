"""Cold-start import cost of each handler module, as a ratio to `import boto3` measured in the same run.

Each sample is a fresh interpreter with Lambda's path (the function's CodeUri and the repository
root standing in for the layer) and the function's template environment. Prints one JSON document.
Run: `python -m bench.cold_start [--runs 7]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from local import template as tmpl
from local.provision import Provisioned, parameter_defaults, resolve_environment

RECEIVERS = {"IntercomWebhookFunction", "ReferralSignupFunction"}
RECEIVER_GOAL = 1.5

PROBE = """
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
start = time.perf_counter()
__import__(sys.argv[3])
print(time.perf_counter() - start)
"""


def _environment(fn: tmpl.Function) -> dict[str, str]:
    refs = {name: f"local-{name}" for name in tmpl.load()["Resources"]}
    fake = Provisioned(refs=refs, arns={n: f"arn:aws:::{n}" for n in refs})
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        **resolve_environment(fn, fake, parameter_defaults()),
    }


def _sample(code_uri: str, module: str, env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, code_uri, str(tmpl.ROOT), module],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(result.stdout.strip())


def measure(runs: int) -> dict[str, object]:
    functions = tmpl.functions()
    baseline_env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    samples: dict[str, list[float]] = {name: [] for name in functions}
    boto3_samples: list[float] = []
    # Interleave the baseline with the handlers so machine noise hits both alike.
    for _ in range(runs):
        boto3_samples.append(_sample(str(tmpl.ROOT), "boto3", baseline_env))
        for name, fn in functions.items():
            module = fn.handler.rpartition(".")[0]
            samples[name].append(_sample(str(tmpl.ROOT / fn.code_uri), module, _environment(fn)))
    boto3_ms = statistics.median(boto3_samples) * 1000
    handlers = {}
    for name, values in samples.items():
        ms = statistics.median(values) * 1000
        entry: dict[str, object] = {
            "module": f"{functions[name].code_uri}{functions[name].handler.rpartition('.')[0]}.py",
            "import_ms": round(ms, 1),
            "ratio_to_boto3": round(ms / boto3_ms, 2),
        }
        if name in RECEIVERS:
            entry["goal"] = RECEIVER_GOAL
            entry["meets_goal"] = ms / boto3_ms <= RECEIVER_GOAL
        handlers[name] = entry
    return {"runs": runs, "boto3_import_ms": round(boto3_ms, 1), "handlers": handlers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure(args.runs), indent=2))


if __name__ == "__main__":
    main()
