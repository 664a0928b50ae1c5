"""keystoneauth1 sessions and the OpenStack clients built on them (testbed venv only)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .layout import ADMIN_PASSWORD, AUTH_URL, READER_PASSWORD, READER_USER, REGION

TIMEOUT = 60  # seconds, every HTTP call


def session(
    user: str = "admin",
    password: str = ADMIN_PASSWORD,
    project: str | None = "admin",
    project_id: str | None = None,
    system: bool = False,
) -> Any:
    """A password session scoped to a project (by name or id, domain Default) or to the system."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    scope: dict[str, Any] = {}
    if system:
        scope["system_scope"] = "all"
    elif project_id:
        scope["project_id"] = project_id
    elif project:
        scope.update(project_name=project, project_domain_name="Default")
    auth = v3.Password(
        auth_url=AUTH_URL, username=user, password=password, user_domain_name="Default", **scope
    )
    return ks_session.Session(auth=auth, timeout=TIMEOUT)


def reader_session(project: str | None = None, system: bool = False) -> Any:
    return session(READER_USER, READER_PASSWORD, project=project, system=system)


@dataclass
class Clients:
    """Service clients sharing one session (built lazily)."""

    sess: Any
    nova_version: str = "2.96"

    @cached_property
    def nova(self) -> Any:
        from novaclient import client

        return client.Client(self.nova_version, session=self.sess, region_name=REGION)

    @cached_property
    def glance(self) -> Any:
        from glanceclient import Client

        return Client("2", session=self.sess, region_name=REGION)

    @cached_property
    def keystone(self) -> Any:
        from keystoneclient.v3 import client

        return client.Client(session=self.sess, region_name=REGION, interface="public")

    @cached_property
    def neutron(self) -> Any:
        from neutronclient.v2_0 import client

        return client.Client(session=self.sess, region_name=REGION)

    @cached_property
    def cinder(self) -> Any:
        from cinderclient import client

        return client.Client("3.60", session=self.sess, region_name=REGION)
