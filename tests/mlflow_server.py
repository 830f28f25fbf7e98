"""A real `mlflow server` for integration tests: sqlite backend, local artifact store, 127.0.0.1.

Use from any test module (tests/conftest.py provides the session-scoped fixture):

    def test_x(mlflow_server):
        uri = mlflow_server.uri          # http://127.0.0.1:<free port>

The server starts once per test session and is stopped (its process group killed) afterwards;
every test should log to its own experiment name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = float(os.environ.get("ADVISOR_TEST_MLFLOW_START_S", "120"))


@dataclass
class Server:
    uri: str
    port: int
    root: Path
    proc: subprocess.Popen

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_uri() -> str:
    """An http URI on 127.0.0.1 where nothing listens (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_server(root: Path, backend_uri: str | None = None, *, workers: int = 1,
                 start_timeout_s: float | None = None) -> Server:
    """`mlflow server` on 127.0.0.1 and a free port (sqlite in `root` unless a backend is given)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", backend_uri or f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", port, root, proc)
    timeout = start_timeout_s or START_TIMEOUT_S
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{server.log_tail()}")
        if _healthy(server.uri):
            return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"mlflow server not healthy after {timeout:.0f} s:\n{server.log_tail()}")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)   # the server's own session: only the processes it started
    except (ProcessLookupError, PermissionError):
        pass


def stop_server(server: Server) -> None:
    _signal_group(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(server.proc.pid, signal.SIGKILL)   # workers left behind, if any
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def serve(tmp_path_factory):
    """Generator behind the fixture: start, yield the Server, stop."""
    server = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    # tests/conftest.py exposes the same fixture to every module, so one server serves the whole
    # session; importing this one into a module gives that module its own server.
    yield from serve(tmp_path_factory)
