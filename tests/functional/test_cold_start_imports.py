"""What each handler loads at init, as Lambda would start it (the layer's packages only, the runtime's
variables set): the decisions of docs/cold-starts.md held by a test, since a top-level import added
anywhere below a handler quietly undoes them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import cold_start as bench
from local import template as tmpl

FUNCTIONS = tmpl.functions()

PROBE = (
    bench.PROBE.split("start = time.perf_counter()")[0]
    + """
import gc, json
__import__(sys.argv[3])
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if "." not in m or m.startswith("botocore.session")),
    "collecting": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
}))
"""
)


def _init(name: str) -> dict[str, object]:
    fn = FUNCTIONS[name]
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            PROBE,
            str(tmpl.ROOT / fn.code_uri),
            str(tmpl.ROOT),
            fn.handler.rpartition(".")[0],
            ",".join(sorted(bench.not_in_layer())),
        ],
        capture_output=True,
        text=True,
        env=bench._environment(fn),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_init_leaves_the_collector_running_and_what_it_built_frozen(name):
    init = _init(name)
    assert init["collecting"] is True
    assert isinstance(init["frozen"], int) and init["frozen"] > 10_000


@pytest.mark.parametrize("name", sorted(n for n in FUNCTIONS if bench.kind(FUNCTIONS[n]) == "receiver"))
def test_a_receiver_loads_no_aws_sdk_http_client_or_tracer_at_init(name):
    loaded = set(_init(name)["loaded"])  # type: ignore[call-overload]
    assert loaded.isdisjoint({"boto3", "botocore.session", "httpx", "aws_xray_sdk", "cryptography"})


@pytest.mark.parametrize("name", sorted(n for n in FUNCTIONS if bench.kind(FUNCTIONS[n]) == "api"))
def test_an_api_function_loads_botocore_not_boto3_and_calls_out_only_when_a_request_does(name):
    loaded = set(_init(name)["loaded"])  # type: ignore[call-overload]
    assert "boto3" not in loaded
    assert "httpx" not in loaded and "cryptography" not in loaded
    # What the first request needs is loaded at init, not on it: every route but the console's reads
    # the table (the console reads nothing).
    assert ("botocore.session" in loaded) == (name != "ConsoleFunction")
