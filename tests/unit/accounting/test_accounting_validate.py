"""One test per APEL parsing rule of spec section 1, plus the storage and JSON checks."""

from __future__ import annotations

import pytest

from fedcloud_accounting.record import validate as v

pytestmark = pytest.mark.unit

GOOD = {
    "VMUUID": "vm-1",
    "SiteName": "TEST-SITE",
    "Status": "started",
    "StartTime": "1714521600",
    "EndTime": "0",
    "WallDuration": "3600",
    "CpuDuration": "7200",
    "CpuCount": "2",
    "Memory": "2048",
    "Disk": "20",
    "Benchmark": "10.5",
    "MachineName": "vm one",
}


def with_(**kw: str) -> dict[str, str]:
    return {**GOOD, **kw}


def test_good_record_passes_every_rule():
    assert v.check_cloud_record(GOOD) == []


def test_rule_1_vmuuid_and_sitename_are_mandatory():
    assert v.rule_mandatory({k: x for k, x in GOOD.items() if k != "VMUUID"}) == [
        "VMUUID is mandatory"
    ]
    assert v.rule_mandatory({k: x for k, x in GOOD.items() if k != "SiteName"}) == [
        "SiteName is mandatory"
    ]


@pytest.mark.parametrize("null", ["", "none", "None", "NULL", "null", "  "])
def test_rule_2_none_and_null_in_any_case_mean_null(null):
    assert v.is_null(null)
    assert v.rule_mandatory(with_(VMUUID=null)) == ["VMUUID is mandatory"]
    assert not v.is_null("nonexistent")


@pytest.mark.parametrize("field", v.INTEGERS)
def test_rule_3_integer_fields(field):
    assert v.rule_integers(with_(**{field: "42"})) == []
    assert v.rule_integers(with_(**{field: "4.2"})) == [f"{field}: not an integer: '4.2'"]


@pytest.mark.parametrize("field", v.DECIMALS)
def test_rule_4_decimal_fields(field):
    assert v.rule_decimals(with_(**{field: "4.25"})) == []
    assert v.rule_decimals(with_(**{field: "2"})) == []
    assert v.rule_decimals(with_(**{field: "four"})) == [f"{field}: not a decimal: 'four'"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1714521600", True),
        ("2024-05-01T00:00:00Z", True),
        ("2024-05-01 00:00:00", False),
        ("2024-05-01T00:00:00+00:00", False),
        ("2024-05-01T00:00:00.5Z", False),
        ("yesterday", False),
    ],
)
def test_rule_5_times_are_epochs_or_exact_iso_z(value, ok):
    problems = v.rule_times(with_(StartTime=value))
    assert (problems == []) is ok
    if not ok:
        assert "Unknown datetime format" in problems[0]


def test_rule_6_unknown_keys_are_rejected_but_the_extras_allowed():
    assert (
        v.rule_known_fields(
            with_(VO="ops", VOGroup="/ops", VORole="Role=NULL", RecordCreateTime="1714521600")
        )
        == []
    )
    assert v.rule_known_fields(with_(Vmuuid="x")) == ["Unknown field: 'Vmuuid'"]


def test_rule_7_header_is_exact_and_case_sensitive():
    body = "\n".join(f"{k}: {x}" for k, x in GOOD.items()) + "\n"
    assert v.check_cloud_message("APEL-cloud-message: v0.4\n" + body) == []
    assert any("header" in p for p in v.check_cloud_message("APEL-Cloud-Message: v0.4\n" + body))
    assert any("header" in p for p in v.check_cloud_message("APEL-cloud-message: v0.2\n" + body))


@pytest.mark.parametrize(
    ("name", "why"), [("a%%b", "'%%'"), ("a\nb", "newline"), ("caf\u00e9", "non-ASCII")]
)
def test_rule_8_no_percent_percent_newline_or_non_ascii_in_values(name, why):
    problems = v.rule_safe_values(with_(MachineName=name))
    assert len(problems) == 1
    assert why in problems[0]
    assert v.rule_safe_values(with_(MachineName="a % b: c")) == []


def test_rule_8_a_percent_percent_in_a_value_breaks_the_whole_message_as_apel_splits_it():
    body = "\n".join(f"{k}: {x}" for k, x in with_(MachineName="x%%y").items())
    problems = v.check_cloud_message("APEL-cloud-message: v0.4\n" + body + "\n")
    assert any("mandatory" in p for p in problems)  # the second half has no VMUUID


def test_rule_9_status_values():
    for s in v.STATUSES:
        assert v.rule_status(with_(Status=s)) == []
    assert v.rule_status(with_(Status="running")) != []


def test_rule_10_one_bad_record_rejects_the_message():
    good = "\n".join(f"{k}: {x}" for k, x in GOOD.items())
    bad = "\n".join(f"{k}: {x}" for k, x in with_(Memory="lots").items())
    problems = v.check_cloud_message(f"APEL-cloud-message: v0.4\n{good}\n%%\n{bad}\n")
    assert problems == ["record 2: Memory: not an integer: 'lots'"]
    assert any(
        "mandatory" in p for p in v.check_cloud_message(f"APEL-cloud-message: v0.4\n{good}\n%%\n")
    )


def test_storage_message_checks():
    from fedcloud_accounting.record.storage import STAR_NS

    ok = (
        f'<sr:StorageUsageRecords xmlns:sr="{STAR_NS}"><sr:StorageUsageRecord>'
        '<sr:RecordIdentity sr:createTime="2024-05-01T00:00:00Z" sr:recordId="v1"/>'
        "<sr:StorageSystem>s</sr:StorageSystem><sr:Site>S</sr:Site>"
        "<sr:StartTime>2024-05-01T00:00:00Z</sr:StartTime><sr:EndTime>2024-05-02T00:00:00Z</sr:EndTime>"
        "<sr:ResourceCapacityUsed>1024</sr:ResourceCapacityUsed></sr:StorageUsageRecord></sr:StorageUsageRecords>"
    )
    assert v.check_storage_message(ok) == []
    assert v.check_storage_message(ok.replace("1024", "1k")) == [
        "record 1: ResourceCapacityUsed: not an integer: '1k'"
    ]
    assert (
        "Unknown datetime format"
        in v.check_storage_message(ok.replace("2024-05-01T00:00:00Z<", "2024-05-01<"))[0]
    )
    assert v.check_storage_message(ok.replace("<sr:Site>S</sr:Site>", "")) == [
        "record 1: Site is mandatory"
    ]
    assert v.check_storage_message("<oops")[0].startswith("not well-formed")


def test_json_message_checks():
    import json

    rec = {
        "MeasurementTime": 1,
        "SiteName": "S",
        "LocalGroup": "p",
        "FQAN": "ops",
        "IPVersion": 4,
        "IPCount": 1,
    }
    doc = {"Type": "APEL Public IP message", "Version": "0.2", "UsageRecords": [rec]}
    assert v.check_json_message(json.dumps(doc)) == []
    assert v.check_json_message(json.dumps({**doc, "Version": "0.1"})) != []
    assert v.check_json_message(json.dumps({**doc, "UsageRecords": [{**rec, "FQAN": ""}]})) == [
        "record 1: FQAN is mandatory"
    ]
