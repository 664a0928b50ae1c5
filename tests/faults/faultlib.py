"""Tools of the fault tier: a TCP proxy that can cut a connection at a chosen moment, a bounded
wait, a size-limited tmpfs, and a private glance-api beside the testbed's (same DB and store).

Every loop here is bounded in count and time; every process and mount is undone by its owner
(context managers), also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    pred: Callable[[], object], timeout: float, step: float = 0.02, what: str = ""
) -> None:
    """Poll ``pred`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what or pred}")


# ---------------------------------------------------------------------------------- TCP proxy


class CutProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut_after`` (bytes from the client -> frames
    seen) decides when to drop everything: from then on nothing more is forwarded in either
    direction and both sockets are closed. ``throttle`` (bytes/s) slows the client -> server side.

    ``on_client_data(conn_no, chunk) -> bool | int``: called for each chunk the client sends,
    before it is forwarded; True means "forward this chunk, then cut the connection", an int n
    "forward only its first n bytes, then cut" (the server gets them, the client never gets the
    answer); False forwards the chunk and goes on."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        on_client_data: Callable[[int, bytes], bool | int] | None = None,
        throttle: int | None = None,
    ):
        self.target = target
        self.on_client_data = on_client_data
        self.throttle = throttle
        self.port = free_port()
        self.cuts = 0
        self.connections = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> CutProxy:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._sock = s
        t = threading.Thread(target=self._accept, daemon=True, name="cutproxy")
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sock:
            self._sock.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept(self) -> None:
        assert self._sock
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            t = threading.Thread(
                target=self._pump, args=(client, self.connections), daemon=True, name="cutpump"
            )
            t.start()
            self._threads.append(t)

    def _pump(self, client: socket.socket, no: int) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        cut = False
        sent = 0
        t0 = time.monotonic()
        deadline = t0 + 300  # no proxied connection outlives a test
        try:
            while not self._stop.is_set() and not cut and time.monotonic() < deadline:
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        verdict = self.on_client_data(no, data) if self.on_client_data else False
                        if verdict is not False:
                            cut = True
                            if verdict is not True:
                                data = data[: int(verdict)]
                        server.sendall(data)
                        sent += len(data)
                        if self.throttle:
                            ahead = sent / self.throttle - (time.monotonic() - t0)
                            if ahead > 0:
                                time.sleep(min(ahead, 1.0))
                    else:
                        client.sendall(data)
                    if cut:
                        break
        except OSError:
            return
        finally:
            if cut:
                self.cuts += 1
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


# ---------------------------------------------------------------------------------- tmpfs


@contextlib.contextmanager
def tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    """A size-limited tmpfs on ``path`` (needs root), always unmounted at the end."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)],
        check=True,
        timeout=30,
    )
    try:
        yield path
    finally:
        for _ in range(10):  # bounded: a file still open (a late thread) makes umount busy
            if subprocess.run(["umount", str(path)], timeout=30, check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(path)], timeout=30, check=False)


def resize_tmpfs(path: Path, size_mib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_mib}m", str(path)], check=True, timeout=30)


def can_mount() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------------------- glance-api


class OwnGlance:
    """A second glance-api (uWSGI) on a free port, with the testbed's venv, database and file
    store but its own config dir, log and PID. Never touches the testbed's glance process.

    ``kill()`` SIGKILLs its process group (uWSGI master and worker); ``start()`` again reuses
    the same port."""

    def __init__(self, testbed_dir: Path, work: Path, *, token_cache: bool = True):
        self.tb = testbed_dir
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.token_cache = token_cache

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        etc = self.work / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        src = self.tb / "etc" / "glance"
        conf = (src / "glance-api.conf").read_text()
        tb_url = f"http://127.0.0.1:{_ini_port(src / 'uwsgi.ini')}"
        conf = conf.replace(tb_url, self.url)
        conf = conf.replace(str(self.tb / "logs" / "glance-api.log"), str(self.work / "glance.log"))
        conf = conf.replace(str(src / "glance-api-paste.ini"), str(etc / "glance-api-paste.ini"))
        if not self.token_cache:
            # validate every request's token with Keystone (a revoked token is refused at once)
            conf = conf.replace(
                "[keystone_authtoken]", "[keystone_authtoken]\ntoken_cache_time = -1"
            )
        (etc / "glance-api.conf").write_text(conf)
        (etc / "glance-api-paste.ini").write_text((src / "glance-api-paste.ini").read_text())
        uwsgi = (src / "uwsgi.ini").read_text()
        uwsgi = uwsgi.replace(tb_url.removeprefix("http://"), f"127.0.0.1:{self.port}")
        uwsgi = uwsgi.replace(str(src), str(etc))
        uwsgi = uwsgi.replace(
            str(self.tb / "logs" / "glance-uwsgi.log"), str(self.work / "uwsgi.log")
        )
        (etc / "uwsgi.ini").write_text(uwsgi)
        return etc / "uwsgi.ini"

    def start(self, timeout: float = 90.0) -> None:
        ini = self._write_config()
        with open(self.work / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.tb / "venv" / "bin" / "uwsgi"), "--ini", str(ini)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"own glance-api exited: {self.log_tail()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code in (200, 300):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"own glance-api not answering after {timeout:g}s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def log_tail(self, n: int = 1500) -> str:
        out = []
        for f in ("stdout.log", "uwsgi.log", "glance.log"):
            p = self.work / f
            if p.exists():
                out.append(f"{f}: {p.read_text(errors='replace')[-n:]}")
        return "\n".join(out)


def _ini_port(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.strip().startswith("http-socket"):
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no http-socket in {path}")
