"""OCI registry source (Harbor API v2 listing + OCI distribution downloads).

Listing: ``/api/v2.0/projects/<p>/repositories`` -> ``.../repositories/<r>/artifacts``
(tags); each artifact's manifest is fetched from ``/v2/<p>/<r>/manifests/<digest>`` and
its sha256 checked against the artifact digest. The image is the one layer of media
type ``application/x-qemu-disk``; its blob is downloaded from ``/v2/<p>/<r>/blobs/<digest>``
and verified against the layer's sha256 by the cache. Registry token auth (the
``WWW-Authenticate: Bearer`` dance) is supported, anonymous or with a robot account.

Identifiers: the sync key (``appdb_id``) is ``<registry>/<project>/<repo>:<tag>``, stable
across pushes; the marketplace-style reference (``vmcatcher_event_ad_mpuri``,
``eu.egi.cloud.image_ref``) is ``<registry>/<project>/<repo>:<tag>-<manifest digest>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import quote, urlparse

import requests

from fedcloud_core.config.images import RegistrySource
from fedcloud_core.logs import register_secret

from ..errors import ListRejected
from ..model import ImageEntry, ImageList

DISK_MEDIA_TYPE = "application/x-qemu-disk"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
PAGE_SIZE = 100
MAX_PAGES = 100
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_GLANCE = "org.openstack.glance."


class _Failed(Exception):
    pass


class RegistrySourceClient:
    def __init__(
        self, sub: RegistrySource, *, http: requests.Session, timeout: tuple[float, float]
    ):
        self.sub = sub
        self.name = sub.name
        self._http = http
        self._timeout = timeout
        self._base = str(sub.url).rstrip("/")
        self._tokens: dict[str, str] = {}

    # ---------------------------------------------------------------- HTTP

    def _basic(self) -> tuple[str, str] | None:
        if self.sub.username and self.sub.password is not None:
            secret = self.sub.password.get_secret_value()
            register_secret(secret)
            return (self.sub.username, secret)
        return None

    def _get(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        scope: str | None = None,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if scope and scope in self._tokens:
            hdrs["Authorization"] = f"Bearer {self._tokens[scope]}"
        auth = None if scope else self._basic()
        try:
            resp = self._http.get(
                url, params=params, headers=hdrs, auth=auth, timeout=self._timeout
            )
            if resp.status_code == 401 and scope and scope not in self._tokens:
                self._tokens[scope] = self._token(resp.headers.get("WWW-Authenticate", ""), scope)
                hdrs["Authorization"] = f"Bearer {self._tokens[scope]}"
                resp = self._http.get(url, params=params, headers=hdrs, timeout=self._timeout)
        except requests.RequestException as exc:
            raise _Failed(f"cannot reach {urlparse(url).netloc}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise _Failed(f"HTTP {resp.status_code} from {urlparse(url).path}")
        return resp

    def _token(self, challenge: str, scope: str) -> str:
        if not challenge.lower().startswith("bearer "):
            raise _Failed("the registry wants authentication but offers no bearer token service")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = fields.get("realm")
        if not realm:
            raise _Failed("bearer challenge without realm")
        try:
            resp = self._http.get(
                realm,
                params={"service": fields.get("service", ""), "scope": scope},
                auth=self._basic(),
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise _Failed(f"token service unreachable: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise _Failed(f"token service answered HTTP {resp.status_code}")
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise _Failed("token service returned no token")
        register_secret(token)
        return token

    def _paged(self, url: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """All pages of a Harbor list call (``X-Total-Count`` when given, else until a short page)."""
        out: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            resp = self._get(url, params={**(params or {}), "page": page, "page_size": PAGE_SIZE})
            items = resp.json()
            if not isinstance(items, list):
                raise _Failed(f"{urlparse(url).path}: expected a JSON list")
            out.extend(items)
            total = resp.headers.get("X-Total-Count", "")
            if not items or (len(out) >= int(total) if total.isdigit() else len(items) < PAGE_SIZE):
                return out
        raise _Failed(f"{urlparse(url).path}: more than {MAX_PAGES} pages")

    # ---------------------------------------------------------------- listing

    def fetch(self) -> ImageList:
        try:
            return self._fetch()
        except _Failed as exc:
            raise ListRejected(self.name, str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ListRejected(self.name, f"unexpected registry answer: {exc!r}") from None

    def _fetch(self) -> ImageList:
        project = self.sub.project
        host = urlparse(self._base).netloc
        api = f"{self._base}/api/v2.0/projects/{quote(project, safe='')}"
        out = ImageList(
            source=self.name, identifier=f"{host}/{project}", version="0", content_hash=""
        )
        keys: list[str] = []
        for repo in self._paged(f"{api}/repositories"):
            full = str(repo["name"])
            short = full.split("/", 1)[1] if full.startswith(project + "/") else full
            if self.sub.repositories and short not in self.sub.repositories:
                continue
            # Harbor wants the repository name URL-encoded twice when it contains '/'
            arts = self._paged(
                f"{api}/repositories/{quote(quote(short, safe=''), safe='')}/artifacts",
                {"with_tag": "true"},
            )
            for art in arts:
                tags = [str(t["name"]) for t in art.get("tags") or []]
                if self.sub.tags:
                    tags = [t for t in tags if t in self.sub.tags]
                if not tags:
                    continue
                try:
                    entries = self._entries(host, f"{project}/{short}", str(art["digest"]), tags)
                except _Failed as exc:
                    for t in tags:
                        out.invalid[f"{host}/{project}/{short}:{t}"] = str(exc)
                    continue
                for e in entries:
                    out.images.append(e)
                    keys.append(f"{e.identifier} {e.mpuri}")
        out.content_hash = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
        return out

    def _entries(self, host: str, repo: str, digest: str, tags: list[str]) -> list[ImageEntry]:
        if not _SHA256.match(digest):
            raise _Failed(f"unsupported manifest digest {digest!r}")
        scope = f"repository:{repo}:pull"
        resp = self._get(
            f"{self._base}/v2/{repo}/manifests/{digest}",
            headers={"Accept": MANIFEST_TYPES},
            scope=scope,
        )
        if "sha256:" + hashlib.sha256(resp.content).hexdigest() != digest:
            raise _Failed(f"manifest of {repo}@{digest} does not match its digest")
        manifest = json.loads(resp.content)
        layers = [
            la for la in manifest.get("layers") or [] if la.get("mediaType") == DISK_MEDIA_TYPE
        ]
        if len(layers) != 1:
            raise _Failed(
                f"{repo}@{digest}: expected one {DISK_MEDIA_TYPE} layer, found {len(layers)}"
            )
        layer = layers[0]
        ldigest = str(layer.get("digest", ""))
        if not _SHA256.match(ldigest):
            raise _Failed(f"{repo}@{digest}: layer digest {ldigest!r} is not sha256")
        ann = {str(k): str(v) for k, v in (layer.get("annotations") or {}).items()}
        token = self._tokens.get(scope)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        out = []
        for tag in tags:
            ref = f"{host}/{repo}:{tag}-{digest}"
            out.append(
                ImageEntry(
                    identifier=f"{host}/{repo}:{tag}",
                    title=ann.get("eu.egi.cloud.image.title") or f"{repo.split('/', 1)[-1]}:{tag}",
                    uri=f"{self._base}/v2/{repo}/blobs/{ldigest}",
                    digest_algo="sha256",
                    digest=ldigest.split(":", 1)[1],
                    size=int(layer["size"]) if layer.get("size") is not None else None,
                    format_hint=(ann.get(_GLANCE + "disk_format") or "").lower() or None,
                    description=ann.get("org.opencontainers.image.description", ""),
                    version=ann.get("eu.egi.cloud.tag", tag),
                    mpuri=ref,
                    os_distro=(ann.get(_GLANCE + "os_distro") or "").lower() or None,
                    os_version=ann.get(_GLANCE + "os_version") or None,
                    architecture=ann.get(_GLANCE + "architecture") or None,
                    attributes={**ann, "eu.egi.cloud.image_ref": ref},
                    headers=headers,
                )
            )
        return out
