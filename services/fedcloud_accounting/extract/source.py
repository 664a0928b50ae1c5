"""The interface the extractor reads usage through; OpenStack implements it, tests fake it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from .facts import Action, Flavor, FloatingIP, Image, Project, Server, Volume


class UsageSource(Protocol):
    """Every method raises :class:`~fedcloud_core.errors.OpenStackError` on API failures."""

    def projects(self) -> Sequence[Project]:
        """All Keystone projects (id, name, properties)."""
        ...

    def user_names(self) -> dict[str, str]:
        """Keystone user id -> name; an empty mapping when users are not readable."""
        ...

    def flavors(self) -> Sequence[Flavor]:
        """All flavors, public and private, with their extra specs."""
        ...

    def images(self) -> Sequence[Image]:
        """All images, with their marketplace URI when set."""
        ...

    def servers(self, project_id: str, deleted_since: datetime | None) -> Sequence[Server]:
        """Every server of the project that is not deleted, plus those deleted since
        ``deleted_since`` (none when it is ``None``)."""
        ...

    def deleted_servers(self, since: datetime) -> Sequence[Server]:
        """The servers of every project deleted since ``since`` (updated since, as Nova's
        ``changes-since``)."""
        ...

    def changed_servers(self, project_id: str, since: datetime) -> Sequence[Server]:
        """Every server of the project updated at or after ``since`` (Nova's
        ``changes-since``), deleted ones included."""
        ...

    def actions(self, server_id: str) -> Sequence[Action]:
        """The instance actions of one server (also of a deleted one)."""
        ...

    def floating_ips(self, project_id: str) -> Sequence[FloatingIP]:
        """The project's floating IPs, with the server their port belongs to when bound."""
        ...

    def all_floating_ips(self) -> dict[str, list[FloatingIP]]:
        """Project id -> its floating IPs, as :meth:`floating_ips`, for every project at once."""
        ...

    def volumes(self, project_id: str) -> Sequence[Volume]:
        """The project's volumes."""
        ...
