"""``imagelist sign``: build a HEPiX image list from a description and S/MIME-sign it.

The vmcaster / marketplace role, used by the tests and the demo to publish lists.
The description (YAML or JSON)::

    identifier: 1d8b...           # list uuid (default: derived from the title)
    title: Demo images
    vo: demo.example.org
    uri: http://127.0.0.1:8000/demo.list   # where the list will be published
    version: "20261121095740"     # default: now (UTC, %Y%m%d%H%M%S)
    expires_days: 30              # or expires: 2036-11-18T09:57:40Z
    base_url: http://127.0.0.1:8000/      # default for image URIs: base_url + file name
    images:
      - identifier: 5f0c...       # required
        title: Tiny Linux
        file: images/tiny.qcow2   # size and sha512 are computed from it
        format: QCOW2
        version: "1.0"
        extra: {sl:osname: Ubuntu, sl:osversion: "22.04", sl:arch: x86_64}  # copied as given

Endorser ``hv:dn`` / ``hv:ca`` come from the signing certificate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from fedcloud_core import smime
from fedcloud_core.errors import ConfigError, ExitCode
from fedcloud_core.files import atomic_write

from .verify import format_time

CHUNK = 1024 * 1024


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha512()
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def build_list(
    desc: dict[str, Any], *, base_dir: Path, cert: Path, now: datetime | None = None
) -> dict[str, Any]:
    """The ``{"hv:imagelist": ...}`` document for ``desc`` (files resolved against ``base_dir``)."""
    now = now or datetime.now(UTC)
    if not isinstance(desc, dict) or not isinstance(desc.get("images"), list):
        raise ConfigError("the description needs an 'images' list")
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    title = str(desc.get("title", "image list"))
    if "expires" in desc:
        expires = str(desc["expires"])
    else:
        expires = format_time(now + timedelta(days=float(desc.get("expires_days", 30))))
    base_url = str(desc.get("base_url", ""))
    images = []
    for n, item in enumerate(desc["images"]):
        where = f"images[{n}]"
        if not isinstance(item, dict) or not item.get("identifier"):
            raise ConfigError(f"{where}: needs at least 'identifier'")
        img: dict[str, Any] = {
            "dc:identifier": str(item["identifier"]),
            "dc:title": str(item.get("title", item["identifier"])),
            "dc:description": str(item.get("description", "")),
            "hv:version": str(item.get("version", "1")),
        }
        if item.get("file"):
            path = Path(item["file"])
            path = path if path.is_absolute() else base_dir / path
            if not path.is_file():
                raise ConfigError(f"{where}: file {path} not found")
            size, digest = _hash_file(path)
            img["hv:size"] = size
            img["sl:checksum:sha512"] = digest
            img["hv:uri"] = str(item.get("uri") or base_url + path.name)
        else:
            for k in ("uri", "size", "sha512"):
                if k not in item:
                    raise ConfigError(f"{where}: without 'file' give 'uri', 'size' and 'sha512'")
            img.update(
                {
                    "hv:uri": item["uri"],
                    "hv:size": item["size"],
                    "sl:checksum:sha512": item["sha512"],
                }
            )
        if item.get("format"):
            img["hv:format"] = str(item["format"])
        if item.get("expires"):
            img["dc:date:expires"] = str(item["expires"])
        img.update(item.get("extra") or {})
        images.append({"hv:image": img})
    return {
        "hv:imagelist": {
            "dc:identifier": str(desc.get("identifier") or uuid.uuid5(uuid.NAMESPACE_URL, title)),
            "dc:title": title,
            "dc:description": str(desc.get("description", "")),
            "dc:date:created": format_time(now),
            "dc:date:expires": expires,
            "hv:version": str(desc.get("version") or now.strftime("%Y%m%d%H%M%S")),
            "hv:uri": str(desc.get("uri", "")),
            "ad:vo": str(desc.get("vo", "")),
            "hv:endorser": {
                "hv:x509": {
                    "dc:creator": str(desc.get("creator", "fedcloud-appliance imagelist sign")),
                    "hv:dn": smime.openssl_dn(c.subject),
                    "hv:ca": smime.openssl_dn(c.issuer),
                    "hv:email": str(desc.get("email", "")),
                }
            },
            "hv:images": images,
        }
    }


def sign_list(
    doc: dict[str, Any], *, cert: Path, key: Path, opaque: bool = False, cms: bool = False
) -> bytes:
    data = json.dumps(doc, indent=2, sort_keys=False).encode("utf-8") + b"\n"
    return smime.sign(data, cert, key, detached=not opaque, cms=cms)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "description", type=Path, help="YAML/JSON description of the list and its images"
    )
    p.add_argument("--cert", type=Path, required=True, help="endorser certificate (PEM)")
    p.add_argument("--key", type=Path, required=True, help="its private key (PEM, unencrypted)")
    p.add_argument(
        "--output", "-o", type=Path, required=True, help="where to write the signed list"
    )
    p.add_argument(
        "--opaque", action="store_true", help="opaque pkcs7-mime instead of clear-signed"
    )
    p.add_argument(
        "--cms", action="store_true", help="sign with 'openssl cms' instead of 'openssl smime'"
    )
    p.add_argument(
        "--list-version",
        dest="list_version",
        help="hv:version (default: from the description or now)",
    )
    p.add_argument("--json-output", type=Path, help="also write the unsigned JSON here")


def main(args: argparse.Namespace) -> int:
    path: Path = args.description
    try:
        desc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the description: {exc}") from None
    if args.list_version:
        desc["version"] = args.list_version
    doc = build_list(desc, base_dir=path.parent, cert=args.cert)
    signed = sign_list(doc, cert=args.cert, key=args.key, opaque=args.opaque, cms=args.cms)
    atomic_write(args.output, signed)
    if args.json_output:
        atomic_write(args.json_output, json.dumps(doc, indent=2) + "\n")
    print(
        f"{args.output}: {len(doc['hv:imagelist']['hv:images'])} image(s), version "
        f"{doc['hv:imagelist']['hv:version']}, signed by {doc['hv:imagelist']['hv:endorser']['hv:x509']['hv:dn']}"
    )
    return int(ExitCode.OK)
