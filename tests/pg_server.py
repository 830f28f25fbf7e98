"""A throwaway PostgreSQL cluster (and an `mlflow server` on any backend) for load tests.

    from tests.pg_server import postgres, mlflow_on   # noqa: F401

    def test_x(postgres, tmp_path):
        with mlflow_on(postgres.uri("mlflow"), tmp_path / "srv", workers=4) as server:
            ...server.uri...

The cluster lives in a temporary folder, listens on 127.0.0.1 and a free port, trusts local
connections, and is stopped (pg_ctl stop -m immediate, then its process group) afterwards. As root
it runs as the `postgres` user (PostgreSQL refuses to run as root). `pg_binaries()` and
`missing_reason()` say why a test must skip: no server binaries (Debian's `postgresql` package)
or no psycopg2 driver (`pip install psycopg2-binary`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mlflow_server import Server, free_port, start_server, stop_server

START_TIMEOUT_S = float(os.environ.get("ADVISOR_TEST_MLFLOW_START_S", "180"))


def pg_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin holding initdb, pg_ctl and postgres."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        p = Path(d)
        if all((p / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            try:
                found.append((int(p.parent.name), p))
            except ValueError:
                found.append((0, p))
    env = os.environ.get("ADVISOR_PG_BIN")
    if env and (Path(env) / "postgres").exists():
        return Path(env)
    return max(found)[1] if found else None


def missing_reason() -> str | None:
    if pg_binaries() is None:
        return ("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                "(apt-get install -y postgresql)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 not installed (pip install psycopg2-binary): MLflow cannot reach PostgreSQL"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the cluster as"
    return None


@dataclass
class Postgres:
    root: Path
    port: int
    bin: Path
    user: str

    def uri(self, database: str = "postgres") -> str:
        # SQLAlchemy 2.1 picks psycopg (3) for a bare postgresql://; the driver here is psycopg2.
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL will not run as root: run it as the postgres user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(_quote, cmd))]


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def start_postgres(root: Path) -> Postgres:
    pg_bin = pg_binaries()
    assert pg_bin is not None
    root.mkdir(parents=True, exist_ok=True)
    data, sock = root / "data", root / "sock"
    sock.mkdir(exist_ok=True)
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        info = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, info.pw_uid, info.pw_gid)
        # the postgres user must be able to reach the folder
        p = root
        while p != p.parent:
            p = p.parent
            mode = p.stat().st_mode
            if not mode & 0o001:
                os.chmod(p, mode | 0o001)
    log = root / "initdb.log"
    with open(log, "wb") as fh:
        subprocess.run(_as_owner([str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", user,
                                  "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=fh, stderr=subprocess.STDOUT, timeout=120)
    port = free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    with open(root / "pg_ctl.log", "wb") as fh:
        subprocess.run(_as_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"),
                                  "-w", "-t", "60", "start"]),
                       check=True, stdout=fh, stderr=subprocess.STDOUT, timeout=120)
    return Postgres(root, port, pg_bin, user)


def create_database(pg: Postgres, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return pg.uri(name)


def stop_postgres(pg: Postgres) -> None:
    subprocess.run(_as_owner([str(pg.bin / "pg_ctl"), "-D", str(pg.root / "data"), "-m", "immediate", "-w", "stop"]),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)


def start_mlflow(backend_uri: str, root: Path, *, workers: int = 4) -> Server:
    """`mlflow server` on 127.0.0.1 and a free port with the given backend store; waits until healthy."""
    return start_server(root, backend_uri, workers=workers, start_timeout_s=START_TIMEOUT_S)


@contextlib.contextmanager
def mlflow_on(backend_uri: str, root: Path, *, workers: int = 4):
    server = start_mlflow(backend_uri, root, workers=workers)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    # As root the server runs as the postgres user, which must reach its folder. Not under pytest's basetemp:
    # every pytest session that starts (another checkout's test run, a mutation run) strips the group and
    # other bits from /tmp/pytest-of-<user>, and the server loses its data folder mid-run.
    own = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="advisor-pg-")) if own else tmp_path_factory.mktemp("postgres")
    pg = start_postgres(root / "pg" if own else root)
    try:
        yield pg
    finally:
        stop_postgres(pg)
        if own:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["Postgres", "create_database", "missing_reason", "mlflow_on", "pg_binaries", "postgres",
           "start_mlflow", "start_postgres", "stop_postgres"]
