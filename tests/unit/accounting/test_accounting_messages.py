"""Golden message bytes, sanitising, and splitting by record count and by size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fedcloud_accounting.extract.facts import Action, FloatingIP, Volume
from fedcloud_accounting.extract.timeline import usage
from fedcloud_accounting.messenger.batching import RecordTooLarge, split
from fedcloud_accounting.messenger.render import CLOUD, IP, STORAGE, cloud_chunk, json_chunk
from fedcloud_accounting.record.build import (
    Lookups,
    SiteInfo,
    cloud_record,
    ip_records,
    storage_record,
)
from fedcloud_accounting.record.sanitize import clean
from fedcloud_accounting.record.validate import check_cloud_message
from unit.accounting.accounting_fakes import SMALL, at, server

pytestmark = pytest.mark.unit
SITE = SiteInfo(
    "TEST-SITE", "https://cloud.example.org:5000/v3", "fedcloud-appliance/0.1.0 (OpenStack)"
)
END = datetime(2024, 5, 2, tzinfo=UTC)

GOLDEN_CLOUD = b"""APEL-cloud-message: v0.4
Benchmark: 10.5
BenchmarkType: HEPSPEC
CloudComputeService: https://cloud.example.org:5000/v3
CloudType: fedcloud-appliance/0.1.0 (OpenStack)
CpuCount: 2
CpuDuration: 158400
Disk: 20
EndTime: 0
FQAN: ops
GlobalUserName: alice
ImageId: img-1
LocalGroupId: 11111111111111111111111111111111
LocalUserId: u1
MachineName: cafe 50% off
Memory: 2048
PublicIPCount: 1
SiteName: TEST-SITE
StartTime: 1714521600
Status: started
SuspendDuration: 7200
VMUUID: vm-1
WallDuration: 79200
%%
Benchmark: 10.5
BenchmarkType: HEPSPEC
CloudComputeService: https://cloud.example.org:5000/v3
CloudType: fedcloud-appliance/0.1.0 (OpenStack)
CpuCount: 2
CpuDuration: 28800
Disk: 20
EndTime: 1714550400
FQAN: ops
GlobalUserName: alice
ImageId: img-1
LocalGroupId: 11111111111111111111111111111111
LocalUserId: u1
MachineName: vm-vm-2
Memory: 2048
PublicIPCount: 0
SiteName: TEST-SITE
StartTime: 1714536000
Status: completed
SuspendDuration: 0
VMUUID: vm-2
WallDuration: 14400
"""

GOLDEN_STORAGE = b"""<?xml version="1.0" encoding="UTF-8"?>
<sr:StorageUsageRecords xmlns:sr="http://eu-emi.eu/namespaces/2011/02/storagerecord">
<sr:StorageUsageRecord>
  <sr:RecordIdentity sr:createTime="2024-05-02T00:00:00Z" sr:recordId="vol-1"/>
  <sr:StorageSystem>https://cloud.example.org:5000/v3</sr:StorageSystem>
  <sr:Site>TEST-SITE</sr:Site>
  <sr:StorageMedia>disk</sr:StorageMedia>
  <sr:SubjectIdentity>
    <sr:LocalUser>u1</sr:LocalUser>
    <sr:LocalGroup>11111111111111111111111111111111</sr:LocalGroup>
    <sr:UserIdentity>alice</sr:UserIdentity>
    <sr:Group>ops</sr:Group>
  </sr:SubjectIdentity>
  <sr:StartTime>2024-05-01T01:00:00Z</sr:StartTime>
  <sr:EndTime>2024-05-02T00:00:00Z</sr:EndTime>
  <sr:ResourceCapacityUsed>5368709120</sr:ResourceCapacityUsed>
</sr:StorageUsageRecord>
</sr:StorageUsageRecords>
"""


def _two_records() -> list[str]:
    lk = Lookups(users={"u1": "alice"})
    a = server("vm-1", name="caf\u00e9\n50%% off")
    ua = usage(a.created, None, [Action("suspend", at(1)), Action("resume", at(3))], END)
    b = server("vm-2", created=4, terminated=8)
    ub = usage(b.created, b.terminated, [], END)
    return [
        cloud_chunk(cloud_record(a, ua, SMALL, "ops", SITE, lk, 1).to_wire()),
        cloud_chunk(cloud_record(b, ub, SMALL, "ops", SITE, lk, 0).to_wire()),
    ]


def test_golden_cloud_message_bytes():
    (msg,) = split(CLOUD, _two_records(), max_records=500, max_bytes=700_000)
    assert msg.body == GOLDEN_CLOUD
    assert check_cloud_message(msg.body.decode()) == []


def test_golden_storage_message_bytes():
    vol = Volume("vol-1", "data", "1" * 32, "u1", 5, at(1))
    (msg,) = split(
        STORAGE,
        [storage_record(vol, "ops", SITE, {"u1": "alice"}, END).to_xml()],
        max_records=10,
        max_bytes=100_000,
    )
    assert msg.body == GOLDEN_STORAGE


def test_ip_records_keep_ipv4_and_ipv6_apart():
    ips = [
        FloatingIP("1", "192.0.2.1", "p"),
        FloatingIP("2", "192.0.2.2", "p"),
        FloatingIP("3", "2001:db8::1", "p"),
    ]
    recs = ip_records("p", "ops", ips, SITE, END)
    assert [(r.ip_version, r.ip_count) for r in recs] == [(4, 2), (6, 1)]
    (msg,) = split(IP, [json_chunk(r.to_wire()) for r in recs], max_records=10, max_bytes=100_000)
    assert msg.body.startswith(
        b'{"Type": "APEL Public IP message", "UsageRecords": [{"CloudComputeService"'
    )
    assert msg.body.endswith(b'], "Version": "0.2"}\n')


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("caf\u00e9", "cafe"),
        ("a\nb\r\nc\td", "a b c d"),
        ("50%% off", "50% off"),
        ("%%%%", "%"),
        ("\u6f22\u5b57 vm", "?? vm"),
        ("  x  ", "x"),
    ],
)
def test_sanitise(raw, want):
    assert clean(raw) == want


def test_sanitise_fast_path_gives_what_the_full_transliteration_gives():
    """Every string of up to 4 characters from an alphabet of the tricky cases."""
    import itertools
    import re
    import unicodedata

    def slow(value: str) -> str:  # the transliteration, without the already-clean shortcut
        out = []
        for ch in unicodedata.normalize("NFKD", value):
            if ch.isascii():
                out.append(" " if not ch.isprintable() else ch)
            elif unicodedata.combining(ch):
                continue
            elif ch.isspace():
                out.append(" ")
            else:
                out.append("?")
        return re.sub(r"%{2,}", "%", re.sub(r"\s+", " ", "".join(out)).strip())

    alphabet = ["a", " ", "%", "\t", "\n", "\x0b", "\x7f", "\u00e9", "\u00a0", "-"]
    for n in range(5):
        for chars in itertools.product(alphabet, repeat=n):
            value = "".join(chars)
            assert clean(value) == slow(value), repr(value)


def test_split_by_record_count():
    chunks = [f"VMUUID: {i}\nSiteName: S" for i in range(7)]
    msgs = split(CLOUD, chunks, max_records=3, max_bytes=1_000_000)
    assert [m.records for m in msgs] == [3, 3, 1]
    assert b"".join(m.body for m in msgs).count(b"VMUUID") == 7
    assert all(check_cloud_message(m.body.decode()) == [] for m in msgs)


def test_split_by_size_keeps_every_message_under_the_limit():
    chunks = [f"VMUUID: {i:04d}\nSiteName: S\nMachineName: {'x' * 200}" for i in range(100)]
    limit = 2_000
    msgs = split(CLOUD, chunks, max_records=500, max_bytes=limit)
    assert len(msgs) > 1
    crlf = [len(m.body) + m.body.count(b"\n") for m in msgs]  # size as S/MIME signs it
    assert all(n <= limit for n in crlf)
    assert sum(m.records for m in msgs) == 100
    # greedy: adding the next record would have crossed the limit
    per = len(chunks[0]) + chunks[0].count("\n") + len("\n%%\n") + 2
    assert all(n + per > limit for n in crlf[:-1])


def test_split_refuses_a_record_larger_than_a_message():
    with pytest.raises(RecordTooLarge):
        split(CLOUD, ["VMUUID: x\nMachineName: " + "y" * 5_000], max_records=5, max_bytes=1_000)


def test_largest_allowed_message_stays_under_one_megabyte_once_signed_and_base64():
    import base64

    from fedcloud_core.config.accounting import MAX_BODY_BYTES

    chunks = _two_records() * 5000
    msg = split(CLOUD, chunks, max_records=5000, max_bytes=MAX_BODY_BYTES)[0]
    canonical = msg.body.replace(b"\n", b"\r\n")  # S/MIME text canonicalisation
    assert MAX_BODY_BYTES - 1000 < len(canonical) <= MAX_BODY_BYTES
    signed = len(canonical) + 16 * 1024  # MIME headers + PKCS#7 signature with a certificate chain
    encoded = base64.encodebytes(b"x" * signed)  # 76-character lines, as ssm and AMS clients use
    assert len(encoded) < 1_000_000
