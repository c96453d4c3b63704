"""A throw-away PostgreSQL server on 127.0.0.1 for tests and the fault-injection benchmark.

Debian's `postgresql` package provides the binaries (`initdb`, `pg_ctl`, `psql`,
`createdb`); the server refuses to run as root, so as root it runs as the `postgres` user.
The role and database are made as the README says: `CREATE ROLE dlmsim LOGIN PASSWORD`,
then `createdb --owner dlmsim` (PostgreSQL 15 lets only the owner create tables in a
database's public schema).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path


class Unavailable(Exception):
    """No server can be started here (the message says why)."""


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


@contextmanager
def server(base: Path):
    """Start a server with its data in `base`; yield the URL of the dlmsim role's database."""
    bins = bindir()
    if bins is None:
        raise Unavailable("no PostgreSQL server binaries (initdb) on this machine; `.ci/run` "
                          "installs Debian's postgresql package")
    run_as: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the "
                              "server as") from None
        run_as = ["runuser", "-u", "postgres", "--"]
        # The server's user must reach its data directory: let it traverse (not list) the
        # temp directories above it.
        for d in [base, *base.parents]:
            if d.stat().st_mode & 0o001 == 0:
                d.chmod(d.stat().st_mode | 0o001)
        os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(*cmd: str) -> None:
        r = subprocess.run(run_as + list(cmd), capture_output=True, text=True, timeout=120,
                           check=False)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr or r.stdout}")

    pg(str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
       "--auth-host=scram-sha-256")
    pg(str(bins / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-o",
       f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data} "
       "-c max_connections=100 -c fsync=off", "start")
    try:
        sock = ["-h", str(data), "-p", str(port), "-U", "postgres"]
        pg(str(bins / "psql"), *sock, "-c", "CREATE ROLE dlmsim LOGIN PASSWORD 'secret'")
        pg(str(bins / "createdb"), *sock, "--owner", "dlmsim", "dlmsim_studies")
        yield f"postgresql://dlmsim:secret@127.0.0.1:{port}/dlmsim_studies"
    finally:
        subprocess.run(run_as + [str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                 "stop"], capture_output=True, timeout=60, check=False)
