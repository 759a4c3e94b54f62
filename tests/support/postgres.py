"""A real, throwaway PostgreSQL 15 for the tests, and a database per test.

    postgres_server   session: initdb in a temporary folder, pg_ctl start on
                      a free loopback port (its socket in the same folder),
                      stopped and removed at the end
    postgres_url      a fresh, empty database; its SQLAlchemy URL
    database_url      parametrized: an SQLite file, then a PostgreSQL
                      database, so store tests run on both
    own_postgres      a server of the test's own, to stop (``stop()``, or
                      ``crash()``: immediate shutdown) and start again
                      mid-test on the same port; ``url`` is its database

initdb refuses to run as root, so as root the server runs as the
``postgres`` user, in a folder that user owns. Durability is switched off
(fsync, synchronous_commit): the data is thrown away anyway.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.aws import free_port

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
_names = itertools.count(1)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    folder: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database, outside a transaction."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not (BIN / "initdb").exists():
        pytest.fail(f"{BIN}/initdb is missing: tests/run installs Debian's postgresql-15")
    owner = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="publish-pg-"))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    port = free_port()
    subprocess.run(
        _as_owner(
            [
                str(BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            owner,
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    start = [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log")]
    subprocess.run(_as_owner([*start, "-w", "start"], owner), check=True, capture_output=True)
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", folder=folder)
    finally:
        subprocess.run(
            _as_owner([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database for this test (migrations run on first connect)."""
    name = f"test_{os.getpid()}_{next(_names)}"
    postgres_server.admin(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or (second run) a PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'subscribers.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


class OwnPostgres:
    """A PostgreSQL server for one test, which it may stop and start again."""

    def __init__(self, folder: Path, *, durable: bool = True) -> None:
        """``durable``: a committed transaction survives :meth:`crash`
        (synchronous_commit on); a benchmark that measures the service, not
        the server's WAL flush, runs without."""
        self.owner = "postgres" if os.geteuid() == 0 else None
        self.folder = folder
        self.durable = durable
        if self.owner:
            entry = pwd.getpwnam(self.owner)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self.data = folder / "data"
        self.port = free_port()
        subprocess.run(
            _as_owner(
                [str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                self.owner,
            ),
            check=True,
            capture_output=True,
        )
        self.server = PostgresServer(host="127.0.0.1", port=self.port, user="postgres",
                                     folder=folder)
        self.start()
        self.server.admin('CREATE DATABASE "newsletter"')
        self.url = self.server.url("newsletter")

    def _ctl(self, *args: str) -> None:
        # Commits are durable against a crash of the server (not of the
        # machine) unless said otherwise: a committed result must survive crash().
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit={'on' if self.durable else 'off'} -c full_page_writes=off"
        )
        subprocess.run(
            _as_owner(
                [str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                 "-l", str(self.folder / "log"), *args],
                self.owner,
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl("-w", "start")

    def stop(self) -> None:
        """A clean, fast shutdown: connections are told and closed."""
        self._ctl("-m", "fast", "-w", "stop")

    def crash(self) -> None:
        """An immediate shutdown, as a crash: no checkpoint, connections cut."""
        self._ctl("-m", "immediate", "-w", "stop")

    def close(self) -> None:
        subprocess.run(
            _as_owner([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                      self.owner),
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not (BIN / "initdb").exists():
        pytest.fail(f"{BIN}/initdb is missing: tests/run installs Debian's postgresql-15")
    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="publish-own-pg-")))
    try:
        yield server
    finally:
        server.close()
