"""The outgoing queue as the real ssmsend reads it, and every message file against APEL's rules."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.extractor import Extractor
from fedcloud_accounting.messenger.queue import DirqWriter
from fedcloud_accounting.record.validate import (
    check_cloud_message,
    check_json_message,
    check_storage_message,
)
from unit.accounting.accounting_fakes import END, P1, make_config, server, standard_source

pytestmark = pytest.mark.contract
CHECKS = {
    "cloud": check_cloud_message,
    "storage": check_storage_message,
    "ip": check_json_message,
    "accelerator": check_json_message,
}
ELEMENT = re.compile(r"^[0-9a-f]{8}/[0-9a-f]{14}$")


@pytest.fixture(scope="module")
def queue_root(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("acct")
    src = standard_source()
    # enough servers (with awkward names) for several messages per project, plus a GPU flavor
    from unit.accounting.accounting_fakes import GPU

    src.servers_by_project[P1] += [
        server(
            f"bulk-{i:04d}",
            name=f"vm {i} \u00e9t\u00e9 %% #{i}\n",
            created=i % 50,
            flavor=GPU if i % 7 == 0 else src.flavor_list[0],
        )
        for i in range(120)
    ]
    cfg = make_config(tmp, records_per_message=50, ip_records=True, accelerator_records=True)
    ex = Extractor(
        cfg, src, DirqWriter(tmp / "outgoing"), CheckpointStore(tmp / "cp.json"), now=lambda: END
    )
    report = ex.run()
    assert report.exit_code == 0, report.render_text()
    return tmp / "outgoing"


def test_layout_is_dirq_simple_with_no_temporary_files(queue_root):
    now = int(datetime.now(UTC).timestamp())
    for name in ("cloud", "storage", "ip", "accelerator"):
        files = [p for p in (queue_root / name).rglob("*") if p.is_file()]
        assert files, name
        for f in files:
            rel = f.relative_to(queue_root / name).as_posix()
            assert ELEMENT.match(rel), rel  # no .tmp / .lck left behind
            minute = int(rel[:8], 16)
            assert minute % 60 == 0
            assert now - 600 <= minute <= now


def test_every_message_file_passes_the_apel_rules(queue_root):
    n = 0
    for kind, check in CHECKS.items():
        for f in sorted((queue_root / kind).rglob("*")):
            if f.is_file():
                text = f.read_bytes().decode("ascii")  # raises if not ASCII
                assert check(text) == [], f
                assert text.endswith("\n")
                assert not text.endswith("\n\n")
                n += 1
    cloud_files = [f for f in (queue_root / "cloud").rglob("*") if f.is_file()]
    assert len(cloud_files) >= 3  # 124 records at 50 per message for P1, plus P2's
    assert n >= 6


def test_ssmsend_reading_loop_iterate_lock_get_remove(queue_root):
    """What ssmsend does: for each element, lock, get, (send), remove; then purge."""
    q = QueueSimple(str(queue_root / "cloud"))
    total = q.count()
    seen = 0
    records = 0
    for name in q:
        if not q.lock(name):
            continue
        body = q.get(name)
        assert isinstance(body, bytes)
        assert body.startswith(b"APEL-cloud-message: v0.4\n")
        text = body.decode("ascii")
        assert check_cloud_message(text) == []
        records += len(text.split("\n%%\n"))
        q.remove(name)
        seen += 1
    q.purge(maxtemp=0, maxlock=0)
    assert seen == total > 0
    assert records == 4 + 120 + 1  # P1's four + bulk, P2's one
    assert q.count() == 0


def test_signed_and_base64_largest_message_is_under_one_megabyte(tmp_path):
    """Sign a maximum-size message with a real S/MIME signer, as ssm does, and measure it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    from fedcloud_accounting.messenger.batching import split
    from fedcloud_accounting.messenger.render import CLOUD, cloud_chunk
    from fedcloud_core.config.accounting import MAX_BODY_BYTES

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Cloud Site"),
            x509.NameAttribute(NameOID.COMMON_NAME, "accounting.cloud.example.org"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    short = {
        "VMUUID": "x",
        "SiteName": "S",
        "Disk": "1",
        "Memory": "2",
        "CpuCount": "1",
    }  # short lines
    chunk = cloud_chunk(short)
    body = split(CLOUD, [chunk] * 40_000, max_records=40_000, max_bytes=MAX_BODY_BYTES)[0].body
    assert len(body) + body.count(b"\n") > MAX_BODY_BYTES - 100
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(body)
        .add_signer(cert, key, hashes.SHA256())
        .sign(
            serialization.Encoding.SMIME,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Text],
        )
    )
    assert len(base64.encodebytes(signed)) < 1_000_000
