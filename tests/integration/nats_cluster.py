"""A real three-node NATS JetStream cluster on this machine, for tests of stream replicas.

Each node is the nats-server the embedded NATS uses, with its own client, route and monitoring
port, its own server name and store folder. `wait_ready` polls the nodes' monitoring endpoints
until every node is healthy and all agree on one JetStream meta leader of the whole cluster.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.devstack.embedded import nats_server_binary, wait_for_port
from tests.conftest import free_port

CLUSTER_NAME = "portal-test"


@dataclass
class Node:
    name: str
    folder: Path
    port: int
    route_port: int
    monitor_port: int
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config(self, routes: list[str]) -> str:
        return json.dumps(
            {
                "server_name": self.name,
                "listen": f"127.0.0.1:{self.port}",
                "http": f"127.0.0.1:{self.monitor_port}",
                "jetstream": {"store_dir": str(self.folder / "jetstream")},
                "cluster": {
                    "name": CLUSTER_NAME,
                    "listen": f"127.0.0.1:{self.route_port}",
                    "routes": routes,
                },
            },
            indent=2,
        )

    def monitor(self, endpoint: str) -> tuple[int, dict[str, Any]]:
        """GET a monitoring endpoint: (status, JSON body); (0, {}) while it does not answer."""
        url = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return reply.status, json.load(reply)
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (urllib.error.URLError, OSError, ValueError):
            return 0, {}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # graceful: its stream leaderships are handed over first
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


class NatsCluster:
    def __init__(self, folder: Path, size: int = 3) -> None:
        self.nodes = [
            Node(f"n{i}", folder / f"n{i}", free_port(), free_port(), free_port())
            for i in range(size)
        ]

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> None:
        routes = [f"nats-route://127.0.0.1:{node.route_port}" for node in self.nodes]
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            conf = node.folder / "nats.conf"
            conf.write_text(node.config(routes))  # JSON is valid NATS configuration
            node.log = (node.folder / "nats.log").open("ab")
            node.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=node.log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        for node in self.nodes:
            assert node.proc is not None
            wait_for_port("127.0.0.1", node.port, node.proc, timeout=15)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every running node is healthy and they agree on one meta leader."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = set()
            for node in self.nodes:
                if not node.running:
                    continue
                health, _ = node.monitor("healthz")
                status, jsz = node.monitor("jsz")
                meta = jsz.get("meta_cluster", {})
                if health == 200 and status == 200 and meta.get("cluster_size") == len(self.nodes):
                    leaders.add(meta.get("leader") or "")
                else:
                    leaders.add("")
            if "" not in leaders and len(leaders) == 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the NATS cluster was not ready within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
