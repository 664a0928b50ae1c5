"""The Glance side: managed-image discovery, create + streamed upload, metadata, members, retire.

Every write happens only when something differs, so an unchanged run is read-only.
Managed images carry the replicator tag plus ``image_list`` (the source name) and
``appdb_id`` (the image identifier); that pair is the sync key. They must also be owned
by the appliance's project: a look-alike in another project is reported, never touched.

A failed Glance call raises the core's :class:`~fedcloud_core.errors.OpenStackError`
(:func:`fedcloud_core.openstack.classify_openstack_error`: 401/403 permanent, no answer
and 5xx transient, as in every service).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from fedcloud_core.openstack import classify_openstack_error

from .errors import GlanceSyncError
from .model import ImageEntry

log = logging.getLogger(__name__)

GIB = 1024**3
# Images per page when listing: Glance's default api_limit_max, the most one request returns.
# A source's images come in ceil(n / PAGE_SIZE) requests (glanceclient's default is 20).
PAGE_SIZE = 1000

# Properties the replicator owns (spec section 2); nothing else is set or compared.
MANAGED_PROPERTIES = (
    "vmcatcher_event_ad_mpuri",
    "vmcatcher_event_dc_description",
    "vmcatcher_event_dc_title",
    "APPLIANCE_ATTRIBUTES",
    "os_distro",
    "os_version",
    "architecture",
    "appdb_id",
    "image_hash",
    "image_list",
)


def image_properties(entry: ImageEntry, source: str) -> dict[str, str]:
    """The spec's Glance properties for ``entry`` (absent values are left out)."""
    props = {
        "vmcatcher_event_ad_mpuri": entry.mpuri,
        "vmcatcher_event_dc_description": entry.description or None,
        "vmcatcher_event_dc_title": entry.title,
        "APPLIANCE_ATTRIBUTES": json.dumps(entry.attributes, sort_keys=True, separators=(",", ":")),
        "os_distro": entry.os_distro.lower() if entry.os_distro else None,
        "os_version": entry.os_version,
        "architecture": entry.architecture,
        "appdb_id": entry.identifier,
        "image_hash": entry.image_hash,
        "image_list": source,
    }
    return {k: v for k, v in props.items() if v not in (None, "")}


P = ParamSpec("P")
R = TypeVar("R")


def _classified(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn a glanceclient/keystoneauth exception of the call into the core's class."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                err = classify_openstack_error(exc, what)
                if err is None or err is exc:
                    raise
                raise err from exc

        return call

    return wrap


def min_disk_gb(virtual_size: int, size: int | None) -> int:
    return max(1, math.ceil(max(virtual_size, size or 0) / GIB))


class HashingReader:
    """A file wrapper that hashes what Glance reads (sha512 + md5), so the upload is verified
    against Glance's stored checksum without reading the file twice."""

    def __init__(self, fh: Any):
        self._fh = fh
        self.sha512 = hashlib.sha512()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._fh.read(n)
        self.sha512.update(data)
        self.md5.update(data)
        self.size += len(data)
        return data

    def __iter__(self) -> Any:
        while chunk := self.read(1024 * 1024):
            yield chunk


@dataclass
class Upload:
    """An image created and uploaded, not checked yet: what was sent, as hashed on the way."""

    image: Any
    reader: HashingReader


@dataclass
class Scan:
    """The images of one source in Glance: ours, and look-alikes owned by other projects."""

    managed: list[Any] = field(default_factory=list)
    foreign: list[Any] = field(default_factory=list)


class GlanceImages:
    """Thin layer over a glanceclient v2 client (the core session's).

    ``owner`` is the project the appliance's images belong to (the project of its Keystone
    session; a callable is asked once, on first use, so constructing does no I/O). Only images
    of that project are managed: anyone can tag an image and set its properties, and an admin
    lists every project's images with ``visibility=all``.
    """

    def __init__(self, glance: Any, *, tag: str, owner: str | Callable[[], str | None]):
        self.glance = glance
        self.tag = tag
        self._owner = owner
        self._owner_id: str | None = None
        self._writes = 0  # image writes so far (create, upload, update, (de)activate, delete)
        self._lock = threading.Lock()

    @property
    def image_writes(self) -> int:
        """How many image writes this client has made: a source's sync compares it before
        and after to know whether Glance's listing of its images may have changed."""
        return self._writes

    def _wrote(self) -> None:
        with self._lock:
            self._writes += 1

    def scope(self) -> str:
        """What a saved listing is valid for: Glance's endpoint, our project, the tag."""
        try:
            endpoint = str(self.glance.http_client.get_endpoint() or "")
        except Exception:  # noqa: BLE001 - no endpoint known: the scope is project + tag
            endpoint = ""
        return f"{endpoint} {self.owner} {self.tag}"

    def matches(self, img: Any, source: str) -> bool:
        """``img`` is tagged for ``source`` (tag + ``image_list``), whoever owns it."""
        return img.get("image_list") == source and self.tag in (img.get("tags") or [])

    @property
    def owner(self) -> str:
        if self._owner_id is None:
            got = self._owner() if callable(self._owner) else self._owner
            if not got:
                raise GlanceSyncError(
                    "the appliance's OpenStack credentials are not scoped to a project: "
                    "managed images are recognised by their owner project"
                )
            self._owner_id = str(got)
        return self._owner_id

    @_classified("Glance images.list")
    def scan(self, source: str) -> Scan:
        """Images tagged for ``source`` (tag + image_list), any visibility/status, split by owner.

        Filtered by Glance (tag and the ``image_list`` property), in pages of :data:`PAGE_SIZE`.
        Not by owner: look-alikes of other projects are reported, so they are listed too."""
        out = Scan()
        for img in self.glance.images.list(
            filters={"tag": [self.tag], "visibility": "all", "image_list": source},
            page_size=PAGE_SIZE,
        ):
            if self.matches(img, source):
                (out.managed if img.get("owner") == self.owner else out.foreign).append(img)
        return out

    @_classified("Glance images.list")
    def changed_since(self, since: str) -> list[Any]:
        """Our project's images (any tag, source, visibility and status) whose ``updated_at``
        is ``since`` (ISO 8601 UTC) or later: one request while fewer than :data:`PAGE_SIZE`
        changed. Not filtered by tag, so an image whose tag or ``image_list`` was changed by
        hand is seen too (Glance moves ``updated_at`` on every image and tag write)."""
        return list(
            self.glance.images.list(
                filters={"owner": self.owner, "visibility": "all", "updated_at": f"gte:{since}"},
                page_size=PAGE_SIZE,
            )
        )

    def managed(self, source: str) -> list[Any]:
        """Images this replicator made for ``source``: tagged for it and owned by our project."""
        return self.scan(source).managed

    @_classified("Glance image create/upload")
    def create(
        self,
        *,
        name: str,
        disk_format: str,
        visibility: str,
        min_ram: int,
        min_disk: int,
        properties: dict[str, str],
        path: Path,
    ) -> Any:
        """Create, upload and check one image (a GET after the upload)."""
        up = self.upload_new(
            name=name,
            disk_format=disk_format,
            visibility=visibility,
            min_ram=min_ram,
            min_disk=min_disk,
            properties=properties,
            path=path,
        )
        got = self.check_uploads([up], listed={})[up.image["id"]]
        if isinstance(got, Exception):
            raise got
        return got

    @_classified("Glance image create/upload")
    def upload_new(
        self,
        *,
        name: str,
        disk_format: str,
        visibility: str,
        min_ram: int,
        min_disk: int,
        properties: dict[str, str],
        path: Path,
    ) -> Upload:
        """Create an image and upload ``path``, hashing what is sent (checked later by
        :meth:`check_uploads`). A failed upload deletes the incomplete image."""
        self._wrote()
        img = self.glance.images.create(
            name=name,
            disk_format=disk_format,
            container_format="bare",
            visibility=visibility,
            min_ram=min_ram,
            min_disk=min_disk,
            tags=[self.tag],
            **properties,
        )
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                reader = HashingReader(fh)
                self.glance.images.upload(img["id"], reader, image_size=size)
        except Exception:
            self._drop_incomplete(img, name)
            raise
        return Upload(img, reader)

    def check_uploads(
        self, uploads: list[Upload], *, listed: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Glance id -> the stored image, checked against what was sent (status, size, sha512,
        md5), or the exception that failed it; a failed image is deleted.

        The stored images are read with one listing of their source (the same filtered,
        paged listing as :meth:`scan`: one request for up to 1,000 images instead of a GET
        per image); an image the listing lacks, or every one when ``listed`` is given (an
        empty dict: GET each), is read by id."""
        if listed is None:
            listed = self._list_uploaded(uploads)
        out: dict[str, Any] = {}
        for up in uploads:
            iid = up.image["id"]
            try:
                stored = listed.get(iid) or self.glance.images.get(iid)
                self._check_stored(stored, up.reader)
                out[iid] = stored
            except Exception as exc:  # noqa: BLE001 - that image's failure, reported by the caller
                self._drop_incomplete(up.image, up.image.get("name"))
                out[iid] = exc
        return out

    @_classified("Glance images.list")
    def _list_uploaded(self, uploads: list[Upload]) -> dict[str, Any]:
        listed: dict[str, Any] = {}
        for source in sorted({str(u.image.get("image_list")) for u in uploads}):
            for img in self.glance.images.list(
                filters={"tag": [self.tag], "visibility": "all", "image_list": source},
                page_size=PAGE_SIZE,
            ):
                listed[img["id"]] = img
        return listed

    def _drop_incomplete(self, img: Any, name: Any) -> None:
        log.warning("upload of %s failed; removing the incomplete image %s", name, img["id"])
        self._wrote()
        try:
            self.glance.images.delete(img["id"])
        except Exception as exc:  # noqa: BLE001 - best effort; report the original failure
            log.warning("could not delete the incomplete image %s: %s", img["id"], exc)

    @staticmethod
    def _check_stored(stored: Any, reader: HashingReader) -> None:
        if stored.get("status") != "active":
            raise GlanceSyncError(f"image {stored['id']} is {stored.get('status')} after upload")
        if stored.get("size") not in (None, reader.size):
            raise GlanceSyncError(
                f"Glance stored {stored.get('size')} bytes, {reader.size} were sent"
            )
        algo, value = stored.get("os_hash_algo"), stored.get("os_hash_value")
        if algo == "sha512" and value and value != reader.sha512.hexdigest():
            raise GlanceSyncError(
                f"Glance's sha512 of {stored['id']} differs from the uploaded file"
            )
        if stored.get("checksum") and stored["checksum"] != reader.md5.hexdigest():
            raise GlanceSyncError(
                f"Glance's checksum of {stored['id']} differs from the uploaded file"
            )

    @_classified("Glance images.update")
    def update_metadata(
        self,
        img: Any,
        *,
        name: str,
        visibility: str,
        properties: dict[str, str],
        min_ram: int | None = None,
    ) -> list[str]:
        """Bring name, visibility, min_ram and owned properties in line; returns what changed."""
        changes: dict[str, Any] = {}
        if img.get("name") != name:
            changes["name"] = name
        if img.get("visibility") != visibility:
            changes["visibility"] = visibility
        if min_ram is not None and img.get("min_ram") != min_ram:
            changes["min_ram"] = min_ram
        for k, v in properties.items():
            if img.get(k) != v:
                changes[k] = v
        remove = [k for k in MANAGED_PROPERTIES if k not in properties and k in img]
        if changes or remove:
            self._wrote()
            self.glance.images.update(img["id"], remove_props=remove or None, **changes)
        return sorted([*changes, *remove])

    @_classified("Glance image members")
    def ensure_members(
        self, img: Any, projects: list[str], accept_with: Any = None, *, new: bool = False
    ) -> list[str]:
        """Make ``projects`` the accepted members of a shared image; returns what changed.

        Accepting is the member's call: ``accept_with`` is a glance client scoped to the member
        project (default: ours, which works where Glance's policy lets an admin do it).
        ``new``: the image was just created by us, so it has no members (not listed)."""
        done: list[str] = []
        current = (
            {} if new else {m["member_id"]: m for m in self.glance.image_members.list(img["id"])}
        )
        for p in projects:
            m = current.get(p)
            if m is None:
                self.glance.image_members.create(img["id"], p)
                done.append(f"added {p}")
            if m is None or m.get("status") != "accepted":
                client = accept_with or self.glance
                client.image_members.update(img["id"], p, "accepted")
                done.append(f"accepted {p}")
        for p in current:
            if p not in projects:
                self.glance.image_members.delete(img["id"], p)
                done.append(f"removed {p}")
        return done

    @_classified("Glance image reactivate")
    def reactivate(self, img: Any) -> None:
        self._wrote()
        self.glance.images.reactivate(img["id"])

    @_classified("Glance image retire")
    def retire(self, img: Any, *, in_use: bool | None, keep_in_use: bool = False) -> str:
        """Delete an image no longer listed; if servers use it (or we cannot tell): deactivate and
        make it private instead. Returns 'deleted', 'deactivated' or 'kept' (nothing written)."""
        if in_use is False:
            self._wrote()
            self.glance.images.delete(img["id"])
            return "deleted"
        if keep_in_use:
            return "kept"
        wrote = False
        if img.get("status") == "active":
            self._wrote()
            self.glance.images.deactivate(img["id"])
            wrote = True
        if img.get("visibility") != "private":
            self._wrote()
            self.glance.images.update(img["id"], visibility="private")
            wrote = True
        return "deactivated" if wrote else "kept"
