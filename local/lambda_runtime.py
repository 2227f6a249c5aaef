"""Warm Lambda instances as separate processes: one process per instance, as in Lambda, so nothing a
handler keeps in memory (caches, clients, counters) is ever visible to another instance.

An instance is spawned (never forked: a fork would inherit the stack's threads, sockets and imported
modules, which no Lambda instance has), gets exactly the function's environment, imports the handler
once (the init phase), then serves invocations one at a time. A handler that raises stays warm, as
the Python runtime does; one that times out or crashes is discarded and the next invocation pays a
cold start. A pool per function hands each invocation to an idle instance, starting a new one while
below the function's concurrency, otherwise waiting for one to free up.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger("local.lambda")

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Lambda's limit on the init phase; past it the instance counts as failed.
INIT_TIMEOUT_S = 10.0
# Variables the host passes through: everything else an instance sees comes from the function.
_HOST_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE")

_SPAWN = multiprocessing.get_context("spawn")


class FunctionError(Exception):
    """An invocation failed as Lambda reports it: `errorType` and `errorMessage`."""

    def __init__(self, error_type: str, message: str, stack_trace: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


class FunctionTimeout(FunctionError):
    pass


class FunctionCrashed(FunctionError):
    pass


class PoolClosed(Exception):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    """Everything an instance needs, picklable: it crosses into the spawned process."""

    name: str
    handler: str  # module.attribute, relative to code_dir
    code_dir: str
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int = 512
    extra_path: tuple[str, ...] = ()
    # Where the instance's stdout and stderr go (its JSON logs, as CloudWatch would collect them);
    # None: the stack's own stderr.
    log_path: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"


@dataclass
class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def child_process_setup() -> None:
    """What every process the stack spawns does first: stdout belongs to the ready line alone, Ctrl-C
    (sent to the whole process group) is the parent's to handle, and a child never outlives it."""
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch_parent() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()


def instance_environment(spec: FunctionSpec) -> dict[str, str]:
    """The environment Lambda gives an instance: the function's variables plus the runtime's own."""
    env = {k: v for k, v in os.environ.items() if k in _HOST_VARIABLES}
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": spec.code_dir,
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
        }
    )
    env.update(spec.environment)
    return env


def _log_to(path: str) -> None:
    """Send this process's stdout and stderr to the file at `path`, appending: every instance of every
    function shares the file, as a log group gathers a function's streams."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _instance_main(spec: FunctionSpec, conn: Connection) -> None:
    """The body of one instance process: init once, then invoke until the pool closes the pipe."""
    child_process_setup()
    if spec.log_path:
        _log_to(spec.log_path)
    os.environ.clear()
    os.environ.update(instance_environment(spec))
    # The function's code directory first, as /var/task is in Lambda; then the layer (the repository
    # root carries `shared`); then the interpreter's own paths for the pinned dependencies.
    interpreter = [p for p in sys.path if p.startswith((sys.prefix, sys.base_prefix, sys.exec_prefix))]
    sys.path[:] = [spec.code_dir, *spec.extra_path, *interpreter]
    started = time.perf_counter()
    module_name, _, attribute = spec.handler.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("init_error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready", os.getpid(), (time.perf_counter() - started) * 1000))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        _, request_id, event, deadline_ms = message
        context = LambdaContext(
            function_name=spec.name,
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory_mb,
            aws_request_id=request_id,
            deadline_ms=deadline_ms,
            log_group_name=f"/aws/lambda/{spec.name}",
            log_stream_name=f"local/{os.getpid()}",
        )
        try:
            result = handler(event, context)
        except Exception as exc:
            # The runtime logs an unhandled error and reports it; the instance stays warm.
            stack = traceback.format_exception(exc)
            sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc} RequestId: {request_id}\n")
            sys.stderr.write("".join(stack))
            reply: tuple[Any, ...] = ("error", type(exc).__name__, str(exc), stack)
        else:
            reply = ("ok", result)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an unpicklable result
            conn.send(("error", "Runtime.MarshalError", f"Unable to marshal response: {exc}", []))


@dataclass
class Instance:
    """One warm execution environment, seen from the stack."""

    spec: FunctionSpec
    process: BaseProcess
    conn: Connection
    pid: int
    init_ms: float
    invocations: int = 0
    alive: bool = True

    @classmethod
    def start(cls, spec: FunctionSpec) -> Instance:
        parent_end, child_end = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_instance_main, args=(spec, child_end), name=f"lambda:{spec.name}", daemon=True
        )
        process.start()
        child_end.close()
        if not parent_end.poll(INIT_TIMEOUT_S):
            _kill(process)
            raise FunctionError("Runtime.InitError", f"init of {spec.name} exceeded {INIT_TIMEOUT_S:.0f} s")
        try:
            reply = parent_end.recv()
        except EOFError:
            _kill(process)
            raise FunctionCrashed("Runtime.ExitError", f"{spec.name} exited during init") from None
        if reply[0] != "ready":
            _kill(process)
            raise FunctionError("Runtime.InitError", f"{spec.name} init failed: {reply[1]}: {reply[2]}")
        _, pid, init_ms = reply
        log.debug("INIT %s pid=%s Init Duration: %.0f ms", spec.name, pid, init_ms)
        return cls(spec, process, parent_end, pid, init_ms)

    def invoke(self, event: Any, timeout_s: float | None = None) -> Any:
        timeout = self.spec.timeout_s if timeout_s is None else timeout_s
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + timeout) * 1000)
        started = time.perf_counter()
        try:
            self.conn.send(("invoke", request_id, event, deadline_ms))
            ready = self.conn.poll(timeout)
        except (OSError, EOFError):
            self.discard()
            raise FunctionCrashed("Runtime.ExitError", f"{self.spec.name} instance is gone") from None
        if not ready:
            self.discard()
            raise FunctionTimeout("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        try:
            reply = self.conn.recv()
        except (OSError, EOFError):
            self.discard()
            raise FunctionCrashed(
                "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited unexpectedly"
            ) from None
        self.invocations += 1
        log.debug(
            "REPORT %s RequestId: %s Duration: %.1f ms pid=%s",
            self.spec.name,
            request_id,
            (time.perf_counter() - started) * 1000,
            self.pid,
        )
        if reply[0] == "error":
            raise FunctionError(reply[1], reply[2], reply[3])
        return reply[1]

    def discard(self) -> None:
        """Lambda throws away an instance that timed out or crashed; so does the stack."""
        self.alive = False
        with contextlib.suppress(OSError):
            self.conn.close()
        _kill(self.process)

    def close(self, timeout_s: float = 2.0) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.conn.close()  # the instance reads EOF and exits
        self.process.join(timeout_s)
        _kill(self.process)


def _kill(process: BaseProcess) -> None:
    if process.is_alive():
        process.kill()
    process.join(5)


@dataclass
class FunctionPool:
    """A function's instances: reuse the most recently used idle one, start another while below
    `max_instances`, else wait for one (Lambda would throttle; locally waiting is kinder)."""

    spec: FunctionSpec
    max_instances: int
    _idle: list[Instance] = field(default_factory=list)
    _all: list[Instance] = field(default_factory=list)
    _starting: int = 0
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def invoke(self, event: Any) -> Any:
        instance = self._acquire()
        try:
            return instance.invoke(event)
        finally:
            self._release(instance)

    def warm(self, count: int = 1) -> None:
        """Have `count` instances ready ahead of the first invocation (provisioned concurrency); their
        cold starts overlap."""
        with self._cond:
            missing = max(0, min(count, self.max_instances) - len(self._all) - self._starting)
            self._starting += missing
        errors: list[BaseException] = []

        def start_one() -> None:
            try:
                instance = Instance.start(self.spec)
            except BaseException as exc:
                errors.append(exc)
                with self._cond:
                    self._starting -= 1
                    self._cond.notify()
                return
            with self._cond:
                self._starting -= 1
                self._all.append(instance)
                self._idle.append(instance)
                self._cond.notify()

        threads = [threading.Thread(target=start_one, daemon=True) for _ in range(missing)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def pids(self) -> list[int]:
        with self._cond:
            return [i.pid for i in self._all if i.alive]

    def instances(self) -> list[tuple[int, bool]]:
        """(pid, busy) of every warm instance: busy while it holds an invocation."""
        with self._cond:
            return [(i.pid, i not in self._idle) for i in self._all if i.alive and i.process.is_alive()]

    def kill(self, busy_only: bool) -> int | None:
        """SIGKILL one instance, as Lambda ends one on a timeout or out of memory: a busy one when
        there is one (its caller sees the runtime exit), else an idle one unless `busy_only`. The pool
        replaces it on demand. The pid killed, or None when there was none to kill."""
        with self._cond:
            live = [i for i in self._all if i.alive and i.process.is_alive()]
            busy = [i for i in live if i not in self._idle]
            candidates = busy if busy or busy_only else live
            if not candidates:
                return None
            victim = candidates[0]
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim.pid, signal.SIGKILL)
            if victim in self._idle:
                # Nobody holds it to notice: out of the pool now, so the next call cannot pick it.
                self._idle.remove(victim)
                self._all.remove(victim)
                victim.alive = False
        victim.process.join(5)
        return victim.pid

    def _acquire(self) -> Instance:
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed(self.spec.name)
                while self._idle:
                    instance = self._idle.pop()
                    if instance.process.is_alive():
                        return instance
                    # Killed while idle: gone for good, and another starts in its place.
                    instance.alive = False
                    self._all.remove(instance)
                    instance.process.join(1)
                if len(self._all) + self._starting < self.max_instances:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            instance = Instance.start(self.spec)
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
        with self._cond:
            self._all.append(instance)
            if self._closed:
                instance.close()
                raise PoolClosed(self.spec.name)
        return instance

    def _release(self, instance: Instance) -> None:
        with self._cond:
            if instance.alive and not self._closed:
                self._idle.append(instance)
            else:
                if instance in self._all:
                    self._all.remove(instance)
                if self._closed:
                    instance.close()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            instances, self._idle = list(self._all), []
            self._cond.notify_all()
        for instance in instances:
            instance.alive = False
            with contextlib.suppress(OSError):
                instance.conn.close()  # an idle instance reads EOF and exits
        for instance in instances:
            # A busy instance is killed: its caller sees the instance gone, as when Lambda shuts down.
            instance.close(timeout_s=0.5)
