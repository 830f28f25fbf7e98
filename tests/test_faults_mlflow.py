"""MLflow faults through the real CLI: a server returning errors, a slow server, a server dying
mid-run, and Ctrl-C while logging. A fault-injecting HTTP proxy sits in front of a real
`mlflow server`; the advisor talks to the proxy.

Required behaviour: bounded retries, then exit 3 with one error line naming the kept report; no
run left looking complete (FINISHED with advisor.complete=true) unless it is; `advisor log`
delivers the kept report later, exactly once, however often it is run.
(tests/test_tracking_server.py covers a closed port and a logger that raises in-process.)
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO

# mlflow_server: the session fixture from tests/conftest.py (a real `mlflow server`, sqlite backend).

RECOMMEND = ["recommend", "--no-probe", "--target", "a10g-24gb", "--task", "summarization"]


class FaultProxy:
    """Forwards HTTP to `upstream`; `mode` decides what happens to each request.

    pass                 forward
    status:<code>        answer <code> with an MLflow-style JSON error, forward nothing
    hang                 read the request, never answer (until released)
    hang_on:<fragment>   hang requests whose path contains <fragment>; forward the rest
    die_on:<fragment>    on the first request whose path contains <fragment>, drop the connection
                         without an answer and from then on refuse everything (the server died)
    """

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.mode = "pass"
        self.requests: list[tuple[str, str]] = []
        self.dead = False
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append((self.command, self.path))
                mode = proxy.mode
                if proxy.dead:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if mode.startswith("status:"):
                    code = int(mode.split(":", 1)[1])
                    data = json.dumps({"error_code": "INTERNAL_ERROR", "message": "injected fault"}).encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if mode == "hang" or (mode.startswith("hang_on:") and mode.split(":", 1)[1] in self.path):
                    proxy.release.wait(120)
                    self.close_connection = True
                    return
                if mode.startswith("die_on:") and mode.split(":", 1)[1] in self.path:
                    proxy.dead = True
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def heal(self):
        self.mode, self.dead = "pass", False
        self.release.set()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(mlflow_server):
    p = FaultProxy(mlflow_server.uri)
    yield p
    p.close()


def advisor(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; running past `timeout` fails the test (retries not bounded)."""
    try:
        return subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"`advisor {' '.join(args[:3])} ...` still running after {timeout:.0f} s: "
                    f"MLflow retries are not bounded on this path. stderr: {err[-500:]}")


def _env(tmp_path: Path, **extra) -> dict:
    return {"ADVISOR_REPORTS_DIR": str(tmp_path / "reports"), "ADVISOR_CACHE_DIR": str(tmp_path / "cache"),
            "MLFLOW_TRACKING_URI": "", **extra}


def _runs(server, experiment: str) -> list:
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=server.uri)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


def _complete(runs) -> list:
    return [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("advisor.complete") == "true"]


def _kept_folder(stderr: str, tmp_path: Path) -> Path:
    folders = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1, folders
    assert str(folders[0]) in stderr and "advisor log" in stderr, stderr
    return folders[0]


def _one_error_line(stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("error: ")]) == 1, stderr


def _log(tmp_path: Path, *args: str):
    """`advisor log ...` in this process (mlflow is already imported here: saves seconds per call)."""
    from tests import fuzzing

    return fuzzing.run_case(fuzzing.Case("log", {}, ["log", *args],
                                         env={"ADVISOR_REPORTS_DIR": str(tmp_path / "reports")}),
                            tmp_path / f"log-{uuid.uuid4().hex[:6]}", timeout=120)


def _deliver_later_exactly_once(server, proxy, tmp_path, exp, folder):
    """Once MLflow is healthy, `advisor log` sends the kept report; again and again: still one run."""
    proxy.heal()
    first = _log(tmp_path, "--all", "--tracking-uri", proxy.uri, "--experiment", exp, "--json")
    assert first.crash is None and first.rc == 0, (first.crash, first.stderr[-500:])
    [sent] = json.loads(first.stdout)
    assert sent["status"] == "sent"
    for args in (["--all"], [str(folder)]):
        again = _log(tmp_path, *args, "--tracking-uri", proxy.uri, "--experiment", exp)
        assert again.crash is None and again.rc == 0, (again.crash, again.stderr[-500:])
    report_id = json.loads((folder / "manifest.json").read_text())["report_id"]
    mine = [r for r in _runs(server, exp) if r.data.tags.get("advisor.report_id") == report_id]
    done = _complete(mine)
    assert len(done) == 1, [(r.info.status, r.data.tags.get("advisor.complete")) for r in mine]
    assert done[0].info.run_id == sent["run_id"]
    assert done[0].data.params.get("task") == "summarization"
    return mine


def test_server_returning_errors_gives_bounded_retries_then_exit_3(mlflow_server, proxy, tmp_path):
    exp = f"errors-{uuid.uuid4().hex[:8]}"
    proxy.mode = "status:503"
    start = time.monotonic()
    proc = advisor(*RECOMMEND, "--tracking-uri", proxy.uri, "--experiment", exp, env=_env(tmp_path))
    took = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc.stderr)
    assert took < 90, f"{took:.0f} s: retries are not bounded"
    assert 1 <= len(proxy.requests) <= 12, f"{len(proxy.requests)} requests: retries are not bounded"
    folder = _kept_folder(proc.stderr, tmp_path)
    assert (folder / "recommendation.json").is_file() and (folder / "report.md").is_file()
    assert proc.stdout.strip(), "the report is still printed before exit 3"
    assert _runs(mlflow_server, exp) == []
    _deliver_later_exactly_once(mlflow_server, proxy, tmp_path, exp, folder)


def test_a_server_that_never_answers_times_out(mlflow_server, proxy, tmp_path):
    """A hung server: the request timeout and retry count bound the wait (the user may shorten the
    timeout with MLflow's own MLFLOW_HTTP_REQUEST_TIMEOUT; the defaults are checked below)."""
    exp = f"slow-{uuid.uuid4().hex[:8]}"
    proxy.mode = "hang"
    start = time.monotonic()
    proc = advisor(*RECOMMEND, "--tracking-uri", proxy.uri, "--experiment", exp,
                   env=_env(tmp_path, MLFLOW_HTTP_REQUEST_TIMEOUT="2"))
    took = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc.stderr)
    assert took < 60, f"{took:.0f} s"
    folder = _kept_folder(proc.stderr, tmp_path)
    _deliver_later_exactly_once(mlflow_server, proxy, tmp_path, exp, folder)


def test_default_http_bounds_keep_a_hung_server_under_two_minutes():
    from advisor.tracking.connection import BOUNDED_HTTP_ENV

    retries = int(BOUNDED_HTTP_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    timeout = float(BOUNDED_HTTP_ENV["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    backoff = float(BOUNDED_HTTP_ENV["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    worst = (retries + 1) * timeout + sum(backoff * 2 ** i for i in range(retries))
    assert worst <= 120, f"one hung request can block {worst:.0f} s"


def test_a_server_dying_mid_run_leaves_no_complete_looking_run(mlflow_server, proxy, tmp_path):
    exp = f"dies-{uuid.uuid4().hex[:8]}"
    proxy.mode = "die_on:log-batch"      # the run is created, then the server goes away
    proc = advisor(*RECOMMEND, "--tracking-uri", proxy.uri, "--experiment", exp, env=_env(tmp_path))
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc.stderr)
    folder = _kept_folder(proc.stderr, tmp_path)
    half = _runs(mlflow_server, exp)
    assert len(half) == 1 and _complete(half) == [], "a half-logged run must not look complete"
    mine = _deliver_later_exactly_once(mlflow_server, proxy, tmp_path, exp, folder)
    dead = [r for r in mine if r.info.run_id == half[0].info.run_id][0]
    assert dead.info.status == "FAILED" and dead.data.tags.get("advisor.complete") == "false"


def test_ctrl_c_while_logging_leaves_no_complete_run_and_keeps_the_report(mlflow_server, proxy, tmp_path):
    exp = f"sigint-{uuid.uuid4().hex[:8]}"
    proxy.mode = "hang_on:log-batch"
    env = {**os.environ, **_env(tmp_path)}
    p = subprocess.Popen([sys.executable, "-m", "advisor", *RECOMMEND, "--tracking-uri", proxy.uri,
                          "--experiment", exp], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while not any("log-batch" in path for _, path in proxy.requests):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("Ctrl-C did not stop the command within 30 s")
    assert p.returncode in (130, 3), err
    _one_error_line(err)
    assert "interrupted" in err or "advisor log" in err
    folder = [f for f in (tmp_path / "reports").iterdir() if f.is_dir() and not f.name.startswith(".")]
    assert len(folder) == 1, "the report must be kept"
    assert _complete(_runs(mlflow_server, exp)) == []
    _deliver_later_exactly_once(mlflow_server, proxy, tmp_path, exp, folder[0])
