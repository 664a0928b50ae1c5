"""The appliance bundle end to end: built images, docker-compose, the local OpenStack testbed.

Order matters (one compose project for the module, started once): the BDIIs and
the status page come up, one cycle of cloud-info runs in a one-shot container (the
cron path, Docker SDK), the resource BDII publishes the testbed's GLUE2, the
accounting one-shot runs through ``docker-compose run``; then a job killed
mid-write, ``down && up``, and the page in headless Chromium.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from fedcloud_appliance import oneshot

Bundle = Any  # the session fixture's object (tests/integration/bundle/conftest.py)


def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} -> {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LDAPSEARCH = ["ldapsearch", "-x", "-LLL", "-o", "nettimeout=5", "-l", "10"]


def _ldap(port: int, base: str, *attrs: str) -> str:
    return run(
        [*LDAPSEARCH, "-H", f"ldap://127.0.0.1:{port}", "-b", base, *attrs], timeout=30
    ).stdout


@pytest.mark.parametrize(
    ("image", "user"),
    [("fedcloud-appliance:latest", "10001:10001"), ("fedcloud-bdii:latest", "2170:10001")],
)
def test_images_hold_no_config_or_secret(docker_images, image, user):
    client = docker.from_env(timeout=120)
    img = client.images.get(image)
    assert img.attrs["Config"]["User"] == user
    assert img.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
    assert img.attrs["Config"]["Entrypoint"][0] == "/usr/bin/tini"
    assert not img.attrs["Config"].get("Volumes")  # no anonymous volumes left behind by one-shots
    # nothing is copied into the config or certificate directories at build time
    copies = [
        str(h.get("CreatedBy", ""))
        for h in img.history()
        if "#(nop) COPY" in str(h.get("CreatedBy", ""))
        or "#(nop) ADD" in str(h.get("CreatedBy", ""))
    ]
    assert len(copies) >= 4  # the history really lists the build's COPY steps
    assert not [
        c for c in copies if " in /etc/fedcloud-appliance" in c or " in /etc/grid-security" in c
    ]
    container = client.containers.create(image, command=["true"])
    try:
        names, private = [], []
        with io.BytesIO(b"".join(container.export())) as buf, tarfile.open(fileobj=buf) as tar:
            for m in tar:
                names.append(m.name)
                if (
                    m.isfile()
                    and m.name.endswith((".pem", ".key", ".p12", ".crt"))
                    and m.size < 100_000
                ):
                    f = tar.extractfile(m)
                    if f and b"PRIVATE KEY" in f.read():
                        private.append(m.name)
    finally:
        container.remove(force=True, v=True)
    assert len(names) > 1000  # the export really listed the image
    assert private == []
    assert [
        n
        for n in names
        if n.startswith("etc/fedcloud-appliance/") and n != "etc/fedcloud-appliance/"
    ] == []
    assert [
        n for n in names if n.startswith("etc/grid-security/") and n != "etc/grid-security/"
    ] == []
    assert not any(n.endswith(("clouds.yaml", "hostkey.pem", "hostcert.pem")) for n in names)
    assert any(n.startswith("opt/fedcloud/bin/fedcloud-appliance") for n in names)


def test_compose_file_is_valid_for_compose_v1(docker_images, bundle: Bundle):
    out = bundle.compose("--profile", "jobs", "--profile", "demo", "config").stdout
    assert (
        f"127.0.0.1:{bundle.ports['resource']}" in out
        or f"published: {bundle.ports['resource']}" in out
    )
    assert bundle.compose("config", "-q", host=True).returncode == 0


def test_bdiis_and_status_page_come_up_healthy(bundle: Bundle):
    bundle.compose("up", "-d", "resource-bdii", "site-bdii", "status-web", timeout=180)
    bundle.wait_healthy("resource-bdii", timeout=120)
    bundle.wait_healthy("status-web", timeout=60)
    out = _ldap(bundle.ports["resource"], "o=glue", "-s", "base", "dn")
    assert "dn: o=glue" in out
    bundle.wait_healthy("site-bdii", timeout=120)


def test_cloud_info_oneshot_container_feeds_the_resource_bdii(bundle: Bundle):
    """The cron path for real: run_oneshot creates, runs and removes a container (Docker SDK)."""
    client = docker.from_env(timeout=60)
    settings = oneshot.OneshotSettings(
        config_dir=str(bundle.config_dir), volume_prefix=bundle.prefix, network="host", timeout=300
    )
    out = io.StringIO()
    volumes_before = {v.name for v in client.volumes.list()}
    assert volumes_before  # the bundle's named volumes at least
    code = oneshot.run_oneshot("cloud-info", settings, out=out)
    # 3 = partial: the shared testbed changes under the collection (other tests delete images
    # between the list and the member calls); the snapshot is written either way
    assert code in (0, 3), out.getvalue()[-3000:]
    assert re.search(r"cloud-info: (ok|partial) in", out.getvalue())
    assert (
        client.containers.list(all=True, filters={"label": "eu.egi.fedcloud.job=cloud-info"}) == []
    )
    assert {v.name for v in client.volumes.list()} == volumes_before  # like docker run --rm

    hb = bundle.volume_exec("cat /var/lib/fedcloud-appliance/status/cloud-info.heartbeat")
    assert hb.startswith("20")

    # one bdii-update cycle now instead of waiting for its interval (same lock as the loop)
    bundle.compose(
        "exec",
        "-T",
        "resource-bdii",
        "fedcloud-appliance",
        "bdii-update",
        "--once",
        "--wait-lock",
        "60",
        timeout=120,
    )
    tree = _ldap(bundle.ports["resource"], "GLUE2GroupID=resource,o=glue", "objectClass")
    seed = bundle.testbed.seed
    assert "objectClass: GLUE2ComputingService" in tree
    assert "objectClass: GLUE2ComputingEndpoint" in tree
    assert tree.count("objectClass: GLUE2ComputingShare") == len(seed["vo_map"])
    assert "objectClass: GLUE2ApplicationEnvironment" in tree
    assert "objectClass: GLUE2ExecutionEnvironment" in tree
    rules = _ldap(
        bundle.ports["resource"], "o=glue", "(objectClass=GLUE2MappingPolicy)", "GLUE2PolicyRule"
    )
    for vo in set(seed["vo_map"].values()):
        assert f"GLUE2PolicyRule: VO:{vo}" in rules


def test_site_bdii_aggregates_the_resource_bdii(bundle: Bundle):
    bundle.compose(
        "exec",
        "-T",
        "site-bdii",
        "fedcloud-appliance",
        "site-bdii",
        "--once",
        "--wait-lock",
        "60",
        timeout=120,
    )
    tree = _ldap(bundle.ports["site"], "GLUE2DomainID=DEMO-SITE,o=glue", "objectClass")
    assert "objectClass: GLUE2AdminDomain" in tree
    assert "objectClass: GLUE2ComputingService" in tree


def test_accounting_oneshot_through_compose_run(bundle: Bundle):
    proc = bundle.compose("run", "--rm", "accounting", host=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    hb = bundle.volume_exec("cat /var/lib/fedcloud-appliance/status/accounting-extract.heartbeat")
    assert hb.startswith("20")
    data = bundle.status_json()
    jobs = {j["key"]: j for j in data["jobs"]}
    assert jobs["accounting-extract"]["status"] == "ok"
    assert jobs["cloud-info"]["status"] in ("ok", "partial")
    assert {b["name"]: b["answered"] for b in data["bdiis"]} == {"resource": True, "site": True}
    assert data["bdiis"][0]["entries"] > 10


def test_the_bdiis_see_neither_the_jobs_state_nor_a_writable_snapshot(bundle: Bundle):
    """Issue 18 defect 12: slapd's containers (uid 2170) have their own volume only."""
    assert "checkpoints.json" in bundle.volume_exec("ls /var/lib/fedcloud-appliance/accounting")
    probe = (
        "ls -A /var/lib/fedcloud-appliance; "
        "touch /var/lib/fedcloud-appliance/cloud-info/x 2>&1 || true; "
        "ls /var/lib/fedcloud-appliance/cloud-info"
    )
    for svc in ("resource-bdii", "site-bdii"):
        out = bundle.compose("exec", "-T", svc, "sh", "-c", probe, timeout=60).stdout
        assert "accounting" not in out, out  # the jobs' state is not there at all
        assert "locks" in out, out  # its own lock and run report directories
        assert "status" in out, out
    out = bundle.compose("exec", "-T", "resource-bdii", "sh", "-c", probe, timeout=60).stdout
    assert "Read-only file system" in out, out
    assert "snapshot.ldif" in out, out  # cloud-info's snapshot, read-only


def test_the_image_replication_never_sees_the_host_key(bundle: Bundle):
    """Issue 18 defect 1: in scheduler mode the images job runs in images-scheduler, which
    has the CA directory but not the host key (the scheduler, whose ssm job signs, has it)."""
    probe = "ls -A /etc/grid-security; ls /etc/grid-security/certificates | wc -l"
    out = {}
    for svc in ("images-scheduler", "scheduler"):
        proc = bundle.compose(
            "run", "--rm", "--no-deps", svc, "sh", "-c", probe, host=True, timeout=120
        )
        out[svc] = proc.stdout.split()
    assert out["images-scheduler"][0] == "certificates", out
    assert int(out["images-scheduler"][1]) > 0, out  # the CAs are there
    assert not any("hostkey" in w or "hostcert" in w for w in out["images-scheduler"]), out
    assert "hostkey.pem" in out["scheduler"], out
    cfg = yaml.safe_load(bundle.compose("config").stdout)["services"]
    targets = [
        v["target"] if isinstance(v, dict) else v.split(":")[1]
        for v in cfg["images-scheduler"]["volumes"]
    ]
    assert "/etc/grid-security" not in targets, targets


def test_the_image_replication_sees_only_appliance_yaml_and_its_credentials(bundle: Bundle):
    """Issue 18 defect 1: of the config directory, the images containers see appliance.yaml
    and images/ (the images job's clouds.yaml), not clouds.yaml or the other jobs' secret
    files; the images job loads its config without them, `config check` there cannot."""
    probe = "ls -A /etc/fedcloud-appliance; echo --; ls -A /etc/fedcloud-appliance/images"
    seen = {}
    for svc in ("images-scheduler", "images", "scheduler"):
        proc = bundle.compose("run", "--rm", "--no-deps", svc, "sh", "-c", probe, host=True)
        seen[svc] = proc.stdout.split("--")[0].split()
    for svc in ("images-scheduler", "images"):
        assert seen[svc] == ["appliance.yaml", "images"], seen
    assert "clouds.yaml" in seen["scheduler"], seen
    # another job's secret file, beside appliance.yaml on the host (ssm.ams_token_file)
    token = bundle.config_dir / "ams-token"
    # written by a subprocess: the suite's guard counts every open() outside the repository
    subprocess.run(
        ["sh", "-c", f"umask 022; echo not-for-the-images-job > {token}"], check=True, timeout=10
    )
    env = ["-e", "FEDCLOUD__SSM__AMS_TOKEN_FILE=/etc/fedcloud-appliance/ams-token"]
    cfg = "/etc/fedcloud-appliance/appliance.yaml"
    try:
        check = bundle.compose(
            "run", "--rm", "--no-deps", *env, "images",
            "fedcloud-appliance", "config", "check", "--config", cfg,
            host=True, check=False,
        )  # fmt: skip
        assert check.returncode == 2, check.stdout + check.stderr
        assert "ssm.ams_token_file: cannot read secret file" in check.stderr, check.stderr
        dry = bundle.compose(
            "run", "--rm", "--no-deps", *env, "images",
            "fedcloud-appliance", "images", "sync", "--config", cfg, "--once", "--dry-run",
            host=True, check=False, timeout=300,
        )  # fmt: skip
        out = dry.stdout + dry.stderr
        assert dry.returncode in (0, 3), out[-2000:]  # 3: the list server may not run yet
        assert "config error" not in out, out[-2000:]
        assert "not-for-the-images-job" not in out
        ok = bundle.compose(
            "run", "--rm", "--no-deps", *env, "ssm",
            "fedcloud-appliance", "config", "check", "--config", cfg,
            host=True, check=False,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr  # the ssm container sees the file
    finally:
        token.unlink()


KILL_WRITER = r"""
import hashlib, sys, time
from dirq.QueueSimple import QueueSimple
q = QueueSimple("/var/spool/apel/outgoing/killtest")
i = 0
while True:
    body = ("record %d " % i) * 2000
    q.add(body + "\nsha256:" + hashlib.sha256(body.encode()).hexdigest())
    i += 1
    if i == 20:
        print("writing", flush=True)
"""

CHECK_QUEUE = r"""
import hashlib, json
from dirq.QueueSimple import QueueSimple
q = QueueSimple("/var/spool/apel/outgoing/killtest")
bad, n = [], 0
for name in q:
    if not q.lock(name):
        continue
    text = q.get(name).decode()
    body, _, digest = text.rpartition("\nsha256:")
    n += 1
    if hashlib.sha256(body.encode()).hexdigest() != digest:
        bad.append(name)
    q.unlock(name)
print(json.dumps({"count": q.count(), "read": n, "bad": bad}))
"""


def test_ssm_delivers_and_the_receiver_accepts(bundle: Bundle):
    """The queued accounting messages go to the broker (STOMP) and the APEL receiving side verifies them."""
    from fedcloud_dev.demo_env import receive

    queued = {q["queue"]: q["elements"] for q in bundle.status_json()["queues"]["queues"]}
    assert sum(queued.values()) > 0, queued
    proc = bundle.compose("run", "--rm", "ssm", host=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert receive(bundle.workdir) == 0
    accepted = sorted((bundle.workdir / "received" / "accepted").glob("*.msg"))
    assert len(accepted) == sum(queued.values())
    assert not (bundle.workdir / "received" / "rejected").exists() or not any(
        (bundle.workdir / "received" / "rejected").iterdir()
    )
    assert any("APEL-cloud-message" in p.read_text() for p in accepted)
    jobs = {j["key"]: j for j in bundle.status_json()["jobs"]}
    assert jobs["ssm-send"]["status"] == "ok"
    assert jobs["ssm-send"]["counts"]["sent"] == sum(queued.values())
    after = {q["queue"]: q["elements"] for q in bundle.status_json()["queues"]["queues"]}
    assert sum(after.values()) == 0


def test_scheduler_container_runs_the_enabled_jobs(bundle: Bundle):
    """The scheduler service runs each enabled job at start, then on its interval; SIGTERM stops it."""
    before = {j["key"]: j["last_run"] for j in bundle.status_json()["jobs"]}
    started = datetime.now(UTC).replace(microsecond=0)
    name = f"{bundle.project}-scheduler-test"
    off = [f"FEDCLOUD__SCHEDULER__{k}=0" for k in ("CLOUD_INFO", "ACCOUNTING", "IMAGES")]
    bundle.compose(
        "run",
        "-d",
        "--name",
        name,
        *(a for e in off for a in ("-e", e)),
        "scheduler",
        host=True,
        timeout=120,
    )
    client = docker.from_env(timeout=60)
    try:
        deadline = time.monotonic() + 90
        after = before
        while time.monotonic() < deadline:
            after = {j["key"]: j["last_run"] for j in bundle.status_json()["jobs"]}
            if after["ssm-send"] and datetime.fromisoformat(after["ssm-send"]) >= started:
                break
            time.sleep(2)
        logs = client.containers.get(name).logs().decode()
        assert after["ssm-send"], logs[-2000:]
        assert datetime.fromisoformat(after["ssm-send"]) >= started, logs[-2000:]
        assert after["cloud-info"] == before["cloud-info"]  # disabled (0 minutes)
        c = client.containers.get(name)
        assert c.attrs["Config"]["User"] == "10001:10001"
        c.stop(timeout=60)
        assert c.wait(timeout=60)["StatusCode"] == 0  # clean shutdown on SIGTERM (tini forwards it)
        assert "signal 15: stopping the scheduler" in c.logs().decode()
    finally:
        client.containers.get(name).remove(force=True, v=True)


def test_images_replicated_into_glance(bundle: Bundle):
    """A signed list served by the demo's imagelist-server ends up in the testbed's Glance."""
    bundle.compose("--profile", "demo", "up", "-d", "imagelist-server", timeout=120)
    bundle.wait_healthy("imagelist-server", timeout=60)
    proc = bundle.compose("run", "--rm", "images", host=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = {j["key"]: j for j in bundle.status_json()["jobs"]}
    assert jobs["images-sync"]["status"] == "ok"
    assert jobs["images-sync"]["counts"]["images_failed"] == 0
    glance = bundle.testbed.glance(bundle.testbed.admin_session())
    names = [i["name"] for i in glance.images.list(filters={"tag": ["fedcloud-appliance"]})]
    assert f"BT{bundle.prefix.removeprefix('fcbt-')} Demo CirrOS" in names
    assert bundle.status_json()["cache"]["bytes"] > 0


PROBE_LINE = re.compile(
    r"^(BDII|ACCOUNTING|IMAGES|CERTIFICATE|OPENSTACK) (OK|WARNING|CRITICAL|UNKNOWN) - "
)
PROBE_EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _probe(bundle: Bundle, *args: str) -> tuple[int, str, dict[str, str]]:
    """A probe in the bundle's own containers, read-only: bdii, accounting and images in the
    running status page (config, state, spool, cache and the BDIIs' reports read-only; the
    BDIIs by their service names), certificate in the ssm service (it mounts the host
    certificate), openstack in the accounting service on the host's network (the testbed
    listens on 127.0.0.1). Returns the exit code, the status line and the perfdata by label."""
    if args[0] in ("certificate", "openstack"):
        service = "ssm" if args[0] == "certificate" else "accounting"
        proc = bundle.compose(
            "run", "--rm", "--no-deps", "-T", service, "fedcloud-appliance", "probe", *args,
            host=True, timeout=180, check=False,
        )  # fmt: skip
    else:
        proc = bundle.compose(
            "exec", "-T", "status-web", "fedcloud-appliance", "probe", *args,
            "--reports-from", "/var/lib/fedcloud-bdii", timeout=180, check=False,
        )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    m = PROBE_LINE.match(lines[0])
    assert m, lines[0]
    assert proc.returncode == PROBE_EXIT[m.group(2)], (proc.returncode, lines[0])
    perf: dict[str, str] = {}
    if " | " in lines[0]:
        for item in lines[0].split(" | ", 1)[1].split(" "):
            label, _, value = item.partition("=")
            perf[label.strip("'")] = value
    return proc.returncode, lines[0], perf


def test_every_probe_against_the_bundle_then_a_stopped_site_bdii(bundle: Bundle):
    """After one cycle of every job (above): each probe of the demo, run in the bundle's own
    containers against its real BDIIs and real state, is OK; a stopped site BDII is CRITICAL."""
    res, site = "ldap://resource-bdii:2170", "ldap://site-bdii:2170"
    code, line, perf = _probe(bundle, "bdii", "--url", res)
    assert code == 0, line
    assert line.startswith(f"BDII OK - resource BDII {res}: "), line
    published = _ldap(bundle.ports["resource"], "o=glue", "dn").count("dn: ")
    assert int(perf["entries"].split(";")[0]) == published
    assert int(perf["services"].split(";")[0]) >= 1
    assert int(perf["shares"].split(";")[0]) >= 1
    assert re.fullmatch(r"\d+(\.\d)?min;25;65;0", perf["age"]), perf

    code, line, perf = _probe(bundle, "bdii", "--bdii", "site", "--url", site)
    assert code == 0, line
    assert f"site BDII {site}" in line
    assert int(perf["shares"].split(";")[0]) >= 1

    code, line, perf = _probe(bundle, "accounting")
    assert code == 0, line
    assert "last successful extract" in line, line
    assert "last successful send" in line, line
    assert perf["backlog"].split(";")[0] == "0", perf
    assert re.fullmatch(r"\d+(\.\d+)?h;2\.1;4\.1;0", perf["extract_age"]), perf

    code, line, perf = _probe(bundle, "images")
    assert code == 0, line
    assert "last successful sync" in line, line
    assert "never" not in line, line
    assert perf["lists_fetched"].split(";")[0] != "0", perf

    code, line, perf = _probe(bundle, "certificate")
    assert code == 0, line
    assert line.startswith("CERTIFICATE OK - "), line
    assert float(perf["days_left"].split(";")[0].removesuffix("d")) > 30, perf

    code, line, perf = _probe(bundle, "openstack")
    assert code == 0, line
    assert {"keystone", "nova", "glance"} <= {k.split("_")[0] for k in perf}, perf

    bundle.compose("stop", "-t", "5", "site-bdii", timeout=120)
    try:
        code, line, _ = _probe(bundle, "bdii", "--bdii", "site", "--url", site)
        assert code == 2, line
        assert line.startswith("BDII CRITICAL - "), line
        assert site in line
    finally:
        bundle.compose("start", "site-bdii", timeout=120)
        bundle.wait_healthy("site-bdii", timeout=120)


def _job_container(client: Any, script: str, volume: str, mount: str) -> Any:
    """A detached job-image container (jobs' UID) running ``python3 -c script`` on one volume."""
    return client.containers.run(
        "fedcloud-appliance:latest",
        ["python3", "-c", script],
        detach=True,
        user="10001:10001",
        volumes={volume: {"bind": mount, "mode": "rw"}},
    )


def _wait_for_log(container: Any, marker: bytes, timeout: float = 60) -> bool:
    """Wait (bounded) until the container's log shows ``marker``; whether it did."""
    deadline = time.monotonic() + timeout
    while marker not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    return marker in container.logs()


def test_job_container_killed_mid_write_loses_nothing(bundle: Bundle):
    """SIGKILL while writing into the spool volume: every element in the queue is complete."""
    client = docker.from_env(timeout=60)
    c = _job_container(client, KILL_WRITER, f"{bundle.prefix}-spool", "/var/spool/apel")
    try:
        assert _wait_for_log(c, b"writing")
        c.kill(signal="SIGKILL")
        assert c.wait(timeout=30)["StatusCode"] == 137
    finally:
        c.remove(force=True, v=True)
    res = json.loads(bundle.volume_python(CHECK_QUEUE))
    assert res["count"] >= 20
    assert res["read"] == res["count"]
    assert res["bad"] == []
    # a killed job's run lock is released by the kernel: the next run of the job is not refused
    lock_check = (
        "from fedcloud_core.lock import RunLock\n"
        "RunLock('/var/lib/fedcloud-appliance/locks', 'accounting-extract').acquire()\n"
        "print('lock free')"
    )
    held = _job_container(
        client,
        "from fedcloud_core.lock import RunLock; import time\n"
        "RunLock('/var/lib/fedcloud-appliance/locks', 'accounting-extract').acquire()\n"
        "print('locked', flush=True); time.sleep(300)",
        f"{bundle.prefix}-state",
        "/var/lib/fedcloud-appliance",
    )
    try:
        _wait_for_log(held, b"locked")
        refused = bundle.compose("run", "--rm", "accounting", host=True, timeout=120, check=False)
        assert refused.returncode == 4, refused.stderr[-1000:]  # the job's lock is held
        held.kill(signal="SIGKILL")
        held.wait(timeout=30)
    finally:
        held.remove(force=True, v=True)
    out = bundle.volume_exec(f'python3 -c "{lock_check}"')
    assert out.strip() == "lock free"


def test_down_and_up_keep_spool_cache_and_state(bundle: Bundle):
    bundle.volume_exec("echo kept > /image_data/marker && echo kept > /var/spool/apel/marker")
    before = bundle.status_json()
    bundle.compose("down", "-t", "5", timeout=180)
    assert bundle.container("resource-bdii") == ""
    bundle.compose("up", "-d", "resource-bdii", "site-bdii", "status-web", timeout=180)
    bundle.wait_healthy("resource-bdii", timeout=120)
    bundle.wait_healthy("status-web", timeout=60)
    assert bundle.volume_exec("cat /image_data/marker /var/spool/apel/marker") == "kept\nkept\n"
    after = bundle.status_json()
    jobs_before = {j["key"]: j["last_run"] for j in before["jobs"]}
    jobs_after = {j["key"]: j["last_run"] for j in after["jobs"]}
    assert jobs_after["cloud-info"] == jobs_before["cloud-info"] is not None
    assert jobs_after["accounting-extract"] == jobs_before["accounting-extract"] is not None
    assert after["cache"]["files"] >= 1
    tree = _ldap(bundle.ports["resource"], "o=glue", "(objectClass=GLUE2ComputingService)", "dn")
    assert "GLUE2ServiceID=" in tree  # the published data survived in the state volume


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def test_status_page_in_headless_chromium(bundle: Bundle, tmp_path: Path):
    bundle.wait_healthy("status-web", timeout=60)
    url = f"http://127.0.0.1:{bundle.ports['status']}/"
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<span id="site">DEMO-SITE</span>' in html
    for key in (
        "cloud-info",
        "accounting-extract",
        "ssm-send",
        "images-sync",
        "bdii-update",
        "site-bdii",
    ):
        assert f'data-job="{key}"' in html
    assert re.search(r'data-job="cloud-info" data-status="(ok|partial)"', html)
    assert 'data-job="accounting-extract" data-status="ok"' in html
    assert 'data-bdii="resource"' in html
    shot = tmp_path / "status.png"
    proc = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'p2'}",
            f"--screenshot={shot}",
            "--window-size=1280,1000",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 1000)
    assert len(png) > 20_000  # a rendered page with tables and colours, not a blank canvas
