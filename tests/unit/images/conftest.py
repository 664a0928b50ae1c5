"""Fixtures of the image replicator's unit tests: a fake Glance, a loopback server, test PKI."""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.images_pki import ImagesPki, make_images_pki
from support.imageserver import ImageServer


class _Images:
    def __init__(self, g: FakeGlance):
        self.g = g

    def list(
        self, filters: dict[str, Any] | None = None, page_size: int = 20
    ) -> Iterator[dict[str, Any]]:
        """One GET per page, as glanceclient pages (its default page size is 20)."""
        f = filters or {}
        found = []
        for img in list(self.g.store.values()):
            if "tag" in f and not set(f["tag"]) <= set(img["tags"]):
                continue
            if "image_list" in f and img.get("image_list") != f["image_list"]:
                continue
            if "owner" in f and img.get("owner") != f["owner"]:
                continue
            if "updated_at" in f:
                op, _, when = f["updated_at"].partition(":")
                assert op == "gte", f"the fake knows gte only, not {op}"
                if str(img.get("updated_at", "")) < when:
                    continue
            found.append(img)
        for start in range(0, max(1, len(found)), page_size):
            self.g.calls.append(("GET", "images"))
            for img in found[start : start + page_size]:
                yield copy.deepcopy(img)

    def get(self, image_id: str) -> dict[str, Any]:
        self.g.calls.append(("GET", f"images/{image_id}"))
        return copy.deepcopy(self.g.store[image_id])

    def create(self, **kw: Any) -> dict[str, Any]:
        self.g.write("create", kw.get("name"))
        img = {
            "id": f"img-{next(self.g.ids)}",
            "status": "queued",
            "created_at": f"t{next(self.g.ids):04d}",
            "owner": self.g.project_id,
            "updated_at": self.g.now(),
            **kw,
        }
        img["tags"] = list(kw.get("tags", []))
        self.g.store[img["id"]] = img
        return copy.deepcopy(img)

    def upload(self, image_id: str, data: Any, image_size: int | None = None) -> None:
        self.g.write("upload", image_id)
        body = b"".join(iter(lambda: data.read(65536), b""))
        img = self.g.store[image_id]
        if self.g.corrupt_upload:
            body += b"x"
        img.update(
            status="active",
            updated_at=self.g.now(),
            size=len(body),
            os_hash_algo="sha512",
            os_hash_value=hashlib.sha512(body).hexdigest(),
            checksum=hashlib.md5(body, usedforsecurity=False).hexdigest(),
        )
        self.g.data[image_id] = body

    def update(self, image_id: str, remove_props: list[str] | None = None, **kw: Any) -> None:
        self.g.write("update", image_id, tuple(sorted(kw)))
        img = self.g.store[image_id]
        for k in remove_props or []:
            img.pop(k, None)
        img.update(kw, updated_at=self.g.now())

    def delete(self, image_id: str) -> None:
        self.g.write("delete", image_id)
        del self.g.store[image_id]

    def deactivate(self, image_id: str) -> None:
        self.g.write("deactivate", image_id)
        self.g.store[image_id].update(status="deactivated", updated_at=self.g.now())

    def reactivate(self, image_id: str) -> None:
        self.g.write("reactivate", image_id)
        self.g.store[image_id].update(status="active", updated_at=self.g.now())


class _Members:
    def __init__(self, g: FakeGlance):
        self.g = g

    def list(self, image_id: str) -> list[dict[str, Any]]:
        self.g.calls.append(("GET", f"members/{image_id}"))
        return [dict(m) for m in self.g.members.get(image_id, {}).values()]

    def create(self, image_id: str, member: str) -> None:
        self.g.write("member-create", image_id, member)
        self.g.members.setdefault(image_id, {})[member] = {"member_id": member, "status": "pending"}

    def update(self, image_id: str, member: str, status: str) -> None:
        self.g.write("member-update", image_id, member)
        self.g.members[image_id][member]["status"] = status

    def delete(self, image_id: str, member: str) -> None:
        self.g.write("member-delete", image_id, member)
        del self.g.members[image_id][member]


class FakeGlance:
    """Just enough of glanceclient v2 for the sync logic; records every write."""

    project_id = (
        "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"  # the appliance's project: owner of what it creates
    )

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}
        self.members: dict[str, dict[str, dict[str, str]]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.writes: list[tuple[Any, ...]] = []
        self.ids = itertools.count(1)
        self.clock = itertools.count(1)
        self.corrupt_upload = False
        self.images = _Images(self)
        self.image_members = _Members(self)

    def now(self) -> str:
        """Glance's clock: ``updated_at`` of the next write, 10 s after the previous one.
        A test that changes ``store`` by hand, as an admin would, calls it too."""
        t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=10 * next(self.clock))
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def write(self, *what: Any) -> None:
        self.writes.append(what)
        self.calls.append(what)


@pytest.fixture(scope="session")
def ipki(tmp_path_factory: pytest.TempPathFactory) -> ImagesPki:
    return make_images_pki(tmp_path_factory.mktemp("images-pki"))


@pytest.fixture(scope="session")
def server() -> Iterator[ImageServer]:
    with ImageServer() as s:
        yield s


@pytest.fixture
def fake_glance() -> FakeGlance:
    return FakeGlance()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir()
    return d
