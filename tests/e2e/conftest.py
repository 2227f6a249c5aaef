"""Start `python -m local up` as a person would, on free ports, and read its ready line."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from local.services import free_ports

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
STACK_TEMPLATE = Path(__file__).parent / "stack" / "template.yaml"
READY_TIMEOUT_S = 180  # generous: shared CI machines can be slow to spawn processes


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    info: dict[str, str]
    ports: list[int]
    stderr_path: Path
    startup_s: float

    @property
    def api(self) -> str:
        return self.info["api"]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        """The functions' own output: the file the ready line names (their JSON logs)."""
        return Path(self.info["logs"]).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> tuple[int, bytes]:
        """Signal the stack, wait for it, and return its exit status and what else it wrote to stdout."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            rest, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
            raise
        return self.process.returncode, rest


def start_stack(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> RunningStack:
    ports = free_ports(4)
    command = [
        sys.executable,
        "-m",
        "local",
        "up",
        *("--api-port", str(ports[0]), "--intercom-port", str(ports[1])),
        *("--rf-port", str(ports[2]), "--aws-port", str(ports[3])),
        *args,
    ]
    stderr_path = tmp_path / "stack.stderr"
    started = time.monotonic()
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, env={**os.environ, **(env or {})}
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    line = process.stdout.readline() if ready else b""
    if not line:
        process.kill()
        process.wait()
        pytest.fail(f"no ready line within {READY_TIMEOUT_S} s; stderr:\n{stderr_path.read_text()[-4000:]}")
    return RunningStack(process, json.loads(line), ports, stderr_path, time.monotonic() - started)


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


def _running(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[RunningStack]:
    running = start_stack(tmp_path, *args, env=env)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


@pytest.fixture(scope="module")
def product_stack(stack_dir: Path) -> Iterator[RunningStack]:
    """The product, as `make run` starts it (without the demo)."""
    yield from _running(stack_dir, "--admin-token", "e2e-admin-token", "--schedule-interval", "3600")


@pytest.fixture(scope="module")
def probe_stack(stack_dir: Path) -> Iterator[RunningStack]:
    """The test-only template: short visibility timeouts, a recording consumer, an echo API."""
    yield from _running(
        stack_dir,
        *("--template", str(STACK_TEMPLATE), "--schedule-interval", "1"),
        env={"STACK_TEST_LEAK": "from-the-host"},
    )


def boto3_resource(stack: RunningStack, service: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    ).resource(service, endpoint_url=stack.info["aws"])


def boto3_client(stack: RunningStack, service: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    ).client(service, endpoint_url=stack.info["aws"])


QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queue_drained(stack: RunningStack, queue: str) -> bool:
    """Nothing in the stack's `queue` (a template logical id) waiting, being worked on or delayed: every
    message sent to it so far has been handled. Wait for this before asserting that something did not
    happen; without it, the assertion may only say that it has not happened yet."""
    sqs = boto3_client(stack, "sqs")
    url = sqs.get_queue_url(QueueName=f"local-{queue}")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))["Attributes"]
    return all(attributes[name] == "0" for name in QUEUE_COUNTS)
