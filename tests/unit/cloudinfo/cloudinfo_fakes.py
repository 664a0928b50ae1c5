"""A fake CloudSource and a fixed site model for the cloud-info tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from fedcloud_cloudinfo.model import Accelerator, Endpoint, Flavor, Image, Share, Site
from fedcloud_cloudinfo.source import ApiVersions, RawFlavor, RawImage, RawProject
from fedcloud_core.errors import OpenStackUnavailable, PermanentError

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
KEYSTONE = "https://keystone.example.org:5000/v3"
MPURI = "https://appdb.egi.eu/store/vo/image/{}:1/"


def fixed_site() -> Site:
    """A small site that exercises every renderer branch (accelerator, benchmark, private, base64)."""
    return Site(
        name="TEST-SITE",
        endpoint=Endpoint(
            url=KEYSTONE,
            authentication="oidc",
            nova_version="2.1",
            nova_microversion="2.96",
            glance_version="2.16",
            keystone_version="v3",
            issuer_ca="/C=NL/O=GEANT Vereniging/CN=GEANT OV RSA CA 4",
            trusted_cas=("IGTF",),
        ),
        creation_time=NOW,
        validity=3600,
        gocdb_id="12345G0",
        provider_version="0.1.0",
        total_logical_cpus=512,
        total_physical_cpus=128,
        flavors=(
            Flavor(
                "8f5e4e0b",
                "m1.medium",
                vcpus=2,
                ram=4096,
                disk=40,
                benchmarks=(("hep-spec06", "25.1"), ("hepscore23", "12.5")),
            ),
            Flavor(
                "c0ffee00",
                "g1.large",
                vcpus=16,
                ram=65536,
                disk=80,
                ephemeral=10,
                is_public=False,
                accelerator=Accelerator("GPU", 1, "NVIDIA", "A100", 40960),
                infiniband=True,
            ),
        ),
        images=(
            Image(
                "3b1f6f0e",
                "EGI Ubuntu 22.04",
                "public",
                owner="4a5b6c7d",
                version="2024.01.15",
                marketplace_url=MPURI.format("yyyy"),
                description="EGI Ubuntu 22.04 base image",
                os_name="ubuntu",
                os_version="22.04",
                platform="x86_64",
                min_ram=512,
                disk_size=3,
                other_info=(
                    ("ad:base_mpuri", "https://appdb.egi.eu/store/vm/image/xxxx:1234/"),
                    ("base_mpuri", "https://appdb.egi.eu/store/vm/image/xxxx:1234/"),
                ),
            ),
            Image(
                "5e5e5e5e",
                "EGI Ubuntu 22.04 (registry)",
                "public",
                owner="4a5b6c7d",
                version="2025-09-04-4d7122d6",
                marketplace_url="registry.egi.eu/egi_vm_images/ubuntu:22.04-sha256:4d06e117",
                description="EGI Ubuntu 22.04 image",
                os_name="ubuntu",
                os_version="22.04",
                platform="x86_64",
                other_info=(
                    ("eu.egi.cloud.description", "EGI Ubuntu 22.04 image"),
                    ("eu.egi.cloud.image_ref", "egi_vm_images/ubuntu:22.04"),
                    ("eu.egi.cloud.tag", "2025-09-04-4d7122d6"),
                    ("org.openstack.glance.os_distro", "ubuntu"),
                ),
            ),
            Image(
                "9a9a9a9a",
                "Ünïcode image",
                "shared",
                owner="9e8d7c6b",
                version=None,
                marketplace_url=MPURI.format("zzzz"),
                description=" leading space, and comma",
                os_name="almalinux",
                os_version="9",
                platform="x86_64",
            ),
        ),
        shares=(
            Share(
                "ops",
                "4a5b6c7d",
                "ops-project",
                "Default",
                max_instances=10,
                max_cores=20,
                max_ram=51200,
                used_cores=6,
                running=1,
                waiting=1,
                suspended=1,
                halted=1,
                flavor_ids=("8f5e4e0b",),
                image_ids=("3b1f6f0e", "5e5e5e5e"),
            ),
            Share(
                "fedcloud.egi.eu",
                "9e8d7c6b",
                "fedcloud",
                "Default",
                max_instances=-1,
                max_cores=-1,
                used_cores=16,
                running=1,
                flavor_ids=("8f5e4e0b", "c0ffee00"),
                image_ids=("3b1f6f0e", "5e5e5e5e", "9a9a9a9a"),
            ),
        ),
        vos=("fedcloud.egi.eu", "ops"),
    )


class FakeSource:
    """In-memory CloudSource; counts calls like the real one counts HTTP requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.fail: set[tuple[str, str]] = set()
        self.delay = 0.0
        self.hypervisors_forbidden = False
        self.project_list = [
            RawProject("p-ops", "ops-project", "Default"),
            RawProject("p-fc", "fedcloud", "Default"),
            RawProject("p-other", "other", "Default"),
        ]
        self.flavor_list = [
            RawFlavor("f1", "m1.small", 1, 2048, 20),
            RawFlavor(
                "f2",
                "g1.gpu",
                8,
                32768,
                80,
                is_public=False,
                extra_specs={
                    "Accelerator:Type": "GPU",
                    "Accelerator:Vendor": "NVIDIA",
                    "Accelerator:Model": "T4",
                    "Accelerator:Number": "2",
                    "infiniband": "true",
                    "benchmark:HEPscore23": "42.1",
                    "accounting:benchmark_type": "HEPSPEC06",
                    "accounting:benchmark_value": "10.5",
                },
            ),
            RawFlavor("f3", "private.other", 2, 4096, 20, is_public=False),
        ]
        self.flavor_access = {"f2": ["p-fc"], "f3": ["p-other"]}
        self.image_list = [
            RawImage(
                "i-pub",
                "Ubuntu",
                "public",
                "p-admin",
                {
                    "vmcatcher_event_ad_mpuri": MPURI.format("u"),
                    "vmcatcher_event_dc_title": "Ubuntu title",
                    "os_distro": "Ubuntu",
                    "os_version": "22.04",
                    "architecture": "x86_64",
                    "APPLIANCE_ATTRIBUTES": '{"ad:base_mpuri": "https://base/1", "hv:version": "2024.1"}',
                },
                size=2 * 2**30 + 1,
                min_ram=1024,
            ),
            RawImage("i-shared", "Alma", "shared", "p-other", {"marketplace": MPURI.format("a")}),
            RawImage(
                "i-reg",
                "Registry Ubuntu",
                "public",
                "p-admin",
                {
                    "marketplace": "registry.egi.eu/egi_vm_images/ubuntu:22.04-sha256:4d06",
                    "APPLIANCE_ATTRIBUTES": '{"eu.egi.cloud.image_ref": "egi_vm_images/ubuntu:22.04",'
                    ' "eu.egi.cloud.tag": "2025-09-04-4d7122d6", "org.openstack.glance.os_distro":'
                    ' "ubuntu", "sl:checksum": {"sha512": "ab"}}',
                },
            ),
            RawImage("i-snap", "my snapshot", "private", "p-ops", {}),
            RawImage(
                "i-comm",
                "Community",
                "community",
                "p-other",
                {
                    "vmcatcher_event_ad_mpuri": MPURI.format("c"),
                    "APPLIANCE_ATTRIBUTES": "{not json",
                },
            ),
            RawImage(
                "i-priv-other",
                "Other private",
                "private",
                "p-other",
                {"vmcatcher_event_ad_mpuri": MPURI.format("o")},
            ),
        ]
        self.members = {"i-shared": ["p-fc"]}
        self.quota = {
            "p-ops": {"instances": 10, "cores": 20, "ram": 51200, "cores_in_use": 5},
            "p-fc": {"instances": -1, "cores": -1, "ram": -1},
        }
        self.states = {
            "p-ops": {
                "ACTIVE": 2,
                "BUILD": 1,
                "SHUTOFF": 1,
                "SUSPENDED": 1,
                "PAUSED": 1,
                "SHELVED_OFFLOADED": 1,
                "ERROR": 1,
            },
            "p-fc": {"ACTIVE": 1},
        }

    def _call(self, name: str, arg: str = "") -> None:
        import time

        with self._lock:
            self.calls.append((name, arg))
        if self.delay:
            time.sleep(self.delay)
        if (name, arg) in self.fail:
            raise OpenStackUnavailable(f"{name} {arg}: 503 from the fake")

    @property
    def api_calls(self) -> int:
        return len(self.calls)

    def versions(self) -> ApiVersions:
        self._call("versions")
        return ApiVersions(KEYSTONE, "v3", "2.1", "2.96", "2.16")

    def projects(self) -> list[RawProject]:
        self._call("projects")
        return list(self.project_list)

    def flavors(self) -> list[RawFlavor]:
        self._call("flavors")
        return list(self.flavor_list)

    def flavor_projects(self, flavor_id: str) -> list[str]:
        self._call("flavor_projects", flavor_id)
        return self.flavor_access.get(flavor_id, [])

    def quotas(self, project_id: str) -> dict[str, int]:
        self._call("quotas", project_id)
        return self.quota[project_id]

    def server_states(self, project_id: str) -> dict[str, int]:
        self._call("server_states", project_id)
        return self.states.get(project_id, {})

    def capacity(self) -> dict[str, int]:
        self._call("capacity")
        if self.hypervisors_forbidden:
            raise PermanentError("Nova hypervisors: Forbidden (HTTP 403)")
        return {"logical_cpus": 96, "physical_cpus": 48}

    def images(self) -> list[RawImage]:
        self._call("images")
        return list(self.image_list)

    def image_members(self, image_id: str) -> list[str]:
        self._call("image_members", image_id)
        return self.members.get(image_id, [])
