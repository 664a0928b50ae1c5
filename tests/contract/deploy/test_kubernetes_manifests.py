"""The Kubernetes manifests (deploy/kubernetes) render and match the API and the bundle (issue 17).

``kubectl kustomize`` renders the base and both overlays (skipped, with the reason, where
kubectl is absent); every object validates, strictly, against the API schema of a pinned
Kubernetes version with kubernetes-validate; the plain files of the base validate on their
own (no kubectl needed). The pod specs are checked for the security context, the CronJobs
for their concurrency policy and bounds, the ConfigMaps for secret values, and every
container's image, user, command and mounts against docker-compose.yml's service of the
same name (the same images, the same commands: no second code path).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.contract

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is a test extra (pip install -e .[test])"
)

# the API version the manifests are written for (kubernetes-validate ships its schemas)
K8S_VERSION = "1.35.0"

ROOT = Path(__file__).resolve().parents[3]
KUBE = ROOT / "deploy" / "kubernetes"
TARGETS = {
    "base": KUBE / "base",
    "site-example": KUBE / "overlays" / "site-example",
    "multi-site": KUBE / "overlays" / "multi-site",
}
COMPOSE = yaml.safe_load(
    re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", (ROOT / "compose" / "docker-compose.yml").read_text())
)["services"]
# host directories in compose; Kubernetes has ConfigMaps/Secrets there (and /tmp an emptyDir)
NOT_COMPARED = ("/etc/fedcloud-appliance", "/etc/grid-security", "/tmp")
UIDS = {"fedcloud-appliance": 10001, "fedcloud-bdii": 2170}


def _kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Kustomize renders are not checked here")
    version = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    if not re.match(r"v([5-9]|\d\d)\.", kustomize):
        # Debian's kubernetes-client 1.20 bundles Kustomize v2 (no components, no labels)
        pytest.skip(f"kubectl's Kustomize is {kustomize or 'unknown'}; the overlays need v5+")
    proc = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _kustomize(TARGETS[request.param])


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            out.append((d, d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def _image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]


def test_base_files_validate_without_kubectl():
    files = sorted(p for p in (KUBE / "base").glob("*.yaml") if p.name != "kustomization.yaml")
    assert {p.name for p in files} >= {"bdii.yaml", "jobs.yaml", "status-web.yaml"}
    files += [
        KUBE / "overlays" / "site-example" / "namespace.yaml",
        KUBE / "overlays" / "site-example" / "ca-certificates.yaml",
    ]
    kinds = set()
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            kinds.add(doc["kind"])
    assert kinds >= {
        "Deployment",
        "Service",
        "CronJob",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Namespace",
        "ConfigMap",
    }


def test_validation_is_strict():
    doc = yaml.safe_load((KUBE / "base" / "status-web.yaml").read_text().split("\n---\n")[0])
    doc["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_rendered_object_validates(rendered):
    name, docs = rendered
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = [d["kind"] for d in docs]
    sites = 2 if name == "multi-site" else 1
    assert kinds.count("CronJob") == 4 * sites
    assert kinds.count("Deployment") == 3 * sites
    assert kinds.count("PersistentVolumeClaim") == 4 * sites
    if name != "base":  # the overlays bring the site's config, credentials and CAs
        assert kinds.count("Secret") == 2 * sites
        assert kinds.count("ConfigMap") == 2 * sites
        assert kinds.count("Namespace") == sites
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert len(namespaces) == sites
        assert None not in namespaces


def test_security_context(rendered):
    _, docs = rendered
    for owner, spec in _pod_specs(docs):
        where = owner["metadata"]["name"]
        psc = spec["securityContext"]
        image = _image_name(spec["containers"][0]["image"])
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] == UIDS[image], where  # the image's fixed uid
        assert psc["runAsGroup"] == psc["fsGroup"] == 10001, where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        assert not spec.get("hostNetwork"), where
        assert not spec.get("hostPID"), where
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert "privileged" not in sc, where
            # compose runs the same image as the same user
            assert COMPOSE[c["name"]]["user"] == f"{psc['runAsUser']}:{psc['runAsGroup']}"
        # a read-only root: /tmp is an emptyDir
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts, where


def _interval_seconds(schedule: str) -> int:
    minute, hour, *_ = schedule.split()
    if minute.startswith("*/"):
        return int(minute[2:]) * 60
    if hour.startswith("*/"):
        return int(hour[2:]) * 3600
    assert hour == "*", schedule
    return 3600


def test_cronjobs_never_overlap(rendered):
    _, docs = rendered
    cronjobs = [d for d in docs if d["kind"] == "CronJob"]
    assert {d["metadata"]["name"] for d in cronjobs} == {
        "cloud-info",
        "accounting",
        "ssm",
        "images",
    }
    for cj in cronjobs:
        spec = cj["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert 0 < spec["startingDeadlineSeconds"] < _interval_seconds(spec["schedule"])
        assert 1 <= spec["successfulJobsHistoryLimit"] <= 5
        assert 1 <= spec["failedJobsHistoryLimit"] <= 10
        job = spec["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 0  # the next scheduled run retries
        assert job["activeDeadlineSeconds"] < _interval_seconds(spec["schedule"])
        assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_no_secret_value_in_a_configmap(rendered):
    name, docs = rendered
    config_text = "\n".join(
        str(v) for d in docs if d["kind"] == "ConfigMap" for v in (d.get("data") or {}).values()
    )
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if name != "base":
        assert secrets
    assert "PRIVATE KEY" not in config_text
    for s in secrets:
        for key, b64 in (s.get("data") or {}).items():
            value = base64.b64decode(b64).decode()
            assert value not in config_text, (s["metadata"]["name"], key)
            # and no line of it (a password, a credential secret) either
            for line in value.splitlines():
                token = line.split(":", 1)[-1].strip()
                if len(token) >= 12 and not token.startswith(("#", "http")):
                    assert token not in config_text, (s["metadata"]["name"], key, token)
    for d in docs:
        if d["kind"] == "ConfigMap" and "appliance.yaml" in (d.get("data") or {}):
            from fedcloud_core.config import parse_config

            parse_config(d["data"]["appliance.yaml"], source=d["metadata"]["name"])
            flat = yaml.safe_load(d["data"]["appliance.yaml"])
            assert not _secret_keys(flat), _secret_keys(flat)


def _secret_keys(node: Any, path: str = "") -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if re.search(r"password|secret|token$", str(k)) and v not in (None, "", []):
                out.append(f"{path}{k}")
            out += _secret_keys(v, f"{path}{k}.")
    return out


def test_every_image_and_command_exists_in_the_bundle(rendered):
    from fedcloud_appliance.cli import build_parser

    _, docs = rendered
    parser = build_parser()
    seen = set()
    for _owner, spec in _pod_specs(docs):
        for c in spec["containers"]:
            svc = COMPOSE[c["name"]]  # each workload is a compose service of the same name
            seen.add(c["name"])
            assert _image_name(c["image"]) == _image_name(svc["image"])
            assert _image_name(c["image"]) in UIDS
            assert c["command"] == svc["command"], c["name"]
            assert c["command"][0] == "fedcloud-appliance"
            parser.parse_args(c["command"][1:])  # the CLI knows it (SystemExit otherwise)
            env = {e["name"]: e["value"] for e in c.get("env", [])}
            assert env == {k: str(v) for k, v in svc.get("environment", {}).items()}
            probe = (c.get("readinessProbe") or {}).get("exec")
            if probe:
                assert probe["command"] == svc["healthcheck"]["test"][1:]
            mounts = {
                m["mountPath"]: bool(m.get("readOnly"))
                for m in c["volumeMounts"]
                if not m["mountPath"].startswith(NOT_COMPARED)
            }
            compose_mounts = {}
            for v in svc["volumes"]:
                _src, target, *mode = v.split(":")
                if not target.startswith(NOT_COMPARED):
                    compose_mounts[target] = "ro" in mode
            assert mounts == compose_mounts, c["name"]
            if "/etc/grid-security/hostkey.pem" in {m["mountPath"] for m in c["volumeMounts"]}:
                # only the job that signs gets the host key (as in compose)
                assert any(
                    v.split(":")[1] == "/etc/grid-security" for v in svc["volumes"] if ":" in v
                )
    assert seen == {
        "resource-bdii",
        "site-bdii",
        "status-web",
        "cloud-info",
        "accounting",
        "ssm",
        "images",
    }


def test_only_ldap_reaches_the_bdiis(rendered):
    _, docs = rendered
    pols = [d for d in docs if d["kind"] == "NetworkPolicy"]
    bdii = [p for p in pols if p["metadata"]["name"] == "bdii-ldap-only"]
    assert bdii
    for p in bdii:
        assert p["spec"]["policyTypes"] == ["Ingress"]
        assert p["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 2170}]}]
        selector = p["spec"]["podSelector"]["matchLabels"]
        selected = [
            o["metadata"]["name"]
            for o, _ in _pod_specs(docs)
            if o["kind"] == "Deployment"
            and o["metadata"].get("namespace") == p["metadata"].get("namespace")
            and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert sorted(selected) == ["resource-bdii", "site-bdii"]
    for d in docs:
        if d["kind"] == "Service" and d["metadata"]["name"].endswith("-bdii"):
            assert [p["port"] for p in d["spec"]["ports"]] == [2170]


def test_bdiis_replicas_and_probes(rendered):
    _, docs = rendered
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-bdii"):
            assert d["spec"]["replicas"] == 2
            c = d["spec"]["template"]["spec"]["containers"][0]
            assert c["readinessProbe"]["exec"]["command"][:2] == ["fedcloud-healthcheck", "ldap"]
            # each replica its own slapd data, never a shared claim
            vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
            data = next(
                m["name"]
                for m in c["volumeMounts"]
                if m["mountPath"] == "/var/lib/fedcloud-appliance"
            )
            assert "emptyDir" in vols[data]


def test_resources_and_shared_claims(rendered):
    _, docs = rendered
    mib = {"Mi": 1, "Gi": 1024}
    for owner, spec in _pod_specs(docs):
        for c in spec["containers"]:
            res = c["resources"]
            req = int(res["requests"]["memory"][:-2]) * mib[res["requests"]["memory"][-2:]]
            lim = int(res["limits"]["memory"][:-2]) * mib[res["limits"]["memory"][-2:]]
            assert req < lim, owner["metadata"]["name"]
            if c["name"] == "accounting":
                assert req >= 84  # docs/benchmarks.md: 83 MiB peak RSS at 10,000 servers
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {"state", "spool", "images", "infosys"}
    for c in claims.values():
        assert c["spec"]["accessModes"] == ["ReadWriteMany"]
