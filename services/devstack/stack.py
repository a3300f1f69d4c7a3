"""`make run`: the whole stack on one machine.

With no PORTAL_DATABASE_URL / PORTAL_NATS_URL it starts embedded PostgreSQL and NATS, keeping
their data under PORTAL_DATA_DIR (default .data/) so nothing is lost between runs. It creates a
database per service, starts the four services as child processes, waits until the gateway and
every backend serve and prints the addresses. A child that dies is restarted with growing delays
(one that keeps crashing right after start waits longer each time, and says so); Ctrl-C or
SIGTERM stops every child and the embedded servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc

from services.devstack.demo import seed as seed_demo
from services.devstack.demo import (
    seed_forms,
    seed_medications,
    seed_scheduling,
    seed_visit_forms,
)
from services.devstack.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    StartError,
    port_in_use,
)
from services.identity.passwords import generate_password
from services.runtime import principal_keys
from services.runtime.backoff import Backoff
from services.runtime.db import ensure_database, ensure_role, with_database, with_user
from services.runtime.nats_users import authorization
from services.runtime.principal_keys import SigningKey
from services.runtime.settings import (
    DEFAULT_PORTS,
    ConfigError,
    env_bool,
    env_int,
    env_signing_key,
    env_str,
)

SERVICES = ("identity", "forms", "scheduling")

# Keys and credentials the stack hands out itself: each child gets only its own (the shared
# PORTAL_PRINCIPAL_KEY of earlier versions is dropped: it has no use any more).
HANDED_OUT = tuple(
    f"PORTAL_{name}{suffix}"
    for name in (
        "PRINCIPAL_KEY",
        "PRINCIPAL_PRIVATE_KEY",
        "PRINCIPAL_PUBLIC_KEYS",
        "GATEWAY_SECRET",
        "NATS_USER",
        "NATS_PASSWORD",
    )
    for suffix in ("", "_FILE")
)
# Each service gets its own database URLs (services.devstack.stack.Stack.database_urls).
DATABASE_URLS = ("PORTAL_DATABASE_URL", "PORTAL_MIGRATION_DATABASE_URL")

# Restart delays of a child that died: 0.5 s, 1 s, 2 s … up to 30 s while it keeps crashing.
RESTART_FIRST, RESTART_MOST = 0.5, 30.0
# A child that ran this long before it died was healthy: its next restart is quick again.
HEALTHY_AFTER = 30.0
# Quick crashes in a row after which the restart note says the service keeps crashing.
CRASH_LOOP = 3


def not_serving(gateway_url: str) -> list[str] | None:
    """The backends the gateway reports not serving, or None when the gateway does not answer
    (its /readyz is 200 as soon as it runs; the body's `not_serving` names the backends)."""
    try:
        with urllib.request.urlopen(f"{gateway_url}/readyz", timeout=2) as reply:  # noqa: S310
            return [str(name) for name in json.load(reply)["not_serving"]]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None


def serves_everything(gateway_url: str) -> bool:
    """Whether the gateway answers and reports every backend serving."""
    return not_serving(gateway_url) == []


@dataclass
class StackConfig:
    data_dir: Path
    database_url: str | None
    nats_url: str | None
    gateway_host: str
    gateway_port: int
    service_ports: dict[str, int]
    pg_port: int
    nats_port: int
    database_prefix: str = "portal_"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackConfig:
        return cls(
            data_dir=Path(env_str(env, "PORTAL_DATA_DIR", ".data")).resolve(),
            database_url=env.get("PORTAL_DATABASE_URL") or None,
            nats_url=env.get("PORTAL_NATS_URL") or None,
            gateway_host=env_str(env, "PORTAL_GATEWAY_HOST", "127.0.0.1"),
            gateway_port=env_int(env, "PORTAL_GATEWAY_PORT", 8080),
            service_ports={
                name: env_int(env, f"PORTAL_{name.upper()}_PORT", port)
                for name, port in DEFAULT_PORTS.items()
            },
            pg_port=env_int(env, "PORTAL_EMBEDDED_PG_PORT", 55432),
            nats_port=env_int(env, "PORTAL_EMBEDDED_NATS_PORT", 54222),
            database_prefix=env_str(env, "PORTAL_DATABASE_PREFIX", "portal_"),
        )


def secret_file(path: Path, make: str) -> str:
    """Read a secret kept in the data folder, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make + "\n")
    return make


class Stack:
    def __init__(self, config: StackConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = dict(env)
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._env: dict[str, dict[str, str]] = {}
        self.new_admin_password: str | None = None  # set when this run generated it
        self.principal_key: SigningKey | None = None  # the gateway's, for the demo data too
        self._logs: dict[str, IO[bytes]] = {}
        # Supervision: when each child started, its restart backoff, quick crashes in a row,
        # when a dead one is due to start again, and those stopped on purpose (not restarted).
        self._started: dict[str, float] = {}
        self._backoff: dict[str, Backoff] = {}
        self._crashes: dict[str, int] = {}
        self._restart_at: dict[str, float] = {}
        self.held: set[str] = set()

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.gateway_host}:{self.config.gateway_port}"

    def check_ports(self) -> None:
        wanted = {"PORTAL_GATEWAY_PORT": (self.config.gateway_host, self.config.gateway_port)}
        for name, port in self.config.service_ports.items():
            wanted[f"PORTAL_{name.upper()}_PORT"] = ("127.0.0.1", port)
        for variable, (host, port) in wanted.items():
            if port_in_use(host, port):
                raise StartError(
                    f"port {port} is in use ({variable}): stop the other program "
                    "or choose another port"
                )

    def start(self) -> None:
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        (c.data_dir / "logs").mkdir(exist_ok=True)
        self.check_ports()
        server_url = c.database_url
        if server_url is None:
            self.postgres = EmbeddedPostgres(c.data_dir / "postgres", port=c.pg_port)
            server_url = self.postgres.start()
        nats_url = c.nats_url
        # With the user's own server, the services connect as PORTAL_NATS_USER says (if set).
        nats_users = {
            name: {k: self.env[k] for k in HANDED_OUT if "NATS" in k and k in self.env}
            for name in SERVICES
        }
        if nats_url is None:
            # Our own server: one NATS user per service, each within its own subjects.
            passwords = {name: self.nats_password(name) for name in SERVICES}
            self.nats = EmbeddedNats(
                c.data_dir / "nats",
                port=c.nats_port,
                authorization=authorization({n: json.dumps(p) for n, p in passwords.items()}),
            )
            nats_url = self.nats.start()
            nats_users = {
                name: {"PORTAL_NATS_USER": name, "PORTAL_NATS_PASSWORD": passwords[name]}
                for name in SERVICES
            }
        asyncio.run(self._create_databases(server_url))
        database_urls = {name: self.database_urls(server_url, name) for name in SERVICES}
        key = self.principal_key = self.signing_key()
        common = {
            **{k: v for k, v in self.env.items() if k not in HANDED_OUT + DATABASE_URLS},
            "PORTAL_NATS_URL": nats_url,
            "PORTAL_DATA_DIR": str(c.data_dir),
            **c.extra_env,
        }
        for name in SERVICES:
            env = {
                **common,
                # The public key only: a service can check principals, never make one.
                "PORTAL_PRINCIPAL_PUBLIC_KEYS": principal_keys.public_pem(key.public),
                **nats_users[name],
                **database_urls[name],
                "PORTAL_GRPC_LISTEN": f"127.0.0.1:{c.service_ports[name]}",
                # Development: grpcurl can list the API (off by default elsewhere).
                "PORTAL_GRPC_REFLECTION": self.env.get("PORTAL_GRPC_REFLECTION", "true"),
            }
            if name == "identity":
                env["PORTAL_ADMIN_PASSWORD"] = self.admin_password()
            self.launch(name, env)
        gateway_env = {
            **common,
            "PORTAL_PRINCIPAL_PRIVATE_KEY": principal_keys.private_pem(key.private),
            "PORTAL_GATEWAY_SECRET": self.env.get("PORTAL_GATEWAY_SECRET")
            or secret_file(self.secrets / "gateway-secret", secrets.token_urlsafe(48)),
            "PORTAL_GATEWAY_HOST": c.gateway_host,
            "PORTAL_GATEWAY_PORT": str(c.gateway_port),
            # Local http: cookies cannot be Secure unless the user says otherwise.
            "PORTAL_COOKIE_SECURE": self.env.get("PORTAL_COOKIE_SECURE", "false"),
        }
        for name, port in c.service_ports.items():
            gateway_env[f"PORTAL_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
        self.launch("gateway", gateway_env)

    def child_env(self, name: str) -> Mapping[str, str]:
        """The settings child `name` was started with."""
        return self._env[name]

    @property
    def secrets(self) -> Path:
        return self.config.data_dir / "secrets"

    def signing_key(self) -> SigningKey:
        """The gateway's key: PORTAL_PRINCIPAL_PRIVATE_KEY, or a pair generated once and kept."""
        if self.env.get("PORTAL_PRINCIPAL_PRIVATE_KEY") or self.env.get(
            "PORTAL_PRINCIPAL_PRIVATE_KEY_FILE"
        ):
            return env_signing_key(self.env)
        private = self.secrets / "principal-private.pem"
        if not private.exists():
            private_pem, public_pem = principal_keys.generate()
            secret_file(self.secrets / "principal-public.pem", public_pem)
            secret_file(private, private_pem)
        return principal_keys.load_signing_key(private.read_text())

    def nats_password(self, service: str) -> str:
        return secret_file(self.secrets / f"nats-{service}.password", secrets.token_urlsafe(32))

    def admin_password(self) -> str:
        """The first admin's password: PORTAL_ADMIN_PASSWORD, or generated once and kept."""
        given = self.env.get("PORTAL_ADMIN_PASSWORD") or self.config.extra_env.get(
            "PORTAL_ADMIN_PASSWORD"
        )
        if given:
            return given
        path = self.secrets / "admin-password"
        if path.exists():
            return path.read_text().strip()
        self.new_admin_password = secret_file(path, generate_password())
        return self.new_admin_password

    def database(self, service: str) -> str:
        return f"{self.config.database_prefix}{service}"

    def database_password(self, service: str) -> str:
        return secret_file(self.secrets / f"db-{service}.password", secrets.token_urlsafe(24))

    def runtime_role(self, service: str) -> str:
        return f"{self.database(service)}_app"

    def database_urls(self, server_url: str, service: str) -> dict[str, str]:
        """A service connects as its runtime role (INSERT and SELECT only on its audit table)
        and migrates as the server URL's user, the owner."""
        owner = with_database(server_url, self.database(service))
        return {
            "PORTAL_DATABASE_URL": with_user(
                owner, self.runtime_role(service), self.database_password(service)
            ),
            "PORTAL_MIGRATION_DATABASE_URL": owner,
        }

    async def _create_databases(self, server_url: str) -> None:
        for name in SERVICES:
            await ensure_database(server_url, self.database(name))
            await ensure_role(server_url, self.runtime_role(name), self.database_password(name))

    def stop_service(self, name: str, timeout: float = 30) -> int:
        """Stop one child on purpose (SIGTERM); it is not restarted until `start_service`."""
        self.held.add(name)
        self._restart_at.pop(name, None)
        proc = self.children[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def start_service(self, name: str) -> None:
        """Start a child stopped by `stop_service` again, with the same settings."""
        if self.children[name].poll() is None:
            raise StartError(f"{name} is already running")
        self.held.discard(name)
        self._restart_at.pop(name, None)
        self.launch(name, self._env[name])

    def supervise(self, now: float | None = None) -> list[str]:
        """Restart children that died (not those stopped on purpose); what to tell the user."""
        now = time.monotonic() if now is None else now
        notes = []
        for name, proc in list(self.children.items()):
            if name in self.held or proc.poll() is None:
                continue
            due = self._restart_at.get(name)
            if due is None:
                notes.append(self._schedule_restart(name, proc.returncode, now))
            elif now >= due:
                del self._restart_at[name]
                self.launch(name, self._env[name])
                notes.append(f"{name} restarted (pid {self.children[name].pid})")
        return notes

    def _schedule_restart(self, name: str, code: int, now: float) -> str:
        backoff = self._backoff.setdefault(name, Backoff(RESTART_FIRST, RESTART_MOST))
        if now - self._started[name] >= HEALTHY_AFTER:
            backoff.reset()
            self._crashes[name] = 0
        crashes = self._crashes[name] = self._crashes.get(name, 0) + 1
        delay = backoff.next()
        self._restart_at[name] = now + delay
        how = f" ({signal.Signals(-code).name})" if code < 0 else ""
        note = f"{name} exited with code {code}{how}; restarting in {delay:.1f}s"
        if crashes >= CRASH_LOOP:
            note += f" ({crashes} crashes in a row; its last output: {self.log_tail(name)})"
        return note

    def launch(self, name: str, env: dict[str, str]) -> None:
        """Start child `name` (python -m services.<name>) with `env`; its output goes to its log."""
        self._env[name] = env
        previous = self._logs.pop(name, None)
        if previous is not None:
            previous.close()
        log = self._logs[name] = (self.config.data_dir / "logs" / f"{name}.log").open("ab")
        self._started[name] = time.monotonic()
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
        )

    def exited(self) -> str | None:
        """The name of a child that has exited (and was not stopped on purpose), if any."""
        for name, proc in self.children.items():
            if name not in self.held and proc.poll() is not None:
                return name
        return None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.exited()
            if dead:
                raise StartError(f"{dead} exited during start-up: {self.log_tail(dead)}")
            if serves_everything(self.gateway_url):
                return
            time.sleep(0.25)
        waiting = not_serving(self.gateway_url)
        what = "the gateway does not answer" if waiting is None else f"not serving: {waiting}"
        tails = "".join(f"\n  {name}: {self.log_tail(name)}" for name in self.children)
        raise StartError(
            f"the stack was not ready within {timeout:.0f}s ({what}); logs: {self.log_dir}{tails}"
        )

    @property
    def log_dir(self) -> Path:
        return self.config.data_dir / "logs"

    def log_tail(self, name: str, lines: int = 3) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        # Gateway first (no new requests), then the services, then what they depend on.
        for name in ["gateway", *SERVICES]:
            proc = self.children.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.children.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in (self.nats, self.postgres):
            if server is not None:
                server.stop()
        for log in self._logs.values():
            log.close()
        self._logs.clear()


def admin_hint(stack: Stack) -> str:
    if stack.new_admin_password:
        # Printed this once; it stays readable only by you in the data folder.
        return (
            f"admin / {stack.new_admin_password}  "
            f"(saved in {stack.config.data_dir / 'secrets' / 'admin-password'})"
        )
    if "PORTAL_ADMIN_PASSWORD" in os.environ:
        return "admin / the password in PORTAL_ADMIN_PASSWORD"
    return f"admin / the password in {stack.config.data_dir / 'secrets' / 'admin-password'}"


def main() -> int:
    try:
        config = StackConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    stack = Stack(config, os.environ)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started = time.monotonic()
    try:
        print("Starting the patient portal…", flush=True)
        stack.start()
        stack.wait_ready(timeout=120)
        demo = ""
        if env_bool(os.environ, "PORTAL_DEMO_DATA", True) and stack.principal_key is not None:
            identity = f"127.0.0.1:{config.service_ports['identity']}"
            try:
                added = asyncio.run(seed_demo(identity, stack.principal_key))
            except grpc.aio.AioRpcError as exc:  # the stack works without demo data
                print(f"make run: demo patients not added ({exc.code().name})", file=sys.stderr)
                added = []
            if added:
                demo = f"  Demo patients    {', '.join(added)} (search for one by name)\n"
            scheduling = f"127.0.0.1:{config.service_ports['scheduling']}"
            try:
                providers = asyncio.run(seed_scheduling(scheduling, stack.principal_key))
            except grpc.aio.AioRpcError as exc:
                print(f"make run: demo providers not added ({exc.code().name})", file=sys.stderr)
                providers = []
            if providers:
                demo += f"  Demo providers   {', '.join(providers)}\n"
            try:
                offered = asyncio.run(
                    seed_forms(f"127.0.0.1:{config.service_ports['forms']}", stack.principal_key)
                )
            except grpc.aio.AioRpcError as exc:
                print(f"make run: demo portal forms not set ({exc.code().name})", file=sys.stderr)
                offered = []
            if offered:
                demo += f"  Portal forms     {', '.join(offered)}\n"
            try:
                linked = asyncio.run(
                    seed_visit_forms(
                        scheduling,
                        f"127.0.0.1:{config.service_ports['forms']}",
                        stack.principal_key,
                    )
                )
            except grpc.aio.AioRpcError as exc:
                print(f"make run: demo visit forms not set ({exc.code().name})", file=sys.stderr)
                linked = []
            for line in linked:
                demo += f"  Visit forms      {line} (book one to get them)\n"
            try:
                medicated = asyncio.run(
                    seed_medications(
                        identity, f"127.0.0.1:{config.service_ports['forms']}", stack.principal_key
                    )
                )
            except grpc.aio.AioRpcError as exc:
                print(f"make run: demo medications not added ({exc.code().name})", file=sys.stderr)
                medicated = []
            for line in medicated:
                demo += f"  Medications      {line} (try Refills)\n"
        print(
            f"\nReady in {time.monotonic() - started:.1f}s\n"
            f"  Landing page     {stack.gateway_url}/\n"
            f"  Staff portal     {stack.gateway_url}/staff/\n"
            f"  Patient portal   {stack.gateway_url}/portal/onsite/ (onsite), "
            f"{stack.gateway_url}/portal/offsite/ (offsite)\n"
            f"  Logs             {stack.log_dir}/\n"
            f"  Staff sign-in    {admin_hint(stack)}\n"
            f"{demo}"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping:
            for note in stack.supervise():
                print(f"make run: {note}", file=sys.stderr, flush=True)
            time.sleep(0.2)
        print("Stopping…", flush=True)
        return 0
    except (StartError, ConfigError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        stack.stop()
