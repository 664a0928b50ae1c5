"""Shared integration fixtures: the local OpenStack testbed (``scripts/dev/testbed``).

``testbed`` (session scope) reuses a running, healthy testbed or brings one up
once with ``scripts/dev/testbed up`` (minutes from nothing, seconds when it
runs). Only keystoneauth1 and the nova/glance/keystone clients are used here,
so the appliance's own venv is enough; Neutron and Cinder are plain REST calls
on a session (``sess.get(path, endpoint_filter={"service_type": "network"})``).
Set ``FEDCLOUD_TESTBED_SKIP=1`` to skip instead of starting it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import layout

REPO = Path(__file__).resolve().parents[2]
NOVA_MICROVERSION = "2.96"


@dataclass(frozen=True)
class Testbed:
    """A running testbed: where it lives, what the seed created, how to talk to it."""

    dir: Path
    clouds_yaml: Path
    seed: dict[str, Any]
    auth_url: str = layout.AUTH_URL
    region: str = layout.REGION

    # ---- sessions (keystoneauth1)
    def session(
        self,
        user: str,
        password: str,
        project: str | None = None,
        system: bool = False,
    ) -> Any:
        """A password session for ``user`` (domain Default) scoped to ``project`` or the system."""
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        scope: dict[str, str] = {}
        if system:
            scope["system_scope"] = "all"
        elif project:
            scope.update(project_name=project, project_domain_name="Default")
        auth = v3.Password(
            auth_url=self.auth_url,
            username=user,
            password=password,
            user_domain_name="Default",
            **scope,
        )
        return session.Session(auth=auth, timeout=60)

    def admin_session(self, project: str = "admin") -> Any:
        """Cloud admin (role admin on ``project``; admin is also admin on every seeded project)."""
        return self.session("admin", layout.ADMIN_PASSWORD, project)

    def reader_session(self, project: str | None = None, system: bool = False) -> Any:
        """The appliance's read-only user ``fedcloud-reader``: role ``reader`` on every seeded project
        and system reader. Default scope: the first mapped project (as ``testbed-reader`` in clouds.yaml)."""
        if project is None and not system:
            project = self.reader_project
        return self.session(layout.READER_USER, layout.READER_PASSWORD, project, system)

    @property
    def reader_project(self) -> str:
        return next(name for name, info in self.seed["projects"].items() if info["vo"])

    # ---- clients on a session
    def nova(self, sess: Any, microversion: str = NOVA_MICROVERSION) -> Any:
        from novaclient import client

        return client.Client(microversion, session=sess, region_name=self.region)

    def glance(self, sess: Any) -> Any:
        from glanceclient import Client

        return Client("2", session=sess, region_name=self.region)

    def keystone(self, sess: Any) -> Any:
        from keystoneclient.v3 import client

        return client.Client(session=sess, region_name=self.region, interface="public")

    # ---- manifest helpers
    def project_id(self, name: str) -> str:
        return str(self.seed["projects"][name]["id"])

    def pids(self) -> dict[str, int]:
        """PIDs of the testbed daemons, from their PID files."""
        out = {}
        for f in (self.dir / "run").glob("*.pid"):
            try:
                out[f.stem] = int(f.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return out


def _load(tb_dir: Path) -> Testbed | None:
    seed = tb_dir / "seed.json"
    if not seed.exists():
        return None
    data = json.loads(seed.read_text())
    if not data.get("complete"):
        return None
    return Testbed(dir=tb_dir, clouds_yaml=tb_dir / "clouds.yaml", seed=data)


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    """The local OpenStack, up, healthy and seeded (started once per session if needed)."""
    tb_dir = Path(os.environ.get("FEDCLOUD_TESTBED_DIR", "/var/tmp/fedcloud-testbed"))
    script = REPO / "scripts" / "dev" / "testbed"
    if os.environ.get("FEDCLOUD_TESTBED_SKIP") == "1":
        pytest.skip("FEDCLOUD_TESTBED_SKIP=1")
    # `up` is idempotent: ~1 s when everything already runs, minutes from nothing
    res = subprocess.run(
        [str(script), "up"], capture_output=True, text=True, timeout=1800, check=False
    )
    if res.returncode != 0:
        pytest.fail(
            f"scripts/dev/testbed up failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    tb = _load(tb_dir)
    if tb is None:
        pytest.fail(f"testbed up but no complete seed manifest in {tb_dir}")
    return tb


@pytest.fixture(scope="session")
def seed(testbed: Testbed) -> dict[str, Any]:
    """The testbed's seed manifest (seed.json): the source of every expected value."""
    return testbed.seed
