"""Boot test: the built image under QEMU (TCG), a NoCloud seed, SSH and LDAP through forwarded ports.

The guest network is ``-netdev user,restrict=on``: the VM reaches nothing outside; the host
reaches its SSH and BDII ports on 127.0.0.1 only. Every wait is bounded; QEMU is killed at
the end whatever happens. Exit codes: 0 all checks passed, 1 a check failed, 3 the base checks
passed but the BDII could not be checked because the bundle has not delivered it yet.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fedcloud_core.config import parse_config
from fedcloud_core.errors import ToolError

from .build_tools import CLOUD_LOCALDS, LDAPSEARCH, QEMU_IMG, SSH, SSH_KEYGEN
from .settings import Settings
from .userdata import appliance_files, firstboot_selection, render_user_data

GUEST_USER = "debian"
SSH_FAILED = 255  # ssh's own failure, not the remote command's exit code
HOSTNAME = "fedcloud-ova-test"
DEMO_CONFIG = """\
# demo config of the OVA boot test
site:
  name: OVA-TEST-SITE
  description: EGI FedCloud appliance boot test
  contacts:
    general: grid-admin@example.org
vos:
  ops:
    projects: [0123456789abcdef0123456789abcdef]
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_hostcert(hostname: str) -> tuple[str, str]:
    """A self-signed host certificate and key (PEM) for the test VM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode(),
    )


@dataclass
class Result:
    label: str
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    not_available: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Guest:
    """One QEMU process with forwarded ports; ``close`` kills it."""

    def __init__(self, work: Path, disk: Path, *, virtio: bool, memory_mb: int, cpus: int):
        self.work, self.disk = work, disk
        self.ssh_port, self.ldap_port = free_port(), free_port()
        self.console = work / "console.log"
        net = (
            f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
            f"hostfwd=tcp:127.0.0.1:{self.ldap_port}-:2170"
        )
        drive = f"file={disk},format=qcow2,if={'virtio' if virtio else 'ide'}"
        nic = "virtio-net-pci" if virtio else "e1000"
        self.argv = [
            "qemu-system-x86_64",
            "-machine",
            "pc,accel=tcg",
            "-smp",
            str(cpus),
            "-m",
            str(memory_mb),
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.console}",
            "-drive",
            drive,
            "-drive",
            f"file={work / 'seed.iso'},media=cdrom,readonly=on",
            "-netdev",
            net,
            "-device",
            f"{nic},netdev=n0",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.work / "qemu.log").open("wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            raise ToolError("qemu-system-x86_64", "not installed (scripts/dev/ova deps)") from None
        finally:
            log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def console_tail(self, n: int = 40) -> str:
        if not self.console.exists():
            return ""
        lines = self.console.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def ssh(
        self, command: str, timeout: float = 60, check: bool = True, attempts: int = 5
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the guest. SSH's own failures (exit 255: a guest too busy to
        finish the handshake, e.g. while containers start under emulation) are retried."""
        argv = [
            "-i",
            str(self.work / "id_test"),
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            f"{GUEST_USER}@127.0.0.1",
            command,
        ]
        result = SSH.run(argv, timeout=timeout, check=False)
        for _ in range(attempts - 1):
            if result.returncode != SSH_FAILED:
                break
            time.sleep(10)
            result = SSH.run(argv, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ToolError(
                "ssh",
                f"exit {result.returncode}: {result.stderr.strip()[-300:]}",
                returncode=result.returncode,
            )
        return result


def make_seed(work: Path, s: Settings, *, only_bdii: bool = True) -> None:
    SSH_KEYGEN.run(
        ["-q", "-t", "ed25519", "-N", "", "-C", "ova-boottest", "-f", str(work / "id_test")]
    )
    parse_config(DEMO_CONFIG, source="demo config")  # the demo config must be valid here first
    cert, key = demo_hostcert(HOSTNAME)
    files = appliance_files(DEMO_CONFIG, cert, key)
    if only_bdii:
        # under TCG the scheduler and the status page would compete with the BDII for the
        # two emulated CPUs (and the demo site has no OpenStack to collect from anyway)
        files.append(firstboot_selection(["bdii.service"]))
    user_data = render_user_data(
        hostname=HOSTNAME,
        ssh_keys=[(work / "id_test.pub").read_text(encoding="utf-8")],
        files=files,
        templates_dir=s.templates_dir,
    )
    (work / "user-data").write_text(user_data, encoding="utf-8")
    (work / "meta-data").write_text(
        f"instance-id: ova-test-{int(time.time())}\nlocal-hostname: {HOSTNAME}\n", encoding="utf-8"
    )
    CLOUD_LOCALDS.run([str(work / "seed.iso"), str(work / "user-data"), str(work / "meta-data")])


def wait_for(
    what: str, probe: Callable[[], bool], timeout: float, guest: Guest, interval: float = 3.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not guest.alive():
            raise ToolError(
                "qemu-system-x86_64", f"exited while waiting for {what}:\n{guest.console_tail()}"
            )
        try:
            if probe():
                return True
        except ToolError:
            pass
        time.sleep(interval)
    return False


def boot_one(
    s: Settings,
    label: str,
    base: Path,
    *,
    virtio: bool,
    ssh_timeout: float,
    service_timeout: float,
    memory_mb: int = 3072,
    cpus: int = 2,
    only_bdii: bool = True,
) -> Result:
    res = Result(label)
    work = s.work_dir / f"boottest-{label}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    make_seed(work, s, only_bdii=only_bdii)
    overlay = work / "disk.qcow2"
    # 10 GiB overlay, bigger than the image: cloud-init's growpart must grow the root file system
    QEMU_IMG.run(
        ["create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay), "10G"]
    )
    guest = Guest(work, overlay, virtio=virtio, memory_mb=memory_mb, cpus=cpus)
    t0 = time.monotonic()

    def mark(name: str) -> None:
        res.timings[name] = time.monotonic() - t0
        print(f"[ova] [{label}] {name} after {res.timings[name]:.0f}s", flush=True)

    print(
        f"[ova] [{label}] booting {base.name} ({'virtio' if virtio else 'IDE + e1000'}), "
        f"ssh 127.0.0.1:{guest.ssh_port}, ldap 127.0.0.1:{guest.ldap_port}",
        flush=True,
    )
    guest.start()
    try:
        if wait_for(
            "the login prompt", lambda: "login:" in guest.console_tail(5), ssh_timeout, guest
        ):
            mark("login prompt")
        remaining = max(10.0, ssh_timeout - (time.monotonic() - t0))
        if not wait_for(
            "SSH",
            lambda: guest.ssh("true", timeout=40, check=False, attempts=1).returncode == 0,
            remaining,
            guest,
        ):
            res.failures.append(f"no SSH within {ssh_timeout:.0f}s")
            print(guest.console_tail())
            return res
        mark("ssh")
        done = guest.ssh("cloud-init status --wait --long", timeout=service_timeout, check=False)
        if done.returncode == 0 and "status: done" in done.stdout:
            mark("cloud-init done")
        else:
            res.failures.append(f"cloud-init not done: {done.stdout.strip()} {done.stderr.strip()}")
        if wait_for(
            "firstboot",
            lambda: (
                guest.ssh(
                    "systemctl is-active fedcloud-appliance-firstboot", check=False
                ).stdout.strip()
                == "active"
            ),
            service_timeout,
            guest,
        ):
            mark("firstboot done")
        else:
            res.failures.append("fedcloud-appliance-firstboot.service did not finish")
        checks = {
            "docker running": "systemctl is-active docker",
            "ssh host key made at boot": "test -s /etc/ssh/ssh_host_ed25519_key.pub",
            "machine-id made at boot": "test -s /etc/machine-id",
            f"hostname {HOSTNAME}": f'test "$(hostname)" = {HOSTNAME}',
            "config present": "sudo test -s /etc/fedcloud-appliance/appliance.yaml",
            # readable by the job containers' group (gid 10001), by no one else
            "host key 0640 root:fedcloud": 'test "$(sudo stat -c %a:%U:%G '
            '/etc/grid-security/hostkey.pem)" = 640:root:fedcloud',
            "no password SSH": "sudo sshd -T | grep -qx 'passwordauthentication no'",
            "root file system grown": 'test "$(df -BG --output=size / | tail -1 | tr -dc 0-9)" -gt 8',
            # swap-setup: a swap file below 3072 MiB of MemTotal, none above
            "swap file iff memory < 3 GiB": "m=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo); "
            "if [ $m -lt 3145728 ]; then grep -q '^/swapfile ' /proc/swaps; "
            "else ! grep -q '^/swapfile ' /proc/swaps; fi",
            "first boot started bdii.service": "grep -q '^started:.* bdii.service' "
            "/run/fedcloud-appliance/firstboot.txt",
            "legacy pointers": "for d in caso apel sitebdii cloud-info-provider atrope; do "
            "test -s /etc/$d/README || exit 1; done",
        }
        for name, cmd in checks.items():
            r = guest.ssh(cmd, check=False)
            if r.returncode != 0:
                res.failures.append(f"{name}: failed ({cmd}) {r.stdout.strip()} {r.stderr.strip()}")
        info = guest.ssh(
            "cat /run/fedcloud-appliance/firstboot.txt; echo; cat /proc/swaps; "
            "sudo docker image ls --format '{{.Repository}}:{{.Tag}}'; systemctl is-system-running; "
            "for u in bdii fedcloud-appliance fedcloud-status-web; do "
            'echo "$u: $(systemctl is-active $u) (restarts: '
            '$(systemctl show -P NRestarts $u))"; done; uptime; '
            "sudo journalctl -b --no-pager -o cat -u bdii -u fedcloud-appliance "
            "-u fedcloud-status-web | grep -iE 'error|fail|exist|conflict' | tail -6",
            check=False,
        ).stdout
        res.notes.append(info.strip())
        check_bdii(guest, res, service_timeout, mark)
    finally:
        if guest.alive():
            guest.ssh(
                "sudo systemctl poweroff", timeout=15, check=False
            ) if "ssh" in res.timings else None
            deadline = time.monotonic() + 30
            while guest.alive() and time.monotonic() < deadline:
                time.sleep(1)
        guest.close()
        res.timings["total"] = time.monotonic() - t0
    return res


def check_bdii(guest: Guest, res: Result, timeout: float, mark: Callable[[str], None]) -> None:
    unit = guest.ssh("systemctl cat bdii.service", check=False)
    if unit.returncode == SSH_FAILED:
        res.failures.append(
            f"SSH did not answer while looking for bdii.service: {unit.stderr.strip()}"
        )
        return
    if unit.returncode != 0:
        res.not_available.append(
            "bdii.service is not in the image (the bundle has not delivered it yet)"
        )
        return
    images = guest.ssh("sudo docker image ls -q", check=False).stdout.strip()
    if not images:
        res.not_available.append(
            "no container image is preloaded (run 'make images' before 'make ova')"
        )
        return
    if not wait_for(
        "bdii",
        lambda: guest.ssh("systemctl is-active bdii", check=False).stdout.strip() == "active",
        timeout,
        guest,
    ):
        status = guest.ssh(
            "systemctl status --no-pager bdii; sudo journalctl -u bdii --no-pager | tail -20",
            check=False,
        ).stdout
        res.failures.append(f"bdii.service not active within {timeout:.0f}s:\n{status}")
        return
    mark("bdii active")

    def ldap_answers() -> bool:
        r = LDAPSEARCH.run(
            [
                "-x",
                "-LLL",
                "-o",
                "nettimeout=5",
                "-H",
                f"ldap://127.0.0.1:{guest.ldap_port}",
                "-s",
                "base",
                "-b",
                "",
                "namingContexts",
            ],
            timeout=15,
            check=False,
        )
        return r.returncode == 0 and "namingContexts" in r.stdout

    if not wait_for("LDAP", ldap_answers, timeout, guest):
        res.failures.append("the BDII does not answer LDAP through the forwarded port")
        return
    mark("ldap answers from the host")

    def glue_base() -> subprocess.CompletedProcess[str] | None:
        r = LDAPSEARCH.run(
            [
                "-x",
                "-LLL",
                "-o",
                "nettimeout=10",
                "-H",
                f"ldap://127.0.0.1:{guest.ldap_port}",
                "-b",
                "o=glue",
                "dn",
            ],
            timeout=60,
            check=False,
        )
        return r if r.returncode == 0 and "dn: o=glue" in r.stdout else None

    # slapd answers before bdii-update has loaded the appliance's base entries: wait for them
    found: list[subprocess.CompletedProcess[str]] = []

    def base_loaded() -> bool:
        r = glue_base()
        if r is not None:
            found.append(r)
        return r is not None

    if not wait_for("o=glue", base_loaded, timeout, guest):
        res.failures.append("the BDII answers LDAP but has no o=glue base (ldapsearch -b o=glue)")
        return
    mark("o=glue answered")
    dns = [line[4:] for line in found[-1].stdout.splitlines() if line.startswith("dn: ")]
    services = [d for d in dns if d.lower().startswith("glue2serviceid=")]
    res.notes.append(
        f"o=glue: {len(dns)} entries ({', '.join(dns[:3])}{', ...' if len(dns) > 3 else ''}); "
        + (
            f"{len(services)} GLUE2Service entries"
            if services
            else "no GLUE2Service yet: the demo site has no OpenStack reachable from the guest "
            "(restricted user network), so cloud-info publishes nothing; the BDII holds only "
            "the appliance's base entries"
        )
    )
    if "GLUE2GroupID=resource,o=glue".lower() not in {d.lower() for d in dns}:
        res.failures.append(f"o=glue lacks the appliance's GLUE2GroupID=resource base: {dns}")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: QEMU is killed


def main(
    s: Settings,
    *,
    only: str | None,
    ssh_timeout: float,
    service_timeout: float,
    memory_mb: int = 3072,
    cpus: int = 2,
    all_services: bool = False,
) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    results: list[Result] = []
    if only in (None, "qcow2"):
        if not s.qcow2_path.exists():
            print(f"[ova] {s.qcow2_path} does not exist: run 'make ova' first")
            return 1
        results.append(
            boot_one(
                s,
                "qcow2",
                s.qcow2_path,
                virtio=True,
                ssh_timeout=ssh_timeout,
                service_timeout=service_timeout,
                memory_mb=memory_mb,
                cpus=cpus,
                only_bdii=not all_services,
            )
        )
    if only in (None, "ova"):
        vmdk = s.work_dir / "ova-check" / s.vmdk_name
        if not vmdk.exists():
            print(
                f"[ova] {vmdk} does not exist: run 'scripts/dev/ova validate' first (it unpacks the OVA)"
            )
            return 1
        back = s.work_dir / "from-ova.qcow2"
        QEMU_IMG.run(["convert", "-f", "vmdk", "-O", "qcow2", str(vmdk), str(back)])
        results.append(
            boot_one(
                s,
                "ova",
                back,
                virtio=False,
                ssh_timeout=ssh_timeout,
                service_timeout=service_timeout,
                memory_mb=memory_mb,
                cpus=cpus,
                only_bdii=not all_services,
            )
        )
    rc = 0
    for r in results:
        print(
            f"\n[ova] ===== boot test '{r.label}': "
            + ", ".join(f"{k} {v:.0f}s" for k, v in r.timings.items())
        )
        for note in r.notes:
            print("        " + note.replace("\n", "\n        "))
        for f in r.failures:
            print(f"[ova] FAIL [{r.label}] {f}")
        for n in r.not_available:
            print(f"[ova] NOT YET AVAILABLE [{r.label}] BDII check: {n}")
        if r.failures:
            rc = 1
        elif r.not_available and rc == 0:
            rc = 3
    verdict = {
        0: "PASSED",
        1: "FAILED",
        3: "INCOMPLETE: base checks passed, the BDII part is not available yet",
    }
    print(f"[ova] boot test {verdict[rc]}")
    return rc
