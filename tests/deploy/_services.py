"""Throw-away database services for the deployment tests, started on free loopback ports.

- ``tls_postgres()``: a new PostgreSQL cluster (``initdb`` + ``pg_ctl``) with TLS on, a
  certificate signed by a CA made here with ``openssl``, plain-text connections refused,
  and a password-authenticated role; removed afterwards. The shared cluster on 5432 is
  never touched.
- ``pgbouncer()``: Debian's PgBouncer in transaction mode in front of the test
  PostgreSQL, with its own ini file.

As root, the servers run as the ``postgres`` user (neither PostgreSQL nor PgBouncer runs
as root). Missing binaries skip the tests, except under CI=true, where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, PG_HOST, PG_PORT, PG_USER, free_port

# A password with every character that needs care in a URL.
SPECIAL_PASSWORD = "p@ss:w/rd?#%&= x"
PASSWORD_ROLE = "xray_pw"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what}; under CI=true these tests must run", pytrace=False)
    pytest.skip(what)


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        _missing(f"{name} is not installed")
    assert found is not None
    return found


def _as_service_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _service_dir() -> Path:
    # Not under pytest's tmp_path: that is private to root, and the servers run as postgres.
    directory = Path(tempfile.mkdtemp(prefix="xray-deploy-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


def _give_to_service_user(*paths: Path) -> None:
    if os.geteuid() == 0:
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path, *, name: str = "ca") -> Path:
    """A CA (``<name>.pem``) and, for ``ca``, a server certificate for localhost and
    127.0.0.1 signed by it (``server.pem``, ``server.key``). Returns the CA file."""
    if shutil.which("openssl") is None:
        _missing("openssl is not installed")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=X-Ray test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip
    if name != "ca":
        return directory / f"{name}.pem"
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.key").chmod(0o600)
    return directory / "ca.pem"


@dataclass(frozen=True)
class TLSPostgres:
    port: int
    ca_file: Path
    directory: Path

    def url(self, *, user: str = "postgres", password: str | None = None, **query: str) -> str:
        """A plain libpq URL, as a provider gives it (no driver in the scheme)."""
        from urllib.parse import quote, urlencode

        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        suffix = f"?{urlencode(query)}" if query else ""
        return f"postgresql://{auth}@localhost:{self.port}/postgres{suffix}"


@contextmanager
def tls_postgres() -> Iterator[TLSPostgres]:
    """A temporary PostgreSQL cluster that accepts TLS connections only."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    directory = _service_dir()
    data = directory / "data"
    port = free_port()
    try:
        ca_file = make_certificates(directory)
        _give_to_service_user(directory / "server.key", directory / "server.pem")
        subprocess.run(
            _as_service_user([initdb, "-D", str(data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        (data / "pg_hba.conf").write_text(
            f"hostssl all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
            "local all all trust\n"
        )
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={directory}"
            f" -c ssl=on -c ssl_cert_file={directory / 'server.pem'}"
            f" -c ssl_key_file={directory / 'server.key'} -c fsync=off"
        )
        subprocess.run(
            _as_service_user(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(directory / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        create_role = (
            f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD "
            + "'"
            + SPECIAL_PASSWORD.replace("'", "''")
            + "'"
        )
        psql = ["psql", "-h", str(directory), "-p", str(port), "-U", "postgres", "-d", "postgres"]
        subprocess.run(
            _as_service_user([*psql, "-v", "ON_ERROR_STOP=1", "-c", create_role]),
            check=True,
            capture_output=True,
        )
        yield TLSPostgres(port=port, ca_file=ca_file, directory=directory)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_service_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class PgBouncer:
    port: int
    log_path: Path

    def url(self, database: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def pgbouncer(*, pool_size: int = 4) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on a free port, every database forwarded to the test
    PostgreSQL. A small pool, so many clients share few server connections (what
    exposes any session state a client relies on)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        _missing("pgbouncer is not installed (Debian package pgbouncer)")
    directory = _service_dir()
    port = free_port()
    ini = directory / "pgbouncer.ini"
    (directory / "users.txt").write_text(f'"{PG_USER}" ""\n')
    ini.write_text(
        "[databases]\n"
        f"* = host={PG_HOST} port={PG_PORT}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 200\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
        f"pidfile = {directory / 'pgbouncer.pid'}\n"
    )
    _give_to_service_user(ini, directory / "users.txt")
    process = subprocess.Popen(
        _as_service_user([binary, str(ini)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    bouncer = PgBouncer(port=port, log_path=directory / "pgbouncer.log")
    try:
        deadline = time.monotonic() + 20
        import socket

        while True:
            if process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{bouncer.log()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not listen:\n{bouncer.log()}") from None
                time.sleep(0.1)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
