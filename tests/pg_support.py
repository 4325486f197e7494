"""A real, throwaway PostgreSQL server for the tests: `initdb` into a temporary folder, `pg_ctl
start` on a free loopback port, stopped and deleted when the session ends. Tests that use it skip
when the server binaries (Debian's `postgresql` package) or psycopg are missing.

Passwords are checked over TCP (scram-sha-256) and read from a pgpass file the fixture writes
(PGPASSFILE), as a user's ~/.pgpass would be: URLs never carry them. Roles:

    postgres   superuser, owns what the tests create
    reader     may log in and read (SELECT granted per schema by `grant_reader`), nothing else;
               model SQL runs only on such a role (the others are refused unless allowed)
    others     made by `create_role` with the grants a test needs; they log in with ROLE_PASSWORD
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ADMIN_PASSWORD = "admin-secret"
READER_PASSWORD = "reader-secret"
ROLE_PASSWORD = "role-secret"


def _bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if (Path(out) / "initdb").is_file():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    host: str
    port: int
    folder: Path

    def url(self, database: str = "postgres", user: str = "postgres", schema: str | None = None) -> str:
        query = f"?schema={schema}" if schema else ""
        return f"postgresql://{user}@{self.host}:{self.port}/{database}{query}"

    def admin(self, database: str = "postgres"):
        """A superuser connection in autocommit mode (for setting up what a test reads)."""
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database, password=ADMIN_PASSWORD, autocommit=True
        )

    def create_database(self, name: str) -> str:
        """A fresh, empty database `name` (dropped first when it exists); its URL for the admin."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def grant_reader(self, database: str, schema: str = "public") -> str:
        """Let `reader` read `schema` of `database`; the reader's URL."""
        with self.admin(database) as conn:
            conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO reader')
            conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO reader')
            conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO reader')
        return self.url(database, user="reader", schema=None if schema == "public" else schema)

    def create_role(self, name: str, *grants: str, database: str = "postgres") -> str:
        """A fresh LOGIN role `name` (the old one and what it owned dropped first) given `grants`,
        statements run by the admin in `database` with {role} standing for the role; its URL."""
        with self.admin(database) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(f'DROP OWNED BY "{name}"')
                conn.execute(f'DROP ROLE "{name}"')
            conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{ROLE_PASSWORD}'")
            conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{name}"')
            for grant in grants:
                conn.execute(grant.format(role=f'"{name}"'))
        return self.url(database, user=name)

    def stop(self) -> None:
        _as_owner([str(_bindir() / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"])

    def start(self) -> None:
        options = f"-c listen_addresses={self.host} -p {self.port} -k {self.folder} -c fsync=off"
        _as_owner(
            [str(_bindir() / "pg_ctl"), "-D", str(self.folder / "data"), "-o", options]
            + ["-l", str(self.folder / "log"), "-w", "start"]
        )


def _as_owner(command: list[str]) -> None:
    """Run a server command as its owner: the server refuses to run as root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, text=True)


def start_server() -> PostgresServer:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'text2sql[postgres]')")
    # Not pytest's tmp_path: its parent is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="text2sql-pg-"))
    pwfile = folder / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    folder.chmod(0o700)
    _as_owner(
        [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", f"--pwfile={pwfile}"]
        + ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"]
    )
    server = PostgresServer("127.0.0.1", _free_port(), folder)
    server.start()
    with server.admin() as conn:
        conn.execute(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'")
    return server


@pytest.fixture(scope="session")
def postgres_server():
    """The session's server; PGPASSFILE points at its passwords while it runs."""
    server = start_server()
    passfile = server.folder.parent / f"{server.folder.name}.pgpass"
    passfile.write_text(
        f"{server.host}:{server.port}:*:postgres:{ADMIN_PASSWORD}\n{server.host}:{server.port}:*:reader:{READER_PASSWORD}\n"
        f"{server.host}:{server.port}:*:*:{ROLE_PASSWORD}\n"
    )
    passfile.chmod(0o600)
    old = {k: os.environ.get(k) for k in ("PGPASSFILE", "PGPASSWORD")}
    os.environ["PGPASSFILE"] = str(passfile)
    os.environ.pop("PGPASSWORD", None)
    try:
        yield server
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # a test stopped it
        shutil.rmtree(server.folder, ignore_errors=True)
        passfile.unlink(missing_ok=True)
