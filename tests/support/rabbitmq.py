"""A private RabbitMQ node with the STOMP plugin for tests (plain and TLS listeners on 127.0.0.1).

The node has its own name, directories, Erlang cookie (HOME) and free ports; it shares
the machine's epmd and never touches other nodes (e.g. the OpenStack testbed's
``testbed@localhost``). :meth:`RabbitNode.stop` / :meth:`kill` end only the process
group this helper started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class RabbitNode:
    base: Path
    cacert: Path | None = None  # TLS listener when the three are given
    certfile: Path | None = None
    keyfile: Path | None = None
    name: str = field(
        default_factory=lambda: f"fedcloud-stomp-test-{uuid.uuid4().hex[:8]}@localhost"
    )
    stomp_port: int = field(default_factory=free_port)
    stomps_port: int = field(default_factory=free_port)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    extra_conf: list[str] = field(default_factory=list)  # more rabbitmq.conf lines
    proc: subprocess.Popen[bytes] | None = None

    @property
    def tls(self) -> bool:
        return bool(self.cacert and self.certfile and self.keyfile)

    def _write_config(self) -> dict[str, str]:
        etc = self.base / "etc"
        for d in ("etc", "mnesia", "log", "home"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        conf = [
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
            "loopback_users.guest = true",
            f"stomp.listeners.tcp.1 = 127.0.0.1:{self.stomp_port}",
            "stomp.default_user = guest",
            "stomp.default_pass = guest",
            "log.console = false",
            "log.file.level = warning",
            *self.extra_conf,
        ]
        if self.tls:
            conf += [
                f"stomp.listeners.ssl.1 = 127.0.0.1:{self.stomps_port}",
                f"ssl_options.cacertfile = {self.cacert}",
                f"ssl_options.certfile = {self.certfile}",
                f"ssl_options.keyfile = {self.keyfile}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = true",
            ]
        (etc / "rabbitmq.conf").write_text("\n".join(c for c in conf if c) + "\n")
        (etc / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
        (etc / "rabbitmq-env.conf").write_text("")
        (etc / "advanced.config").write_text("[].\n")
        erl_args = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            {
                "HOME": str(self.base / "home"),
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(etc / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(etc / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(etc / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": erl_args,
                "RABBITMQ_CTL_ERL_ARGS": erl_args,
            }
        )
        return env

    def start(self, timeout: float = 60.0) -> RabbitNode:
        """Start the node (same dirs and ports on a restart: persistent messages survive)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        env = self._write_config()
        out = open(self.base / "server.out", "ab")
        self.proc = subprocess.Popen(
            [SERVER],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        ports = [self.stomp_port] + ([self.stomps_port] if self.tls else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited ({self.proc.returncode}): {self.log_tail()}"
                )
            if all(port_open(p) for p in ports):
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"rabbitmq-server not ready in {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.base / "server.out").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group this helper started (start_new_session)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the node (a crash): nothing is flushed or closed cleanly."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self._wait_ports_closed()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._wait_ports_closed()

    def _wait_ports_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            port_open(self.stomp_port) or port_open(self.dist_port)
        ):
            time.sleep(0.1)
