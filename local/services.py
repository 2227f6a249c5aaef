"""The stack's servers other than the product: the embedded AWS (moto in server mode) and the two
emulators, each in its own spawned process so none of them competes with the API adapter and the
pollers for one interpreter lock, and so their state is reachable only over HTTP, as a real
service's is. A service reports ready over a pipe once its port accepts connections and stops when
the pipe closes (or its parent disappears)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.lambda_runtime import child_process_setup

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

_SPAWN = multiprocessing.get_context("spawn")
START_TIMEOUT_S = 30.0


class ServiceError(Exception):
    pass


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free at the moment (held together while chosen, so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start_aws(port: int, _config: dict[str, Any]) -> Callable[[], None]:
    from moto.server import ThreadedMotoServer

    from local import moto_dynamodb, moto_server, moto_sqs

    moto_dynamodb.apply()
    moto_sqs.apply()
    moto_server.apply()

    # moto's werkzeug logs every request at INFO; the stack's stderr is for what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server.stop


def _start_emulator(
    create_app: Callable[[dict[str, Any]], Any], port: int, config: dict[str, Any]
) -> Callable[[], None]:
    from local.emulators.server import serve_in_thread

    app = create_app(config)
    running = serve_in_thread(app, port)

    def stop() -> None:
        running.stop()
        app.state.emulator.close()

    return stop


def _start_intercom(port: int, config: dict[str, Any]) -> Callable[[], None]:
    from local.emulators.intercom import create_app

    return _start_emulator(create_app, port, config)


def _start_referral_factory(port: int, config: dict[str, Any]) -> Callable[[], None]:
    from local.emulators.referral_factory import create_app

    return _start_emulator(create_app, port, config)


_STARTERS: dict[str, Callable[[int, dict[str, Any]], Callable[[], None]]] = {
    "aws": _start_aws,
    "intercom": _start_intercom,
    "referral_factory": _start_referral_factory,
}


def _service_main(kind: str, port: int, config: dict[str, Any], conn: Connection) -> None:
    child_process_setup()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {kind} %(name)s %(message)s")
    try:
        stop = _STARTERS[kind](port, config)
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", port))
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    stop()


@dataclass
class Service:
    kind: str
    port: int
    process: BaseProcess
    conn: Connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def spawn(cls, kind: str, port: int, config: dict[str, Any] | None = None) -> Service:
        if not port_is_free(port):
            raise ServiceError(f"{kind}: port {port} is already in use")
        parent_end, child_end = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_service_main,
            args=(kind, port, config or {}, child_end),
            name=f"service:{kind}",
            daemon=True,
        )
        process.start()
        child_end.close()
        return cls(kind, port, process, parent_end)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        if not self.conn.poll(timeout_s):
            self.stop()
            raise ServiceError(f"{self.kind} did not start within {timeout_s:.0f} s")
        try:
            reply = self.conn.recv()
        except EOFError:
            raise ServiceError(f"{self.kind} exited while starting") from None
        if reply[0] != "ready":
            self.stop()
            raise ServiceError(f"{self.kind} failed to start: {reply[1]}")

    def stop(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
