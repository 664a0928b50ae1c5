"""The demo's world around the appliance (used by scripts/dev/demo and the bundle e2e test).

    python -m fedcloud_dev.demo_env prepare WORKDIR    PKI, grid-security, signed image list, appliance.yaml
    python -m fedcloud_dev.demo_env broker-start WORKDIR   a private RabbitMQ with STOMP on 127.0.0.1
    python -m fedcloud_dev.demo_env broker-stop WORKDIR
    python -m fedcloud_dev.demo_env receive WORKDIR    the APEL receiving side drains the broker
    python -m fedcloud_dev.demo_env summary WORKDIR    what a site admin wants to see
    python -m fedcloud_dev.demo_env host-compose WORKDIR   the compose file on the host network

Test credentials only (a throw-away CA under WORKDIR); nothing here is used in production.
State shared between the commands: WORKDIR/demo.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fedcloud_core.config.site_bdii import is_loopback_host

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

TESTBED_DIR = Path(os.environ.get("FEDCLOUD_TESTBED_DIR", "/var/tmp/fedcloud-testbed"))
JOB_GID = 10001
SITE = "DEMO-SITE"
DESTINATION = "/queue/demo.accounting.APEL"


def _public_host() -> str:
    """The name the demo site BDII publishes for itself: this host's FQDN (a dotted name: the
    GLUE2 URL type wants one), else a placeholder of the demo's own domain."""
    for name in (socket.getfqdn(), socket.gethostname()):
        if "." in name and not is_loopback_host(name):
            return name
    return "site-bdii.demo.example.org"


def _state(workdir: Path) -> dict[str, Any]:
    p = workdir / "demo.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _save(workdir: Path, data: dict[str, Any]) -> None:
    (workdir / "demo.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _readable_by_jobs(path: Path, mode: int) -> None:
    os.chown(path, 0, JOB_GID)
    path.chmod(mode)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(
    workdir: Path,
    ports: dict[str, int],
    *,
    subscription: str = "fedcloud.egi.eu",
    image_prefix: str = "DEMO ",
) -> dict[str, Any]:
    """Credentials, the signed image list and the appliance config, for containers on the host network."""
    import shutil

    import yaml

    from support.images_pki import image_desc, make_disk, make_images_pki, signed_list

    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    pki = make_images_pki(workdir / "pki")
    gs = workdir / "grid-security"
    if gs.exists():
        shutil.rmtree(gs)
    shutil.copytree(pki.capath, gs / "certificates", symlinks=True)
    shutil.copy(pki.pki.sender.cert, gs / "hostcert.pem")
    shutil.copy(pki.pki.sender.key, gs / "hostkey.pem")
    for d in (gs, gs / "certificates"):
        d.chmod(0o755)
    (gs / "hostcert.pem").chmod(0o644)
    _readable_by_jobs(gs / "hostkey.pem", 0o640)  # the jobs' group reads the key; others do not

    lists = workdir / "imagelists"
    lists.mkdir(exist_ok=True)
    lists.chmod(0o755)
    base_url = f"http://127.0.0.1:{ports['imagelist']}/"
    disk = make_disk(lists / "demo-cirros.qcow2", seed="demo")
    doc = signed_list(
        pki.endorser,
        [image_desc("demo-cirros", disk, base_url, title="Demo CirrOS")],
        vo="fedcloud.egi.eu",
    )
    (lists / "fedcloud.list").write_bytes(doc)
    for f in lists.iterdir():
        f.chmod(0o644)

    cfg_dir = workdir / "config"
    cfg_dir.mkdir(exist_ok=True)
    cfg_dir.chmod(0o755)
    seed = json.loads((TESTBED_DIR / "seed.json").read_text())
    shutil.copy(seed.get("clouds_yaml", TESTBED_DIR / "clouds.yaml"), cfg_dir / "clouds.yaml")
    # the images job's own credentials directory: all its containers see of cfg_dir besides
    # appliance.yaml (a site gives it an application credential of its own; the demo a copy)
    images_creds = cfg_dir / "images"
    images_creds.mkdir(exist_ok=True)
    images_creds.chmod(0o755)
    shutil.copy(cfg_dir / "clouds.yaml", images_creds / "clouds.yaml")
    (images_creds / "clouds.yaml").chmod(0o644)
    vos: dict[str, Any] = {}
    for pid, vo in seed["vo_map"].items():
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    cfg = {
        "site": {
            "name": SITE,
            "description": "fedcloud-appliance demo site",
            "url": "https://cloud.example.org",
            "country": "NL",
            "contacts": {"general": "grid-admin@example.org", "security": "security@example.org"},
        },
        "openstack": {
            "cloud": "testbed-admin",
            "clouds_yaml": "/etc/fedcloud-appliance/clouds.yaml",
        },
        "vos": vos,
        "bdii": {"port": ports["resource_bdii"]},
        "site_bdii": {
            "port": ports["site_bdii"],
            "resource_bdiis": [f"ldap://127.0.0.1:{ports['resource_bdii']}"],
            # what the bdii_site endpoint publishes: never a loopback name (this host's
            # FQDN may be "localhost", which the site BDII refuses to publish)
            "public_hostname": _public_host(),
            "public_port": ports["site_bdii"],
        },
        "ssm": {
            "protocol": "STOMP",
            "host": "127.0.0.1",
            "port": ports["stomp"],
            "use_ssl": False,
            "stomp_vhost": "/",  # RabbitMQ: the STOMP host header names the vhost
            "destination": DESTINATION,
            "queues": ["cloud", "storage"],
        },
        "images": {
            "subscriptions": [
                {
                    "name": subscription,
                    "url": base_url + "fedcloud.list",
                    "vo": "fedcloud.egi.eu",
                    "endorser_dn": pki.endorser.dn,
                    "endorser_ca": pki.endorser_ca,
                    "prefix": image_prefix,
                }
            ],
            "openstack": {
                "cloud": "testbed-admin",
                "clouds_yaml": "/etc/fedcloud-appliance/images/clouds.yaml",
            },
        },
        "scheduler": {"jitter": 0},
    }
    (cfg_dir / "appliance.yaml").write_text(
        "# written by fedcloud_dev.demo_env (demo only)\n" + yaml.safe_dump(cfg, sort_keys=False)
    )
    for f in cfg_dir.iterdir():
        if f.is_file():
            f.chmod(0o644)
    state = {
        **_state(workdir),
        "ports": ports,
        "config_dir": str(cfg_dir),
        "grid_security": str(gs),
        "imagelists": str(lists),
        "sender_dn": pki.pki.sender.dn,
        "capath": str(pki.capath),
    }
    _save(workdir, state)
    return state


def broker_start(workdir: Path) -> Any:
    """Start the demo broker unless it runs; the RabbitNode (None if it was running already).

    A caller that lives on (the test session) keeps the node and calls ``node.stop()``;
    the demo script exits and ``broker_stop`` ends it later by its process group.
    """
    from support.rabbitmq import RabbitNode

    st = _state(workdir)
    if st.get("broker_pid"):
        try:
            os.kill(st["broker_pid"], 0)
            print(f"broker: already running (pid {st['broker_pid']})")
            return None
        except ProcessLookupError:
            pass
    node = RabbitNode(base=workdir / "broker", stomp_port=st["ports"]["stomp"])
    node.start(timeout=90)
    assert node.proc is not None
    st.update(broker_pid=node.proc.pid, broker_name=node.name)
    _save(workdir, st)
    print(f"broker: RabbitMQ STOMP on 127.0.0.1:{node.stomp_port} (pid {node.proc.pid})")
    return node


def receive(workdir: Path) -> int:
    """The receiving side (fedcloud_dev.apel_receiver): drain the demo destination, verify, store."""
    st = _state(workdir)
    store = workdir / "received"
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/python"),
            "-m",
            "fedcloud_dev.apel_receiver",
            "--host",
            "127.0.0.1",
            "--port",
            str(st["ports"]["stomp"]),
            "--vhost",
            "/",
            "--destination",
            DESTINATION,
            "--capath",
            st["capath"],
            "--allow",
            st["sender_dn"],
            "--store",
            str(store),
            "--drain",
            "--idle",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    accepted = len(list((store / "accepted").glob("*.msg"))) if (store / "accepted").is_dir() else 0
    rejected = len(list((store / "rejected").glob("*.msg"))) if (store / "rejected").is_dir() else 0
    if proc.returncode != 0:
        st["receiver"] = f"FAILED (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    else:
        st["receiver"] = (
            f"{accepted} message(s) accepted (signature and signer DN verified), "
            f"{rejected} rejected; stored in {store}"
        )
    _save(workdir, st)
    print(f"  receiver: {st['receiver']}")
    return proc.returncode


def broker_stop(workdir: Path) -> None:
    st = _state(workdir)
    pid = st.pop("broker_pid", None)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)  # the node's own process group (start_new_session)
            for _ in range(60):
                os.kill(pid, 0)
                time.sleep(0.5)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _save(workdir, st)


def host_compose(src: Path, dest: Path) -> None:
    """The compose file with every service on the host's network and no published ports.

    docker-compose 1.29 refuses ``ports`` with ``network_mode: host`` and an override cannot
    remove list entries, so the demo (and the e2e test) run a derived file. Variables stay
    ``${...}`` (compose substitutes them at run time); nothing else changes.
    """
    import yaml

    doc = yaml.safe_load(src.read_text())
    for svc in doc["services"].values():
        svc.pop("ports", None)
        svc["network_mode"] = "host"
    dest.write_text(
        "# derived from compose/docker-compose.yml by fedcloud_dev.demo_env host-compose: host network\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def _ldap_count(port: int, base: str, flt: str) -> tuple[int, str]:
    proc = subprocess.run(
        [
            "ldapsearch",
            "-x",
            "-LLL",
            "-o",
            "nettimeout=5",
            "-H",
            f"ldap://127.0.0.1:{port}",
            "-b",
            base,
            flt,
            "dn",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        return -1, proc.stderr.strip()
    return proc.stdout.count("dn: "), ""


#: the probe commands the demo prints (and ``scripts/dev/demo up`` runs); ports from demo.json
PROBES = (
    "bdii --url ldap://127.0.0.1:{resource_bdii}",
    "bdii --bdii site --url ldap://127.0.0.1:{site_bdii}",
    "accounting",
    "images",
    "certificate",
    "openstack",
)


def summary(workdir: Path) -> int:
    """What a site admin wants to see; returns the number of checks that did not pass."""
    st = _state(workdir)
    ports = st["ports"]
    results = st.get("results", {})
    bad = 0
    print("\n================ fedcloud-appliance demo ================")
    print(
        f"site {SITE}; config {st['config_dir']}/appliance.yaml; state in docker volumes demo-*\n"
    )

    print("BDII")
    for name, port, base in (
        ("resource BDII", ports["resource_bdii"], "o=glue"),
        ("site BDII", ports["site_bdii"], f"GLUE2DomainID={SITE},o=glue"),
    ):
        n, err = _ldap_count(port, base, "(objectClass=*)")
        svc, _ = _ldap_count(port, base, "(objectClass=GLUE2ComputingService)")
        img, _ = _ldap_count(port, base, "(objectClass=GLUE2ApplicationEnvironment)")
        if n > 2 and svc > 0:
            print(f"  {name}: {n} entries ({svc} computing service, {img} images)")
        else:
            bad += 1
            print(f"  {name}: NOT OK ({err or f'{n} entries'})")
        print(f"    ldapsearch -x -H ldap://127.0.0.1:{port} -b {base}")

    print("\nJobs (one cycle each)")
    for job, res in results.items():
        print(f"  {job:<20} {res}")
        if not res.startswith(("ok", "partial")):
            bad += 1

    print("\nAccounting")
    try:
        import urllib.request

        url = f"http://127.0.0.1:{ports['status_web']}/status.json"
        with urllib.request.urlopen(url, timeout=30) as r:
            data = json.loads(r.read())
        jobs = {j["key"]: j for j in data["jobs"]}
        acc, ssm = jobs.get("accounting-extract", {}), jobs.get("ssm-send", {})
        queues = {q["queue"]: q["elements"] for q in data["queues"]["queues"]}
        print(f"  extracted: {acc.get('status')} {acc.get('counts', {})}")
        print(f"  sent:      {ssm.get('status')} {ssm.get('counts', {})}")
        print(f"  still queued: {queues or 'nothing'}")
        print("  receiving side: " + st.get("receiver", "not run (see the ssm step above)"))
    except OSError as exc:
        bad += 1
        print(f"  status page unavailable: {exc}")

    print("\nImages in Glance (tag fedcloud-appliance)")
    try:
        import yaml
        from glanceclient import Client
        from keystoneauth1 import loading, session

        clouds = yaml.safe_load((TESTBED_DIR / "clouds.yaml").read_text())["clouds"][
            "testbed-admin"
        ]
        auth: Any = loading.get_plugin_loader("password").load_from_options(**clouds["auth"])
        glance = Client("2", session=session.Session(auth=auth, timeout=30))
        imgs = list(glance.images.list(filters={"tag": ["fedcloud-appliance"]}))
        for i in imgs:
            print(f"  {i['name']}  {i['status']}  {i.get('visibility')}  {i['id']}")
        if not imgs:
            bad += 1
            print("  none replicated")
    except Exception as exc:
        bad += 1
        print(f"  cannot list Glance images: {exc}")

    print("\nMonitoring")
    metrics_url = f"http://127.0.0.1:{ports['status_web']}/metrics"
    try:
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(metrics_url, timeout=30) as r:
            fams = list(text_string_to_metric_families(r.read().decode()))
        n = sum(len(f.samples) for f in fams)
        print(f"  Prometheus: {metrics_url}   ({len(fams)} metrics, {n} samples)")
    except (OSError, ValueError) as exc:
        bad += 1
        print(f"  Prometheus: {metrics_url}   NOT OK ({exc})")
    print("  Nagios/Icinga/ARGO probes (read-only, in the bundle's containers; exit 0-3):")
    for args in PROBES:
        print(f"    scripts/dev/demo probe {args.format(**ports)}")
    print(
        f"\nstatus page: http://127.0.0.1:{ports['status_web']}/   (the same as fedcloud-appliance status)"
    )
    print("stop everything: make demo-down\n")
    return bad


def main(argv: list[str]) -> int:
    cmd, workdir = argv[0], Path(argv[1])
    if cmd == "prepare":
        names = ("resource_bdii", "site_bdii", "status_web", "imagelist", "stomp")
        ports = _state(workdir).get("ports") or {n: _free_port() for n in names}
        prepare(workdir, ports)
        print(json.dumps(ports))
    elif cmd == "probes":  # probes WORKDIR: the probe arguments the demo runs, one a line
        ports = _state(workdir)["ports"]
        print("\n".join(args.format(**ports) for args in PROBES))
    elif cmd == "host-compose":  # host-compose WORKDIR: WORKDIR/docker-compose.host.yml
        host_compose(REPO / "compose" / "docker-compose.yml", workdir / "docker-compose.host.yml")
    elif cmd == "receive":
        return receive(workdir)
    elif cmd == "broker-start":
        broker_start(workdir)  # keeps running after this process exits, on purpose
    elif cmd == "broker-stop":
        broker_stop(workdir)
    elif cmd == "record":  # record JOB RESULT
        st = _state(workdir)
        st.setdefault("results", {})[argv[2]] = argv[3]
        _save(workdir, st)
    elif cmd == "summary":
        return 1 if summary(workdir) else 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
