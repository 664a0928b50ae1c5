"""A tiny scratch slapd for the cloud-info contract tests (Debian slapd + glue-schema).

Runs ``slapd -f <conf> -h ldap://127.0.0.1:<free port> -d 0`` in a temp dir with an
mdb database for ``o=glue``; :meth:`ScratchSlapd.load` feeds LDIF to ``ldapadd -c``
and returns what slapd rejected (``-S skipped.ldif``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA_DIR = Path("/etc/ldap/schema")
ROOT_DN = "cn=admin,o=glue"
ROOT_PW = "scratch-only"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LoadResult:
    returncode: int
    skipped: str
    stderr: str
    added: int


class ScratchSlapd:
    def __init__(self, workdir: Path, extra_schemas: list[Path] | None = None):
        self.dir = workdir
        self.extra = extra_schemas or []
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        schemas = [
            SCHEMA_DIR / n
            for n in ("core.schema", "cosine.schema", "inetorgperson.schema", "GLUE20.schema")
        ] + self.extra
        lines = [f"include {p}" for p in schemas]
        lines += [
            f"pidfile {self.dir / 'slapd.pid'}",
            f"argsfile {self.dir / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "database mdb",
            "maxsize 1073741824",
            'suffix "o=glue"',
            f'rootdn "{ROOT_DN}"',
            f"rootpw {ROOT_PW}",
            f"directory {self.dir / 'db'}",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> ScratchSlapd:
        (self.dir / "db").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "slapd.conf"
        conf.write_text(self.config(), encoding="utf-8")
        check = subprocess.run(
            ["slaptest", "-u", "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"slaptest rejected the config: {check.stderr}")
        self.proc = subprocess.Popen(
            ["slapd", "-f", str(conf), "-h", self.url, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("slapd did not listen within 15 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def wipe(self) -> None:
        """Delete every entry, leaves first (``ldapdelete -r`` on an empty mdb crashes slapd 2.5.13)."""
        out = self.search("o=glue", "(objectClass=*)", "1.1")
        dns = [line[4:] for line in out.splitlines() if line.startswith("dn: ")]
        if not dns:
            return
        dns.sort(key=lambda d: d.count(","), reverse=True)
        listing = self.dir / "wipe.txt"
        listing.write_text("\n".join(dns) + "\n", encoding="utf-8")
        r = subprocess.run(
            [
                "ldapdelete",
                "-c",
                "-x",
                "-H",
                self.url,
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
                "-f",
                str(listing),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"wipe failed ({r.returncode}): {r.stderr}")

    def load(self, ldif_text: str, name: str = "load") -> LoadResult:
        src = self.dir / f"{name}.ldif"
        skipped = self.dir / f"{name}.skipped.ldif"
        src.write_text(ldif_text, encoding="utf-8")
        skipped.unlink(missing_ok=True)
        r = subprocess.run(
            [
                "ldapadd",
                "-c",
                "-x",
                "-H",
                self.url,
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
                "-S",
                str(skipped),
                "-f",
                str(src),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        text = skipped.read_text(encoding="utf-8") if skipped.exists() else ""
        return LoadResult(r.returncode, text, r.stderr, r.stdout.count("adding new entry"))

    def search(self, base: str = "o=glue", filt: str = "(objectClass=*)", *attrs: str) -> str:
        r = subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                self.url,
                "-b",
                base,
                filt,
                *attrs,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if r.returncode not in (0, 32):
            raise RuntimeError(f"ldapsearch failed ({r.returncode}): {r.stderr}")
        return r.stdout
