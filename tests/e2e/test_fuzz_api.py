"""Schemathesis against the running local stack, from the API's own description (`GET /openapi.json`,
contract §1): every operation, bounded examples and every check (`schemathesis.toml`), each request
with an account of its own (`fuzz_hooks.py`). Run as a person would run it: `schemathesis run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "e2e-admin-token"  # what tests/e2e/conftest.py's product_stack starts the stack with


def test_the_api_answers_as_it_describes_itself(product_stack: RunningStack, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "FUZZ_API": product_stack.api,
        "FUZZ_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            f"{product_stack.api}/openapi.json",
            "--no-color",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
